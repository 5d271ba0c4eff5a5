/* The CUDA forward launch: kernels come from the JIT (runtime/cuda/jit.c) and
 * are loaded once per GPU handle; BlockMask lists and mask inputs are
 * uploaded once per fmr_gpu_mask. */
#define _POSIX_C_SOURCE 200809L
#include "runtime/cuda/cuda_fwd.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/codegen_cuda.h"
#include "runtime/cuda/cuda_loader.h"
#include "runtime/cuda/jit.h"

#define FM_MASK_ENV_T fmc_cuda_mask_env
#include "kernels/fm_fwd_params.h"

static void err(fmd_diags *d, const char *fmt, const char *a, const char *b) {
    if (d) fmd_diag_add(d, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL, fmt, a, b);
}

const char *fmr_gpu_block_size_problem(int64_t block_q, int64_t block_kv) {
    if (block_q <= 0 || block_kv <= 0 || block_q % FM_FWD_BLOCK_M || block_kv % FM_FWD_BLOCK_N)
        return "the CUDA kernel needs BlockMask block sizes that are multiples of its 64x64 tile "
               "(64, 128, 192, 256, ...); build the BlockMask with such sizes, or use the CPU "
               "device, which takes any";
    return NULL;
}

const char *fmr_gpu_head_dim_problem(int64_t head_dim, char *buf, size_t n) {
    if (head_dim == 64 || head_dim == 128) return NULL;
    snprintf(buf, n,
             "the CUDA kernel supports head dims 64 and 128, not %lld (the CPU device takes any)",
             (long long)head_dim);
    return buf;
}

const char *fmr_gpu_shape_problem(int64_t head_dim, int64_t block_q, int64_t block_kv, char *buf,
                                  size_t n) {
    if (fmr_gpu_head_dim_problem(head_dim, buf, n)) return buf;
    const char *bp = fmr_gpu_block_size_problem(block_q, block_kv);
    if (!bp) return NULL;
    snprintf(buf, n, "%s (this BlockMask: %lld x %lld)", bp, (long long)block_q,
             (long long)block_kv);
    return buf;
}

#ifndef FM_HAVE_CUDA

static const char no_cuda[] = "flexmask was built without CUDA support";
fm_status fmr_gpu_open(fmr_gpu **out, char *why, size_t n) {
    (void)out;
    if (why && n) snprintf(why, n, "%s (the CUDA Toolkit was not found at build time)", no_cuda);
    return FM_ERR_UNSUPPORTED;
}
void fmr_gpu_close(fmr_gpu *g) { (void)g; }
const char *fmr_gpu_name(const fmr_gpu *g) { (void)g; return "none"; }
int fmr_gpu_arch(const fmr_gpu *g) { (void)g; return 0; }
fm_status fmr_gpu_alloc(fmr_gpu *g, size_t b, fmr_devptr *o, fmd_diags *d) {
    (void)g, (void)b, (void)o;
    err(d, "%s%s", no_cuda, "");
    return FM_ERR_UNSUPPORTED;
}
void fmr_gpu_free(fmr_gpu *g, fmr_devptr p) { (void)g, (void)p; }
fm_status fmr_gpu_upload(fmr_gpu *g, fmr_devptr dst, const void *s, size_t b, fmd_diags *d) {
    (void)g, (void)dst, (void)s, (void)b;
    err(d, "%s%s", no_cuda, "");
    return FM_ERR_UNSUPPORTED;
}
fm_status fmr_gpu_download(fmr_gpu *g, void *dst, fmr_devptr s, size_t b, fmd_diags *d) {
    (void)g, (void)dst, (void)s, (void)b;
    err(d, "%s%s", no_cuda, "");
    return FM_ERR_UNSUPPORTED;
}
fm_status fmr_gpu_sync(fmr_gpu *g, fmd_diags *d) {
    (void)g;
    err(d, "%s%s", no_cuda, "");
    return FM_ERR_UNSUPPORTED;
}
fm_status fmr_gpu_mask_upload(fmr_gpu *g, const fmc_blockmask *bm, fmr_gpu_mask **o, fmd_diags *d) {
    (void)g, (void)bm, (void)o;
    err(d, "%s%s", no_cuda, "");
    return FM_ERR_UNSUPPORTED;
}
void fmr_gpu_mask_free(fmr_gpu *g, fmr_gpu_mask *m) { (void)g, (void)m; }
bool fmr_gpu_mask_int32(const fmr_gpu_mask *m) { (void)m; return false; }
fm_status fmr_gpu_forward(fmr_gpu *g, const fmr_gpu_mask *m, const fmr_gpu_fwd_args *a, fmd_diags *d) {
    (void)g, (void)m, (void)a;
    err(d, "%s%s", no_cuda, "");
    return FM_ERR_UNSUPPORTED;
}
fm_status fmr_gpu_time_forward(fmr_gpu *g, const fmr_gpu_mask *m, const fmr_gpu_fwd_args *a,
                               int iters, double *ms, fmd_diags *d) {
    (void)g, (void)m, (void)a, (void)iters, (void)ms;
    err(d, "%s%s", no_cuda, "");
    return FM_ERR_UNSUPPORTED;
}

