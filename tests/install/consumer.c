/* A tiny program built against the *installed* flexmask, the way a user's
 * project would: compile a mask from a string, build a BlockMask, read it. */
#include <flexmask.h>
#include <stdio.h>
#include <string.h>

int main(void) {
    const char *src = "param window = 64;\nmask m = kv <= q && q - kv < window;\n";
    fm_diagnostics *diags = fm_diagnostics_create();
    fm_program *prog = NULL;
    fm_mask *mask = NULL;
    fm_blockmask *bm = NULL;
    fm_blockmask_info info;
    int rc = 1;
    if (fm_compile_string("consumer", src, strlen(src), diags, &prog) != FM_OK) goto done;
    if (fm_mask_select(prog, NULL, diags, &mask) != FM_OK) goto done;
    fm_shape shape = {1, 1, 256, 256};
    fm_build_options opts = {.struct_size = sizeof(fm_build_options), .block_q = 64, .block_kv = 64};
    if (fm_blockmask_build(mask, NULL, shape, &opts, diags, &bm) != FM_OK) goto done;
    if (fm_blockmask_get_info(bm, &info) != FM_OK) goto done;
    /* 4x4 tiles, window of one tile: 4 diagonal partial tiles (q - kv < 64
     * cuts each diagonal tile), 3 sub-diagonal partial ones, the rest empty. */
    printf("flexmask %s: full %lld partial %lld empty %lld\n", fm_version(),
           (long long)info.full_tiles, (long long)info.partial_tiles, (long long)info.empty_tiles);
    rc = info.full_tiles + info.partial_tiles + info.empty_tiles == 16 ? 0 : 1;
done:
    if (rc) {
        char *text = fm_diagnostics_format(diags, false);
        fprintf(stderr, "consumer failed:\n%s", text ? text : "");
        fm_free(text);
    }
    fm_blockmask_free(bm);
    fm_mask_free(mask);
    fm_program_free(prog);
    fm_diagnostics_free(diags);
    return rc;
}
