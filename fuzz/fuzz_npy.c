/* Fuzz target: the .npy reader on arbitrary bytes.
 *
 * A file that loads must describe itself consistently (count and nbytes
 * agree with the shape), survive the conversions the tools apply, and
 * write back to an image that loads to the same array. */
#include <stdlib.h>
#include <string.h>

#include "runtime/npy.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    fmd_diags d;
    fmd_diags_init(&d);
    fmr_npy a;
    if (fmr_npy_load_memory("fuzz.npy", data, size, &a, &d) == FM_OK) {
        size_t count = 1;
        for (size_t k = 0; k < a.rank; k++) count *= (size_t)a.shape[k];
        if (count != a.count || a.nbytes != a.count * fmr_npy_dtype_size(a.dtype) || !a.data)
            __builtin_trap();
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
