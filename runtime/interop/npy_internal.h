/* Pieces of the .npy reader shared between its files (and the fuzzer). */
#ifndef FM_RUNTIME_NPY_INTERNAL_H
#define FM_RUNTIME_NPY_INTERNAL_H

#include "runtime/interop/npy.h"

/* What the header dict says. */
typedef struct fmr_npy_header {
    fmr_npy_dtype dtype;
    bool fortran_order;
    size_t rank;
    int64_t shape[FMR_NPY_MAX_RANK];
    size_t count, nbytes;
} fmr_npy_header;

/* Parses the header dict text[0, len); base is its offset in the file (for
 * messages). Checks the dtype, order and size limits too. */
fm_status fmr_npy_parse_header(const char *name, const char *text, size_t len, size_t base,
                               fmr_npy_header *out, fmd_diags *diags);

/* \x93NUMPY, the first bytes of every .npy file. */
extern const unsigned char fmr_npy_magic[6];

/* The file is little-endian: on a big-endian host, reverses the bytes of
 * each of count items of item bytes (its own inverse); else nothing. */
void fmr_npy_swap(void *data, size_t count, size_t item);

/* "(3, 4)" as Python writes a tuple (cap of at least 200 bytes). */
void fmr_npy_format_shape(char *buf, size_t cap, size_t rank, const int64_t *shape);

/* Adds an error without a source to diags (which may be NULL). */
void fmr_npy_error(fmd_diags *diags, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
