/* The NVRTC JIT: mask text + the embedded kernel template -> CUBIN.
 *
 * NVRTC is loaded with dlopen on first use (never linked), so the library
 * starts on machines without it; every entry point then fails with
 * FM_ERR_UNSUPPORTED and a message saying why. Compiled code is cached
 * (runtime/cuda/jit_cache.h) under a SHA-256 key over the complete source, the
 * options, the architecture, NVRTC's version, the library's version and the
 * cache format. Thread-safe. */
#ifndef FM_RUNTIME_JIT_H
#define FM_RUNTIME_JIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dsl/diag.h"
#include "flexmask.h"
#include "runtime/cuda/jit_cache.h"

/* Which compiled variant of the forward kernel. */
typedef struct fmr_kernel_config {
    int head_dim; /* 64 or 128 */
    bool bf16;    /* bf16 inputs; else fp16 */
    bool int32;   /* the mask's 32-bit arithmetic variant */
    int arch;     /* compute capability as 10*major+minor (90: sm_90); 0: the default */
} fmr_kernel_config;

/* Name of the kernel entry point in every variant. */
#define FMR_FWD_KERNEL_NAME "fm_flash_fwd"

typedef struct fmr_jit_binary {
    const uint8_t *cubin; /* owned by the cache */
    size_t cubin_len;
    const char *log; /* NVRTC's log, ptxas's resource lines included */
    uint8_t key[32];
    fmr_cache_hit hit; /* where it came from (MISS: compiled now) */
    int arch;          /* the architecture it was built for */
} fmr_jit_binary;

/* Whether NVRTC can be used here; if not, why (into why, n bytes). */
bool fmr_nvrtc_available(char *why, size_t n);
/* NVRTC's version; false when it is unavailable. */
bool fmr_nvrtc_version(int *major, int *minor);
/* The largest architecture this NVRTC supports that is <= want, or 0
 * (when NVRTC is unavailable or supports nothing that old). */
int fmr_jit_clamp_arch(int want);
/* $FLEXMASK_CUDA_ARCH ("sm_90", "90", "compute_90") or 90, clamped. */
int fmr_jit_default_arch(void);

/* The whole text NVRTC compiles for mask_text (the kernel template
 * follows the mask); malloc'd, NUL-terminated; NULL on OOM. */
char *fmr_jit_full_source(const char *mask_text, size_t mask_len, size_t *len);
/* The NVRTC options for cfg (static storage per call site: fills opts,
 * up to 8 pointers into buf). Returns the count. */
int fmr_jit_options(const fmr_kernel_config *cfg, int arch, char buf[256], const char *opts[8]);

/* Compiles (or finds in cache; NULL: the process's default cache) the
 * forward kernel for mask_text. On an NVRTC error: FM_ERR_CUDA with the
 * log in diags, and the numbered source too when number_source is set or
 * $FLEXMASK_JIT_SOURCE is 1. */
fm_status fmr_jit_compile(fmr_jit_cache *cache, const char *mask_text, size_t mask_len,
                          const fmr_kernel_config *cfg, bool number_source, fmr_jit_binary *out,
                          fmd_diags *diags);

/* PTX for the same kernel (not cached; for `fmc ptx`). *ptx and *log are
 * malloc'd. */
fm_status fmr_jit_ptx(const char *mask_text, size_t mask_len, const fmr_kernel_config *cfg,
                      char **ptx, char **log, fmd_diags *diags);

/* Per-kernel resources read from a CUBIN's ELF sections. */
typedef struct fmr_kernel_resources {
    char name[128];
    int registers;
    int64_t shared_bytes; /* static shared memory (.nv.shared.<name>) */
    int64_t frame_bytes;  /* local memory stack frame (spills live here) */
    int64_t max_threads;  /* from __launch_bounds__, 0 if none */
    int64_t param_bytes;  /* size of the kernel's parameters, -1 if not recorded */
} fmr_kernel_resources;

/* Fills up to max entries; returns how many kernels the CUBIN holds, or
 * -1 when it is not a well-formed 64-bit CUDA ELF. */
int fmr_cubin_resources(const uint8_t *cubin, size_t len, fmr_kernel_resources *out, int max);

/* Spill stores and loads for kernel `name` from a ptxas -v log; false when
 * the log does not say. */
bool fmr_log_spills(const char *log, const char *name, int64_t *stores, int64_t *loads);

#endif
