/* NumPy .npy files: reading (format versions 1.0, 2.0 and 3.0) and
 * writing (version 1.0).
 *
 * Only what flexmask exchanges is supported: little-endian (or byte-sized)
 * bool, uint8, int32, int64, float16, float32 and float64 arrays in C order,
 * of rank 0 to FMR_NPY_MAX_RANK. Everything else (Fortran order,
 * big-endian data, structured or object dtypes) is refused with a message.
 *
 * Errors: every function returns an fm_status (FM_OK on success) and, when
 * diags is not NULL, appends one error with no source location whose
 * message starts with the file name given, then says what is wrong, e.g.
 *   "q.npy: truncated: the header promises 4096 bytes of data, the file
 *    holds 100"
 * Statuses: FM_ERR_IO (cannot open, read or write), FM_ERR_FORMAT (not a
 * well-formed .npy), FM_ERR_UNSUPPORTED (well-formed but outside the subset
 * above), FM_ERR_LIMIT (larger than FMR_NPY_MAX_BYTES), FM_ERR_NO_MEMORY,
 * FM_ERR_INVALID_ARGUMENT (a NULL pointer or a bad rank/dtype from the caller).
 *
 * Malformed input never makes a reader touch memory outside the buffer or
 * the allocation it made. The preamble and header are read and checked
 * before anything else, so an input that is not a .npy file costs only its
 * first bytes, stream or not; then exactly the data the header promises is
 * read (less or more is an error). Nothing is allocated for the data before
 * a regular file or memory buffer is known to hold it; a stream's buffer
 * grows with the bytes that arrive. Text taken from the file (keys, dtypes)
 * is escaped in messages (fmd_escape). */
#ifndef FM_RUNTIME_NPY_H
#define FM_RUNTIME_NPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "dsl/diag.h"
#include "flexmask.h"

#define FMR_NPY_MAX_RANK 8
/* Largest header accepted (numpy itself refuses more than 10,000 bytes by
 * default; version 2.0 exists for structured dtypes with long headers). */
#define FMR_NPY_MAX_HEADER ((size_t)1 << 20)
/* Largest data block accepted: a sanity cap far above any real mask or
 * attention tensor that still keeps byte counts well inside size_t. */
#define FMR_NPY_MAX_BYTES ((uint64_t)1 << 40)

/* X(NAME, descr as written by numpy, item size, readable name) */
#define FMR_NPY_DTYPES(X)                                                                          \
    X(BOOL, "|b1", 1, "bool")                                                                      \
    X(UINT8, "|u1", 1, "uint8")                                                                    \
    X(INT32, "<i4", 4, "int32")                                                                    \
    X(INT64, "<i8", 8, "int64")                                                                    \
    X(FLOAT16, "<f2", 2, "float16")                                                                \
    X(FLOAT32, "<f4", 4, "float32")                                                                \
    X(FLOAT64, "<f8", 8, "float64")

typedef enum fmr_npy_dtype {
#define X(name, descr, size, pretty) FMR_NPY_##name,
    FMR_NPY_DTYPES(X)
#undef X
        FMR_NPY_DTYPE_COUNT
} fmr_npy_dtype;

/* An array in host byte order, C order. data is malloc'd (never NULL after a
 * successful load, even for zero elements) and belongs to the struct. */
typedef struct fmr_npy {
    fmr_npy_dtype dtype;
    size_t rank;                     /* 0 (a scalar) to FMR_NPY_MAX_RANK */
    int64_t shape[FMR_NPY_MAX_RANK]; /* rank entries, each >= 0 */
    size_t count;                    /* elements: the product of shape */
    size_t nbytes;                   /* count * item size */
    void *data;
} fmr_npy;

/* Item size in bytes, numpy's descr ("<f4") and a readable name ("float32");
 * 0 / "?" for a value outside the enum. */
size_t fmr_npy_dtype_size(fmr_npy_dtype t);
const char *fmr_npy_dtype_descr(fmr_npy_dtype t);
const char *fmr_npy_dtype_name(fmr_npy_dtype t);

/* Reads the .npy file at path into *out (left zeroed on failure). Messages
 * name the file by path. A path that is not a regular file (a pipe, FIFO,
 * /dev/stdin, a device) is read as a stream. */
fm_status fmr_npy_load(const char *path, fmr_npy *out, fmd_diags *diags);
/* Reads one .npy image from f, from where it stands to its end: the
 * image must end exactly where the stream does. name labels messages
 * ("<stdin>"). f stays open. */
fm_status fmr_npy_load_stream(const char *name, FILE *f, fmr_npy *out, fmd_diags *diags);
/* Reads a .npy image of len bytes; name (NULL: "<memory>") is used in
 * messages. The whole buffer must be the file: trailing bytes are an error.
 * data is copied. */
fm_status fmr_npy_load_memory(const char *name, const void *buf, size_t len, fmr_npy *out,
                              fmd_diags *diags);
void fmr_npy_free(fmr_npy *a);

/* Writes a version 1.0 .npy file (header padded to 64 bytes, as numpy
 * does). data holds the product of shape elements of dtype in host byte
 * order, C order; rank may be 0. Written through file_io.h: a failed write
 * leaves an existing file as it was. */
fm_status fmr_npy_save(const char *path, fmr_npy_dtype dtype, size_t rank, const int64_t *shape,
                       const void *data, fmd_diags *diags);
/* The same file image in memory: *out is malloc'd, *out_len its size. */
fm_status fmr_npy_save_memory(fmr_npy_dtype dtype, size_t rank, const int64_t *shape,
                              const void *data, void **out, size_t *out_len, fmd_diags *diags);

/* Converts an integer or bool array to int32 (malloc'd into *out): int64
 * values outside int32 are an error naming the first such element by its
 * index, e.g. "doc.npy: element [0, 17] is 4294967296, which does not fit
 * in int32" (FM_ERR_BINDING). Floating-point arrays are
 * FM_ERR_UNSUPPORTED. name labels messages. */
fm_status fmr_npy_to_int32(const fmr_npy *a, const char *name, int32_t **out, fmd_diags *diags);
/* Converts a floating-point array (float16, float32, float64) to float32
 * (malloc'd into *out), rounding float64 to nearest. Integer and bool
 * arrays are FM_ERR_UNSUPPORTED. */
fm_status fmr_npy_to_float32(const fmr_npy *a, const char *name, float **out, fmd_diags *diags);

/* IEEE binary16 <-> binary32. float to half rounds to nearest even,
 * overflows to infinity and keeps NaN a NaN. */
float fmr_half_to_float(uint16_t h);
uint16_t fmr_float_to_half(float f);

#endif
