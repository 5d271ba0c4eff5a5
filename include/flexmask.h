/* flexmask: block-sparse attention with masks written in a small language.
 *
 * The path through this API:
 *
 *   fm_program   compile a mask file or string       fm_compile_file / _string
 *   fm_mask      pick one `mask` of it by name        fm_mask_select
 *   fm_bindings  give its params and input arrays     fm_bindings_create / _set_*
 *   fm_blockmask build the tile map for a shape       fm_blockmask_build
 *   attention    run attention over the BlockMask     fm_attention_cpu / fm_device_attention
 *
 * Conventions, for every function here:
 * - Functions that can fail return an fm_status; FM_OK is 0. Output
 *   pointers are written only on success. fm_status_string names a status.
 * - Errors with a source location (syntax, types, safety rules, bindings) are
 *   appended to an optional fm_diagnostics the caller passes (NULL to ignore);
 *   the library never prints, exits or aborts.
 * - Every handle has a create and a free; free(NULL) is a no-op.
 * - No global mutable state. Distinct handles may be used from different
 *   threads at once; a const handle (a built fm_blockmask, a compiled
 *   fm_program, an fm_mask) may be read from many threads at once.
 */
#ifndef FLEXMASK_H
#define FLEXMASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(FM_BUILDING_LIBRARY)
#define FM_API __attribute__((visibility("default")))
#else
#define FM_API
#endif

#define FM_VERSION_MAJOR 0
#define FM_VERSION_MINOR 1
#define FM_VERSION_PATCH 0
#define FM_VERSION "0.1.0"
/* The language version this library implements. */
#define FM_LANGUAGE_VERSION 1

/* The library's version string, e.g. "0.1.0" (static storage). */
FM_API const char *fm_version(void);

/* ---- status -------------------------------------------------------------- */

typedef enum fm_status {
    FM_OK = 0,
    FM_ERR_INVALID_ARGUMENT, /* a NULL handle, a bad size or flag */
    FM_ERR_COMPILE,          /* the mask source is malformed or ill-typed */
    FM_ERR_NOT_FOUND,        /* no mask, param or input of that name */
    FM_ERR_BINDING,          /* a param without a value, an input of the wrong size */
    FM_ERR_SAFETY,           /* some point breaks a safety rule for this shape */
    FM_ERR_LIMIT,            /* a resource limit (size, depth, memory budget) */
    FM_ERR_NO_MEMORY,
    FM_ERR_IO,               /* a file could not be read or written */
    FM_ERR_FORMAT,           /* a malformed .npy or safetensors file */
    FM_ERR_UNSUPPORTED,      /* valid, but not supported here (dtype, head dim, no CUDA) */
    FM_ERR_CUDA              /* the CUDA driver or NVRTC reported an error */
} fm_status;

/* A short English description of a status (static storage; never NULL). */
FM_API const char *fm_status_string(fm_status status);

/* ---- diagnostics ----------------------------------------------------------- */

typedef struct fm_diagnostics fm_diagnostics;

/* One located message. Strings stay valid until the diagnostics object is
 * cleared or freed. file is NULL (and line, col are 0) for a message with no
 * source, such as an unknown param name passed to fm_bindings_set_param. */
typedef struct fm_diagnostic {
    const char *severity; /* "error", "warning" or "note" */
    const char *file;
    int line, col;         /* 1-based; col counts bytes */
    int end_line, end_col; /* just past the span */
    const char *message;
    const char *hint;        /* NULL when none */
    const char *source_line; /* the text of `line`; NULL when none */
} fm_diagnostic;

/* A new, empty collection. Returns NULL when out of memory. */
FM_API fm_diagnostics *fm_diagnostics_create(void);
FM_API void fm_diagnostics_free(fm_diagnostics *diags);
/* Drops every message. */
FM_API void fm_diagnostics_clear(fm_diagnostics *diags);
/* Number of messages held (0 for NULL). */
FM_API size_t fm_diagnostics_count(const fm_diagnostics *diags);
/* Fills *out with message i; FM_ERR_INVALID_ARGUMENT when i is out of range. */
FM_API fm_status fm_diagnostics_get(const fm_diagnostics *diags, size_t i, fm_diagnostic *out);
/* All messages rendered as text (FILE:LINE:COL: error: MESSAGE, the source
 * line, a caret line, the hint) or as JSON lines when json is true. Returns
 * a string the caller frees with fm_free; NULL when out of memory. */
