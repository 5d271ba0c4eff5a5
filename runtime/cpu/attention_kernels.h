/* The inner kernels of CPU attention, one table per instruction set. Both
 * tables implement the same contract; only the rounding of the float32
 * arithmetic may differ between them (FMA contracts, sums in other orders).
 * Panels are float32, row-major, with the padding the comments state, so
 * the kernels never handle ragged edges. */
#ifndef FM_RUNTIME_ATTENTION_KERNELS_H
#define FM_RUNTIME_ATTENTION_KERNELS_H

#include <math.h>
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
     * or +inf poisons the row (fmr_softmax_poison): *l becomes NaN for good,
     * which the caller turns into a NaN output and LSE; an included -inf is
     * weighted 0 like an excluded position. */
    /* dst[c * ldd + r] = src[r * lds + c] for r < rows, c < cols. */
    void (*transpose)(const float *src, int64_t lds, int64_t rows, int64_t cols, float *dst,
                      int64_t ldd);
    float (*softmax_row)(float *s, int64_t n, int64_t np, const uint8_t *keep, float c, float *m,
                         float *l);
} fmr_attn_kernels;

/* The language's rule for a NaN or +inf score at a true position: the
 * row's output and LSE are NaN (docs/language.md). l = NaN stays NaN through
 * every later l * alpha + sum, and the output is O / l; the tile's weights
 * are zeroed so the rest of the row's arithmetic stays ordinary. */
static inline float fmr_softmax_poison(float *s, int64_t np, float *l) {
    for (int64_t j = 0; j < np; j++)
        s[j] = 0.0f;
    *l = NAN;
    return 1.0f;
}

extern const fmr_attn_kernels fmr_attn_portable;
extern const fmr_attn_kernels fmr_attn_avx2;

#endif
