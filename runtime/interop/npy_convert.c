/* Converting loaded arrays to the element types flexmask computes with, and
 * IEEE half precision. */
#include "runtime/interop/npy_internal.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

float fmr_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
    float f;
    if (exp == 0) {
        /* Zero or subnormal: mant units of 2^-24, exact in a float. */
        f = (float)mant * 0x1p-24f;
        return sign ? -f : f;
    }
    uint32_t bits =
        exp == 31 ? sign | 0x7F800000u | mant << 13 : sign | (exp + 112) << 23 | mant << 13;
    memcpy(&f, &bits, sizeof f);
    return f;
}

uint16_t fmr_float_to_half(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7FFFFFFFu;
    if (ax > 0x7F800000u) return sign | 0x7E00 | (uint16_t)((ax >> 13) & 0x3FF); /* NaN stays NaN */
    if (ax >= 0x477FF000u) return sign | 0x7C00; /* 65520 and above round to infinity */
    uint32_t e = ax >> 23, m = ax & 0x7FFFFF;
    if (e < 113) {
        /* Below the smallest normal half: a subnormal in units of 2^-24. */
        if (ax < 0x33000000u) return sign; /* at most 2^-25: rounds to (even) zero */
        m |= 0x800000;
        uint32_t shift = 126 - e, r = m >> shift, rem = m & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return sign | (uint16_t)r;
    }
    uint32_t h = (e - 112) << 10 | m >> 13, rem = m & 0x1FFF;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++; /* a carry moves into the exponent */
    return sign | (uint16_t)h;
}

/* "[0, 17]": the C-order index of element flat. */
static void format_index(const fmr_npy *a, size_t flat, char *buf, size_t cap) {
    size_t idx[FMR_NPY_MAX_RANK];
    for (size_t i = a->rank; i-- > 0;) {
        size_t d = (size_t)a->shape[i];
        idx[i] = flat % d;
        flat /= d;
    }
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (size_t i = 0; i < a->rank && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%zu", i ? ", " : "", idx[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

static void *alloc_out(size_t count, size_t size, const char *name, fmd_diags *diags) {
    void *p = malloc(count ? count * size : 1); /* count * size fits: the data already did */
    if (!p) fmr_npy_error(diags, "%s: out of memory converting %zu elements", name, count);
    return p;
}

fm_status fmr_npy_to_int32(const fmr_npy *a, const char *name, int32_t **out, fmd_diags *diags) {
    if (!a || !out || (!a->data && a->count)) return FM_ERR_INVALID_ARGUMENT;
    if (!name) name = "<array>";
    if (a->dtype != FMR_NPY_BOOL && a->dtype != FMR_NPY_UINT8 && a->dtype != FMR_NPY_INT32 &&
        a->dtype != FMR_NPY_INT64) {
        fmr_npy_error(diags, "%s: expected an integer array (int32 or int64), got %s", name,
                      fmr_npy_dtype_name(a->dtype));
        return FM_ERR_UNSUPPORTED;
    }
    int32_t *r = alloc_out(a->count, sizeof *r, name, diags);
    if (!r) return FM_ERR_NO_MEMORY;
    const unsigned char *p = a->data;
    for (size_t i = 0; i < a->count; i++) {
        switch (a->dtype) {
        case FMR_NPY_INT32: memcpy(&r[i], p + 4 * i, 4); break;
        case FMR_NPY_INT64: {
            int64_t v;
            memcpy(&v, p + 8 * i, 8);
            if (v < INT32_MIN || v > INT32_MAX) {
                char idx[200];
                format_index(a, i, idx, sizeof idx);
                fmr_npy_error(diags, "%s: element %s is %lld, which does not fit in int32", name,
                              idx, (long long)v);
                free(r);
                return FM_ERR_BINDING;
            }
            r[i] = (int32_t)v;
            break;
        }
        default: r[i] = p[i]; break;
        }
    }
    *out = r;
    return FM_OK;
}

fm_status fmr_npy_to_float32(const fmr_npy *a, const char *name, float **out, fmd_diags *diags) {
    if (!a || !out || (!a->data && a->count)) return FM_ERR_INVALID_ARGUMENT;
    if (!name) name = "<array>";
    if (a->dtype != FMR_NPY_FLOAT16 && a->dtype != FMR_NPY_FLOAT32 && a->dtype != FMR_NPY_FLOAT64) {
        fmr_npy_error(diags, "%s: expected a floating-point array (float16 or float32), got %s",
                      name, fmr_npy_dtype_name(a->dtype));
        return FM_ERR_UNSUPPORTED;
    }
    float *r = alloc_out(a->count, sizeof *r, name, diags);
    if (!r) return FM_ERR_NO_MEMORY;
    const unsigned char *p = a->data;
    for (size_t i = 0; i < a->count; i++) {
        if (a->dtype == FMR_NPY_FLOAT32) {
            memcpy(&r[i], p + 4 * i, 4);
        } else if (a->dtype == FMR_NPY_FLOAT16) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            r[i] = fmr_half_to_float(h);
        } else {
            double d;
            memcpy(&d, p + 8 * i, 8);
            /* Out-of-range doubles saturate to infinity, as numpy's astype does. */
            r[i] = d > FLT_MAX ? INFINITY : d < -FLT_MAX ? -INFINITY : (float)d;
        }
    }
    *out = r;
    return FM_OK;
}