FM_API char *fm_diagnostics_format(const fm_diagnostics *diags, bool json);

/* Frees memory the library returned to the caller (strings, arrays). */
FM_API void fm_free(void *p);

/* ---- compiling ------------------------------------------------------------- */

typedef struct fm_program fm_program;

/* Compiles the mask file at path. On FM_ERR_COMPILE every error found (up to
 * a limit) is in diags. The caller frees *out with fm_program_free. */
FM_API fm_status fm_compile_file(const char *path, fm_diagnostics *diags, fm_program **out);
/* Compiles len bytes of text; name is used in messages (NULL: "<string>").
 * The text is copied. */
FM_API fm_status fm_compile_string(const char *name, const char *text, size_t len,
                                   fm_diagnostics *diags, fm_program **out);
FM_API void fm_program_free(fm_program *program);

/* The masks of a program, in source order. The names live as long as the
 * program. */
FM_API size_t fm_program_mask_count(const fm_program *program);
FM_API const char *fm_program_mask_name(const fm_program *program, size_t i);

/* The canonical text of the program (`fmc print`); free with fm_free. */
FM_API char *fm_program_print(const fm_program *program);

/* ---- one mask ---------------------------------------------------------------- */

typedef struct fm_mask fm_mask;

/* Selects mask `name` (NULL: the last mask of the file) and lowers it. The
 * mask is independent of the program afterwards. FM_ERR_NOT_FOUND when there
 * is no such mask. Free with fm_mask_free. */
FM_API fm_status fm_mask_select(const fm_program *program, const char *name,
                                fm_diagnostics *diags, fm_mask **out);
FM_API void fm_mask_free(fm_mask *mask);
FM_API const char *fm_mask_name(const fm_mask *mask);
/* Whether the mask reads the batch index b (the head index h); a mask that
 * does not is stored once for every batch (head). */
FM_API bool fm_mask_reads_batch(const fm_mask *mask);
FM_API bool fm_mask_reads_heads(const fm_mask *mask);

/* The params and inputs the mask reaches (others need no binding). Names
 * live as long as the mask. */
FM_API size_t fm_mask_param_count(const fm_mask *mask);
FM_API const char *fm_mask_param_name(const fm_mask *mask, size_t i);
/* True and *value set when param i has a default. */
FM_API bool fm_mask_param_default(const fm_mask *mask, size_t i, int64_t *value);
FM_API size_t fm_mask_input_count(const fm_mask *mask);
FM_API const char *fm_mask_input_name(const fm_mask *mask, size_t i);
FM_API size_t fm_mask_input_rank(const fm_mask *mask, size_t i);

/* ---- bindings ---------------------------------------------------------------- */

typedef struct fm_bindings fm_bindings;

/* How an input array is held. */
typedef enum fm_ownership {
    FM_BORROW, /* the library keeps the pointer: the caller keeps the array alive
                  and unchanged until every BlockMask built with it is freed */
    FM_COPY    /* the library copies the array now */
} fm_ownership;

/* New bindings for mask (params start at their defaults). The bindings
 * refer to the mask, which must outlive them. */
FM_API fm_status fm_bindings_create(const fm_mask *mask, fm_bindings **out);
FM_API void fm_bindings_free(fm_bindings *bindings);
/* Sets param `name`. FM_ERR_NOT_FOUND (with a message in diags) when the
 * mask has no such param reachable. */
FM_API fm_status fm_bindings_set_param(fm_bindings *bindings, const char *name, int64_t value,
                                       fm_diagnostics *diags);
/* Binds input `name` to an int32 array in C order of the given rank and
 * dims. The dims are checked against the declaration when a BlockMask is
 * built (they may depend on the shape and params). */
FM_API fm_status fm_bindings_set_input(fm_bindings *bindings, const char *name,
                                       const int32_t *data, size_t rank, const int64_t *dims,
                                       fm_ownership ownership, fm_diagnostics *diags);

/* ---- BlockMask ------------------------------------------------------------------ */

typedef struct fm_blockmask fm_blockmask;

typedef struct fm_shape {
    int64_t batch, heads, q_len, kv_len;
} fm_shape;

typedef struct fm_build_options {
    int64_t block_q, block_kv; /* 0: 128 */
    int64_t memory_budget;     /* bytes the lists may take; 0: 1 GiB */
} fm_build_options;

