/* Scalar conversions between float32 and the 16-bit storage types, exact in
 * the widening direction and rounded to nearest, ties to even, in the
 * narrowing one. Infinities and NaNs are kept (a NaN stays a quiet NaN),
 * subnormals are produced and read, and values past the largest finite
 * half round to infinity as IEEE 754 says. */
#ifndef FM_RUNTIME_ATTENTION_CONVERT_H
#define FM_RUNTIME_ATTENTION_CONVERT_H

#include <stdint.h>
#include <string.h>

static inline uint32_t fmr_f32_bits(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    return x;
}

static inline float fmr_bits_f32(uint32_t x) {
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

static inline float fmr_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    if (exp == 0) {
        /* Zero or subnormal: mant * 2^-24 is exact in float32. */
        float v = (float)mant * 0x1p-24f;
        return fmr_bits_f32(fmr_f32_bits(v) | sign);
    }
    if (exp == 31) return fmr_bits_f32(sign | 0x7f800000u | (mant << 13));
    return fmr_bits_f32(sign | ((exp + 112u) << 23) | (mant << 13));
}

static inline uint16_t fmr_f32_to_f16(float f) {
    uint32_t x = fmr_f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) /* NaN: keep the top payload bits, force quiet */
        return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
    if (ax >= 0x477ff000u) /* >= 65520 (half-way past 65504) rounds to inf */
        return (uint16_t)(sign | 0x7c00u);
    if (ax < 0x38800000u) {
        /* Below the smallest normal half (2^-14): adding 0.5 puts the
         * value's 2^-24 multiples in the low mantissa bits, and the float
         * addition itself rounds to nearest even. */
        float a = fmr_bits_f32(ax) + 0.5f;
        return (uint16_t)(sign | (fmr_f32_bits(a) - 0x3f000000u));
    }
    /* Normal: rebias the exponent (127 -> 15) and round the 13 dropped
     * bits to nearest even; a carry into the exponent is still correct. */
    uint32_t odd = (ax >> 13) & 1u;
    ax += 0xc8000fffu + odd;
    return (uint16_t)(sign | (ax >> 13));
}

static inline float fmr_bf16_to_f32(uint16_t h) {
    return fmr_bits_f32((uint32_t)h << 16);
}

static inline uint16_t fmr_f32_to_bf16(float f) {
    uint32_t x = fmr_f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u); /* quiet NaN */
    /* Round to nearest even on the 16 dropped bits; overflow carries into
     * the exponent and yields infinity, as it should. */
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

#endif
