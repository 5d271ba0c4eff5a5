/* AVX2/FMA kernels of CPU attention, compiled for that target whatever the
 * build's baseline and selected at run time (fmr_cpu_has_avx2). The matrix
 * kernel keeps a 6 x 16 block of C in twelve ymm registers: per step of k
 * it loads two vectors of B and broadcasts six values of A, twelve
 * independent FMA chains, enough to cover the FMA latency on two pipes. */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include <math.h>

#include "runtime/cpu/attention_exp2.h"
#include "runtime/cpu/attention_kernels.h"

#define AVX2 __attribute__((target("avx2,fma")))

AVX2 static inline void micro_6x16(int64_t k, const float *A, int64_t lda, const float *B,
                                   int64_t ldb, float *C, int64_t ldc, const float *alpha) {
    __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
    if (alpha) {
#define LOADC(i)                                                                                   \
    do {                                                                                           \
        __m256 a_ = _mm256_broadcast_ss(alpha + (i));                                              \
        c##i##0 = _mm256_mul_ps(_mm256_loadu_ps(C + (i)*ldc), a_);                                 \
        c##i##1 = _mm256_mul_ps(_mm256_loadu_ps(C + (i)*ldc + 8), a_);                             \
    } while (0)
        LOADC(0);
        LOADC(1);
        LOADC(2);
        LOADC(3);
        LOADC(4);
        LOADC(5);
#undef LOADC
    } else {
        c00 = c01 = c10 = c11 = c20 = c21 = _mm256_setzero_ps();
        c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
    }
    const float *a0 = A, *a1 = A + lda, *a2 = A + 2 * lda, *a3 = A + 3 * lda, *a4 = A + 4 * lda,
                *a5 = A + 5 * lda;
    for (int64_t p = 0; p < k; p++) {
        __m256 b0 = _mm256_loadu_ps(B + p * ldb), b1 = _mm256_loadu_ps(B + p * ldb + 8);
        __m256 a;
#define STEP(i)                                                                                    \
    a = _mm256_broadcast_ss(a##i + p);                                                             \
    c##i##0 = _mm256_fmadd_ps(a, b0, c##i##0);                                                     \
    c##i##1 = _mm256_fmadd_ps(a, b1, c##i##1)
        STEP(0);
        STEP(1);
        STEP(2);
        STEP(3);
        STEP(4);
        STEP(5);
#undef STEP
    }
#define STOREC(i)                                                                                  \
    _mm256_storeu_ps(C + (i)*ldc, c##i##0);                                                        \
    _mm256_storeu_ps(C + (i)*ldc + 8, c##i##1)
    STOREC(0);
    STOREC(1);
    STOREC(2);
    STOREC(3);
    STOREC(4);
    STOREC(5);
#undef STOREC
}

AVX2 static void gemm_avx2(int64_t m, int64_t n, int64_t k, const float *A, int64_t lda,
                           const float *B, int64_t ldb, float *C, int64_t ldc, const float *alpha) {
    /* Column strips outermost: a 16-wide strip of B (k x 16 floats) stays
     * in L1 while every row block of A streams past it. */
    for (int64_t j0 = 0; j0 < n; j0 += FMR_NR)
        for (int64_t i0 = 0; i0 < m; i0 += FMR_MR)
            micro_6x16(k, A + i0 * lda, lda, B + j0, ldb, C + i0 * ldc + j0, ldc,
                       alpha ? alpha + i0 : NULL);
}

AVX2 static void transpose_avx2(const float *src, int64_t lds, int64_t rows, int64_t cols,
                                float *dst, int64_t ldd) {
    int64_t r8 = rows - rows % 8, c8 = cols - cols % 8;
    for (int64_t r0 = 0; r0 < r8; r0 += 8) {
        for (int64_t c0 = 0; c0 < c8; c0 += 8) {
            const float *s = src + r0 * lds + c0;
            __m256 x0 = _mm256_loadu_ps(s), x1 = _mm256_loadu_ps(s + lds);
            __m256 x2 = _mm256_loadu_ps(s + 2 * lds), x3 = _mm256_loadu_ps(s + 3 * lds);
            __m256 x4 = _mm256_loadu_ps(s + 4 * lds), x5 = _mm256_loadu_ps(s + 5 * lds);
            __m256 x6 = _mm256_loadu_ps(s + 6 * lds), x7 = _mm256_loadu_ps(s + 7 * lds);
            __m256 t0 = _mm256_unpacklo_ps(x0, x1), t1 = _mm256_unpackhi_ps(x0, x1);
            __m256 t2 = _mm256_unpacklo_ps(x2, x3), t3 = _mm256_unpackhi_ps(x2, x3);
            __m256 t4 = _mm256_unpacklo_ps(x4, x5), t5 = _mm256_unpackhi_ps(x4, x5);
            __m256 t6 = _mm256_unpacklo_ps(x6, x7), t7 = _mm256_unpackhi_ps(x6, x7);
            __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xee);
            __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xee);
            __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xee);
            __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xee);
            float *d = dst + c0 * ldd + r0;
            _mm256_storeu_ps(d, _mm256_permute2f128_ps(u0, u4, 0x20));
            _mm256_storeu_ps(d + ldd, _mm256_permute2f128_ps(u1, u5, 0x20));
            _mm256_storeu_ps(d + 2 * ldd, _mm256_permute2f128_ps(u2, u6, 0x20));
            _mm256_storeu_ps(d + 3 * ldd, _mm256_permute2f128_ps(u3, u7, 0x20));
            _mm256_storeu_ps(d + 4 * ldd, _mm256_permute2f128_ps(u0, u4, 0x31));
            _mm256_storeu_ps(d + 5 * ldd, _mm256_permute2f128_ps(u1, u5, 0x31));
            _mm256_storeu_ps(d + 6 * ldd, _mm256_permute2f128_ps(u2, u6, 0x31));
            _mm256_storeu_ps(d + 7 * ldd, _mm256_permute2f128_ps(u3, u7, 0x31));
        }
        for (int64_t r = r0; r < r0 + 8; r++)
            for (int64_t c = c8; c < cols; c++)
                dst[c * ldd + r] = src[r * lds + c];
    }
    for (int64_t r = r8; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            dst[c * ldd + r] = src[r * lds + c];
}

