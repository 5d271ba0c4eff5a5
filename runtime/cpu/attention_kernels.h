/* The inner kernels of CPU attention, one table per instruction set. Both
 * tables implement the same contract; only the rounding of the float32
 * arithmetic may differ between them (FMA contracts, sums in other orders).
 * Panels are float32, row-major, with the padding the comments state, so
 * the kernels never handle ragged edges. */
#ifndef FM_RUNTIME_ATTENTION_KERNELS_H
#define FM_RUNTIME_ATTENTION_KERNELS_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

/* Register block of the matrix kernel: FMR_MR rows by FMR_NR columns. */
#define FMR_MR 6
#define FMR_NR 16

typedef struct fmr_attn_kernels {
    const char *name;
    /* C = A B, or C = diag(alpha) C + A B when alpha is not NULL, where A is
     * m x k (row stride lda), B is k x n (row stride ldb), C is m x n (row
     * stride ldc). m is a multiple of FMR_MR, n of FMR_NR; k may be any
     * count >= 0. */
    void (*gemm)(int64_t m, int64_t n, int64_t k, const float *A, int64_t lda, const float *B,
                 int64_t ldb, float *C, int64_t ldc, const float *alpha);
    /* One online-softmax step of one query row over one tile. On entry s
     * holds np raw scores (np a multiple of FMR_NR); positions j >= n, and
     * j < n with keep[j] == 0 when keep is not NULL (keep then has np
     * readable bytes), are excluded. Scores
     * are taken in the base-2 domain, t = c * s. *m is the running maximum
     * of t (-inf before any included position), *l the running sum of
     * 2^(t - *m). On return s holds the weights 2^(t - new max) (exactly 0
     * for excluded positions) and the result is the factor the row's
     * earlier accumulation must be multiplied by. An included t that is NaN
     * or +inf poisons the row (fmr_softmax_poison): *l becomes NaN for good
     * and *m the row's LSE (+inf, or NaN once a NaN was seen), which the
     * caller writes with a NaN output; an included -inf is weighted 0 like
     * an excluded position. */
    /* dst[c * ldd + r] = src[r * lds + c] for r < rows, c < cols. */
    void (*transpose)(const float *src, int64_t lds, int64_t rows, int64_t cols, float *dst,
                      int64_t ldd);
    float (*softmax_row)(float *s, int64_t n, int64_t np, const uint8_t *keep, float c, float *m,
                         float *l);
} fmr_attn_kernels;

/* The language's rule for a NaN or +inf score at a true position
 * (docs/language.md, "NaN and infinities"): the row's output is NaN, and its
 * LSE is NaN if any such score is NaN, else +inf, as PyTorch's
 * flex_attention gives (torch.logsumexp). Called for a tile holding such a
 * score (s holds t, excluded positions -inf, never NaN) and for every later
 * tile of a poisoned row (*l NaN): *l = NaN marks the row, the output is
 * O / l, and *m keeps the LSE (a NaN there stays). The tile's weights are
 * zeroed so the rest of the row's arithmetic stays ordinary. */
static inline float fmr_softmax_poison(float *s, int64_t np, float *m, float *l) {
    bool nan = isnan(*m) && isnan(*l);
    for (int64_t j = 0; j < np; j++) {
        nan |= isnan(s[j]);
        s[j] = 0.0f;
    }
    *m = nan ? NAN : INFINITY;
    *l = NAN;
    return 1.0f;
}

extern const fmr_attn_kernels fmr_attn_portable;
extern const fmr_attn_kernels fmr_attn_avx2;

#endif
