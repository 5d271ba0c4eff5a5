/* BlockMask storage: the decided runs become compressed row lists (full
 * and partial apart, ascending kv), then the kv-major transpose; plus the
 * statistics, freeing, and counting true positions on demand. */
#include <stdlib.h>
#include <string.h>

#include "compiler/blockmask_internal.h"
#include "compiler/eval.h"

bool fmc_bm_emit(fmc_bm_builder *B, int64_t row, int64_t kv0, int64_t kv1, bool partial,
                 int64_t ntrue) {
    int64_t tiles = kv1 - kv0;
    /* Each stored tile costs an index in its row list and in the
     * transpose, and partial tiles a count. */
    int64_t cost = tiles * (int64_t)(2 * sizeof(int32_t) + (partial ? sizeof(int64_t) : 0));
    if (B->list_bytes + cost > B->budget) {
        if (B->status == FMC_BUILD_OK) {
            fmd_diag_add(B->diags, FMD_ERROR, NULL, (fmd_span){0, 0},
                         "use larger blocks or raise the memory budget",
                         "the BlockMask's tile lists exceed the memory budget of %lld bytes",
                         (long long)B->budget);
            B->status = FMC_BUILD_LIMIT;
        }
        return false;
    }
    B->list_bytes += cost;
    if (B->nruns == B->cap) {
        size_t ncap = B->cap ? B->cap * 2 : 1024;
        fmc_bm_run *n = realloc(B->runs, ncap * sizeof *n);
        if (!n) {
            if (B->status == FMC_BUILD_OK) B->status = FMC_BUILD_NO_MEMORY;
            return false;
        }
        B->runs = n;
        B->cap = ncap;
    }
    fmc_bm_run *r = &B->runs[B->nruns++];
    r->row = row;
    r->kv0 = (int32_t)kv0;
    r->kv1 = (int32_t)kv1;
    r->partial = partial;
    r->ntrue = ntrue;
    if (partial) B->npartial += tiles;
    else B->nfull += tiles;
    return true;
}

static bool alloc_lists(fmc_bm_lists *l, int64_t nrows, int64_t n) {
    l->off = calloc((size_t)nrows + 1, sizeof *l->off);
    l->idx = malloc(((size_t)n + 1) * sizeof *l->idx);
    return l->off && l->idx;
}

/* Row lists from the runs: a stable counting sort by row keeps the
 * visitor's ascending kv order within each row. */
static bool rows_from_runs(fmc_bm_builder *B, fmc_bm_lists *l, int64_t nrows, bool partial,
                           int64_t n, int64_t **counts) {
    if (!alloc_lists(l, nrows, n)) return false;
    for (size_t i = 0; i < B->nruns; i++) {
        const fmc_bm_run *r = &B->runs[i];
        if (r->partial == partial) l->off[r->row + 1] += r->kv1 - r->kv0;
    }
    for (int64_t r = 0; r < nrows; r++) l->off[r + 1] += l->off[r];
    int64_t *pos = malloc(((size_t)nrows + 1) * sizeof *pos);
    if (!pos) return false;
    memcpy(pos, l->off, (size_t)nrows * sizeof *pos);
    if (partial) {
        *counts = malloc(((size_t)n + 1) * sizeof **counts);
        if (!*counts) {
            free(pos);
            return false;
        }
    }
    for (size_t i = 0; i < B->nruns; i++) {
        const fmc_bm_run *r = &B->runs[i];
        if (r->partial != partial) continue;
        for (int32_t k = r->kv0; k < r->kv1; k++) {
            if (partial) (*counts)[pos[r->row]] = r->ntrue;
            l->idx[pos[r->row]++] = k;
        }
    }
    free(pos);
    return true;
}

/* The transpose: for each (slice, kv block) the ascending q blocks. */
static bool transpose(const fmc_blockmask *m, const fmc_bm_lists *rows, fmc_bm_lists *t,
                      int64_t n) {
    int64_t slices = m->stored_batch * m->stored_heads;
    int64_t nt = slices * m->nkvb;
    if (!alloc_lists(t, nt, n)) return false;
    for (int64_t s = 0; s < slices; s++)
        for (int64_t qb = 0; qb < m->nqb; qb++) {
            int64_t r = s * m->nqb + qb;
            for (int64_t e = rows->off[r]; e < rows->off[r + 1]; e++)
                t->off[s * m->nkvb + rows->idx[e] + 1]++;
        }
    for (int64_t r = 0; r < nt; r++) t->off[r + 1] += t->off[r];
    int64_t *pos = malloc(((size_t)nt + 1) * sizeof *pos);
    if (!pos) return false;
    memcpy(pos, t->off, (size_t)nt * sizeof *pos);
    for (int64_t s = 0; s < slices; s++)
        for (int64_t qb = 0; qb < m->nqb; qb++) {
            int64_t r = s * m->nqb + qb;
            for (int64_t e = rows->off[r]; e < rows->off[r + 1]; e++)
                t->idx[pos[s * m->nkvb + rows->idx[e]]++] = (int32_t)qb;
        }
    free(pos);
    return true;
}

