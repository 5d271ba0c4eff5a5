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
 * source, such as a shape with a zero length passed to fm_blockmask_build. */
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
 * is no such mask; FM_ERR_LIMIT when it is too large once lowered (a
 * located message says so). Free with fm_mask_free. */
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

/* Options and argument structs start with struct_size, set by the caller to
 * sizeof the struct its header declares (the FM_*_INIT macros do it), so
 * later versions can add fields at the end without breaking callers built
 * against older headers: fields past struct_size read as 0, their default.
 * A struct_size of 0, or larger than this library knows, is
 * FM_ERR_INVALID_ARGUMENT with a message. */
typedef struct fm_build_options {
    size_t struct_size;        /* sizeof(fm_build_options) */
    int64_t block_q, block_kv; /* 0: 128 */
    int64_t memory_budget;     /* bytes the lists may take; 0: 1 GiB */
    int64_t max_evaluations;   /* point evaluations the build may make; 0: no bound.
                                  Most masks need none; set a bound when the mask or
                                  shape comes from an untrusted source */
} fm_build_options;
#define FM_BUILD_OPTIONS_INIT {.struct_size = sizeof(fm_build_options)}

/* Builds the BlockMask of mask for shape with bindings (NULL: defaults
 * only). opts may be NULL. FM_ERR_BINDING for a missing param or an input
 * of the wrong size, FM_ERR_SAFETY when some point breaks a safety rule;
 * both with a located message in diags. FM_ERR_LIMIT when the lists would
 * exceed memory_budget or the build would exceed max_evaluations. The BlockMask keeps its own copy of
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
    int64_t true_positions;    /* mask-true positions over every batch and head;
                                  -1 when the build did not count them (then
                                  fm_blockmask_count_true counts them) */
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
/* The number of positions where the mask is true, over every batch and
 * head. Counts what the build left uncounted by evaluating those partial
 * tiles once (the result is then cached; safe to call from many threads). */
FM_API fm_status fm_blockmask_count_true(const fm_blockmask *blockmask, int64_t *count);
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
    size_t struct_size; /* sizeof(fm_attention_args); see fm_build_options */
    const fm_blockmask *mask;
    fm_tensor q;   /* [BATCH, HEADS, Q_LEN, D] */
    fm_tensor k;   /* [BATCH, KV_HEADS, KV_LEN, D]; KV_HEADS divides HEADS */
    fm_tensor v;   /* like k */
    fm_tensor out; /* [BATCH, HEADS, Q_LEN, D]: float32 or the storage type of q */
    float *lse;    /* NULL, or BATCH*HEADS*Q_LEN floats (natural log), contiguous */
    float scale;   /* 0: 1/sqrt(D) */
    int num_threads; /* 0: OpenMP's default */
} fm_attention_args;
#define FM_ATTENTION_ARGS_INIT {.struct_size = sizeof(fm_attention_args)}

/* Flash-style attention forward over the BlockMask on the CPU: empty tiles
 * are skipped, full tiles never evaluate the mask. A query row with no true
 * position, or whose true scores are all -inf, gets zeros and log-sum-exp
 * -inf; a NaN or +inf score at a true position (NaN or infinite q or k, or
 * an overflowing q.k) makes the row's output NaN and its log-sum-exp NaN
 * (+inf if no such score is NaN), as in PyTorch (docs/language.md, "NaN
 * and infinities"). Results are bit-for-bit the
 * same for every thread count. The first call over a BlockMask evaluates
 * its partial tiles once and keeps them in it as bits (one bit per position
 * of each stored partial tile: 2 KiB for a 128 x 128 tile; not kept past
 * 256 MiB), so later calls, heads and batch entries only read them; that
 * first call serialises with other first calls on the same BlockMask. */
FM_API fm_status fm_attention_cpu(const fm_attention_args *args, fm_diagnostics *diags);


/* ==== scenarios, dense masks and PyTorch interop ============================= */

/* ---- speculative-decoding token trees (examples/masks/tree.mask) ---- */

/* Fills the Euler-tour tables of a forest of n tokens given by parent[i]
 * (the index of token i's parent, or -1 for a root; several roots are
 * allowed). Tokens are visited depth first, roots and children in index
 * order: enter[i] is token i's preorder number and leave[i] the largest
 * preorder number in its subtree, so token a is an ancestor of token t (or t
 * itself) exactly when enter[a] <= enter[t] && leave[t] <= leave[a]; that is
 * what tree.mask tests. depth[i] (NULL: not wanted) is the number of
 * ancestors of i: the position id a model must give token i (add the length
 * of a key/value prefix already in the cache, tree.mask's `prefix`).
 * enter, leave and depth are caller arrays of n int32s, written only on
 * success. FM_ERR_INVALID_ARGUMENT, with a message naming the token, when a
 * parent is out of range, a token is its own parent or the parents form a
 * cycle; n must be in [0, 2^31 - 1). Iterative, O(n) time. */
