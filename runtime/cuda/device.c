/* The public device API: a GPU when one is usable, else the CPU runtime,
 * with the choice and its reason kept for the caller to report. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/api/api_internal.h"
#include "runtime/cpu/attention_convert.h"
#include "runtime/cuda/cuda_fwd.h"
#include "runtime/cuda/cuda_loader.h"

struct fm_device {
    fm_device_kind kind;
    bool asked_auto; /* opened with FM_DEVICE_AUTO: shapes the kernel lacks run on the CPU */
    fmr_gpu *gpu;
    char name[320];
    char reason[640];
};

static void diag(fm_diagnostics *diags, const char *msg) {
    if (diags) fmd_diag_add(&diags->d, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL, "%s", msg);
}

FM_API bool fm_cuda_available(char *why, size_t n) {
    fmr_gpu *g = NULL;
    fm_status st = fmr_gpu_open(&g, why, n);
    fmr_gpu_close(g);
    return st == FM_OK;
}

FM_API fm_status fm_device_open(fm_device_kind kind, fm_diagnostics *diags, fm_device **out) {
    if (!out || (kind != FM_DEVICE_AUTO && kind != FM_DEVICE_CPU && kind != FM_DEVICE_CUDA))
        return FM_ERR_INVALID_ARGUMENT;
    fm_device *d = calloc(1, sizeof *d);
    if (!d) return FM_ERR_NO_MEMORY;
    if (kind == FM_DEVICE_CPU) {
        d->kind = FM_DEVICE_CPU;
        snprintf(d->name, sizeof d->name, "CPU");
        snprintf(d->reason, sizeof d->reason, "the CPU was asked for");
        *out = d;
        return FM_OK;
    }
    char why[512] = "";
    d->asked_auto = kind == FM_DEVICE_AUTO;
    fm_status st = fmr_gpu_open(&d->gpu, why, sizeof why);
    if (st == FM_OK) {
        d->kind = FM_DEVICE_CUDA;
        snprintf(d->name, sizeof d->name, "%s", fmr_gpu_name(d->gpu));
        snprintf(d->reason, sizeof d->reason, "%s",
                 kind == FM_DEVICE_CUDA ? "CUDA was asked for" : "a usable CUDA GPU was found");
        *out = d;
        return FM_OK;
    }
    if (kind == FM_DEVICE_CUDA) {
        char msg[640];
        snprintf(msg, sizeof msg, "the CUDA device is unavailable: %s", why);
        diag(diags, msg);
        free(d);
        return st == FM_ERR_NO_MEMORY ? st : FM_ERR_UNSUPPORTED;
    }
    d->kind = FM_DEVICE_CPU;
    snprintf(d->name, sizeof d->name, "CPU");
    snprintf(d->reason, sizeof d->reason, "CUDA unavailable: %s", why);
    *out = d;
    return FM_OK;
}

FM_API void fm_device_free(fm_device *d) {
    if (!d) return;
    fmr_gpu_close(d->gpu);
    free(d);
}

FM_API fm_device_kind fm_device_get_kind(const fm_device *d) { return d ? d->kind : FM_DEVICE_CPU; }
FM_API const char *fm_device_name(const fm_device *d) { return d ? d->name : "none"; }
FM_API const char *fm_device_reason(const fm_device *d) { return d ? d->reason : ""; }

static float load_elem(const fm_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    int64_t off = i0 * t->strides[0] + i1 * t->strides[1] + i2 * t->strides[2] + i3 * t->strides[3];
    switch (t->dtype) {
    case FM_FLOAT32: return ((const float *)t->data)[off];
    case FM_FLOAT16: return fmr_f16_to_f32(((const uint16_t *)t->data)[off]);
    default: return fmr_bf16_to_f32(((const uint16_t *)t->data)[off]);
    }
}