/* Builds the BlockMask of mask for shape with bindings (NULL: defaults
 * only). opts may be NULL. FM_ERR_BINDING for a missing param or an input
 * of the wrong size, FM_ERR_SAFETY when some point breaks a safety rule;
 * both with a located message in diags. The BlockMask keeps its own copy of
 * the program and param values, and borrows input arrays bound with
 * FM_BORROW. Free with fm_blockmask_free. */
FM_API fm_status fm_blockmask_build(const fm_mask *mask, const fm_bindings *bindings,
                                    fm_shape shape, const fm_build_options *opts,
                                    fm_diagnostics *diags, fm_blockmask **out);
FM_API void fm_blockmask_free(fm_blockmask *blockmask);

typedef struct fm_blockmask_info {
    fm_shape shape;
    int64_t block_q, block_kv;
    int64_t num_q_blocks, num_kv_blocks;
    bool broadcast_batch, broadcast_heads; /* one slice stored for all */
    int64_t full_tiles, partial_tiles, empty_tiles; /* over every batch and head */
    int64_t evaluations;       /* point evaluations the build performed */
    int64_t regions_decided;   /* regions decided by analysis */
    int64_t tiles_by_analysis; /* stored tiles proven by analysis */
    int64_t tiles_by_points;   /* stored tiles settled point by point */
    int64_t true_positions;    /* mask-true positions over every batch and head */
    int64_t bytes;             /* storage of the tile lists */
} fm_blockmask_info;

/* Sizes, flags and statistics of a BlockMask. */
FM_API fm_status fm_blockmask_get_info(const fm_blockmask *blockmask, fm_blockmask_info *out);

/* The full and partial kv blocks of query block q_block of (b, h), ascending.
 * b and h index the whole shape (broadcast slices are looked up for you).
 * The arrays belong to the BlockMask. */
FM_API fm_status fm_blockmask_row(const fm_blockmask *blockmask, int64_t b, int64_t h,
                                  int64_t q_block, const int32_t **full, int64_t *num_full,
                                  const int32_t **partial, int64_t *num_partial);
/* The transpose: the full and partial query blocks of kv block kv_block. */
FM_API fm_status fm_blockmask_column(const fm_blockmask *blockmask, int64_t b, int64_t h,
                                     int64_t kv_block, const int32_t **full, int64_t *num_full,
                                     const int32_t **partial, int64_t *num_partial);
/* Evaluates the mask at one position (the reference the tools check with). */
FM_API fm_status fm_blockmask_eval(const fm_blockmask *blockmask, int64_t b, int64_t h,
                                   int64_t q, int64_t kv, bool *value);

/* ---- attention on the CPU --------------------------------------------------------- */

typedef enum fm_dtype { FM_FLOAT32, FM_FLOAT16, FM_BFLOAT16 } fm_dtype;

/* A 4-D tensor [batch, heads, seq, head_dim] with strides in elements, so
 * [B, S, H, D] memory is described by permuted strides without a copy. */
typedef struct fm_tensor {
    void *data;
    fm_dtype dtype;
    int64_t shape[4];
    int64_t strides[4];
} fm_tensor;

/* Fills t as a contiguous [d0, d1, d2, d3] tensor over data. */
FM_API fm_tensor fm_tensor_contiguous(void *data, fm_dtype dtype, int64_t d0, int64_t d1,
                                      int64_t d2, int64_t d3);

typedef struct fm_attention_args {
    const fm_blockmask *mask;
    fm_tensor q;   /* [BATCH, HEADS, Q_LEN, D] */
    fm_tensor k;   /* [BATCH, KV_HEADS, KV_LEN, D]; KV_HEADS divides HEADS */
    fm_tensor v;   /* like k */
    fm_tensor out; /* [BATCH, HEADS, Q_LEN, D]: float32 or the storage type of q */
    float *lse;    /* NULL, or BATCH*HEADS*Q_LEN floats (natural log), contiguous */
    float scale;   /* 0: 1/sqrt(D) */
    int num_threads; /* 0: OpenMP's default */
} fm_attention_args;

/* Flash-style attention forward over the BlockMask on the CPU: empty tiles
 * are skipped, full tiles never evaluate the mask. A query row with no true
 * position gets zeros and log-sum-exp -inf. Results are bit-for-bit the
 * same for every thread count. */
FM_API fm_status fm_attention_cpu(const fm_attention_args *args, fm_diagnostics *diags);

#ifdef __cplusplus
}
#endif

#endif