#else

typedef struct loaded_kernel {
    uint8_t key[32];
    CUmodule module;
    CUfunction fn;
} loaded_kernel;

struct fmr_gpu {
    const fmr_cuda_api *cu;
    CUdevice dev;
    CUcontext ctx;
    int arch;
    int max_smem_optin;
    char name[300];
    pthread_mutex_t lock;
    loaded_kernel *kernels;
    size_t nkernels, cap;
};

struct fmr_gpu_mask {
    const fmc_blockmask *bm;
    char *text; /* generated mask source */
    size_t text_len;
    bool int32;
    CUdeviceptr full_off, full_idx, part_off, part_idx;
    CUdeviceptr inputs[FMC_CUDA_MAX_INPUTS];
    fmc_cuda_mask_env env;
};

static fm_status cu_check(CUresult r, const char *what, fmd_diags *d) {
    if (r == CUDA_SUCCESS) return FM_OK;
    err(d, "CUDA error in %s: %s", what, fmr_cuda_error_string(r));
    return r == CUDA_ERROR_OUT_OF_MEMORY ? FM_ERR_NO_MEMORY : FM_ERR_CUDA;
}

fm_status fmr_gpu_open(fmr_gpu **out, char *why, size_t n) {
    const fmr_cuda_api *cu = fmr_cuda_driver(why, n);
    if (!cu) return FM_ERR_UNSUPPORTED;
    char nwhy[512];
    if (!fmr_nvrtc_available(nwhy, sizeof nwhy)) {
        if (why && n) snprintf(why, n, "a GPU is present but %s", nwhy);
        return FM_ERR_UNSUPPORTED;
    }
    fmr_gpu *g = calloc(1, sizeof *g);
    if (!g) return FM_ERR_NO_MEMORY;
    g->cu = cu;
    int major = 0, minor = 0;
    CUresult r = cu->DeviceGet(&g->dev, 0);
    if (r == CUDA_SUCCESS) r = cu->DeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, g->dev);
    if (r == CUDA_SUCCESS) r = cu->DeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, g->dev);
    if (r == CUDA_SUCCESS)
        r = cu->DeviceGetAttribute(&g->max_smem_optin,
                                   CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, g->dev);
    char dname[256] = "GPU";
    if (r == CUDA_SUCCESS) r = cu->DeviceGetName(dname, sizeof dname, g->dev);
    if (r == CUDA_SUCCESS) r = cu->DevicePrimaryCtxRetain(&g->ctx, g->dev);
    if (r != CUDA_SUCCESS) {
        if (why && n) snprintf(why, n, "the GPU could not be opened: %s", fmr_cuda_error_string(r));
        free(g);
        return FM_ERR_UNSUPPORTED;
    }
    int want = major * 10 + minor;
    if (want < 80) {
        if (why && n)
            snprintf(why, n, "the GPU (%s, sm_%d) is older than sm_80, which the kernel needs", dname, want);
        cu->DevicePrimaryCtxRelease(g->dev);
        free(g);
        return FM_ERR_UNSUPPORTED;
    }
    /* The device's architecture, clamped to what this NVRTC can target. */
    g->arch = fmr_jit_clamp_arch(want);
    snprintf(g->name, sizeof g->name, "%s (sm_%d, CUDA)", dname, want);
    pthread_mutex_init(&g->lock, NULL);
    *out = g;
    return FM_OK;
}

