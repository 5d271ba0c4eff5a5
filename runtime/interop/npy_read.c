/* Reading .npy images from memory, files and streams, one reader for all.
 *
 * The preamble and the header come first and are checked before anything
 * else is read, so a stream that is not a .npy file (/dev/zero, a pipe
 * carrying something else) is refused after its first bytes. Then exactly
 * the data the header promises is read. When the size is known (memory, a
 * regular file) it must match before the data is allocated; a stream's data
 * buffer grows with what arrives, so a header promising a terabyte costs
 * only what the stream really holds, and the stream must end right after. */
#define _POSIX_C_SOURCE 200809L /* fileno, fstat */
#include "runtime/interop/npy_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Where the bytes come from. */
typedef struct src {
    const char *name;
    FILE *f;                  /* NULL: the memory buffer */
    const unsigned char *mem; /* mem_len bytes */
    size_t mem_len, mem_pos;
    bool sized;     /* total is known up front (memory, a regular file) */
    uint64_t total; /* the whole input's size when sized */
    int read_errno; /* set when the stream reported an error */
    fmd_diags *diags;
} src;

/* Up to n bytes into dst; fewer only at the end of the input or on a read
 * error (then read_errno is set). */
static size_t take(src *s, void *dst, size_t n) {
    if (n == 0) return 0;
    if (!s->f) {
        size_t k = s->mem_len - s->mem_pos < n ? s->mem_len - s->mem_pos : n;
        if (k) memcpy(dst, s->mem + s->mem_pos, k);
        s->mem_pos += k;
        return k;
    }
    errno = 0;
    size_t k = fread(dst, 1, n, s->f);
    if (k < n && ferror(s->f)) s->read_errno = errno ? errno : EIO;
    return k;
}

static fm_status read_error(src *s) {
    fmr_npy_error(s->diags, "%s: read error: %s", s->name, strerror(s->read_errno));
    return FM_ERR_IO;
}

/* Reads and checks magic, version and header length. */
static fm_status read_preamble(src *s, size_t *header_off, size_t *header_len) {
    unsigned char p[12];
    size_t n = take(s, p, 8);
    if (s->read_errno) return read_error(s);
    size_t m = n < sizeof fmr_npy_magic ? n : sizeof fmr_npy_magic;
    if (memcmp(p, fmr_npy_magic, m) != 0) {
        fmr_npy_error(s->diags, "%s: not a NumPy .npy file (it does not start with \\x93NUMPY)",
                      s->name);
        return FM_ERR_FORMAT;
    }
    if (n < 8) {
        fmr_npy_error(s->diags, "%s: truncated: %zu bytes, shorter than the .npy preamble", s->name,
                      n);
        return FM_ERR_FORMAT;
    }
    unsigned major = p[6], minor = p[7];
    if ((major != 1 && major != 2 && major != 3) || minor != 0) {
        fmr_npy_error(s->diags,
                      "%s: .npy format version %u.%u is not supported (1.0, 2.0 and 3.0 are)",
                      s->name, major, minor);
        return FM_ERR_UNSUPPORTED;
    }
    size_t lensize = major == 1 ? 2 : 4;
    size_t got = take(s, p + 8, lensize);
    if (s->read_errno) return read_error(s);
    if (got < lensize) {
        fmr_npy_error(s->diags, "%s: truncated: %zu bytes, shorter than the .npy preamble", s->name,
                      8 + got);
        return FM_ERR_FORMAT;
    }
    uint64_t hlen = (uint64_t)p[8] | (uint64_t)p[9] << 8;
    if (lensize == 4) hlen |= (uint64_t)p[10] << 16 | (uint64_t)p[11] << 24;
    if (hlen > FMR_NPY_MAX_HEADER) {
        fmr_npy_error(s->diags, "%s: the header claims %llu bytes, more than the limit of %zu",
                      s->name, (unsigned long long)hlen, (size_t)FMR_NPY_MAX_HEADER);
        return FM_ERR_LIMIT;
    }
    if (s->sized && s->total - (8 + lensize) < hlen) {
        fmr_npy_error(s->diags, "%s: truncated: the header is %llu bytes but only %llu follow",
                      s->name, (unsigned long long)hlen,
                      (unsigned long long)(s->total - (8 + lensize)));
        return FM_ERR_FORMAT;
    }
    *header_off = 8 + lensize;
    *header_len = (size_t)hlen;
    return FM_OK;
}

/* A sized input that delivers less than it holds changed under us. */
static fm_status shrank(src *s) {
    if (s->read_errno) return read_error(s);
    fmr_npy_error(s->diags, "%s: the file became shorter while it was read", s->name);
    return FM_ERR_IO;
}

static fm_status read_header(src *s, fmr_npy_header *hd, size_t *data_off) {
    size_t off, len;
    fm_status st = read_preamble(s, &off, &len);
    if (st) return st;
    char *text = malloc(len ? len : 1);
    if (!text) {
        fmr_npy_error(s->diags, "%s: out of memory for the header", s->name);
        return FM_ERR_NO_MEMORY;
    }
    size_t got = take(s, text, len);
    if (got < len) {
        if (s->sized || s->read_errno) {
            st = shrank(s);
        } else {
            fmr_npy_error(s->diags, "%s: truncated: the header is %zu bytes but only %zu follow",
                          s->name, len, got);
            st = FM_ERR_FORMAT;
        }
    }
    if (!st) st = fmr_npy_parse_header(s->name, text, len, off, hd, s->diags);
    free(text);
    *data_off = off + len;
    return st;
}