/* A contiguous 16-bit copy of t in the kernel's element type. */
static uint16_t *pack16(const fm_tensor *t, bool bf16) {
    size_t n = (size_t)(t->shape[0] * t->shape[1] * t->shape[2] * t->shape[3]);
    uint16_t *o = malloc(n ? n * 2 : 2);
    if (!o) return NULL;
    size_t k = 0;
    for (int64_t a = 0; a < t->shape[0]; a++)
        for (int64_t b = 0; b < t->shape[1]; b++)
            for (int64_t c = 0; c < t->shape[2]; c++)
                for (int64_t e = 0; e < t->shape[3]; e++) {
                    const int64_t off = a * t->strides[0] + b * t->strides[1] + c * t->strides[2] +
                                        e * t->strides[3];
                    /* Same-type data is copied bit for bit. */
                    if (t->dtype == (bf16 ? FM_BFLOAT16 : FM_FLOAT16))
                        o[k++] = ((const uint16_t *)t->data)[off];
                    else {
                        float f = load_elem(t, a, b, c, e);
                        o[k++] = bf16 ? fmr_f32_to_bf16(f) : fmr_f32_to_f16(f);
                    }
                }
    return o;
}

static bool check_args(const fm_attention_args *a, const fmc_blockmask *bm, fm_diagnostics *diags) {
    const fm_tensor *q = &a->q, *k = &a->k, *v = &a->v, *o = &a->out;
    if (!q->data || !k->data || !v->data || !o->data) {
        diag(diags, "attention needs q, k, v and out data");
        return false;
    }
    const int64_t D = q->shape[3];
    bool ok = q->shape[0] == bm->batch && q->shape[1] == bm->heads && q->shape[2] == bm->q_len &&
              k->shape[0] == bm->batch && k->shape[2] == bm->kv_len && k->shape[3] == D &&
              v->shape[0] == k->shape[0] && v->shape[1] == k->shape[1] &&
              v->shape[2] == k->shape[2] && v->shape[3] == D && o->shape[0] == q->shape[0] &&
              o->shape[1] == q->shape[1] && o->shape[2] == q->shape[2] && o->shape[3] == D &&
              k->shape[1] > 0 && q->shape[1] % k->shape[1] == 0;
    if (!ok) {
        char m[400];
        snprintf(m, sizeof m,
                 "tensor shapes do not match the BlockMask (batch %lld, heads %lld, q_len %lld, "
                 "kv_len %lld): q must be [BATCH, HEADS, Q_LEN, D], k and v [BATCH, KV_HEADS, "
                 "KV_LEN, D] with KV_HEADS dividing HEADS, out like q",
                 (long long)bm->batch, (long long)bm->heads, (long long)bm->q_len,
                 (long long)bm->kv_len);
        diag(diags, m);
        return false;
    }
    if (o->dtype != FM_FLOAT32 && o->dtype != q->dtype) {
        diag(diags, "out must be float32 or the storage type of q");
        return false;
    }
    return true;
}