void fmr_gpu_close(fmr_gpu *g) {
    if (!g) return;
    g->cu->CtxSetCurrent(g->ctx);
    for (size_t i = 0; i < g->nkernels; i++) g->cu->ModuleUnload(g->kernels[i].module);
    free(g->kernels);
    g->cu->DevicePrimaryCtxRelease(g->dev);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

const char *fmr_gpu_name(const fmr_gpu *g) { return g->name; }
int fmr_gpu_arch(const fmr_gpu *g) { return g->arch; }

fm_status fmr_gpu_alloc(fmr_gpu *g, size_t bytes, fmr_devptr *out, fmd_diags *d) {
    g->cu->CtxSetCurrent(g->ctx);
    CUdeviceptr p = 0;
    fm_status st = cu_check(g->cu->MemAlloc(&p, bytes ? bytes : 16), "cuMemAlloc", d);
    if (st == FM_OK) *out = p;
    return st;
}
void fmr_gpu_free(fmr_gpu *g, fmr_devptr p) {
    if (!p) return;
    g->cu->CtxSetCurrent(g->ctx);
    g->cu->MemFree(p);
}
fm_status fmr_gpu_upload(fmr_gpu *g, fmr_devptr dst, const void *src, size_t bytes, fmd_diags *d) {
    if (!bytes) return FM_OK;
    g->cu->CtxSetCurrent(g->ctx);
    return cu_check(g->cu->MemcpyHtoD(dst, src, bytes), "cuMemcpyHtoD", d);
}
fm_status fmr_gpu_download(fmr_gpu *g, void *dst, fmr_devptr src, size_t bytes, fmd_diags *d) {
    if (!bytes) return FM_OK;
    g->cu->CtxSetCurrent(g->ctx);
    return cu_check(g->cu->MemcpyDtoH(dst, src, bytes), "cuMemcpyDtoH", d);
}
fm_status fmr_gpu_sync(fmr_gpu *g, fmd_diags *d) {
    g->cu->CtxSetCurrent(g->ctx);
    return cu_check(g->cu->CtxSynchronize(), "the forward kernel", d);
}

static fm_status upload_new(fmr_gpu *g, const void *src, size_t bytes, CUdeviceptr *out, fmd_diags *d) {
    fm_status st = fmr_gpu_alloc(g, bytes, out, d);
    if (st == FM_OK) st = fmr_gpu_upload(g, *out, src, bytes, d);
    return st;
}

void fmr_gpu_mask_free(fmr_gpu *g, fmr_gpu_mask *m) {
    if (!m) return;
    fmr_gpu_free(g, m->full_off);
    fmr_gpu_free(g, m->full_idx);
    fmr_gpu_free(g, m->part_off);
    fmr_gpu_free(g, m->part_idx);
    for (int i = 0; i < FMC_CUDA_MAX_INPUTS; i++) fmr_gpu_free(g, m->inputs[i]);
    free(m->text);
    free(m);
}

bool fmr_gpu_mask_int32(const fmr_gpu_mask *m) { return m->int32; }

fm_status fmr_gpu_mask_upload(fmr_gpu *g, const fmc_blockmask *bm, fmr_gpu_mask **out, fmd_diags *d) {
    const fmc_program *p = bm->program;
    fmr_gpu_mask *m = calloc(1, sizeof *m);
    if (!m) return FM_ERR_NO_MEMORY;
    m->bm = bm;
    m->text = fmc_codegen_cuda(p, &m->text_len, d);
    if (!m->text || !fmc_cuda_fill_env(p, &bm->env, &m->env)) {
        fmr_gpu_mask_free(g, m);
        return FM_ERR_UNSUPPORTED;
    }
    m->int32 = fmc_program_fits_int32(p, &bm->env);
    size_t nrows = (size_t)(bm->stored_batch * bm->stored_heads * bm->nqb);
    size_t nfull = (size_t)bm->full.off[nrows], npart = (size_t)bm->partial.off[nrows];
    fm_status st = upload_new(g, bm->full.off, (nrows + 1) * sizeof(int64_t), &m->full_off, d);
    if (st == FM_OK) st = upload_new(g, bm->full.idx, nfull * sizeof(int32_t), &m->full_idx, d);
    if (st == FM_OK) st = upload_new(g, bm->partial.off, (nrows + 1) * sizeof(int64_t), &m->part_off, d);
    if (st == FM_OK) st = upload_new(g, bm->partial.idx, npart * sizeof(int32_t), &m->part_idx, d);
    for (size_t i = 0; i < p->ninputs && st == FM_OK; i++) {
        size_t count = 1;
        for (size_t k = 0; k < p->inputs[i].rank; k++) count *= (size_t)bm->env.input_dims[i][k];
        st = upload_new(g, fmc_env_input_data(p, &bm->env, i),
                        count * fmc_input_elem_size(&p->inputs[i]), &m->inputs[i], d);
        m->env.inputs[i] = (const void *)(uintptr_t)m->inputs[i];
    }
    if (st != FM_OK) {
        fmr_gpu_mask_free(g, m);
        return st;
    }
    *out = m;
    return FM_OK;
}

/* The loaded kernel for cfg, compiling (or finding in the JIT cache) and
 * loading it on first use. */
static fm_status get_kernel(fmr_gpu *g, const fmr_gpu_mask *m, const fmr_kernel_config *cfg,
                            CUfunction *fn, fmd_diags *d) {
    fmr_jit_binary bin;
    fm_status st = fmr_jit_compile(NULL, m->text, m->text_len, cfg, false, &bin, d);
    if (st != FM_OK) return st;
    pthread_mutex_lock(&g->lock);
    for (size_t i = 0; i < g->nkernels; i++)
        if (!memcmp(g->kernels[i].key, bin.key, 32)) {
            *fn = g->kernels[i].fn;
            pthread_mutex_unlock(&g->lock);
            return FM_OK;
        }
    g->cu->CtxSetCurrent(g->ctx);
    loaded_kernel k;
    memcpy(k.key, bin.key, 32);
    st = cu_check(g->cu->ModuleLoadData(&k.module, bin.cubin), "cuModuleLoadData", d);
    if (st == FM_OK) {
        st = cu_check(g->cu->ModuleGetFunction(&k.fn, k.module, FMR_FWD_KERNEL_NAME),
                      "cuModuleGetFunction", d);
        int smem = FM_FWD_SMEM_BYTES(cfg->head_dim);
        /* Dynamic shared memory past 48 KiB (and, on some parts, any
           amount beside the static reservation) needs the opt-in. */
        if (st == FM_OK)
            st = cu_check(g->cu->FuncSetAttribute(k.fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem),
                          "cuFuncSetAttribute", d);
        if (st == FM_OK && g->nkernels == g->cap) {
            size_t cap = g->cap ? 2 * g->cap : 8;
            loaded_kernel *nk = realloc(g->kernels, cap * sizeof *nk);
            if (!nk) st = FM_ERR_NO_MEMORY;
            else {
                g->kernels = nk;
                g->cap = cap;
            }
        }
        if (st == FM_OK) g->kernels[g->nkernels++] = k;
        else g->cu->ModuleUnload(k.module);
    }
    pthread_mutex_unlock(&g->lock);
    if (st == FM_OK) *fn = k.fn;
    return st;
}

static fm_status prepare(fmr_gpu *g, const fmr_gpu_mask *m, const fmr_gpu_fwd_args *a,
                         fm_fwd_params *p, CUfunction *fn, unsigned grid[3], fmd_diags *d) {
    const fmc_blockmask *bm = m->bm;
    char buf[400];
    if (fmr_gpu_shape_problem(a->head_dim, bm->block_q, bm->block_kv, buf, sizeof buf)) {
        err(d, "%s%s", buf, "");
        return FM_ERR_UNSUPPORTED;
    }
    if (a->kv_heads <= 0 || bm->heads % a->kv_heads) {
        err(d, "%s%s", "KV_HEADS must divide HEADS (grouped-query attention)", "");
        return FM_ERR_INVALID_ARGUMENT;
    }
    int64_t ntiles = (bm->q_len + FM_FWD_BLOCK_M - 1) / FM_FWD_BLOCK_M;
    if (bm->q_len > INT32_MAX - 256 || bm->kv_len > INT32_MAX - 256 || bm->batch > 65535 ||
        bm->heads > 65535 || ntiles > INT32_MAX) {
        err(d, "%s%s", "the shape is too large for the CUDA kernel (lengths below 2^31, batch and "
                       "heads at most 65535)", "");
        return FM_ERR_LIMIT;
    }
    fmr_kernel_config cfg = {.head_dim = (int)a->head_dim, .bf16 = a->bf16, .int32 = m->int32,
                             .arch = g->arch};
    fm_status st = get_kernel(g, m, &cfg, fn, d);
    if (st != FM_OK) return st;
    memset(p, 0, sizeof *p);
    p->q = (const void *)(uintptr_t)a->q;
    p->k = (const void *)(uintptr_t)a->k;
    p->v = (const void *)(uintptr_t)a->v;
    p->out = (float *)(uintptr_t)a->out;
    p->lse = (float *)(uintptr_t)a->lse;
    p->q_stride_b = a->q_strides[0], p->q_stride_h = a->q_strides[1], p->q_stride_s = a->q_strides[2];
    p->k_stride_b = a->k_strides[0], p->k_stride_h = a->k_strides[1], p->k_stride_s = a->k_strides[2];
    p->v_stride_b = a->v_strides[0], p->v_stride_h = a->v_strides[1], p->v_stride_s = a->v_strides[2];
    p->batch = (int)bm->batch, p->heads = (int)bm->heads, p->kv_heads = (int)a->kv_heads;
    p->q_len = (int)bm->q_len, p->kv_len = (int)bm->kv_len;
    float scale = a->scale != 0.f ? a->scale : 1.f / sqrtf((float)a->head_dim);
    p->scale_log2 = scale * 1.4426950408889634f;
    p->full_off = (const long long *)(uintptr_t)m->full_off;
    p->full_idx = (const int *)(uintptr_t)m->full_idx;
    p->part_off = (const long long *)(uintptr_t)m->part_off;
    p->part_idx = (const int *)(uintptr_t)m->part_idx;
    p->nqb = (int)bm->nqb, p->block_q = (int)bm->block_q, p->block_kv = (int)bm->block_kv;
    p->bcast_batch = bm->bcast_batch, p->bcast_heads = bm->bcast_heads;
    p->stored_heads = (int)bm->stored_heads;
    p->mask = m->env;
    grid[0] = (unsigned)ntiles;
    grid[1] = (unsigned)bm->heads;
    grid[2] = (unsigned)bm->batch;
    return FM_OK;
}

static fm_status launch(fmr_gpu *g, CUfunction fn, fm_fwd_params *p, const unsigned grid[3],
                        int64_t head_dim, fmd_diags *d) {
    void *args[] = {p};
    unsigned smem = (unsigned)FM_FWD_SMEM_BYTES(head_dim);
    return cu_check(g->cu->LaunchKernel(fn, grid[0], grid[1], grid[2], FM_FWD_THREADS, 1, 1, smem,
                                        NULL, args, NULL),
                    "cuLaunchKernel", d);
}

fm_status fmr_gpu_forward(fmr_gpu *g, const fmr_gpu_mask *m, const fmr_gpu_fwd_args *a, fmd_diags *d) {
    fm_fwd_params p;
    CUfunction fn;
    unsigned grid[3];
    g->cu->CtxSetCurrent(g->ctx);
    fm_status st = prepare(g, m, a, &p, &fn, grid, d);
    if (st != FM_OK) return st;
    return launch(g, fn, &p, grid, a->head_dim, d);
}

fm_status fmr_gpu_time_forward(fmr_gpu *g, const fmr_gpu_mask *m, const fmr_gpu_fwd_args *a,
                               int iters, double *ms, fmd_diags *d) {
    fm_fwd_params p;
    CUfunction fn;
    unsigned grid[3];
    g->cu->CtxSetCurrent(g->ctx);
    fm_status st = prepare(g, m, a, &p, &fn, grid, d);
    if (st == FM_OK) st = launch(g, fn, &p, grid, a->head_dim, d); /* warm-up */
    if (st == FM_OK) st = fmr_gpu_sync(g, d);
    if (st != FM_OK) return st;
    CUevent e0, e1;
    st = cu_check(g->cu->EventCreate(&e0, 0), "cuEventCreate", d);
    if (st != FM_OK) return st;
    st = cu_check(g->cu->EventCreate(&e1, 0), "cuEventCreate", d);
    if (st != FM_OK) {
        g->cu->EventDestroy(e0);
        return st;
    }
    g->cu->EventRecord(e0, NULL);
    for (int i = 0; i < iters && st == FM_OK; i++) st = launch(g, fn, &p, grid, a->head_dim, d);
    g->cu->EventRecord(e1, NULL);
    if (st == FM_OK) st = cu_check(g->cu->EventSynchronize(e1), "the forward kernel", d);
    float t = 0;
    if (st == FM_OK) st = cu_check(g->cu->EventElapsedTime(&t, e0, e1), "cuEventElapsedTime", d);
    g->cu->EventDestroy(e0);
    g->cu->EventDestroy(e1);
    if (st == FM_OK) *ms = (double)t / (iters > 0 ? iters : 1);
    return st;
}

#endif
