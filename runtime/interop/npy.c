/* .npy files: the dtype table, byte order, and writing. Reading is in
 * npy_read.c, the header dict in npy_header.c. */
#include "runtime/interop/npy_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/interop/file_io.h"

const unsigned char fmr_npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

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

void fmr_npy_swap(void *data, size_t count, size_t item) {
    if (item == 1 || host_little_endian()) return;
    unsigned char *p = data;
    for (size_t i = 0; i < count; i++, p += item)
        for (size_t j = 0; j < item / 2; j++) {
            unsigned char t = p[j];
            p[j] = p[item - 1 - j];
            p[item - 1 - j] = t;
        }
}

void fmr_npy_format_shape(char *buf, size_t cap, size_t rank, const int64_t *shape) {
    size_t n = (size_t)snprintf(buf, cap, "(");
    for (size_t i = 0; i < rank && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, rank == 1 ? ",)" : ")");
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
    fmr_npy_format_shape(sh, sizeof sh, rank, shape);
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
    memcpy(hdr, fmr_npy_magic, sizeof fmr_npy_magic);
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
    fmr_npy_swap(buf + hl, nb / item, item); /* the swap is its own inverse */
    *out = buf;
    *out_len = hl + nb;
    return FM_OK;
}

static bool write_data(fmr_out *o, const void *data, size_t nbytes, size_t item) {
    if (item == 1 || host_little_endian()) return fmr_out_write(o, data, nbytes);
    unsigned char chunk[1 << 14];
    const unsigned char *p = data;
    while (nbytes) {
        size_t n = nbytes < sizeof chunk ? nbytes : sizeof chunk;
        memcpy(chunk, p, n);
        fmr_npy_swap(chunk, n / item, item);
        if (!fmr_out_write(o, chunk, n)) return false;
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
    fmr_out o;
    if (!fmr_out_open(&o, path)) {
        fmr_npy_error(diags, "%s: %s", path, o.error);
        return FM_ERR_IO;
    }
    if (!fmr_out_write(&o, hdr, hl) || !write_data(&o, data, nb, fmr_npy_dtype_size(dtype)))
        fmr_out_abort(&o);
    else if (fmr_out_commit(&o))
        return FM_OK;
    fmr_npy_error(diags, "%s: %s", path, o.error);
    return FM_ERR_IO;
}
