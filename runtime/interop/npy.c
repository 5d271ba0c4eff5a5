/* Reading and writing .npy files: the preamble, the size checks, files and
 * memory buffers. The header dict is parsed in npy_header.c. */
#define _POSIX_C_SOURCE 200809L /* fileno, fstat */
#include "runtime/interop/npy_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const unsigned char MAGIC[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
#define PREAMBLE_MAX 12 /* magic, version, 4-byte header length */

static const struct {
    const char *descr, *name;
    size_t size;
} DTYPES[] = {
#define X(name, descr, size, pretty) {descr, pretty, size},
    FMR_NPY_DTYPES(X)
#undef X
};

size_t fmr_npy_dtype_size(fmr_npy_dtype t) {
    return (unsigned)t < FMR_NPY_DTYPE_COUNT ? DTYPES[t].size : 0;
}

const char *fmr_npy_dtype_descr(fmr_npy_dtype t) {
    return (unsigned)t < FMR_NPY_DTYPE_COUNT ? DTYPES[t].descr : "?";
}

const char *fmr_npy_dtype_name(fmr_npy_dtype t) {
    return (unsigned)t < FMR_NPY_DTYPE_COUNT ? DTYPES[t].name : "?";
}

void fmr_npy_error(fmd_diags *diags, const char *fmt, ...) {
    if (!diags) return;
    va_list ap;
    va_start(ap, fmt);
    fmd_diag_addv(diags, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL, fmt, ap);
    va_end(ap);
}

void fmr_npy_free(fmr_npy *a) {
    if (!a) return;
    free(a->data);
    memset(a, 0, sizeof *a);
}

