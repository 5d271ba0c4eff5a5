/* tree_attention: verifying a speculative-decoding token tree in one pass.
 *
 * A draft model proposed two continuations that share a prefix:
 *   "You -> are -> a"  and  "You -> are -> {not, a}"
 * packed as six tokens with parents [-1, 0, 1, 0, 3, 3]. fm_tree_tables
 * turns the parent array into the Euler-tour tables examples/masks/tree.mask
 * reads and into position ids (0 1 2 1 2 2, after a prompt already in the
 * key/value cache). Each token attends to the prompt, its ancestors and
 * itself, never to the other branch.
 *
 * The check a tree mask must pass: the two "are" tokens (and the two "a"
 * tokens) have identical inputs and identical histories, so their attention
 * outputs must be identical, exactly, in float32. The program exits 1 if
 * they differ or if any output is off the dense float64 reference. */
#include "example_util.h"

enum { N = 6, PROMPT = 2, HEADS = 2, DIM = 16 };

int main(int argc, char **argv) {
    static const char *const word[N] = {"You", "are", "a", "are", "not", "a"};
    const int32_t parent[N] = {-1, 0, 1, 0, 3, 3};
    int32_t enter[N], leave[N], depth[N];
    fm_diagnostics *diags = fm_diagnostics_create();
    ex_check(fm_tree_tables(parent, N, enter, leave, depth, diags), diags, "fm_tree_tables");

    printf("token tree after a %d-token prompt (position id = prompt + depth):\n", PROMPT);
    for (int i = 0; i < N; i++)
        printf("  %d  %*s%-4s  parent %2d  enter %d leave %d  position %d\n", i, 2 * depth[i], "",
               word[i], parent[i], enter[i], leave[i], PROMPT + depth[i]);
    printf("position ids:");
    for (int i = 0; i < N; i++)
        printf(" %d", depth[i]);
    printf("  (+%d for the prompt)\n", PROMPT);

    char path[1024];
    ex_mask_path(path, sizeof path, argc, argv, "tree.mask");
    fm_mask *mask = ex_load_mask(path, diags);
    fm_bindings *bind = NULL;
    ex_check(fm_bindings_create(mask, &bind), diags, "bindings");
    int64_t n = N;
    ex_check(fm_bindings_set_param(bind, "prefix", PROMPT, diags), diags, "prefix");
    ex_check(fm_bindings_set_input(bind, "enter", enter, 1, &n, FM_COPY, diags), diags, "enter");
    ex_check(fm_bindings_set_input(bind, "leave", leave, 1, &n, FM_COPY, diags), diags, "leave");
    /* Queries: the six tree tokens; keys: the prompt, then the same six.
     * One key block holds every key, so each row is one pass over its keys
     * in order, whatever rows it shares a tile with. */
    fm_shape shape = {1, HEADS, N, PROMPT + N};
    fm_build_options opts = {.struct_size = sizeof(fm_build_options), .block_q = 2, .block_kv = PROMPT + N};
    fm_blockmask *bm = NULL;
    ex_check(fm_blockmask_build(mask, bind, shape, &opts, diags, &bm), diags, "build");

    printf("\nwho sees whom (rows: tree tokens, columns: prompt | tree tokens):\n");
    for (int i = 0; i < N; i++) {
        printf("  %-4s ", word[i]);
        for (int j = 0; j < PROMPT + N; j++) {
            bool v = false;
            fm_blockmask_eval(bm, 0, 0, i, j, &v);
            printf("%s%c", j == PROMPT ? " | " : " ", v ? 'x' : '.');
        }
        printf("\n");
    }
    printf("\n");
    ex_print_picture(bm, 0, 0);

    /* Random inputs, then the duplicates: token 3 is token 1 again ("are"),
     * token 5 is token 2 again ("a"), as queries and as keys/values. */
    unsigned seed = 7;
    fm_tensor q = ex_random_tensor(&seed, 1, HEADS, N, DIM);
    fm_tensor k = ex_random_tensor(&seed, 1, HEADS, PROMPT + N, DIM);
    fm_tensor v = ex_random_tensor(&seed, 1, HEADS, PROMPT + N, DIM);
    fm_tensor out = ex_zero_tensor(1, HEADS, N, DIM);
    const int same[2][2] = {{1, 3}, {2, 5}};
    for (int s = 0; s < 2; s++)
        for (int h = 0; h < HEADS; h++) {
            float *qd = q.data, *kd = k.data, *vd = v.data;
            int a = same[s][0], b = same[s][1];
            memcpy(qd + (h * N + b) * DIM, qd + (h * N + a) * DIM, DIM * sizeof(float));
            memcpy(kd + (h * (PROMPT + N) + PROMPT + b) * DIM,
                   kd + (h * (PROMPT + N) + PROMPT + a) * DIM, DIM * sizeof(float));
            memcpy(vd + (h * (PROMPT + N) + PROMPT + b) * DIM,
                   vd + (h * (PROMPT + N) + PROMPT + a) * DIM, DIM * sizeof(float));
        }
    double err = ex_attend_and_check(bm, q, k, v, out, diags);

    int status = ex_report("tree attention", err);
    const float *o = out.data;
    for (int s = 0; s < 2; s++) {
        int a = same[s][0], b = same[s][1];
        bool equal = true;
        for (int h = 0; h < HEADS; h++)
            for (int d = 0; d < DIM; d++)
                equal = equal && o[(h * N + a) * DIM + d] == o[(h * N + b) * DIM + d];
        printf("rows %d and %d (\"%s\"): outputs %s in float32\n", a, b, word[a],
               equal ? "exactly equal" : "DIFFER");
        if (!equal) status = 1;
    }
    /* The mask is the ancestry relation: key token j is visible to token i
     * exactly when walking up from i reaches j. */
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            bool anc = false, seen = false;
            for (int x = i; x >= 0; x = parent[x])
                anc = anc || x == j;
            fm_blockmask_eval(bm, 0, 0, i, PROMPT + j, &seen);
            if (seen != anc) {
                printf("token %d %s token %d, but it is %san ancestor\n", i,
                       seen ? "sees" : "does not see", j, anc ? "" : "not ");
                status = 1;
            }
        }

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
