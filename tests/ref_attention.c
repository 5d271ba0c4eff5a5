#include "ref_attention.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "compiler/eval.h"
#include "runtime/cpu/attention_convert.h"

static int64_t elem_offset(const fm_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    return i0 * t->strides[0] + i1 * t->strides[1] + i2 * t->strides[2] + i3 * t->strides[3];
}

double ref_tensor_get(const fm_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    int64_t off = elem_offset(t, i0, i1, i2, i3);
    switch (t->dtype) {
    case FM_FLOAT32: return ((const float *)t->data)[off];
    case FM_FLOAT16: return fmr_f16_to_f32(((const uint16_t *)t->data)[off]);
    case FM_BFLOAT16: return fmr_bf16_to_f32(((const uint16_t *)t->data)[off]);
    }
    return NAN;
}

void ref_tensor_set(fm_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3, double v) {
    int64_t off = elem_offset(t, i0, i1, i2, i3);
    switch (t->dtype) {
    case FM_FLOAT32: ((float *)t->data)[off] = (float)v; break;
    case FM_FLOAT16: ((uint16_t *)t->data)[off] = fmr_f32_to_f16((float)v); break;
    case FM_BFLOAT16: ((uint16_t *)t->data)[off] = fmr_f32_to_bf16((float)v); break;
    }
}

bool ref_attention(const fmc_blockmask *bm, const fm_attention_args *args, double *out, double *lse,
                   int64_t *true_count) {
    int64_t B = bm->batch, H = bm->heads, Q = bm->q_len, KV = bm->kv_len;
    int64_t D = args->q.shape[3], group = H / args->k.shape[1];
    double scale = args->scale != 0.0f ? (double)args->scale : 1.0 / sqrt((double)D);
    int64_t *regs = malloc((bm->program->count + 1) * sizeof *regs);
    double *s = malloc((size_t)KV * sizeof *s);
    bool *keep = malloc((size_t)KV * sizeof *keep);
    bool ok = regs && s && keep;
    int64_t count = 0;
    for (int64_t b = 0; ok && b < B; b++)
        for (int64_t h = 0; ok && h < H; h++)
            for (int64_t q = 0; ok && q < Q; q++) {
                double mx = -INFINITY;
                bool poisoned = false, nan = false; /* a NaN or +inf score at a true position */
                for (int64_t kv = 0; kv < KV; kv++) {
                    fmc_violation v;
                    bool val = false;
                    if (!fmc_eval_point(bm->program, &bm->env, b, h, q, kv, regs, &val, &v)) {
                        ok = false;
                        break;
                    }
                    keep[kv] = val;
                    if (!val) continue;
                    count++;
                    double dot = 0.0;
                    for (int64_t d = 0; d < D; d++)
                        dot += ref_tensor_get(&args->q, b, h, q, d) *
                               ref_tensor_get(&args->k, b, h / group, kv, d);
                    s[kv] = dot * scale;
                    /* Every runtime holds scores in float32: one past its
                     * range is infinite there (the contract's overflow). */
                    if (fabs(s[kv]) > FLT_MAX) s[kv] = copysign(INFINITY, s[kv]);
                    if (!(s[kv] < INFINITY)) poisoned = true;
                    if (isnan(s[kv])) nan = true;
                    if (s[kv] > mx) mx = s[kv];
                }
                double *o = out + ((b * H + h) * Q + q) * D;
                double *row_lse = lse + (b * H + h) * Q + q;
                if (poisoned) { /* NaN output; LSE as torch.logsumexp gives it */
                    for (int64_t d = 0; d < D; d++)
                        o[d] = NAN;
                    *row_lse = nan ? NAN : INFINITY;
                    continue;
                }
                for (int64_t d = 0; d < D; d++)
                    o[d] = 0.0;
                /* A -inf score weighs 0, but its V is still multiplied by
                 * that weight (0 * NaN = NaN, as in P @ V); false positions
                 * are never read. */
                double sum = 0.0;
                for (int64_t kv = 0; kv < KV; kv++) {
                    if (!keep[kv]) continue;
                    double p = s[kv] == -INFINITY ? 0.0 : exp(s[kv] - mx);
                    sum += p;
                    for (int64_t d = 0; d < D; d++)
                        o[d] += p * ref_tensor_get(&args->v, b, h / group, kv, d);
                }
                if (sum == 0.0) { /* no true position with a score above -inf */
                    for (int64_t d = 0; d < D; d++)
                        o[d] = 0.0; /* empty, whatever 0 * V gave */
                    *row_lse = -INFINITY;
                    continue;
                }
                for (int64_t d = 0; d < D; d++)
                    o[d] /= sum;
                *row_lse = mx + log(sum);
            }
    free(regs);
    free(s);
    free(keep);
    if (true_count) *true_count = count;
    return ok;
}