static bool host_little_endian(void) {
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* The file is little-endian; a big-endian host swaps every item. */
static void to_host_order(void *data, size_t count, size_t item) {
    if (item == 1 || host_little_endian()) return;
    unsigned char *p = data;
    for (size_t i = 0; i < count; i++, p += item)
        for (size_t j = 0; j < item / 2; j++) {
            unsigned char t = p[j];
            p[j] = p[item - 1 - j];
            p[item - 1 - j] = t;
        }
}

/* "(3, 4)" as Python writes a tuple; buf holds at least 200 bytes. */
static void format_shape(char *buf, size_t cap, size_t rank, const int64_t *shape) {
    size_t n = (size_t)snprintf(buf, cap, "(");
    for (size_t i = 0; i < rank && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, rank == 1 ? ",)" : ")");
}

typedef struct preamble {
    size_t header_off, header_len;
} preamble;

/* Checks magic, version and header length. p holds the first n bytes of a
 * file of total bytes (n >= min(total, PREAMBLE_MAX)). */
static fm_status parse_preamble(const char *name, const unsigned char *p, size_t n, uint64_t total,
                                preamble *out, fmd_diags *diags) {
    size_t m = n < sizeof MAGIC ? n : sizeof MAGIC;
    if (memcmp(p, MAGIC, m) != 0) {
        fmr_npy_error(diags, "%s: not a NumPy .npy file (it does not start with \\x93NUMPY)", name);
        return FM_ERR_FORMAT;
    }
    if (total < 8) {
        fmr_npy_error(diags, "%s: truncated: %llu bytes, shorter than the .npy preamble", name,
                      (unsigned long long)total);
        return FM_ERR_FORMAT;
    }
    unsigned major = p[6], minor = p[7];
    if ((major != 1 && major != 2 && major != 3) || minor != 0) {
        fmr_npy_error(diags,
                      "%s: .npy format version %u.%u is not supported (1.0, 2.0 and 3.0 are)", name,
                      major, minor);
        return FM_ERR_UNSUPPORTED;
    }
    size_t lensize = major == 1 ? 2 : 4;
    if (total < 8 + lensize) {
        fmr_npy_error(diags, "%s: truncated: %llu bytes, shorter than the .npy preamble", name,
                      (unsigned long long)total);
        return FM_ERR_FORMAT;
    }
    uint64_t hlen = (uint64_t)p[8] | (uint64_t)p[9] << 8;
    if (lensize == 4) hlen |= (uint64_t)p[10] << 16 | (uint64_t)p[11] << 24;
    if (hlen > FMR_NPY_MAX_HEADER) {
        fmr_npy_error(diags, "%s: the header claims %llu bytes, more than the limit of %zu", name,
                      (unsigned long long)hlen, (size_t)FMR_NPY_MAX_HEADER);
        return FM_ERR_LIMIT;
    }
    if (total - (8 + lensize) < hlen) {
        fmr_npy_error(diags, "%s: truncated: the header is %llu bytes but only %llu follow", name,
                      (unsigned long long)hlen, (unsigned long long)(total - (8 + lensize)));
        return FM_ERR_FORMAT;
    }
    out->header_off = 8 + lensize;
    out->header_len = (size_t)hlen;
    return FM_OK;
}

/* The data must be exactly what the header describes. */
static fm_status check_data_size(const char *name, const fmr_npy_header *hd, uint64_t have,
                                 fmd_diags *diags) {
    if (have == hd->nbytes) return FM_OK;
    char shape[256];
    format_shape(shape, sizeof shape, hd->rank, hd->shape);
    if (have < hd->nbytes)
        fmr_npy_error(
            diags, "%s: truncated: shape %s of %s needs %zu bytes of data, the file holds %llu",
            name, shape, fmr_npy_dtype_name(hd->dtype), hd->nbytes, (unsigned long long)have);
    else
        fmr_npy_error(diags,
                      "%s: %llu unexpected bytes after the data (shape %s of %s needs %zu bytes)",
                      name, (unsigned long long)(have - hd->nbytes), shape,
                      fmr_npy_dtype_name(hd->dtype), hd->nbytes);
    return FM_ERR_FORMAT;
}

static void fill(fmr_npy *out, const fmr_npy_header *hd, void *data) {
    out->dtype = hd->dtype;
    out->rank = hd->rank;
    memcpy(out->shape, hd->shape, sizeof out->shape);
    out->count = hd->count;
    out->nbytes = hd->nbytes;
    out->data = data;
    to_host_order(data, hd->count, fmr_npy_dtype_size(hd->dtype));
}

fm_status fmr_npy_load_memory(const char *name, const void *buf, size_t len, fmr_npy *out,
                              fmd_diags *diags) {
    if (!name) name = "<memory>";
    if (!out || (!buf && len)) return FM_ERR_INVALID_ARGUMENT;
    memset(out, 0, sizeof *out);
    const unsigned char *p = buf ? buf : (const unsigned char *)"";
    preamble pre;
    fm_status st = parse_preamble(name, p, len, len, &pre, diags);
    if (st) return st;
    fmr_npy_header hd;
    st = fmr_npy_parse_header(name, (const char *)p + pre.header_off, pre.header_len,
                              pre.header_off, &hd, diags);
    if (st) return st;
    size_t data_off = pre.header_off + pre.header_len;
    st = check_data_size(name, &hd, len - data_off, diags);
    if (st) return st;
    void *data = malloc(hd.nbytes ? hd.nbytes : 1);
    if (!data) {
        fmr_npy_error(diags, "%s: out of memory for %zu bytes of data", name, hd.nbytes);
        return FM_ERR_NO_MEMORY;
    }
    if (hd.nbytes) memcpy(data, p + data_off, hd.nbytes);
    fill(out, &hd, data);
    return FM_OK;
}

/* Streams (pipes, /dev/stdin) have no size: read them whole, capped. */
static fm_status load_stream(const char *path, FILE *f, fmr_npy *out, fmd_diags *diags) {
    const size_t cap_max = (size_t)(FMR_NPY_MAX_BYTES + FMR_NPY_MAX_HEADER + PREAMBLE_MAX);
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        if (cap >= cap_max) {
            free(buf);
            fmr_npy_error(diags, "%s: larger than the limit of %zu bytes", path, cap_max);
            return FM_ERR_LIMIT;
        }
        size_t ncap = cap * 2 < cap_max ? cap * 2 : cap_max;
        unsigned char *nb = realloc(buf, ncap);
        if (!nb) free(buf);
        buf = nb;
        cap = ncap;
    }
    if (!buf) {
        fmr_npy_error(diags, "%s: out of memory while reading", path);
        return FM_ERR_NO_MEMORY;
    }
    fm_status st = FM_OK;
    if (ferror(f)) {
        fmr_npy_error(diags, "%s: read error: %s", path, strerror(errno));
        st = FM_ERR_IO;
    } else {
        st = fmr_npy_load_memory(path, buf, n, out, diags);
    }
    free(buf);
    return st;
}

static fm_status read_exact(const char *path, FILE *f, void *dst, size_t n, fmd_diags *diags) {
    if (n == 0 || fread(dst, 1, n, f) == n) return FM_OK;
    if (ferror(f))
        fmr_npy_error(diags, "%s: read error: %s", path, strerror(errno));
    else
        fmr_npy_error(diags, "%s: the file became shorter while it was read", path);
    return FM_ERR_IO;
}

