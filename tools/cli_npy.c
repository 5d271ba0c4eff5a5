/* .npy inputs on top of the runtime's reader, with "-" for standard input. */
#include "tools/cli_npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Whether an input has already taken standard input (tools load their
 * inputs one after another, on one thread). */
static bool stdin_taken;

static bool is_stdin(const char *path) {
    return path && strcmp(path, "-") == 0;
}

const char *fmcli_npy_name(const char *path) {
    return is_stdin(path) ? FMCLI_STDIN_NAME : path;
}

fm_status fmcli_npy_load(const char *path, fmr_npy *a, fmd_diags *d) {
    if (!is_stdin(path)) return fmr_npy_load(path, a, d);
    if (stdin_taken) {
        memset(a, 0, sizeof *a);
        fmd_diag_add(d, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL,
                     "%s: standard input was already read for another input; only one input may "
                     "be '-'",
                     FMCLI_STDIN_NAME);
        return FM_ERR_INVALID_ARGUMENT;
    }
    stdin_taken = true;
    return fmr_npy_load_stream(FMCLI_STDIN_NAME, stdin, a, d);
}

int fmcli_npy_check_stdin(const fmcli_common *c, const char *const *flags, const char *const *paths,
                          size_t n) {
    char first[160] = "";
    for (size_t i = 0; i < n + c->num_inputs; i++) {
        char this[160];
        if (i < n) {
            if (!is_stdin(paths[i])) continue;
            snprintf(this, sizeof this, "%s", flags[i]);
        } else {
            const fmcli_input *in = &c->inputs[i - n];
            if (!is_stdin(in->npy_path)) continue;
            snprintf(this, sizeof this, "--input %s=@-", in->name);
        }
        if (!first[0]) {
            snprintf(first, sizeof first, "%s", this);
            continue;
        }
        return fmcli_usage_error(c,
                                 "%s and %s both read standard input ('-'); only one input may "
                                 "be '-'",
                                 first, this);
    }
    return 0;
}

static void first_message(const fmd_diags *d, const char *fallback, char *err, size_t n) {
    snprintf(err, n, "%s", d->count ? d->items[0].message : fallback);
}

bool fmcli_npy_load_int32(const char *path, int32_t **data, size_t *rank, int64_t *dims,
                          size_t max_rank, char *err, size_t err_size) {
    fmd_diags d;
    fmd_diags_init(&d);
    fmr_npy a;
    fm_status st = fmcli_npy_load(path, &a, &d);
    path = fmcli_npy_name(path);
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
