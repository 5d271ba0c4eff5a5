/* Fuzz target: the .npy reader on arbitrary bytes, and the dense-mask
 * import behind fm_blockmask_from_npy.
 *
 * A file that loads must describe itself consistently (count and nbytes
 * agree with the shape), survive the conversions the tools apply, and
 * write back to an image that loads to the same array. A small bool or
 * uint8 array of rank 2 to 4 is also imported as a dense mask: that must
 * succeed exactly when every value is 0 or 1, and export back to itself. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/interop/npy.h"

static void dense_round_trip(const fmr_npy *a) {
    if (a->rank < 2 || a->rank > 4 || a->count == 0 || a->count > 1 << 16) return;
    if (a->dtype != FMR_NPY_BOOL && a->dtype != FMR_NPY_UINT8) return;
    const uint8_t *v = a->data;
    bool valid = true;
    for (size_t i = 0; i < a->count; i++) valid = valid && v[i] <= 1;
    fm_build_options o = {.struct_size = sizeof(fm_build_options), .block_q = 1 + v[0] % 8, .block_kv = 1 + v[a->count - 1] % 8};
    fm_diagnostics *d = fm_diagnostics_create();
    fm_blockmask *m = NULL;
    fm_status st = fm_blockmask_from_dense(a->data, FM_DENSE_BOOL, a->rank, a->shape, NULL, &o, d, &m);
    if ((st == FM_OK) != valid) {
        fprintf(stderr, "from_dense: %s for an array that is %s\n", fm_status_string(st),
                valid ? "valid" : "not 0/1");
        __builtin_trap();
    }
    if (st == FM_OK) {
        uint8_t *back = NULL;
        size_t n = 0;
        if (fm_blockmask_to_dense(m, &back, &n, d) != FM_OK || n != a->count ||
            memcmp(back, v, n) != 0)
            __builtin_trap();
        fm_free(back);
    }
    fm_blockmask_free(m);
    fm_diagnostics_free(d);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    fmd_diags d;
    fmd_diags_init(&d);
    fmr_npy a;
    if (fmr_npy_load_memory("fuzz.npy", data, size, &a, &d) == FM_OK) {
        size_t count = 1;
        for (size_t k = 0; k < a.rank; k++) count *= (size_t)a.shape[k];
        if (count != a.count || a.nbytes != a.count * fmr_npy_dtype_size(a.dtype) || !a.data)
            __builtin_trap();
        dense_round_trip(&a);
        int32_t *i32 = NULL;
        float *f32 = NULL;
        if (fmr_npy_to_int32(&a, "fuzz.npy", &i32, &d) == FM_OK) free(i32);
        if (fmr_npy_to_float32(&a, "fuzz.npy", &f32, &d) == FM_OK) free(f32);
        void *img = NULL;
        size_t len = 0;
        if (fmr_npy_save_memory(a.dtype, a.rank, a.shape, a.data, &img, &len, &d) == FM_OK) {
            fmr_npy b;
            if (fmr_npy_load_memory("again.npy", img, len, &b, &d) != FM_OK) __builtin_trap();
            if (b.dtype != a.dtype || b.rank != a.rank || b.nbytes != a.nbytes ||
                memcmp(b.shape, a.shape, a.rank * sizeof a.shape[0]) != 0 ||
                memcmp(b.data, a.data, a.nbytes) != 0)
                __builtin_trap();
            fmr_npy_free(&b);
            free(img);
        }
        fmr_npy_free(&a);
    }
    fmd_diags_clear(&d);
    return 0;
}
