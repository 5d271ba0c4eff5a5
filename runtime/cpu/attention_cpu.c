/* CPU attention forward: argument checks, the per-task driver (panels,
 * tiles, online softmax, output) and the OpenMP loop. The arithmetic
 * kernels live in attention_portable.c and attention_simd_avx2.c. */
#include "runtime/cpu/attention_cpu.h"

#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/eval.h"
#include "runtime/cpu/attention_convert.h"
#include "runtime/cpu/attention_kernels.h"

/* Largest block size accepted: tile widths are passed to int32 lanes, and a
 * block this large already needs gigabytes of scratch per thread. */
#define FMR_MAX_BLOCK 65536

bool fmr_cpu_has_avx2(void) {
#if defined(__x86_64__) || defined(__i386__)
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return false;
#endif
}

static fm_status fail(fmd_diags *d, fm_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static fm_status fail(fmd_diags *d, fm_status st, const char *fmt, ...) {
    if (d) {
        va_list ap;
        va_start(ap, fmt);
        fmd_span none = {0, 0};
        fmd_diag_addv(d, FMD_ERROR, NULL, none, NULL, fmt, ap);
        va_end(ap);
    }
    return st;
}

/* ---- argument checks ---- */

static const char *dtype_name(fm_dtype t) {
    switch (t) {
    case FM_FLOAT32: return "float32";
    case FM_FLOAT16: return "float16";
    case FM_BFLOAT16: return "bfloat16";
    }
    return "an unknown dtype";
}

static size_t dtype_size(fm_dtype t) {
    return t == FM_FLOAT32 ? 4 : 2;
}

static bool dtype_valid(fm_dtype t) {
    return t == FM_FLOAT32 || t == FM_FLOAT16 || t == FM_BFLOAT16;
}

/* "[1, 8, 100, 64]" into buf. */
static const char *shape_str(const int64_t s[4], char *buf, size_t n) {
    snprintf(buf, n, "[%lld, %lld, %lld, %lld]", (long long)s[0], (long long)s[1], (long long)s[2],
             (long long)s[3]);
    return buf;
}

/* Checks data, dtype, strides and that the largest offset fits the address
 * space, for a tensor whose shape was already checked positive. */
static fm_status check_tensor(const fm_tensor *t, const char *name, fmd_diags *d) {
    if (!t->data) return fail(d, FM_ERR_INVALID_ARGUMENT, "attention: %s has no data (NULL)", name);
    if (!dtype_valid(t->dtype))
        return fail(d, FM_ERR_INVALID_ARGUMENT,
                    "attention: %s has dtype %d, which is not float32, float16 or bfloat16", name,
                    (int)t->dtype);
    int64_t max_off = 0;
    for (int i = 0; i < 4; i++) {
        if (t->strides[i] < 0)
            return fail(d, FM_ERR_INVALID_ARGUMENT,
                        "attention: %s has a negative stride (%lld) in dimension %d; strides "
                        "must be >= 0",
                        name, (long long)t->strides[i], i);
        int64_t span;
        if (__builtin_mul_overflow(t->shape[i] - 1, t->strides[i], &span) ||
            __builtin_add_overflow(max_off, span, &max_off))
            return fail(d, FM_ERR_INVALID_ARGUMENT,
                        "attention: the strides of %s reach past the 64-bit range", name);
    }
    if ((uint64_t)max_off > (uint64_t)PTRDIFF_MAX / dtype_size(t->dtype))
        return fail(d, FM_ERR_INVALID_ARGUMENT,
                    "attention: the strides of %s reach past the address space", name);
    return FM_OK;
}

fm_status fmr_attention_cpu_check(const fmc_blockmask *bm, const fm_attention_args *a,
                                  fmd_diags *d) {
    char b1[96], b2[96];
    if (!bm) return fail(d, FM_ERR_INVALID_ARGUMENT, "attention: no BlockMask given (NULL)");
    if (bm->block_q < 1 || bm->block_kv < 1 || bm->block_q > FMR_MAX_BLOCK ||
        bm->block_kv > FMR_MAX_BLOCK)
        return fail(d, FM_ERR_UNSUPPORTED,
                    "attention: block sizes %lld x %lld are not supported on the CPU (each "
                    "must be in 1..%d)",
                    (long long)bm->block_q, (long long)bm->block_kv, FMR_MAX_BLOCK);
    if (bm->batch < 1 || bm->heads < 1 || bm->q_len < 1 || bm->kv_len < 1)
        return fail(d, FM_ERR_INVALID_ARGUMENT, "attention: the BlockMask has an empty shape");
    const int64_t *qs = a->q.shape, *ks = a->k.shape;
    for (int i = 0; i < 4; i++) {
        if (qs[i] < 1 || ks[i] < 1 || a->v.shape[i] < 1 || a->out.shape[i] < 1)
            return fail(d, FM_ERR_INVALID_ARGUMENT,
                        "attention: every dimension of q, k, v and out must be >= 1 (q %s, k %s)",
                        shape_str(qs, b1, sizeof b1), shape_str(ks, b2, sizeof b2));
    }
    if (qs[0] != bm->batch || qs[1] != bm->heads || qs[2] != bm->q_len)
        return fail(d, FM_ERR_INVALID_ARGUMENT,
                    "attention: q has shape %s but the BlockMask was built for BATCH %lld, "
                    "HEADS %lld, Q_LEN %lld (q must be [BATCH, HEADS, Q_LEN, D])",
                    shape_str(qs, b1, sizeof b1), (long long)bm->batch, (long long)bm->heads,
                    (long long)bm->q_len);
    if (ks[0] != bm->batch || ks[2] != bm->kv_len)
        return fail(d, FM_ERR_INVALID_ARGUMENT,
                    "attention: k has shape %s but the BlockMask was built for BATCH %lld, "
                    "KV_LEN %lld (k must be [BATCH, KV_HEADS, KV_LEN, D])",
                    shape_str(ks, b1, sizeof b1), (long long)bm->batch, (long long)bm->kv_len);
    if (ks[3] != qs[3])
        return fail(d, FM_ERR_INVALID_ARGUMENT,
                    "attention: k has head dimension %lld but q has %lld", (long long)ks[3],
                    (long long)qs[3]);
    if (bm->heads % ks[1] != 0)
        return fail(d, FM_ERR_INVALID_ARGUMENT,
                    "attention: HEADS (%lld) is not a multiple of the %lld key/value heads of k",
                    (long long)bm->heads, (long long)ks[1]);
    if (memcmp(a->v.shape, ks, sizeof a->v.shape) != 0)
        return fail(d, FM_ERR_INVALID_ARGUMENT, "attention: v has shape %s but k has %s",
                    shape_str(a->v.shape, b1, sizeof b1), shape_str(ks, b2, sizeof b2));
    if (memcmp(a->out.shape, qs, sizeof a->out.shape) != 0)
        return fail(d, FM_ERR_INVALID_ARGUMENT, "attention: out has shape %s but q has %s",
                    shape_str(a->out.shape, b1, sizeof b1), shape_str(qs, b2, sizeof b2));
    fm_status st;
    if ((st = check_tensor(&a->q, "q", d)) != FM_OK) return st;
    if ((st = check_tensor(&a->k, "k", d)) != FM_OK) return st;
    if ((st = check_tensor(&a->v, "v", d)) != FM_OK) return st;
    if ((st = check_tensor(&a->out, "out", d)) != FM_OK) return st;
    if (a->out.dtype != FM_FLOAT32 && a->out.dtype != a->q.dtype)
        return fail(d, FM_ERR_INVALID_ARGUMENT,
                    "attention: out has dtype %s; it must be float32 or q's dtype (%s)",
                    dtype_name(a->out.dtype), dtype_name(a->q.dtype));
    for (int i = 0; i < 4; i++)
        if (a->out.shape[i] > 1 && a->out.strides[i] == 0)
            return fail(d, FM_ERR_INVALID_ARGUMENT,
                        "attention: out has stride 0 in dimension %d, so distinct outputs "
                        "would share memory",
                        i);
    if (!isfinite(a->scale))
        return fail(d, FM_ERR_INVALID_ARGUMENT, "attention: scale %g is not finite",
                    (double)a->scale);
    if (a->num_threads < 0)
        return fail(d, FM_ERR_INVALID_ARGUMENT, "attention: num_threads is %d; it must be >= 0",
                    a->num_threads);
    if (!bm->program || !bm->full.off || !bm->partial.off)
        return fail(d, FM_ERR_INVALID_ARGUMENT, "attention: the BlockMask is incomplete");
    return FM_OK;
}

/* ---- panels ---- */

static inline int64_t round_up(int64_t x, int64_t m) {
    return (x + m - 1) / m * m;
}

/* n elements of a tensor, stride `step` apart from element offset off, as
 * float32 into dst. */
static void load_row(float *dst, const fm_tensor *t, int64_t off, int64_t step, int64_t n) {
    if (t->dtype == FM_FLOAT32) {
        const float *src = (const float *)t->data + off;
        if (step == 1) {
            memcpy(dst, src, (size_t)n * sizeof *dst);
        } else {
            for (int64_t i = 0; i < n; i++)
                dst[i] = src[i * step];
        }
    } else if (t->dtype == FM_FLOAT16) {
        const uint16_t *src = (const uint16_t *)t->data + off;
        for (int64_t i = 0; i < n; i++)
            dst[i] = fmr_f16_to_f32(src[i * step]);
    } else {
        const uint16_t *src = (const uint16_t *)t->data + off;
        for (int64_t i = 0; i < n; i++)
            dst[i] = fmr_bf16_to_f32(src[i * step]);
    }
}

static void store_row(const fm_tensor *t, int64_t off, int64_t step, const float *src, float scale,
                      int64_t n) {
    if (t->dtype == FM_FLOAT32) {
        float *dst = (float *)t->data + off;
        for (int64_t i = 0; i < n; i++)
            dst[i * step] = src[i] * scale;
    } else if (t->dtype == FM_FLOAT16) {
        uint16_t *dst = (uint16_t *)t->data + off;
        for (int64_t i = 0; i < n; i++)
            dst[i * step] = fmr_f32_to_f16(src[i] * scale);
    } else {
        uint16_t *dst = (uint16_t *)t->data + off;
        for (int64_t i = 0; i < n; i++)
            dst[i * step] = fmr_f32_to_bf16(src[i] * scale);
    }
}

static inline int64_t offset3(const fm_tensor *t, int64_t b, int64_t h, int64_t s) {
    return b * t->strides[0] + h * t->strides[1] + s * t->strides[2];
}

/* Per-thread scratch, sized for the largest tile. */
typedef struct workspace {
    float *qp;                  /* mp x D: the query block, rows >= m zero */
    float *o;                   /* mp x Dp: unnormalised output accumulator */
    float *s;                   /* mp x npmax: scores, then weights */
    float *kt;                  /* D x npmax: K of the tile, transposed, columns >= n zero */
    float *vp;                  /* npmax x Dp: V of the tile, columns >= D zero */
    float *alpha, *mrow, *lrow; /* mp each */
    uint8_t *keep;              /* mp x npmax: the mask of a partial tile, row i at i * np */
    void *eval_scratch;
    void *block; /* the single allocation behind all of the above */
} workspace;

typedef struct plan {
    const fmc_blockmask *bm;
    const fm_attention_args *a;
    const fmr_attn_kernels *kern;
    int64_t D, Dp, mp_max, np_max, group;
    float c; /* scale * log2(e): scores in the base-2 domain */
    size_t eval_scratch_bytes;
    bool v_direct; /* V is contiguous float32 rows with D % FMR_NR == 0: read in place */
    const fmr_tile_bits *bits; /* NULL: partial tiles evaluate the mask per row */
} plan;

static size_t align64(size_t x) {
    return (x + 63) & ~(size_t)63;
}

static bool workspace_init(workspace *w, const plan *p) {
    size_t f = sizeof(float);
    size_t mp = (size_t)p->mp_max, np = (size_t)p->np_max, D = (size_t)p->D, Dp = (size_t)p->Dp;
    size_t sizes[9] = {mp * D * f, mp * Dp * f, mp * np * f, D * np * f, np * Dp * f,
                       mp * f,     mp * f,      mp * f,      mp * np + 32};
    size_t total = 0;
    for (int i = 0; i < 9; i++)
        total += align64(sizes[i]);
    total += align64(p->eval_scratch_bytes);
    memset(w, 0, sizeof *w);
    char *blk = aligned_alloc(64, total);
    if (!blk) return false;
    w->block = blk;
    char *at = blk;
    float **fs[8] = {&w->qp, &w->o, &w->s, &w->kt, &w->vp, &w->alpha, &w->mrow, &w->lrow};
    for (int i = 0; i < 8; i++) {
        *fs[i] = (float *)at;
        at += align64(sizes[i]);
    }
    w->keep = (uint8_t *)at;
    memset(w->keep, 0, sizes[8]);
    at += align64(sizes[8]);
    w->eval_scratch = at;
    return true;
}

/* The sizes above cannot overflow size_t: each factor is bounded by
 * FMR_MAX_BLOCK or by D, and D is bounded by a tensor that exists. We still
 * refuse absurd products (a huge D with a large block) up front. */
static bool workspace_size_ok(const plan *p) {
    uint64_t mp = (uint64_t)p->mp_max, np = (uint64_t)p->np_max, Dp = (uint64_t)p->Dp;
    uint64_t big = mp > np ? mp : np;
    uint64_t prod;
    if (__builtin_mul_overflow(big, Dp, &prod) || prod > (UINT64_C(1) << 40)) return false;
    if (__builtin_mul_overflow(mp, np, &prod) || prod > (UINT64_C(1) << 40)) return false;
    return true;
}

/* ---- one task: (b, h, query block) ---- */

typedef struct task_result {
    bool violated;
    fmc_violation v;
    int64_t evaluations;
} task_result;

static void load_q(const plan *p, workspace *w, int64_t b, int64_t h, int64_t q0, int64_t m) {
    const fm_tensor *t = &p->a->q;
    for (int64_t r = 0; r < m; r++)
        load_row(w->qp + r * p->D, t, offset3(t, b, h, q0 + r), t->strides[3], p->D);
    memset(w->qp + m * p->D, 0, (size_t)((round_up(m, FMR_MR) - m) * p->D) * sizeof(float));
}

/* K of kv rows [k0, k0 + n) transposed into kt (D x np), and V into vp
 * unless it is read in place; returns V's panel and its row stride. */
static const float *load_kv(const plan *p, workspace *w, int64_t b, int64_t hk, int64_t k0,
                            int64_t n, int64_t np, int64_t *ldv) {
    const fm_tensor *k = &p->a->k, *v = &p->a->v;
    int64_t D = p->D;
    if (k->dtype == FM_FLOAT32 && k->strides[3] == 1) {
        p->kern->transpose((const float *)k->data + offset3(k, b, hk, k0), k->strides[2], n, D,
                           w->kt, np);
    } else {
        /* Widen the rows into vp first (V is loaded after, so it is free). */
        for (int64_t j = 0; j < n; j++)
            load_row(w->vp + j * D, k, offset3(k, b, hk, k0 + j), k->strides[3], D);
        p->kern->transpose(w->vp, D, n, D, w->kt, np);
    }
    if (n < np)
        for (int64_t d = 0; d < D; d++)
            memset(w->kt + d * np + n, 0, (size_t)(np - n) * sizeof(float));
    if (p->v_direct) {
        *ldv = v->strides[2];
        return (const float *)v->data + offset3(v, b, hk, k0);
    }
    for (int64_t j = 0; j < n; j++) {
        float *dst = w->vp + j * p->Dp;
        load_row(dst, v, offset3(v, b, hk, k0 + j), v->strides[3], D);
        if (p->Dp > D) memset(dst + D, 0, (size_t)(p->Dp - D) * sizeof(float));
    }
    *ldv = p->Dp;
    return w->vp;
}

/* Whether every value of an n x D panel (row stride ld) is finite. */
static bool panel_finite(const float *v, int64_t ld, int64_t n, int64_t D) {
    bool ok = true;
    for (int64_t j = 0; j < n; j++)
        for (int64_t d = 0; d < D; d++)
            ok &= fabsf(v[j * ld + d]) <= FLT_MAX; /* NaN: false */
    return ok;
}

/* O = diag(alpha) O + P V over the true positions of a partial tile only.
 * The matrix kernel multiplies every V row by its weight, and a masked
 * position's weight 0 times an inf or NaN stored there (padding that was
 * never written, say) would be NaN; masked positions must not matter. A
 * true position is multiplied even when its weight is 0 (a -inf score, or
 * one that underflows): 0 * NaN = NaN there, as in a full tile's product
 * and in PyTorch's P @ V, so the choice of tile never changes the result. */
static void accumulate_included(const plan *p, workspace *w, int64_t m, int64_t n, int64_t np,
                                const float *vp, int64_t ldv) {
    for (int64_t i = 0; i < m; i++) {
        float *o = w->o + i * p->Dp;
        const float *prow = w->s + i * np;
        const uint8_t *keep = w->keep + i * np;
        for (int64_t d = 0; d < p->Dp; d++)
            o[d] *= w->alpha[i];
        for (int64_t j = 0; j < n; j++) {
            if (!keep[j]) continue;
            for (int64_t d = 0; d < p->D; d++)
                o[d] += prow[j] * vp[j * ldv + d];
        }
    }
}

static void run_task(const plan *p, workspace *w, int64_t b, int64_t h, int64_t qb,
                     task_result *res) {
    const fmc_blockmask *bm = p->bm;
    const fmr_attn_kernels *kern = p->kern;
    int64_t D = p->D, Dp = p->Dp, hk = h / p->group;
    int64_t q0 = qb * bm->block_q;
    int64_t m = bm->q_len - q0 < bm->block_q ? bm->q_len - q0 : bm->block_q;
    int64_t mp = round_up(m, FMR_MR);

    load_q(p, w, b, h, q0, m);
    memset(w->o, 0, (size_t)(mp * Dp) * sizeof(float));
    for (int64_t i = 0; i < mp; i++) {
        w->mrow[i] = -INFINITY; /* no position seen yet: see softmax_row */
        w->lrow[i] = 0.0f;
        w->alpha[i] = 0.0f; /* rows >= m are padding; keep their accumulator at 0 */
    }

    int64_t r = fmc_bm_row(bm, b, h, qb);
    const int32_t *fl = bm->full.idx + bm->full.off[r], *pl = bm->partial.idx + bm->partial.off[r];
    int64_t nf = bm->full.off[r + 1] - bm->full.off[r];
    int64_t npar = bm->partial.off[r + 1] - bm->partial.off[r];
    int64_t fi = 0, pi = 0;
    /* Both lists ascend: merge them so tiles are visited in kv order. */
    while (fi < nf || pi < npar) {
        bool partial = fi >= nf || (pi < npar && pl[pi] < fl[fi]);
        int64_t kvb = partial ? pl[pi++] : fl[fi++];
        int64_t k0 = kvb * bm->block_kv;
        int64_t n = bm->kv_len - k0 < bm->block_kv ? bm->kv_len - k0 : bm->block_kv;
        int64_t np = round_up(n, FMR_NR);
        int64_t ldv;
        const float *vp = load_kv(p, w, b, hk, k0, n, np, &ldv);
        kern->gemm(mp, np, D, w->qp, D, w->kt, np, w->s, np, NULL);
        for (int64_t i = 0; i < m; i++) {
            /* Kept for the whole tile: accumulate_included reads it. */
            uint8_t *keep = partial ? w->keep + i * np : NULL;
            if (partial && p->bits) {
                fmr_tile_bits_row(p->bits, bm->partial.off[r] + pi - 1, i, n, keep);
            } else if (partial) {
                if (!fmc_eval_row(bm->program, &bm->env, b, h, q0 + i, k0, n, keep,
                                  w->eval_scratch, &res->v)) {
                    res->violated = true;
                    return;
                }
                res->evaluations += n;
            }
            w->alpha[i] =
                kern->softmax_row(w->s + i * np, n, np, keep, p->c, &w->mrow[i], &w->lrow[i]);
        }
        if (partial && !panel_finite(vp, ldv, n, D))
            accumulate_included(p, w, m, n, np, vp, ldv);
        else
            kern->gemm(mp, Dp, n, w->s, np, vp, ldv, w->o, Dp, w->alpha);
    }

    const fm_tensor *out = &p->a->out;
    for (int64_t i = 0; i < m; i++) {
        float l = w->lrow[i];
        /* l == 0 exactly when the row met no true position with a score
         * above -inf (the largest weight of any included position is
         * 2^0 = 1): the output is zero (the accumulator is all zeros, and
         * 1/l would be inf) and the log-sum-exp is -inf, as the spec says.
         * The zeros are written, not 0 * O: O may hold 0 * NaN from a NaN
         * in V at a -inf-scored key, and such a row is still empty. l is
         * NaN when a NaN or +inf score poisoned the row
         * (fmr_softmax_poison): 1/l makes the output NaN, and the LSE is
         * the row's m, +inf or NaN. */
        if (l == 0.0f) memset(w->o + i * Dp, 0, (size_t)D * sizeof(float));
        float inv = l == 0.0f ? 0.0f : 1.0f / l;
        store_row(out, offset3(out, b, h, q0 + i), out->strides[3], w->o + i * Dp, inv, D);
        if (p->a->lse) {
            float lse = l == 0.0f  ? -INFINITY
                        : isnan(l) ? w->mrow[i]
                                   : (float)(0.69314718055994530942 * (double)w->mrow[i] +
                                             log((double)l));
            p->a->lse[(b * bm->heads + h) * bm->q_len + q0 + i] = lse;
        }
    }
}

/* ---- the parallel loop ---- */

static fm_status choose_kernels(fmr_isa isa, const fmr_attn_kernels **out, fmd_diags *d) {
    if (isa == FMR_ISA_AUTO) {
        const char *env = getenv("FLEXMASK_CPU_ISA");
        if (env && *env) {
            if (strcmp(env, "portable") == 0)
                isa = FMR_ISA_PORTABLE;
            else if (strcmp(env, "avx2") == 0)
                isa = FMR_ISA_AVX2;
            else if (strcmp(env, "auto") != 0)
                return fail(d, FM_ERR_INVALID_ARGUMENT,
                            "attention: FLEXMASK_CPU_ISA is '%s'; use auto, portable or avx2", env);
        }
    }
    if (isa == FMR_ISA_AUTO) isa = fmr_cpu_has_avx2() ? FMR_ISA_AVX2 : FMR_ISA_PORTABLE;
    if (isa == FMR_ISA_AVX2) {
#if defined(__x86_64__) || defined(__i386__)
        if (fmr_cpu_has_avx2()) {
            *out = &fmr_attn_avx2;
            return FM_OK;
        }
#endif
        return fail(
            d, FM_ERR_UNSUPPORTED,
            "attention: the AVX2/FMA kernels were asked for, but this CPU lacks AVX2 or FMA");
    }
    *out = &fmr_attn_portable;
    return FM_OK;
}

fm_status fmr_attention_cpu_isa(const fmc_blockmask *bm, const fm_attention_args *args, fmr_isa isa,
                                fmd_diags *diags, int64_t *mask_evaluations) {
    return fmr_attention_cpu_tiles(bm, NULL, args, isa, diags, mask_evaluations);
}

fm_status fmr_attention_cpu_tiles(const fmc_blockmask *bm, const fmr_tile_bits *bits,
                                  const fm_attention_args *args, fmr_isa isa, fmd_diags *diags,
                                  int64_t *mask_evaluations) {
    if (!args) return fail(diags, FM_ERR_INVALID_ARGUMENT, "attention: no arguments given (NULL)");
    fm_status st = fmr_attention_cpu_check(bm, args, diags);
    if (st != FM_OK) return st;
    plan p;
    memset(&p, 0, sizeof p);
    p.bm = bm;
    p.a = args;
    p.bits = bits && bits->bits ? bits : NULL;
    if ((st = choose_kernels(isa, &p.kern, diags)) != FM_OK) return st;
    p.D = args->q.shape[3];
    p.Dp = round_up(p.D, FMR_NR);
    p.mp_max = round_up(bm->block_q < bm->q_len ? bm->block_q : bm->q_len, FMR_MR);
    p.np_max = round_up(bm->block_kv < bm->kv_len ? bm->block_kv : bm->kv_len, FMR_NR);
    p.group = bm->heads / args->k.shape[1];
    double scale = args->scale != 0.0f ? (double)args->scale : 1.0 / sqrt((double)p.D);
    p.c = (float)(scale * 1.44269504088896340736);
    p.v_direct = args->v.dtype == FM_FLOAT32 && args->v.strides[3] == 1 && p.D % FMR_NR == 0;
    p.eval_scratch_bytes = fmc_row_scratch_bytes(bm->program, p.np_max);
    if (!workspace_size_ok(&p))
        return fail(diags, FM_ERR_LIMIT,
                    "attention: head dimension %lld with %lld x %lld blocks needs more scratch "
                    "memory than the CPU runtime allows",
                    (long long)p.D, (long long)bm->block_q, (long long)bm->block_kv);

    int64_t ntasks = bm->batch * bm->heads * bm->nqb;
    int64_t bh = bm->batch * bm->heads;
    int nthreads = args->num_threads > 0 ? args->num_threads : omp_get_max_threads();
    if ((int64_t)nthreads > ntasks) nthreads = (int)ntasks;
    if (nthreads < 1) nthreads = 1;

    atomic_bool stop = false, oom = false;
    int64_t evaluations = 0;
    int64_t bad_task = -1;
    fmc_violation bad_v;
    memset(&bad_v, 0, sizeof bad_v);

#pragma omp parallel num_threads(nthreads) reduction(+ : evaluations)
    {
        workspace w;
        bool have_w = workspace_init(&w, &p);
        if (!have_w) atomic_store(&oom, true);
            /* Heaviest query blocks first for masks like causal, where later
             * blocks hold more tiles: dynamic scheduling then balances. */
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < ntasks; t++) {
            if (!have_w || atomic_load(&stop)) continue;
            int64_t qb = bm->nqb - 1 - t / bh, bhi = t % bh;
            task_result res;
            memset(&res, 0, sizeof res);
            run_task(&p, &w, bhi / bm->heads, bhi % bm->heads, qb, &res);
            evaluations += res.evaluations;
            if (res.violated) {
                atomic_store(&stop, true);
#pragma omp critical(fmr_attention_violation)
                {
                    if (bad_task < 0 || t < bad_task) {
                        bad_task = t;
                        bad_v = res.v;
                    }
                }
            }
        }
        if (have_w) free(w.block);
    }

    if (atomic_load(&oom))
        return fail(diags, FM_ERR_NO_MEMORY, "attention: out of memory for the per-thread scratch");
    if (bad_task >= 0) {
        /* The build evaluates every point it needs, so a BlockMask that was
         * built should never get here; report the point rather than trust it. */
        fmc_report_violation(bm->program, &bm->env, &bad_v, diags);
        return FM_ERR_SAFETY;
    }
    if (mask_evaluations) *mask_evaluations = evaluations;
    return FM_OK;
}

fm_status fmr_attention_cpu(const fmc_blockmask *bm, const fm_attention_args *args,
                            fmd_diags *diags, int64_t *mask_evaluations) {
    return fmr_attention_cpu_isa(bm, args, FMR_ISA_AUTO, diags, mask_evaluations);
}