/* a * b for non-negative a, b, capped at 2^100 (far above any int64). */
static __int128 mul128_sat(__int128 a, __int128 b) {
    const __int128 cap = (__int128)1 << 100;
    if (a == 0 || b == 0) return 0;
    return a > cap / b ? cap : a * b;
}

static int64_t true_positions(const fmc_blockmask *m) {
    int64_t slices = m->stored_batch * m->stored_heads;
    __int128 total = 0;
    for (int64_t s = 0; s < slices; s++)
        for (int64_t qb = 0; qb < m->nqb; qb++) {
            int64_t r = s * m->nqb + qb;
            /* Full tiles are never clipped. */
            total += mul128_sat(m->full.off[r + 1] - m->full.off[r],
                                mul128_sat(m->block_q, m->block_kv));
            if (total > INT64_MAX) return INT64_MAX;
            for (int64_t e = m->partial.off[r]; e < m->partial.off[r + 1]; e++) {
                if (m->partial_true[e] < 0) return -1;
                total += m->partial_true[e];
            }
        }
    total = mul128_sat(total, mul128_sat(m->batch / m->stored_batch, m->heads / m->stored_heads));
    return total > INT64_MAX ? INT64_MAX : (int64_t)total;
}

bool fmc_bm_assemble(fmc_bm_builder *B) {
    fmc_blockmask *m = B->m;
    int64_t nrows = m->stored_batch * m->stored_heads * m->nqb;
    if (!rows_from_runs(B, &m->full, nrows, false, B->nfull, NULL) ||
        !rows_from_runs(B, &m->partial, nrows, true, B->npartial, &m->partial_true) ||
        !transpose(m, &m->full, &m->t_full, B->nfull) ||
        !transpose(m, &m->partial, &m->t_partial, B->npartial)) {
        if (B->status == FMC_BUILD_OK) B->status = FMC_BUILD_NO_MEMORY;
        return false;
    }
    /* Counts over every batch and head; absurd shapes saturate. */
    __int128 mult = mul128_sat(m->batch / m->stored_batch, m->heads / m->stored_heads);
    __int128 all = mul128_sat(mul128_sat(m->nqb, m->nkvb), mul128_sat(m->batch, m->heads));
    __int128 full = mul128_sat(B->nfull, mult), partial = mul128_sat(B->npartial, mult);
    m->stats.full = full > INT64_MAX ? INT64_MAX : (int64_t)full;
    m->stats.partial = partial > INT64_MAX ? INT64_MAX : (int64_t)partial;
    __int128 empty = all - full - partial;
    m->stats.empty = empty > INT64_MAX ? INT64_MAX : (int64_t)empty;
    m->stats.bytes = B->list_bytes;
    m->stats.true_positions = true_positions(m);
    return true;
}

void fmc_blockmask_free(fmc_blockmask *m) {
    if (!m) return;
    free(m->full.off);
    free(m->full.idx);
    free(m->partial.off);
    free(m->partial.idx);
    free(m->t_full.off);
    free(m->t_full.idx);
    free(m->t_partial.off);
    free(m->t_partial.idx);
    free(m->partial_true);
    free(m->own_params);
    free(m->own_inputs);
    free(m->own_bytes);
    free(m->own_dims);
    free(m);
}

int64_t fmc_blockmask_count_true(fmc_blockmask *m) {
    if (!m) return -1;
    if (m->stats.true_positions >= 0) return m->stats.true_positions;
    const fmc_program *p = m->program;
    int64_t lanes = m->block_kv < 1024 ? m->block_kv : 1024;
    void *scratch = malloc(fmc_row_scratch_bytes(p, lanes));
    uint8_t *row = malloc((size_t)lanes);
    bool ok = scratch && row;
    int64_t slices = m->stored_batch * m->stored_heads;
    for (int64_t s = 0; ok && s < slices; s++) {
        int64_t b = s / m->stored_heads, h = s % m->stored_heads;
        for (int64_t qb = 0; ok && qb < m->nqb; qb++) {
            int64_t r = s * m->nqb + qb;
            for (int64_t e = m->partial.off[r]; ok && e < m->partial.off[r + 1]; e++) {
                if (m->partial_true[e] >= 0) continue;
                int64_t kb = m->partial.idx[e], cnt = 0;
                int64_t q1 = m->q_len - qb * m->block_q > m->block_q ? (qb + 1) * m->block_q
                                                                      : m->q_len;
                int64_t k1 = m->kv_len - kb * m->block_kv > m->block_kv ? (kb + 1) * m->block_kv
                                                                         : m->kv_len;
                int64_t q0 = qb * m->block_q, k0 = kb * m->block_kv;
                for (int64_t i = 0; ok && i < q1 - q0; i++)
                    for (int64_t off = 0; ok && off < k1 - k0; off += lanes) {
                        int64_t q = q0 + i, k = k0 + off;
                        int64_t n = k1 - k < lanes ? k1 - k : lanes;
                        fmc_violation v;
                        ok = fmc_eval_row(p, &m->env, b, h, q, k, n, row, scratch, &v);
                        for (int64_t j = 0; ok && j < n; j++) cnt += row[j];
                    }
                if (ok) m->partial_true[e] = cnt;
            }
        }
    }
    free(scratch);
    free(row);
    if (!ok) return -1;
    m->stats.true_positions = true_positions(m);
    return m->stats.true_positions;
}
