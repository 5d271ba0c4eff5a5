/* encoder_decoder: the two masks of an encoder-decoder model (the original
 * Transformer, T5, BART, Whisper) over a padded batch with per-example
 * lengths.
 *
 * - decoder self-attention (examples/masks/decoder_self.mask): causal, and
 *   the target of example b holds tgt_len[b] real tokens, so padded query
 *   rows attend to nothing (they output zeros);
 * - cross-attention (examples/masks/cross_attention.mask): the target
 *   queries attend to the source keys, which are a different length
 *   (Q_LEN != KV_LEN), skipping the padding after src_len[b].
 *
 * Each mask is checked against its definition at every point and attention
 * against a dense float64 reference; the program exits 1 on a difference. */
#include "example_util.h"

enum { BATCH = 3, HEADS = 2, TGT = 12, SRC = 20, DIM = 16 };

/* Binds one per-batch length array, builds, and checks the mask at every
 * point against want(b, q, kv). */
static fm_blockmask *build(fm_mask *mask, const char *input, const int32_t *lens, fm_shape shape,
                           int64_t block, fm_diagnostics *diags, fm_bindings **bind) {
    int64_t n = BATCH;
    ex_check(fm_bindings_create(mask, bind), diags, "bindings");
    ex_check(fm_bindings_set_input(*bind, input, lens, 1, &n, FM_COPY, diags), diags, input);
    fm_build_options opts = {.struct_size = sizeof(fm_build_options), .block_q = block, .block_kv = block};
    fm_blockmask *bm = NULL;
    ex_check(fm_blockmask_build(mask, *bind, shape, &opts, diags, &bm), diags, "build");
    return bm;
}

static int run(const fm_blockmask *bm, fm_shape s, const char *what, unsigned seed,
               fm_diagnostics *diags) {
    fm_tensor q = ex_random_tensor(&seed, s.batch, s.heads, s.q_len, DIM);
    fm_tensor k = ex_random_tensor(&seed, s.batch, s.heads, s.kv_len, DIM);
    fm_tensor v = ex_random_tensor(&seed, s.batch, s.heads, s.kv_len, DIM);
    fm_tensor out = ex_zero_tensor(s.batch, s.heads, s.q_len, DIM);
    double err = ex_attend_and_check(bm, q, k, v, out, diags);
    free(q.data);
    free(k.data);
    free(v.data);
    free(out.data);
    return ex_report(what, err);
}

int main(int argc, char **argv) {
    const int32_t tgt_len[BATCH] = {12, 7, 3}, src_len[BATCH] = {20, 13, 5};
    fm_diagnostics *diags = fm_diagnostics_create();
    char path[1024];
    int status = 0;

    ex_mask_path(path, sizeof path, argc, argv, "decoder_self.mask");
    fm_mask *self = ex_load_mask(path, diags);
    fm_shape s1 = {BATCH, HEADS, TGT, TGT};
    fm_bindings *b1 = NULL;
    fm_blockmask *m1 = build(self, "tgt_len", tgt_len, s1, 4, diags, &b1);
    ex_check(fm_mask_reads_batch(self) ? FM_OK : FM_ERR_INVALID_ARGUMENT, diags,
             "decoder_self reads the batch index");
    for (int64_t b = 0; b < BATCH; b++)
        for (int64_t q = 0; q < TGT; q++)
            for (int64_t kv = 0; kv < TGT; kv++) {
                bool v = false;
                fm_blockmask_eval(m1, b, 0, q, kv, &v);
                if (v != (kv <= q && q < tgt_len[b])) status = 1;
            }
    printf("decoder self-attention, target lengths 12, 7, 3 (batch 1 shown):\n");
    ex_print_picture(m1, 1, 0);
    status |= run(m1, s1, "decoder self-attention", 1, diags);

    ex_mask_path(path, sizeof path, argc, argv, "cross_attention.mask");
    fm_mask *cross = ex_load_mask(path, diags);
    fm_shape s2 = {BATCH, HEADS, TGT, SRC};
    fm_bindings *b2 = NULL;
    fm_blockmask *m2 = build(cross, "src_len", src_len, s2, 4, diags, &b2);
    for (int64_t b = 0; b < BATCH; b++)
        for (int64_t q = 0; q < TGT; q++)
            for (int64_t kv = 0; kv < SRC; kv++) {
                bool v = false;
                fm_blockmask_eval(m2, b, 0, q, kv, &v);
                if (v != (kv < src_len[b])) status = 1;
            }
    printf("\ncross-attention, %d target queries x %d source keys, source lengths 20, 13, 5 "
           "(batch 2 shown):\n",
           TGT, SRC);
    ex_print_picture(m2, 2, 0);
    status |= run(m2, s2, "cross-attention", 2, diags);
    if (status) printf("a mask or an output differs from its definition\n");

    fm_blockmask_free(m1);
    fm_blockmask_free(m2);
    fm_bindings_free(b1);
    fm_bindings_free(b2);
    fm_mask_free(self);
    fm_mask_free(cross);
    fm_diagnostics_free(diags);
    return status;
}
