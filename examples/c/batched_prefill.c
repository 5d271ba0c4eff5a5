/* batched_prefill: three requests with different numbers of new queries and
 * cached keys, packed into one ragged batch (as FlashInfer's batch prefill
 * and vLLM's chunked prefill lay them out).
 *
 *   request   new queries (qo_len)   keys/values incl. cache (kv_len)
 *      0              3                        10
 *      1              5                         5
 *      2              1                         7
 *
 * fm_batched_prefill_arrays turns the offset (indptr) arrays into the
 * request-id and position arrays examples/masks/batched_prefill.mask reads;
 * each query then sees its own request's keys up to its own position
 * (causal, aligned to the bottom right of the request's block). The
 * program checks the mask against that definition and attention against a
 * dense float64 reference; it exits 1 on any difference. */
#include "example_util.h"

enum { REQUESTS = 3, HEADS = 2, DIM = 16 };

int main(int argc, char **argv) {
    const int32_t qo_indptr[REQUESTS + 1] = {0, 3, 8, 9};
    const int32_t kv_indptr[REQUESTS + 1] = {0, 10, 15, 22};
    int64_t q_len = qo_indptr[REQUESTS], kv_len = kv_indptr[REQUESTS];
    int32_t q_req[9], q_pos[9], kv_req[22], kv_pos[22];
    fm_diagnostics *diags = fm_diagnostics_create();
    ex_check(fm_batched_prefill_arrays(qo_indptr, kv_indptr, REQUESTS, q_len, kv_len, q_req, q_pos,
                                       kv_req, kv_pos, diags),
             diags, "fm_batched_prefill_arrays");
    printf("q_req :");
    for (int i = 0; i < q_len; i++)
        printf(" %d", q_req[i]);
    printf("\nq_pos :");
    for (int i = 0; i < q_len; i++)
        printf(" %d", q_pos[i]);
    printf("\nkv_req:");
    for (int i = 0; i < kv_len; i++)
        printf(" %d", kv_req[i]);
    printf("\nkv_pos:");
    for (int i = 0; i < kv_len; i++)
        printf(" %d", kv_pos[i]);
    printf("\n");

    /* Offsets that do not fit are refused with a message, not a crash. */
    const int32_t bad_qo[REQUESTS + 1] = {0, 3, 9, 10}; /* request 1: 6 queries, 5 keys */
    fm_diagnostics *bad = fm_diagnostics_create();
    fm_status st = fm_batched_prefill_arrays(bad_qo, kv_indptr, REQUESTS, 10, kv_len, q_req, q_pos,
                                             kv_req, kv_pos, bad);
    fm_diagnostic d0;
    if (st == FM_OK || fm_diagnostics_get(bad, 0, &d0) != FM_OK) return 1;
    printf("mismatched offsets are refused: %s\n", d0.message);
    fm_diagnostics_free(bad);

    char path[1024];
    ex_mask_path(path, sizeof path, argc, argv, "batched_prefill.mask");
    fm_mask *mask = ex_load_mask(path, diags);
    fm_bindings *bind = NULL;
    ex_check(fm_bindings_create(mask, &bind), diags, "bindings");
    ex_check(fm_bindings_set_input(bind, "q_req", q_req, 1, &q_len, FM_COPY, diags), diags,
             "q_req");
    ex_check(fm_bindings_set_input(bind, "q_pos", q_pos, 1, &q_len, FM_COPY, diags), diags,
             "q_pos");
    ex_check(fm_bindings_set_input(bind, "kv_req", kv_req, 1, &kv_len, FM_COPY, diags), diags,
             "kv_req");
    ex_check(fm_bindings_set_input(bind, "kv_pos", kv_pos, 1, &kv_len, FM_COPY, diags), diags,
             "kv_pos");
    fm_shape shape = {1, HEADS, q_len, kv_len};
    fm_build_options opts = {.struct_size = sizeof(fm_build_options), .block_q = 2, .block_kv = 4};
    fm_blockmask *bm = NULL;
    ex_check(fm_blockmask_build(mask, bind, shape, &opts, diags, &bm), diags, "build");

    int status = 0;
    printf("\nqueries (rows) and keys (columns), request by request:\n");
    for (int r = 0; r < REQUESTS; r++) {
        int qo = qo_indptr[r + 1] - qo_indptr[r], kv = kv_indptr[r + 1] - kv_indptr[r];
        for (int j = 0; j < qo; j++) {
            int i = qo_indptr[r] + j;
            printf("  req %d q %d  ", r, i);
            for (int c = 0; c < kv_len; c++) {
                bool seen = false;
                fm_blockmask_eval(bm, 0, 0, i, c, &seen);
                bool want =
                    c >= kv_indptr[r] && c < kv_indptr[r + 1] && c - kv_indptr[r] <= kv - qo + j;
                if (seen != want) status = 1;
                printf("%s%c", c == kv_indptr[1] || c == kv_indptr[2] ? " | " : "",
                       seen ? 'x' : '.');
            }
            printf("\n");
        }
    }
    printf("\n");
    ex_print_picture(bm, 0, 0);

    unsigned seed = 3;
    fm_tensor q = ex_random_tensor(&seed, 1, HEADS, q_len, DIM);
    fm_tensor k = ex_random_tensor(&seed, 1, HEADS, kv_len, DIM);
    fm_tensor v = ex_random_tensor(&seed, 1, HEADS, kv_len, DIM);
    fm_tensor out = ex_zero_tensor(1, HEADS, q_len, DIM);
    double err = ex_attend_and_check(bm, q, k, v, out, diags);
    if (status) printf("the mask differs from the bottom-right causal definition\n");
    status |= ex_report("batched prefill", err);

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
