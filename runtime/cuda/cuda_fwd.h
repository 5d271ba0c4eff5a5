/* The CUDA forward pass on device-resident tensors: an open GPU with its
 * loaded kernels, a BlockMask uploaded to it, and the launch. The public
 * fm_device_attention (runtime/cuda/device.c) copies host tensors through this;
 * bench/gpu and tests/gpu call it directly to time kernels alone. */
#ifndef FM_RUNTIME_CUDA_FWD_H
#define FM_RUNTIME_CUDA_FWD_H

#include <stdbool.h>
#include <stdint.h>

#include "compiler/blockmask.h"
#include "dsl/diag.h"
#include "flexmask.h"

typedef struct fmr_gpu fmr_gpu;
typedef struct fmr_gpu_mask fmr_gpu_mask;
typedef unsigned long long fmr_devptr; /* a CUdeviceptr */

/* Opens device 0 (FM_ERR_UNSUPPORTED with the reason in why when no GPU,
 * driver or NVRTC is usable). */
fm_status fmr_gpu_open(fmr_gpu **out, char *why, size_t n);
void fmr_gpu_close(fmr_gpu *g);
const char *fmr_gpu_name(const fmr_gpu *g); /* "NVIDIA H100 ... (sm_90)" */
int fmr_gpu_arch(const fmr_gpu *g);

fm_status fmr_gpu_alloc(fmr_gpu *g, size_t bytes, fmr_devptr *out, fmd_diags *diags);
void fmr_gpu_free(fmr_gpu *g, fmr_devptr p);
fm_status fmr_gpu_upload(fmr_gpu *g, fmr_devptr dst, const void *src, size_t bytes, fmd_diags *diags);
fm_status fmr_gpu_download(fmr_gpu *g, void *dst, fmr_devptr src, size_t bytes, fmd_diags *diags);
fm_status fmr_gpu_sync(fmr_gpu *g, fmd_diags *diags);

/* Uploads bm's tile lists and input arrays and generates its mask text.
 * bm must outlive the result. */
fm_status fmr_gpu_mask_upload(fmr_gpu *g, const fmc_blockmask *bm, fmr_gpu_mask **out,
                              fmd_diags *diags);
void fmr_gpu_mask_free(fmr_gpu *g, fmr_gpu_mask *m);
/* Whether the launch will use the 32-bit arithmetic variant. */
bool fmr_gpu_mask_int32(const fmr_gpu_mask *m);

/* One forward call on device tensors. q: [batch, heads, q_len, head_dim],
 * k and v: [batch, kv_heads, kv_len, head_dim], 16-bit elements with the
 * last dimension contiguous, rows 16-byte aligned; strides in elements for
 * (batch, head, seq). out: float32 contiguous [batch, heads, q_len, D];
 * lse: 0 or float32 [batch, heads, q_len]. */
typedef struct fmr_gpu_fwd_args {
    fmr_devptr q, k, v, out, lse;
    int64_t q_strides[3], k_strides[3], v_strides[3];
    int64_t kv_heads, head_dim;
    bool bf16;   /* else fp16 */
    float scale; /* 0: 1/sqrt(head_dim) */
} fmr_gpu_fwd_args;

/* Checks what the kernel supports (head dim, block sizes, sizes) and
 * launches asynchronously; the kernel is compiled (or found in the JIT
 * cache) on first use. */
fm_status fmr_gpu_forward(fmr_gpu *g, const fmr_gpu_mask *m, const fmr_gpu_fwd_args *a,
                          fmd_diags *diags);

/* Times `iters` launches with CUDA events after one warm-up; ms per call. */
fm_status fmr_gpu_time_forward(fmr_gpu *g, const fmr_gpu_mask *m, const fmr_gpu_fwd_args *a,
                               int iters, double *ms, fmd_diags *diags);

/* The block-size rule, shared with messages elsewhere: NULL when the sizes
 * are supported, else a static message. */
const char *fmr_gpu_block_size_problem(int64_t block_q, int64_t block_kv);
/* The head-dim rule: NULL for a head dim the kernel has a variant for, else
 * the reason naming it (in buf, n bytes). */
const char *fmr_gpu_head_dim_problem(int64_t head_dim, char *buf, size_t n);
/* Both rules, head dim first: what every CUDA attention entry point checks
 * (NULL: runnable; else the reason in buf, naming the values). */
const char *fmr_gpu_shape_problem(int64_t head_dim, int64_t block_q, int64_t block_kv, char *buf,
                                  size_t n);

#endif
