/* Partial tiles evaluated once (see tile_bits.h). */
#include "runtime/cpu/tile_bits.h"

#include <omp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/eval.h"

bool fmr_tile_bits_build(const fmc_blockmask *bm, int nthreads, fmr_tile_bits *out) {
    memset(out, 0, sizeof *out);
    int64_t nrows = bm->stored_batch * bm->stored_heads * bm->nqb;
    int64_t ntiles = bm->partial.off[nrows];
    if (ntiles == 0) return true;
    int64_t row_words = (bm->block_kv + 63) / 64, tile_words = bm->block_q * row_words;
    /* Against FMR_TILE_BITS_MAX_BYTES before multiplying it out in bytes. */
    if (tile_words > (int64_t)(FMR_TILE_BITS_MAX_BYTES / 8) ||
        ntiles > (int64_t)(FMR_TILE_BITS_MAX_BYTES / 8) / tile_words)
        return true;
    size_t bytes = (size_t)(ntiles * tile_words) * sizeof(uint64_t);
    uint64_t *bits = calloc(1, bytes);
    if (!bits) return false;
    size_t scratch_bytes = fmc_row_scratch_bytes(bm->program, bm->block_kv);
    atomic_bool failed = false, broken = false;
    if (nthreads <= 0) nthreads = omp_get_max_threads();
    if ((int64_t)nthreads > nrows) nthreads = (int)nrows;
#pragma omp parallel num_threads(nthreads)
    {
        void *scratch = malloc(scratch_bytes);
        uint8_t *keep = malloc((size_t)bm->block_kv);
        if (!scratch || !keep) atomic_store(&failed, true);
#pragma omp for schedule(dynamic, 1)
        for (int64_t r = 0; r < nrows; r++) {
            if (atomic_load(&failed) || atomic_load(&broken)) continue;
            int64_t qb = r % bm->nqb, sh = r / bm->nqb % bm->stored_heads;
            int64_t sb = r / bm->nqb / bm->stored_heads;
            int64_t q0 = qb * bm->block_q;
            int64_t m = bm->q_len - q0 < bm->block_q ? bm->q_len - q0 : bm->block_q;
            for (int64_t t = bm->partial.off[r]; t < bm->partial.off[r + 1] && !atomic_load(&broken); t++) {
                int64_t k0 = (int64_t)bm->partial.idx[t] * bm->block_kv;
                int64_t n = bm->kv_len - k0 < bm->block_kv ? bm->kv_len - k0 : bm->block_kv;
                for (int64_t i = 0; i < m; i++) {
                    fmc_violation v;
                    /* A stored slice stands for every batch entry (head) it
                     * is broadcast to, and the mask does not read b (h)
                     * there, so its first one is as good as any. */
                    if (!fmc_eval_row(bm->program, &bm->env, sb, sh, q0 + i, k0, n, keep, scratch,
                                      &v)) {
                        atomic_store(&broken, true);
                        break;
                    }
                    uint64_t *w = bits + t * tile_words + i * row_words;
                    for (int64_t j = 0; j < n; j++) w[j >> 6] |= (uint64_t)(keep[j] & 1u) << (j & 63);
                }
            }
        }
        free(scratch);
        free(keep);
    }
    if (atomic_load(&failed) || atomic_load(&broken)) {
        free(bits);
        return !atomic_load(&failed);
    }
    out->bits = bits;
    out->row_words = row_words;
    out->tile_words = tile_words;
    out->bytes = bytes;
    return true;
}

void fmr_tile_bits_free(fmr_tile_bits *t) {
    if (!t) return;
    free(t->bits);
    memset(t, 0, sizeof *t);
}