FM_API fm_status fm_tree_tables(const int32_t *parent, int64_t n, int32_t *enter, int32_t *leave,
                                int32_t *depth, fm_diagnostics *diags);

/* ---- batched prefill (examples/masks/batched_prefill.mask) ---- */

/* Fills the four arrays batched_prefill.mask reads for num_requests
 * requests packed into one ragged query sequence and one ragged key/value
 * sequence. qo_indptr and kv_indptr (num_requests + 1 entries each, starting
 * at 0, non-decreasing) give where each request's queries and keys start;
 * q_len and kv_len are the sizes of the output arrays (Q_LEN and KV_LEN of
 * the BlockMask) and must equal qo_indptr[num_requests] and
 * kv_indptr[num_requests]. Request r has qo = qo_indptr[r+1] - qo_indptr[r]
 * queries and kv = kv_indptr[r+1] - kv_indptr[r] keys (qo <= kv: its queries
 * are the last qo of its keys), so:
 *   q_req[qo_indptr[r] + j] = r,  q_pos[qo_indptr[r] + j] = kv - qo + j,
 *   kv_req[kv_indptr[r] + j] = r, kv_pos[kv_indptr[r] + j] = j,
 * and each query sees its own request's keys up to its own position
 * (causal, aligned to the bottom right). The caller owns the arrays (q_len
 * and kv_len int32s); they are written only on success. Offsets that do not
 * fit (not starting at 0, decreasing, qo > kv for a request, totals that
 * differ from q_len / kv_len) are FM_ERR_INVALID_ARGUMENT with a message
 * naming the request. */
FM_API fm_status fm_batched_prefill_arrays(const int32_t *qo_indptr, const int32_t *kv_indptr,
                                           int64_t num_requests, int64_t q_len, int64_t kv_len,
                                           int32_t *q_req, int32_t *q_pos, int32_t *kv_req,
                                           int32_t *kv_pos, fm_diagnostics *diags);

/* ---- dense masks: import and export ---- */

/* How a dense mask array holds its values. */
typedef enum fm_dense_kind {
    FM_DENSE_BOOL,    /* uint8_t (or C bool): 1 = attend, 0 = do not; nothing else */
    FM_DENSE_ADDITIVE /* float32 added to the scores: 0 = attend, -inf = do not; nothing else */
} fm_dense_kind;

/* Builds a BlockMask from a dense mask of rank 2 [Q_LEN, KV_LEN], 3 [H,
 * Q_LEN, KV_LEN] or 4 [B, H, Q_LEN, KV_LEN] in C order. shape gives the
 * BATCH and HEADS to build for (NULL: the array's, 1 where it has no such
 * dimension; a 0 field of shape also takes the array's size); a dimension
 * of size 1 broadcasts to any BATCH or HEADS, and
 * then the BlockMask stores one slice for all (fm_mask_reads_batch /
 * broadcast_batch false). shape's q_len and kv_len, when shape is given,
 * must equal the array's. The tiles are classified exactly as for a
 * compiled mask: the mask is the program `keep[...] != 0` over an int32 copy
 * of the array, which the BlockMask owns (the caller's array is not kept),
 * so attention and every reader work as for any other BlockMask. A value
 * other than 0/1 (BOOL) or 0/-inf (ADDITIVE) is FM_ERR_INVALID_ARGUMENT
 * naming the value and its position. opts as for fm_blockmask_build. */
FM_API fm_status fm_blockmask_from_dense(const void *data, fm_dense_kind kind, size_t rank,
                                         const int64_t *dims, const fm_shape *shape,
                                         const fm_build_options *opts, fm_diagnostics *diags,
                                         fm_blockmask **out);

/* The same from a NumPy .npy file: bool or uint8 arrays are boolean masks,
 * float16/float32/float64 arrays are additive masks (FM_ERR_FORMAT /
 * FM_ERR_UNSUPPORTED for other files, with a message naming the file). The
 * mask's source name in messages is the path. */
FM_API fm_status fm_blockmask_from_npy(const char *path, const fm_shape *shape,
                                       const fm_build_options *opts, fm_diagnostics *diags,
                                       fm_blockmask **out);

/* The mask of a BlockMask as a dense boolean array [BATCH, HEADS, Q_LEN,
 * KV_LEN] (every batch and head, broadcast slices repeated), 1 where a query
 * attends. *out is malloc'd (free with fm_free); *count receives the
 * number of elements (NULL: not wanted). Full tiles are filled without
 * evaluating the mask, empty tiles left 0, partial tiles evaluated.
 * FM_ERR_LIMIT when the array would pass 2^34 bytes. */
