/* Portable C kernels of CPU attention: the same blocking as the SIMD
 * path, written so a compiler may vectorise them but correct without it. */
#include <math.h>
#include <stdbool.h>

#include "runtime/cpu/attention_convert.h"
#include "runtime/cpu/attention_exp2.h"
#include "runtime/cpu/attention_kernels.h"

static float exp2_nonpos(float x) {
    /* -inf (an excluded position, or an empty running maximum) lands here
     * and gives exactly 0; so does anything below the flush threshold. */
    if (!(x >= FMR_EXP2_MIN)) return 0.0f;
    float n = floorf(x + 0.5f);
    float f = x - n;
    float p = FMR_EXP2_C7;
    p = p * f + FMR_EXP2_C6;
    p = p * f + FMR_EXP2_C5;
    p = p * f + FMR_EXP2_C4;
    p = p * f + FMR_EXP2_C3;
    p = p * f + FMR_EXP2_C2;
    p = p * f + FMR_EXP2_C1;
    p = p * f + 1.0f;
    /* n is in [-126, 0], so n + 127 is a valid biased exponent. */
    return p * fmr_bits_f32((uint32_t)((int32_t)n + 127) << 23);
}

static void gemm_portable(int64_t m, int64_t n, int64_t k, const float *A, int64_t lda,
                          const float *B, int64_t ldb, float *C, int64_t ldc, const float *alpha) {
    for (int64_t j0 = 0; j0 < n; j0 += FMR_NR) {
        for (int64_t i0 = 0; i0 < m; i0 += FMR_MR) {
            float acc[FMR_MR][FMR_NR];
            for (int i = 0; i < FMR_MR; i++) {
                float *c = C + (i0 + i) * ldc + j0;
                for (int j = 0; j < FMR_NR; j++)
                    acc[i][j] = alpha ? c[j] * alpha[i0 + i] : 0.0f;
            }
            for (int64_t p = 0; p < k; p++) {
                const float *b = B + p * ldb + j0;
                for (int i = 0; i < FMR_MR; i++) {
                    float a = A[(i0 + i) * lda + p];
                    for (int j = 0; j < FMR_NR; j++)
                        acc[i][j] += a * b[j];
                }
            }
            for (int i = 0; i < FMR_MR; i++) {
                float *c = C + (i0 + i) * ldc + j0;
                for (int j = 0; j < FMR_NR; j++)
                    c[j] = acc[i][j];
            }
        }
    }
}

static void transpose_portable(const float *src, int64_t lds, int64_t rows, int64_t cols,
                               float *dst, int64_t ldd) {
    /* 8 x 8 blocks keep both sides within a few cache lines. */
    for (int64_t r0 = 0; r0 < rows; r0 += 8)
        for (int64_t c0 = 0; c0 < cols; c0 += 8)
            for (int64_t r = r0; r < r0 + 8 && r < rows; r++)
                for (int64_t c = c0; c < c0 + 8 && c < cols; c++)
                    dst[c * ldd + r] = src[r * lds + c];
}

static float softmax_row_portable(float *s, int64_t n, int64_t np, const uint8_t *keep, float c,
                                  float *m, float *l) {
    float mx = -INFINITY;
    bool poisoned = false;
    for (int64_t j = 0; j < np; j++) {
        float t = (j < n && (!keep || keep[j])) ? s[j] * c : -INFINITY;
        s[j] = t;
        if (t > mx) mx = t;
        poisoned |= !(t < INFINITY); /* NaN or +inf; excluded positions are -inf */
    }
    if (poisoned || isnan(*l)) return fmr_softmax_poison(s, np, m, l);
    float m_new = *m > mx ? *m : mx;
    if (m_new == -INFINITY) {
        /* No included position in this row so far: t - m_new would be
         * -inf - -inf = NaN, so write the (all zero) weights directly and
         * leave the empty accumulation as it is. */
        for (int64_t j = 0; j < np; j++)
            s[j] = 0.0f;
        return 1.0f;
    }
    /* *m == -inf (first included position) gives exp2(-inf) = 0: the
     * earlier accumulation is empty anyway. */
    float alpha = exp2_nonpos(*m - m_new);
    float sum = 0.0f;
    for (int64_t j = 0; j < np; j++) {
        float p = exp2_nonpos(s[j] - m_new); /* -inf - finite = -inf -> 0 */
        s[j] = p;
        sum += p;
    }
    *l = *l * alpha + sum;
    *m = m_new;
    return alpha;
}

const fmr_attn_kernels fmr_attn_portable = {"portable", gemm_portable, transpose_portable,
                                            softmax_row_portable};
