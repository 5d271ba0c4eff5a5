/* dense_import: from a dense [B, H, Q, KV] mask, as existing code builds
 * them, to a BlockMask, and back out for PyTorch.
 *
 * The program makes a boolean mask of shape [2, 1, 40, 40] (batch 0 a
 * sliding window, batch 1 a prefix-LM pattern; one head slice that
 * broadcasts over 3 heads), imports it with fm_blockmask_from_dense, and
 * checks that:
 * - the additive form of the same mask (0 = keep, -inf = drop) gives the
 *   same tiles;
 * - exporting the BlockMask to a dense array gives the input back;
 * - a safetensors file (the arguments of PyTorch's
 *   BlockMask.from_kv_blocks, see docs/interop.md) loads back into an
 *   equal BlockMask;
 * - attention over it matches a dense float64 reference.
 * It exits 1 otherwise. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include "example_util.h"

#include <stdlib.h>
#include <unistd.h>

enum { B = 2, H = 3, LEN = 40, DIM = 16 };

static bool same_tiles(const fm_blockmask *x, const fm_blockmask *y) {
    fm_blockmask_info a, b;
    fm_blockmask_get_info(x, &a);
    fm_blockmask_get_info(y, &b);
    if (a.full_tiles != b.full_tiles || a.partial_tiles != b.partial_tiles ||
        a.num_q_blocks != b.num_q_blocks)
        return false;
    for (int64_t bb = 0; bb < B; bb++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < a.num_q_blocks; i++) {
                const int32_t *f1, *p1, *f2, *p2;
                int64_t nf1, np1, nf2, np2;
                fm_blockmask_row(x, bb, h, i, &f1, &nf1, &p1, &np1);
                fm_blockmask_row(y, bb, h, i, &f2, &nf2, &p2, &np2);
                if (nf1 != nf2 || np1 != np2 || memcmp(f1, f2, (size_t)nf1 * 4) ||
                    memcmp(p1, p2, (size_t)np1 * 4))
                    return false;
            }
    return true;
}

int main(void) {
    static uint8_t keep[B][1][LEN][LEN];
    static float additive[B][1][LEN][LEN];
    for (int q = 0; q < LEN; q++)
        for (int kv = 0; kv < LEN; kv++) {
            keep[0][0][q][kv] = kv <= q && q - kv < 8; /* sliding window */
            keep[1][0][q][kv] = kv < 12 || kv <= q;    /* prefix-LM, prefix 12 */
            for (int b = 0; b < B; b++)
                additive[b][0][q][kv] = keep[b][0][q][kv] ? 0.0f : -INFINITY;
        }
    const int64_t dims[4] = {B, 1, LEN, LEN};
    fm_shape shape = {B, H, LEN, LEN};
    fm_build_options opts = {.struct_size = sizeof(fm_build_options), .block_q = 8, .block_kv = 8};
    fm_diagnostics *diags = fm_diagnostics_create();
    fm_blockmask *bm = NULL, *from_add = NULL, *loaded = NULL;
    ex_check(fm_blockmask_from_dense(keep, FM_DENSE_BOOL, 4, dims, &shape, &opts, diags, &bm),
             diags, "import");
    ex_check(fm_blockmask_from_dense(additive, FM_DENSE_ADDITIVE, 4, dims, &shape, &opts, diags,
                                     &from_add),
             diags, "import (additive)");
    fm_blockmask_info info;
    fm_blockmask_get_info(bm, &info);
    printf("imported [2, 1, 40, 40] for %lld heads: broadcast over heads: %s, over batch: %s\n",
           (long long)H, info.broadcast_heads ? "yes" : "no", info.broadcast_batch ? "yes" : "no");
    printf("batch 0 (sliding window):\n");
    ex_print_picture(bm, 0, 0);
    printf("batch 1 (prefix-LM):\n");
    ex_print_picture(bm, 1, 2);

    int status = 0;
    if (!info.broadcast_heads || info.broadcast_batch) status = 1;
    if (!same_tiles(bm, from_add)) {
        printf("the additive form gives other tiles\n");
        status = 1;
    }
    uint8_t *dense = NULL;
    ex_check(fm_blockmask_to_dense(bm, &dense, NULL, diags), diags, "export");
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            if (memcmp(dense + ((size_t)(b * H + h)) * LEN * LEN, keep[b][0], LEN * LEN)) {
                printf("the export of batch %d, head %d differs from the input\n", b, h);
                status = 1;
            }
    fm_free(dense);

    char dir[] = "/tmp/fm_dense_import.XXXXXX", file[64];
    if (!mkdtemp(dir)) return 1;
    snprintf(file, sizeof file, "%s/mask.safetensors", dir);
    ex_check(fm_blockmask_save_safetensors(bm, file, diags), diags, "save");
    ex_check(fm_blockmask_load_safetensors(file, diags, &loaded), diags, "load");
    printf("saved and loaded %s: %s\n", file, same_tiles(bm, loaded) ? "same tiles" : "DIFFERENT");
    if (!same_tiles(bm, loaded)) status = 1;
    remove(file);
    rmdir(dir);

    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < LEN; i++)
                for (int j = 0; j < LEN; j++) {
                    bool v = false;
                    fm_blockmask_eval(loaded, b, h, i, j, &v);
                    if (v != keep[b][0][i][j]) status = 1;
                }

    unsigned seed = 9;
    fm_tensor q = ex_random_tensor(&seed, B, H, LEN, DIM);
    fm_tensor k = ex_random_tensor(&seed, B, H, LEN, DIM);
    fm_tensor v = ex_random_tensor(&seed, B, H, LEN, DIM);
    fm_tensor out = ex_zero_tensor(B, H, LEN, DIM);
    /* The reference evaluates the loaded mask, which equals the array at
     * every point (checked just above). */
    double err = ex_attend_and_check(loaded, q, k, v, out, diags);
    status |= ex_report("dense import", err);

    free(q.data);
    free(k.data);
    free(v.data);
    free(out.data);
    fm_blockmask_free(bm);
    fm_blockmask_free(from_add);
    fm_blockmask_free(loaded);
    fm_diagnostics_free(diags);
    return status;
}