FM_API fm_status fm_blockmask_to_dense(const fm_blockmask *blockmask, uint8_t **out,
                                       size_t *count, fm_diagnostics *diags);
/* Writes fm_blockmask_to_dense's array as a .npy file of dtype bool and
 * shape [BATCH, HEADS, Q_LEN, KV_LEN] (through a temporary file, as
 * fm_blockmask_save_safetensors). */
FM_API fm_status fm_blockmask_save_dense_npy(const fm_blockmask *blockmask, const char *path,
                                             fm_diagnostics *diags);

/* ---- safetensors: save, load, PyTorch's BlockMask.from_kv_blocks ---- */

/* Writes a BlockMask to a safetensors file whose tensors are the arguments
 * of torch.nn.attention.flex_attention.BlockMask.from_kv_blocks, all int32,
 * with B (H) of size 1 where the BlockMask broadcasts:
 *   kv_num_blocks       [B, H, num_q_blocks]                 partial tiles per row
 *   kv_indices          [B, H, num_q_blocks, num_kv_blocks]  their kv blocks, ascending,
 *                       then every other kv block, ascending (create_block_mask's order)
 *   full_kv_num_blocks, full_kv_indices                      the same for full tiles
 * plus what reading it back needs: tensors "input.NAME" (the bound input
 * arrays) and string metadata: Q_BLOCK_SIZE, KV_BLOCK_SIZE, Q_LEN, KV_LEN,
 * BATCH, HEADS, mask_name, mask_source (the mask file's text),
 * mask_source_name and "param.NAME" for each param value. docs/interop.md
 * shows the Python side. Like every file flexmask writes, it goes to a
 * temporary file in the same folder, renamed into place when complete: a
 * failed write leaves an existing file as it was (a FIFO or device is
 * written directly; a symbolic link is followed and kept). */
FM_API fm_status fm_blockmask_save_safetensors(const fm_blockmask *blockmask, const char *path,
                                               fm_diagnostics *diags);

/* Reads a file written by fm_blockmask_save_safetensors into a new
 * BlockMask (free with fm_blockmask_free) usable like a built one: the mask
 * is compiled from the stored source, bound to the stored params and
 * inputs, built for the stored shape and block sizes, and its tile lists
 * must equal the stored tensors. FM_ERR_FORMAT for a malformed, truncated or
 * inconsistent file (wrong dtypes, shapes or offsets, lists that do not
 * match), with a message naming the file and what is wrong; FM_ERR_IO when
 * it cannot be read. Never reads outside the file's bytes. */
FM_API fm_status fm_blockmask_load_safetensors(const char *path, fm_diagnostics *diags,
                                               fm_blockmask **out);
/* The same from a file image of len bytes in memory (name labels messages;
 * NULL: "<memory>"). */
FM_API fm_status fm_blockmask_load_safetensors_memory(const char *name, const void *data,
                                                      size_t len, fm_diagnostics *diags,
                                                      fm_blockmask **out);

/* ---- process-wide state and environment variables ---------------------------- *
 *
 * The JIT cache. The first CUDA attention call for a mask compiles its
 * kernel with NVRTC (a few seconds) and keeps the result in one cache
 * shared by every device and thread of the process: in memory, for the
 * process's lifetime (one CUBIN per distinct mask text and kernel variant:
 * head dim, dtype, 32- or 64-bit arithmetic, architecture; never freed),
 * and on disk, so that later processes skip the compile. A disk entry is a
 * file <dir>/<SHA-256 key>.fmjit, written to a temporary file and renamed
 * into place (safe for concurrent processes) and checked (magic, version,
 * key, length, SHA-256) before use; a damaged one is deleted and rebuilt.
 * Past the size cap the least recently used entries are removed. The CUDA
 * driver and NVRTC themselves are loaded once per process, on first use.
 *
 * Environment variables, each read once (when first needed):
 *
 *   FLEXMASK_CPU_ISA       CPU attention kernels: auto (default: AVX2 when
 *                          the CPU has it), portable or avx2. Any other value
 *                          makes fm_attention_cpu fail with
 *                          FM_ERR_INVALID_ARGUMENT. Read on every call.
 *   FLEXMASK_CACHE_DIR     the JIT disk cache's folder (created when
 *                          missing). Set but empty: no disk cache. Unset:
 *                          $XDG_CACHE_HOME/flexmask, else
 *                          $HOME/.cache/flexmask, else no disk cache.
 *   FLEXMASK_CACHE_MAX_MB  the disk cache's size cap in MiB (default 512;
 *                          a value that is not a positive integer is
 *                          ignored).
 *   FLEXMASK_CUDA_ARCH     the architecture a kernel is compiled for when no
 *                          GPU says (an open device always compiles for its
 *                          own GPU), as sm_90, compute_90 or 90; default 90,
 *                          clamped to the newest this NVRTC supports.
 *                          Malformed values are ignored.
 *   FLEXMASK_NVRTC_LIBRARY the NVRTC library to load (a path or a soname),
 *                          tried before libnvrtc.so.13, .so.12 and .so.
 *   FLEXMASK_CUDA_DRIVER   the CUDA driver library to load, tried before
 *                          libcuda.so.1 and libcuda.so.
 *   FLEXMASK_JIT_SOURCE    1: an NVRTC compile error also carries the whole
 *                          source given to NVRTC, with line numbers.
 *
 * The tools also read NO_COLOR and COLUMNS (fmviz's terminal picture). */

