/* The interop flags of `fmc blockmask`, on top of the public API. */
#include "tools/cli_interop.h"

#include <stdlib.h>

int fmcli_build_dense(const fmcli_common *c, fmcli_session *s, const char *npy_path) {
    if (!s->diags) s->diags = fm_diagnostics_create();
    if (!s->diags) return fmcli_input_error(c, NULL, "out of memory");
    fm_build_options opts = {.struct_size = sizeof(fm_build_options), .block_q = c->block_q,
                             .block_kv = c->block_kv,
                             .memory_budget = c->memory_budget,
                             .max_evaluations = c->max_evaluations};
    /* A 0 takes the file's size; a given size must match it or broadcast
     * a size-1 dimension (the library says which). */
    fm_shape shape = {c->have_batch ? c->batch : 0, c->have_heads ? c->heads : 0,
                      c->have_q_len ? c->q_len : 0, c->have_kv_len ? c->kv_len : 0};
    fm_status st = fm_blockmask_from_npy(npy_path, &shape, &opts, s->diags, &s->blockmask);
    fmcli_print_diags(c, s->diags);
    if (st != FM_OK) {
        if (!fm_diagnostics_count(s->diags))
            fmcli_input_error(c, NULL, "%s: importing the dense mask failed: %s", npy_path,
                              fm_status_string(st));
        return FMCLI_EXIT_INPUT;
    }
    fm_diagnostics_clear(s->diags);
    return 0;
}

static int after_write(const fmcli_common *c, fmcli_session *s, fm_status st, const char *path) {
    fmcli_print_diags(c, s->diags);
    if (st != FM_OK) {
        if (!fm_diagnostics_count(s->diags))
            fmcli_input_error(c, NULL, "cannot write '%s': %s", path, fm_status_string(st));
        return FMCLI_EXIT_INPUT;
    }
    fm_diagnostics_clear(s->diags);
    return 0;
}

int fmcli_save_safetensors(const fmcli_common *c, fmcli_session *s, const char *path) {
    if (!s->diags) s->diags = fm_diagnostics_create();
    fm_status st = fm_blockmask_save_safetensors(s->blockmask, path, s->diags);
    return after_write(c, s, st, path);
}

int fmcli_save_dense_npy(const fmcli_common *c, fmcli_session *s, const char *path) {
    if (!s->diags) s->diags = fm_diagnostics_create();
    fm_status st = fm_blockmask_save_dense_npy(s->blockmask, path, s->diags);
    return after_write(c, s, st, path);
}