static fm_status cuda_attention(fm_device *dev, const fm_attention_args *a, fm_diagnostics *diags) {
    const fmc_blockmask *bm = a->mask->bm;
    if (!check_args(a, bm, diags)) return FM_ERR_INVALID_ARGUMENT;
    fmd_diags scratch;
    fmd_diags *d = fmr_diags_of(diags, &scratch);
    const int64_t B = bm->batch, H = bm->heads, Sq = bm->q_len, Skv = bm->kv_len;
    const int64_t D = a->q.shape[3], KVH = a->k.shape[1];
    const bool bf16 = a->q.dtype == FM_BFLOAT16;
    fmr_gpu *g = dev->gpu;
    fm_status st = FM_OK;
    uint16_t *hq = NULL, *hk = NULL, *hv = NULL;
    float *hout = NULL;
    fmr_devptr dq = 0, dk = 0, dv = 0, dout = 0, dlse = 0;
    fmr_gpu_mask *m = NULL;
    char why[400];
    if (fmr_gpu_shape_problem(D, bm->block_q, bm->block_kv, why, sizeof why)) {
        fmd_diag_add(d, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL, "%s", why);
        st = FM_ERR_UNSUPPORTED;
        goto out;
    }
    size_t nq = (size_t)(B * H * Sq * D), nkv = (size_t)(B * KVH * Skv * D);
    hq = pack16(&a->q, bf16);
    hk = pack16(&a->k, bf16);
    hv = pack16(&a->v, bf16);
    hout = malloc(nq ? nq * sizeof(float) : 4);
    if (!hq || !hk || !hv || !hout) {
        st = FM_ERR_NO_MEMORY;
        goto out;
    }
    if ((st = fmr_gpu_alloc(g, nq * 2, &dq, d)) || (st = fmr_gpu_alloc(g, nkv * 2, &dk, d)) ||
        (st = fmr_gpu_alloc(g, nkv * 2, &dv, d)) || (st = fmr_gpu_alloc(g, nq * 4, &dout, d)) ||
        (a->lse && (st = fmr_gpu_alloc(g, (size_t)(B * H * Sq) * 4, &dlse, d))) ||
        (st = fmr_gpu_upload(g, dq, hq, nq * 2, d)) || (st = fmr_gpu_upload(g, dk, hk, nkv * 2, d)) ||
        (st = fmr_gpu_upload(g, dv, hv, nkv * 2, d)) || (st = fmr_gpu_mask_upload(g, bm, &m, d)))
        goto out;
    fmr_gpu_fwd_args fa = {.q = dq, .k = dk, .v = dv, .out = dout, .lse = dlse,
                           .q_strides = {H * Sq * D, Sq * D, D},
                           .k_strides = {KVH * Skv * D, Skv * D, D},
                           .v_strides = {KVH * Skv * D, Skv * D, D},
                           .kv_heads = KVH, .head_dim = D, .bf16 = bf16, .scale = a->scale};
    if ((st = fmr_gpu_forward(g, m, &fa, d)) || (st = fmr_gpu_sync(g, d)) ||
        (st = fmr_gpu_download(g, hout, dout, nq * 4, d)) ||
        (a->lse && (st = fmr_gpu_download(g, a->lse, dlse, (size_t)(B * H * Sq) * 4, d))))
        goto out;
    const fm_tensor *o = &a->out;
    size_t k = 0;
    for (int64_t i0 = 0; i0 < B; i0++)
        for (int64_t i1 = 0; i1 < H; i1++)
            for (int64_t i2 = 0; i2 < Sq; i2++)
                for (int64_t i3 = 0; i3 < D; i3++) {
                    int64_t off = i0 * o->strides[0] + i1 * o->strides[1] + i2 * o->strides[2] +
                                  i3 * o->strides[3];
                    float f = hout[k++];
                    if (o->dtype == FM_FLOAT32) ((float *)o->data)[off] = f;
                    else if (o->dtype == FM_FLOAT16) ((uint16_t *)o->data)[off] = fmr_f32_to_f16(f);
                    else ((uint16_t *)o->data)[off] = fmr_f32_to_bf16(f);
                }
out:
    fmr_gpu_mask_free(g, m);
    fmr_gpu_free(g, dq);
    fmr_gpu_free(g, dk);
    fmr_gpu_free(g, dv);
    fmr_gpu_free(g, dout);
    fmr_gpu_free(g, dlse);
    free(hq);
    free(hk);
    free(hv);
    free(hout);
    fmr_diags_done(diags, &scratch);
    return st;
}

FM_API fm_status fm_device_attention(fm_device *dev, const fm_attention_args *caller_args,
                                     fm_diagnostics *diags) {
    if (!dev || !caller_args) return FM_ERR_INVALID_ARGUMENT;
    fm_attention_args copy;
    fmd_diags scratch;
    fmd_diags *d = fmr_diags_of(diags, &scratch);
    bool ok = fmr_versioned_copy(&copy, sizeof copy, caller_args, "fm_attention_args", d);
    fmr_diags_done(diags, &scratch);
    if (!ok) return FM_ERR_INVALID_ARGUMENT;
    const fm_attention_args *args = &copy;
    if (!args->mask) return FM_ERR_INVALID_ARGUMENT;
    if (dev->kind == FM_DEVICE_CPU) return fm_attention_cpu(args, diags);
    /* A device opened with AUTO runs what the kernel does not cover (head
       dims other than 64 and 128, block sizes that are not multiples of
       64) on the CPU, and says so in a note; one opened as CUDA refuses. */
    const fmc_blockmask *bm = args->mask->bm;
    int64_t D = args->q.shape[3];
    char why[400];
    if (dev->asked_auto && fmr_gpu_shape_problem(D, bm->block_q, bm->block_kv, why, sizeof why)) {
        if (diags)
            fmd_diag_add(&diags->d, FMD_NOTE, NULL, (fmd_span){0, 0}, NULL, "ran on the CPU: %s",
                         why);
        return fm_attention_cpu(args, diags);
    }
    return cuda_attention(dev, args, diags);
}
