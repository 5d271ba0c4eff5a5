/* --input NAME=@FILE.npy, on top of the runtime's .npy reader. */
#include "tools/cli_npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/interop/npy.h"

static void first_message(const fmd_diags *d, const char *fallback, char *err, size_t n) {
    snprintf(err, n, "%s", d->count ? d->items[0].message : fallback);
}

bool fmcli_npy_load_int32(const char *path, int32_t **data, size_t *rank, int64_t *dims,
                          size_t max_rank, char *err, size_t err_size) {
    fmd_diags d;
    fmd_diags_init(&d);
    fmr_npy a;
    fm_status st = fmr_npy_load(path, &a, &d);
    if (st != FM_OK) {
        first_message(&d, fm_status_string(st), err, err_size);
        fmd_diags_clear(&d);
        return false;
    }
    bool ok = false;
    if (a.dtype != FMR_NPY_INT32 && a.dtype != FMR_NPY_INT64) {
        snprintf(err, err_size, "%s: holds %s values; an input must be int32 or int64", path,
                 fmr_npy_dtype_name(a.dtype));
    } else if (a.rank == 0 || a.rank > max_rank) {
        snprintf(err, err_size, "%s: has rank %zu; an input array has rank 1 to 4", path, a.rank);
    } else if ((st = fmr_npy_to_int32(&a, path, data, &d)) != FM_OK) {
        first_message(&d, fm_status_string(st), err, err_size);
    } else {
        *rank = a.rank;
        memcpy(dims, a.shape, a.rank * sizeof *dims);
        ok = true;
    }
    fmr_npy_free(&a);
    fmd_diags_clear(&d);
    return ok;
}
