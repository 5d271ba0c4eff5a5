/* flexmask_tools.h: what fmc and fmviz need beyond flexmask.h.
 *
 * Not installed and not part of the C ABI: the tools link the static
 * fm_core, where these functions live (runtime/api/tools.c). The tools
 * include flexmask.h, this header and their own headers in tools/, nothing
 * else (the ctest entry tools_include_rule checks it), so they go through
 * the same handles as any user and never read the library's structs.
 * Every function here works on public types; none prints to a stream it
 * was not handed. */
#ifndef FLEXMASK_TOOLS_H
#define FLEXMASK_TOOLS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "flexmask.h"

/* ---- diagnostics ---- */

/* Appends a message with no source location; severity is "error",
 * "warning" or "note". false when out of memory or past the error limit. */
bool fmt_diags_addv(fm_diagnostics *diags, const char *severity, const char *hint,
                    const char *fmt, va_list ap);

/* Renders every message of diags to out: text (FILE:LINE:COL: error: ...,
 * source line, carets, hint) or one JSON object per line. A message with no
 * file that does not already start with "PROG:" gets that prefix, so every
 * tool error reads "error: PROG: MESSAGE". In text, a truncated collection
 * ends with a "too many errors" line. */
void fmt_diags_render(const fm_diagnostics *diags, const char *prog, bool json, FILE *out);

/* The candidate closest to name by edit distance, or NULL when none is
 * close enough to suggest (the did-you-mean rule of the checker). */
const char *fmt_closest_name(const char *name, const char *const *cands, size_t n);

/* Writes s as a JSON string literal (the one escaping rule of the project:
 * control bytes escaped, invalid UTF-8 replaced by U+FFFD). */
void fmt_json_string(FILE *out, const char *s);

/* ---- .npy arrays ---- */

typedef struct fmt_array {
    const char *dtype; /* numpy's name: "float32", "float16", "int64", ... */
    size_t rank;
    int64_t shape[8];
    size_t count; /* elements */
    void *data;   /* host order, C order; freed by fmt_array_free */
} fmt_array;

/* Reads a .npy file, or standard input for "-" (once per process; a second
 * "-" is an error), read to exactly the array's end; messages name it by
 * path ("<stdin>" for "-"). *out is zeroed on failure. */
fm_status fmt_npy_load(const char *path, fmt_array *out, fm_diagnostics *diags);
void fmt_array_free(fmt_array *a);
/* Writes a float32 array (rank 0 to 8) as a .npy file; a partly written
 * file is removed. */
fm_status fmt_npy_save_float32(const char *path, size_t rank, const int64_t *shape,
                               const float *data, fm_diagnostics *diags);
/* Loads an int32 or int64 (C order) file of rank 1 to max_rank whose values
 * all fit in int32 into *data (malloc'd; the caller frees), with its rank
 * and dims. On failure writes one message naming the file into err. */
bool fmt_npy_load_int32(const char *path, int32_t **data, size_t *rank, int64_t *dims,
                        size_t max_rank, char *err, size_t err_size);

/* ---- CUDA source and PTX (fmc cuda, fmc ptx) ---- */

/* The CUDA C source generated for mask; with full, the whole NVRTC input
 * (the kernel template appended). *text is malloc'd, *len its length. */
fm_status fmt_cuda_source(const fm_mask *mask, bool full, char **text, size_t *len,
                          fm_diagnostics *diags);

typedef struct fmt_ptx_options {
    int arch;     /* e.g. 90; clamped to what NVRTC supports */
    int head_dim; /* 64 or 128 */
    bool fp16;    /* else bf16 */
    bool int32;   /* the mask's 32-bit arithmetic variant */
} fmt_ptx_options;

/* Compiles mask's forward kernel with NVRTC; *report (malloc'd) is the PTX,
 * then one line per kernel of the CUBIN with its registers, shared memory,
 * stack frame and spill bytes. FM_ERR_UNSUPPORTED when this build has no
 * CUDA support or NVRTC cannot be loaded (diags say why). */
fm_status fmt_cuda_ptx_report(const fm_mask *mask, const fmt_ptx_options *opts, char **report,
                              fm_diagnostics *diags);

/* ---- independent evaluation (fmviz --check) ---- */

/* One thread's evaluator of a BlockMask's mask that never reads its tile
 * lists or analysis: the vectorised row evaluator over up to max_n
 * positions a call, and the point evaluator beside it for spot checks.
 * NULL when out of memory. Not shared between threads. */
typedef struct fmt_row_eval fmt_row_eval;
fmt_row_eval *fmt_row_eval_create(const fm_blockmask *bm, int64_t max_n);
void fmt_row_eval_free(fmt_row_eval *e);
/* out[i] = the mask at (b, h, q, kv0 + i), 0 or 1, for i < n <= max_n.
 * false at a point that breaks a safety rule. */
bool fmt_row_eval_row(fmt_row_eval *e, int64_t b, int64_t h, int64_t q, int64_t kv0, int64_t n,
                      uint8_t *out);
/* The point evaluator at (b, h, q, kv); false as above. */
bool fmt_row_eval_point(fmt_row_eval *e, int64_t b, int64_t h, int64_t q, int64_t kv,
                        bool *value);

/* ---- files ---- */

/* Writes path as the library writes its own files: through a temporary in
 * the same folder renamed into place when write(f, ctx) returned true and
 * every byte landed, so a failure leaves the previous file intact; a
 * device or FIFO is written directly and never removed; a symbolic link is
 * followed and kept. false with the reason in error ("" when the callback
 * gave up on its own). */
bool fmt_write_file(const char *path, bool (*write)(FILE *f, void *ctx), void *ctx, char *error,
                    size_t error_size);

#endif