/* The data must be exactly what the header describes; have < 0 means
 * "more than that" without a count (a stream not read to its end). */
static fm_status wrong_size(const char *name, const fmr_npy_header *hd, uint64_t have,
                            bool have_known, fmd_diags *diags) {
    char shape[256];
    fmr_npy_format_shape(shape, sizeof shape, hd->rank, hd->shape);
    const char *dt = fmr_npy_dtype_name(hd->dtype);
    if (!have_known)
        fmr_npy_error(diags, "%s: more bytes follow the data (shape %s of %s needs %zu bytes)",
                      name, shape, dt, hd->nbytes);
    else if (have < hd->nbytes)
        fmr_npy_error(diags,
                      "%s: truncated: shape %s of %s needs %zu bytes of data, the file holds %llu",
                      name, shape, dt, hd->nbytes, (unsigned long long)have);
    else
        fmr_npy_error(diags,
                      "%s: %llu unexpected bytes after the data (shape %s of %s needs %zu bytes)",
                      name, (unsigned long long)(have - hd->nbytes), shape, dt, hd->nbytes);
    return FM_ERR_FORMAT;
}

static fm_status out_of_memory(src *s, size_t n) {
    fmr_npy_error(s->diags, "%s: out of memory for %zu bytes of data", s->name, n);
    return FM_ERR_NO_MEMORY;
}

/* A stream's data: the buffer doubles as bytes arrive, up to the promise. */
static fm_status read_stream_data(src *s, const fmr_npy_header *hd, unsigned char **out) {
    size_t want = hd->nbytes, cap = want < ((size_t)1 << 16) ? want : (size_t)1 << 16, have = 0;
    unsigned char *buf = malloc(cap ? cap : 1);
    if (!buf) return out_of_memory(s, cap);
    for (;;) {
        size_t got = take(s, buf + have, cap - have);
        have += got;
        if (have < cap) break; /* the end, or an error */
        if (cap == want) break;
        size_t ncap = cap <= want / 2 ? cap * 2 : want;
        unsigned char *nb = realloc(buf, ncap);
        if (!nb) {
            free(buf);
            return out_of_memory(s, ncap);
        }
        buf = nb;
        cap = ncap;
    }
    fm_status st = FM_OK;
    unsigned char probe;
    if (s->read_errno)
        st = read_error(s);
    else if (have < want)
        st = wrong_size(s->name, hd, have, true, s->diags);
    else if (take(s, &probe, 1) == 1)
        st = wrong_size(s->name, hd, 0, false, s->diags);
    else if (s->read_errno)
        st = read_error(s);
    if (st) {
        free(buf);
        return st;
    }
    *out = buf;
    return FM_OK;
}

static fm_status read_npy(src *s, fmr_npy *out) {
    fmr_npy_header hd;
    size_t data_off;
    fm_status st = read_header(s, &hd, &data_off);
    if (st) return st;
    unsigned char *data = NULL;
    if (s->sized) {
        /* Checked against the size before anything is allocated for it. */
        if (s->total - data_off != hd.nbytes)
            return wrong_size(s->name, &hd, s->total - data_off, true, s->diags);
        data = malloc(hd.nbytes ? hd.nbytes : 1);
        if (!data) return out_of_memory(s, hd.nbytes);
        if (take(s, data, hd.nbytes) < hd.nbytes) {
            free(data);
            return shrank(s);
        }
    } else {
        st = read_stream_data(s, &hd, &data);
        if (st) return st;
    }
    out->dtype = hd.dtype;
    out->rank = hd.rank;
    memcpy(out->shape, hd.shape, sizeof out->shape);
    out->count = hd.count;
    out->nbytes = hd.nbytes;
    out->data = data;
    fmr_npy_swap(data, hd.count, fmr_npy_dtype_size(hd.dtype));
    return FM_OK;
}

fm_status fmr_npy_load_memory(const char *name, const void *buf, size_t len, fmr_npy *out,
                              fmd_diags *diags) {
    if (!out || (!buf && len)) return FM_ERR_INVALID_ARGUMENT;
    memset(out, 0, sizeof *out);
    src s = {.name = name ? name : "<memory>",
             .mem = buf,
             .mem_len = len,
             .sized = true,
             .total = len,
             .diags = diags};
    return read_npy(&s, out);
}

fm_status fmr_npy_load_stream(const char *name, FILE *f, fmr_npy *out, fmd_diags *diags) {
    if (!name || !f || !out) return FM_ERR_INVALID_ARGUMENT;
    memset(out, 0, sizeof *out);
    src s = {.name = name, .f = f, .diags = diags};
    fm_status st = read_npy(&s, out);
    if (st) fmr_npy_free(out);
    return st;
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
    } else {
        /* A regular file's size is checked against the header up front;
         * anything else (a pipe, a FIFO, a device) is read as a stream. */
        bool sized = S_ISREG(sb.st_mode);
        src s = {.name = path,
                 .f = f,
                 .sized = sized,
                 .total = sized ? (uint64_t)sb.st_size : 0,
                 .diags = diags};
        st = read_npy(&s, out);
    }
    fclose(f);
    if (st) fmr_npy_free(out);
    return st;
}