/* 2^x for x <= 0 (see attention_exp2.h), eight lanes; -inf gives 0. */
AVX2 static inline __m256 exp2_nonpos8(__m256 x) {
    __m256 in_range = _mm256_cmp_ps(x, _mm256_set1_ps(FMR_EXP2_MIN), _CMP_GE_OQ);
    x = _mm256_max_ps(x, _mm256_set1_ps(FMR_EXP2_MIN));
    __m256 n = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 f = _mm256_sub_ps(x, n);
    __m256 p = _mm256_set1_ps(FMR_EXP2_C7);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(FMR_EXP2_C6));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(FMR_EXP2_C5));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(FMR_EXP2_C4));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(FMR_EXP2_C3));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(FMR_EXP2_C2));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(FMR_EXP2_C1));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
    __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    p = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    return _mm256_and_ps(p, in_range);
}

AVX2 static inline float hmax8(__m256 v) {
    __m128 x = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_max_ps(x, _mm_movehl_ps(x, x));
    x = _mm_max_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

AVX2 static float softmax_row_avx2(float *s, int64_t n, int64_t np, const uint8_t *keep, float c,
                                   float *m, float *l) {
    const __m256 ninf = _mm256_set1_ps(-INFINITY), vc = _mm256_set1_ps(c);
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i vn = _mm256_set1_epi32((int32_t)n);
    __m256 vmax = ninf, vbad = _mm256_setzero_ps();
    for (int64_t j = 0; j < np; j += 8) {
        __m256i idx = _mm256_add_epi32(iota, _mm256_set1_epi32((int32_t)j));
        __m256 ok = _mm256_castsi256_ps(_mm256_cmpgt_epi32(vn, idx));
        if (keep) {
            __m256i kb = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(keep + j)));
            ok = _mm256_and_ps(ok,
                               _mm256_castsi256_ps(_mm256_cmpgt_epi32(kb, _mm256_setzero_si256())));
        }
        __m256 t = _mm256_blendv_ps(ninf, _mm256_mul_ps(_mm256_loadu_ps(s + j), vc), ok);
        _mm256_storeu_ps(s + j, t);
        vmax = _mm256_max_ps(vmax, t);
        /* NaN or +inf (excluded positions are -inf); max_ps would drop a NaN. */
        vbad = _mm256_or_ps(vbad, _mm256_cmp_ps(t, _mm256_set1_ps(INFINITY), _CMP_NLT_UQ));
    }
    if (_mm256_movemask_ps(vbad) || isnan(*l)) return fmr_softmax_poison(s, np, m, l);
    float mx = hmax8(vmax);
    float m_new = *m > mx ? *m : mx;
    if (m_new == -INFINITY) {
        /* No included position in this row so far: t - m_new would be
         * -inf - -inf = NaN, so write the (all zero) weights directly and
         * leave the empty accumulation as it is. */
        for (int64_t j = 0; j < np; j += 8)
            _mm256_storeu_ps(s + j, _mm256_setzero_ps());
        return 1.0f;
    }
    /* *m == -inf (first included position) gives 2^-inf = 0: the earlier
     * accumulation is empty anyway. */
    float alpha = _mm256_cvtss_f32(exp2_nonpos8(_mm256_set1_ps(*m - m_new)));
    const __m256 vm = _mm256_set1_ps(m_new);
    for (int64_t j = 0; j < np; j += 8) {
        /* Excluded positions hold -inf; -inf - finite = -inf -> weight 0. */
        __m256 p = exp2_nonpos8(_mm256_sub_ps(_mm256_loadu_ps(s + j), vm));
        _mm256_storeu_ps(s + j, p);
    }
    /* Summed in kv order, not in eight lanes: then a row's sum depends only
     * on its kept weights and their order, never on which lanes they sit
     * in (adding an excluded weight, 0, is exact). Two rows that keep the
     * same keys at different positions (token trees) agree bit for bit. */
    float sum = 0.0f;
    for (int64_t j = 0; j < n; j++) sum += s[j];
    *l = *l * alpha + sum;
    *m = m_new;
    return alpha;
}

const fmr_attn_kernels fmr_attn_avx2 = {"avx2", gemm_avx2, transpose_avx2, softmax_row_avx2};

#endif