/* ---- devices: the GPU (CUDA) or the CPU ------------------------------------------ */

/* A device runs attention: a CUDA GPU through kernels compiled at run time
 * by NVRTC (loaded with dlopen, like the CUDA driver, so nothing here needs
 * them to be installed), or the CPU runtime above. */
typedef struct fm_device fm_device;

typedef enum fm_device_kind {
    FM_DEVICE_AUTO, /* the GPU when one is usable, else the CPU */
    FM_DEVICE_CPU,
    FM_DEVICE_CUDA
} fm_device_kind;

/* Opens a device. FM_DEVICE_AUTO never fails for want of a GPU: it falls
 * back to the CPU and fm_device_reason says why. FM_DEVICE_CUDA without a
 * usable GPU (no driver, no device, no NVRTC, or a library built without
 * CUDA support) returns FM_ERR_UNSUPPORTED with the reason in diags. Free
 * with fm_device_free. */
FM_API fm_status fm_device_open(fm_device_kind kind, fm_diagnostics *diags, fm_device **out);
FM_API void fm_device_free(fm_device *device);
/* FM_DEVICE_CPU or FM_DEVICE_CUDA: what was opened. */
FM_API fm_device_kind fm_device_get_kind(const fm_device *device);
/* A name for messages, e.g. "NVIDIA H100 80GB HBM3 (sm_90, CUDA)" or "CPU"
 * (lives as long as the device). */
FM_API const char *fm_device_name(const fm_device *device);
/* Why this device was chosen, e.g. "CUDA unavailable: the CUDA driver
 * (libcuda.so.1) could not be loaded ..." (lives as long as the device). */
FM_API const char *fm_device_reason(const fm_device *device);
/* Whether a CUDA GPU is usable by this library; if not and why is not
 * NULL, the reason (at most n bytes, NUL-terminated). */
FM_API bool fm_cuda_available(char *why, size_t n);

/* Attention forward on the device, with the same arguments and results as
 * fm_attention_cpu (num_threads is used by the CPU only). On a GPU the
 * tensors are copied to it and the outputs back; q, k and v are computed
 * in their own 16-bit type (float32 inputs are rounded to float16), with
 * float32 accumulation. The GPU kernel needs head dim 64 or 128 and
 * BlockMask block sizes that are multiples of 64; anything else runs on the
 * CPU (with a note in diags) on a device opened with FM_DEVICE_AUTO, and is
 * FM_ERR_UNSUPPORTED, with a message naming what is supported, on one
 * opened with FM_DEVICE_CUDA. */
FM_API fm_status fm_device_attention(fm_device *device, const fm_attention_args *args,
                                     fm_diagnostics *diags);

/* ---- PyTorch mask_mod source (the Python package's to_torch) ---- */

/* The mask as Python source over torch operations, for torch's
 * flex_attention. The text defines
 *
 *     def fm_make_mask_mod(torch, P, I, D, SHAPE) -> mask_mod
 *
 * where P lists the param values in fm_mask_param_name order, I the input
 * arrays in fm_mask_input_name order as integer tensors (any shape, C order,
 * read flat), D their dims (tuples), and SHAPE is (batch, heads, q_len,
 * kv_len). mask_mod(b, h, q_idx, kv_idx) takes integer tensors and returns a
 * bool tensor equal to the mask wherever the mask is defined (floor division
 * and remainder as the language defines them, short-circuits kept with
 * torch.where; unsafe operations are made harmless off their guard). The
 * text depends only on the mask. Free with fm_free; NULL on failure (a
 * message in diags). */
FM_API char *fm_mask_torch_source(const fm_mask *mask, fm_diagnostics *diags);

#ifdef __cplusplus
}
#endif

#endif
