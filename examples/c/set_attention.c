/* set_attention: bidirectional attention over several packed sets with
 * padding, as single-cell models batch the genes of several cells (or the
 * points of several clouds): a token attends to every token of its own set,
 * in no order and with no causality; padding neither attends nor is
 * attended (examples/masks/set_padding.mask).
 *
 * Three sets of 5, 9 and 3 tokens and 3 padding tokens make one sequence of
 * 20. The mask is checked against its definition at every point and
 * attention against a dense float64 reference; padding rows must be exactly
 * zero. The program exits 1 on any difference. */
#include "example_util.h"

enum { LEN = 20, HEADS = 2, DIM = 16 };

int main(int argc, char **argv) {
    int32_t set_id[LEN];
    const int sizes[3] = {5, 9, 3};
    int at = 0;
    for (int s = 0; s < 3; s++)
        for (int i = 0; i < sizes[s]; i++)
            set_id[at++] = s;
    while (at < LEN)
        set_id[at++] = -1; /* padding */
    printf("set_id:");
    for (int i = 0; i < LEN; i++)
        printf(" %d", set_id[i]);
    printf("\n");

    fm_diagnostics *diags = fm_diagnostics_create();
    char path[1024];
    ex_mask_path(path, sizeof path, argc, argv, "set_padding.mask");
    fm_mask *mask = ex_load_mask(path, diags);
    fm_bindings *bind = NULL;
    ex_check(fm_bindings_create(mask, &bind), diags, "bindings");
    int64_t n = LEN;
    ex_check(fm_bindings_set_input(bind, "set_id", set_id, 1, &n, FM_COPY, diags), diags, "set_id");
    fm_shape shape = {1, HEADS, LEN, LEN};
    fm_build_options opts = {.struct_size = sizeof(fm_build_options), .block_q = 4, .block_kv = 4};
    fm_blockmask *bm = NULL;
    ex_check(fm_blockmask_build(mask, bind, shape, &opts, diags, &bm), diags, "build");
    ex_print_picture(bm, 0, 0);

    int status = 0;
    for (int q = 0; q < LEN; q++)
        for (int kv = 0; kv < LEN; kv++) {
            bool v = false;
            fm_blockmask_eval(bm, 0, 1, q, kv, &v);
            if (v != (set_id[q] >= 0 && set_id[q] == set_id[kv])) status = 1;
        }
    if (status) printf("the mask differs from the set definition\n");

    unsigned seed = 5;
    fm_tensor q = ex_random_tensor(&seed, 1, HEADS, LEN, DIM);
    fm_tensor k = ex_random_tensor(&seed, 1, HEADS, LEN, DIM);
    fm_tensor v = ex_random_tensor(&seed, 1, HEADS, LEN, DIM);
    fm_tensor out = ex_zero_tensor(1, HEADS, LEN, DIM);
    /* Start from garbage: padding rows must be written as zeros. */
    for (int i = 0; i < HEADS * LEN * DIM; i++)
        ((float *)out.data)[i] = 12345.0f;
    double err = ex_attend_and_check(bm, q, k, v, out, diags);
    for (int h = 0; h < HEADS; h++)
        for (int i = 17; i < LEN; i++)
            for (int d = 0; d < DIM; d++)
                if (ex_at(&out, 0, h, i, d) != 0.0f) status = 1;
    printf("padding rows are zero: %s\n", status ? "NO" : "yes");
    status |= ex_report("set attention", err);

    free(q.data);
    free(k.data);
    free(v.data);
    free(out.data);
    fm_blockmask_free(bm);
    fm_bindings_free(bind);
    fm_mask_free(mask);
    fm_diagnostics_free(diags);
    return status;
}