/* Regular files: the size is known, so the header is checked against it
 * before the data is allocated. */
static fm_status load_regular(const char *path, FILE *f, uint64_t total, fmr_npy *out,
                              fmd_diags *diags) {
    unsigned char pbuf[PREAMBLE_MAX];
    size_t n = total < PREAMBLE_MAX ? (size_t)total : PREAMBLE_MAX;
    fm_status st = read_exact(path, f, pbuf, n, diags);
    if (st) return st;
    preamble pre;
    st = parse_preamble(path, pbuf, n, total, &pre, diags);
    if (st) return st;
    char *header = malloc(pre.header_len ? pre.header_len : 1);
    if (!header) {
        fmr_npy_error(diags, "%s: out of memory for the header", path);
        return FM_ERR_NO_MEMORY;
    }
    /* The preamble read may have taken the first bytes of the header. */
    size_t got = 0;
    if (n > pre.header_off) {
        got = n - pre.header_off < pre.header_len ? n - pre.header_off : pre.header_len;
        memcpy(header, pbuf + pre.header_off, got);
    }
    st = read_exact(path, f, header + got, pre.header_len - got, diags);
    fmr_npy_header hd;
    if (!st) st = fmr_npy_parse_header(path, header, pre.header_len, pre.header_off, &hd, diags);
    free(header);
    if (st) return st;
    size_t data_off = pre.header_off + pre.header_len;
    st = check_data_size(path, &hd, total - data_off, diags);
    if (st) return st;
    /* Bytes of the data that the preamble read already took. */
    size_t early = n > data_off ? n - data_off : 0;
    void *data = malloc(hd.nbytes ? hd.nbytes : 1);
    if (!data) {
        fmr_npy_error(diags, "%s: out of memory for %zu bytes of data", path, hd.nbytes);
        return FM_ERR_NO_MEMORY;
    }
    if (early) memcpy(data, pbuf + data_off, early);
    st = read_exact(path, f, (char *)data + early, hd.nbytes - early, diags);
    if (st) {
        free(data);
        return st;
    }
    fill(out, &hd, data);
    return FM_OK;
}

fm_status fmr_npy_load(const char *path, fmr_npy *out, fmd_diags *diags) {
    if (!path || !out) return FM_ERR_INVALID_ARGUMENT;
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fmr_npy_error(diags, "%s: cannot open: %s", path, strerror(errno));
        return FM_ERR_IO;
    }
    struct stat sb;
    fm_status st;
    if (fstat(fileno(f), &sb) != 0) {
        fmr_npy_error(diags, "%s: cannot stat: %s", path, strerror(errno));
        st = FM_ERR_IO;
    } else if (S_ISDIR(sb.st_mode)) {
        fmr_npy_error(diags, "%s: is a directory, not a .npy file", path);
        st = FM_ERR_IO;
    } else if (S_ISREG(sb.st_mode)) {
        st = load_regular(path, f, (uint64_t)sb.st_size, out, diags);
    } else {
        st = load_stream(path, f, out, diags);
    }
    fclose(f);
    if (st) fmr_npy_free(out);
    return st;
}

/* ---- writing ------------------------------------------------------------- */

/* Checks the arguments and writes the padded version 1.0 preamble and
 * header into hdr (at least 512 bytes). */
