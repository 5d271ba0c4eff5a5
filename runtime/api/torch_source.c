/* fm_mask_torch_source: the public face of compiler/codegen_torch.c. */
#include "compiler/codegen_torch.h"
#include "runtime/api/api_internal.h"

FM_API char *fm_mask_torch_source(const fm_mask *mask, fm_diagnostics *diags) {
    if (!mask) {
        fmr_error(diags, "fm_mask_torch_source: mask is NULL");
        return NULL;
    }
    fmd_diags scratch;
    fmd_diags *d = fmr_diags_of(diags, &scratch);
    char *text = fmc_codegen_torch(mask->shared->program, NULL, d);
    fmr_diags_done(diags, &scratch);
    return text;
}