static fm_status make_header(const char *name, fmr_npy_dtype dtype, size_t rank,
                             const int64_t *shape, const void *data, unsigned char *hdr,
                             size_t *hdr_len, size_t *nbytes, fmd_diags *diags) {
    if ((unsigned)dtype >= FMR_NPY_DTYPE_COUNT || rank > FMR_NPY_MAX_RANK || (rank && !shape)) {
        fmr_npy_error(diags, "%s: cannot write: bad dtype or rank %zu (at most %d)", name, rank,
                      FMR_NPY_MAX_RANK);
        return FM_ERR_INVALID_ARGUMENT;
    }
    uint64_t count = 1;
    for (size_t i = 0; i < rank; i++) {
        if (shape[i] < 0) {
            fmr_npy_error(diags, "%s: cannot write: negative dimension %lld", name,
                          (long long)shape[i]);
            return FM_ERR_INVALID_ARGUMENT;
        }
        if (shape[i] == 0) count = 0;
    }
    uint64_t item = fmr_npy_dtype_size(dtype);
    for (size_t i = 0; count && i < rank; i++) {
        if (count > FMR_NPY_MAX_BYTES / item / (uint64_t)shape[i]) {
            fmr_npy_error(diags, "%s: cannot write: more than %llu bytes of data", name,
                          (unsigned long long)FMR_NPY_MAX_BYTES);
            return FM_ERR_LIMIT;
        }
        count *= (uint64_t)shape[i];
    }
    if (count && !data) {
        fmr_npy_error(diags, "%s: cannot write: no data", name);
        return FM_ERR_INVALID_ARGUMENT;
    }
    char sh[256];
    format_shape(sh, sizeof sh, rank, shape);
    char dict[320];
    int dl = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                      fmr_npy_dtype_descr(dtype), sh);
    /* Like numpy (1.23 and later), leave room for the first dimension to
     * grow to 21 digits, so our files are byte for byte what np.save
     * writes; then align the data to 64 bytes with spaces and a '\n'. */
    size_t growth = 0;
    if (rank) {
        int digits = snprintf(NULL, 0, "%lld", (long long)shape[0]);
        growth = digits < 21 ? (size_t)(21 - digits) : 0;
    }
    size_t total = 10 + (size_t)dl + growth + 1;
    total = (total + 63) / 64 * 64;
    size_t hlen = total - 10;
    memcpy(hdr, MAGIC, sizeof MAGIC);
    hdr[6] = 1;
    hdr[7] = 0;
    hdr[8] = (unsigned char)(hlen & 0xFF);
    hdr[9] = (unsigned char)(hlen >> 8);
    memcpy(hdr + 10, dict, (size_t)dl);
    memset(hdr + 10 + dl, ' ', hlen - (size_t)dl - 1);
    hdr[total - 1] = '\n';
    *hdr_len = total;
    *nbytes = (size_t)(count * item);
    return FM_OK;
}

fm_status fmr_npy_save_memory(fmr_npy_dtype dtype, size_t rank, const int64_t *shape,
                              const void *data, void **out, size_t *out_len, fmd_diags *diags) {
    if (!out || !out_len) return FM_ERR_INVALID_ARGUMENT;
    unsigned char hdr[512];
    size_t hl, nb;
    fm_status st = make_header("<memory>", dtype, rank, shape, data, hdr, &hl, &nb, diags);
    if (st) return st;
    unsigned char *buf = malloc(hl + nb);
    if (!buf) {
        fmr_npy_error(diags, "<memory>: out of memory for a %zu-byte .npy image", hl + nb);
        return FM_ERR_NO_MEMORY;
    }
    memcpy(buf, hdr, hl);
    if (nb) memcpy(buf + hl, data, nb);
    size_t item = fmr_npy_dtype_size(dtype);
    to_host_order(buf + hl, nb / item, item); /* the swap is its own inverse */
    *out = buf;
    *out_len = hl + nb;
    return FM_OK;
}

static bool write_data(FILE *f, const void *data, size_t nbytes, size_t item) {
    if (item == 1 || host_little_endian())
        return nbytes == 0 || fwrite(data, 1, nbytes, f) == nbytes;
    unsigned char chunk[1 << 14];
    const unsigned char *p = data;
    while (nbytes) {
        size_t n = nbytes < sizeof chunk ? nbytes : sizeof chunk;
        memcpy(chunk, p, n);
        to_host_order(chunk, n / item, item);
        if (fwrite(chunk, 1, n, f) != n) return false;
        p += n;
        nbytes -= n;
    }
    return true;
}

fm_status fmr_npy_save(const char *path, fmr_npy_dtype dtype, size_t rank, const int64_t *shape,
                       const void *data, fmd_diags *diags) {
    if (!path) return FM_ERR_INVALID_ARGUMENT;
    unsigned char hdr[512];
    size_t hl, nb;
    fm_status st = make_header(path, dtype, rank, shape, data, hdr, &hl, &nb, diags);
    if (st) return st;
    FILE *f = fopen(path, "wb");
    if (!f) {
        fmr_npy_error(diags, "%s: cannot open for writing: %s", path, strerror(errno));
        return FM_ERR_IO;
    }
    bool ok = fwrite(hdr, 1, hl, f) == hl && write_data(f, data, nb, fmr_npy_dtype_size(dtype));
    int err = errno;
    if (fclose(f) != 0 && ok) {
        ok = false;
        err = errno;
    }
    if (!ok) {
        remove(path);
        fmr_npy_error(diags, "%s: write error: %s", path, strerror(err));
        return FM_ERR_IO;
    }
    return FM_OK;
}
