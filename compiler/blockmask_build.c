/* The BlockMask build: validation, then per stored (b, h) slice a visit
 * of the tile grid that decides large regions by abstract interpretation
 * first (all-false skipped whole, all-true emitted whole) and splits only
 * undecided ones, halving the longer side with the left / top half first
 * so each row's tiles come out in ascending kv order. A single tile the
 * analysis cannot settle (or cannot prove safe) is settled by the analysis
 * over halves of it, down to small boxes evaluated point by point. */
#include <stdlib.h>
#include <string.h>

#include "compiler/blockmask_internal.h"
#include "compiler/eval.h"

#define DEFAULT_BUDGET ((int64_t)1 << 30)
#define ROW_CHUNK 1024
#define SETTLE_LEAF 256 /* positions below which a box is evaluated point by point */
#define SETTLE_STACK 136

typedef struct region {
    int64_t qa, qb, ka, kb; /* tiles [qa, qb) x [ka, kb) */
} region;

typedef struct visitor {
    fmc_bm_builder *B;
    fmc_blockmask *m;
    fmc_absint A;
    void *scratch;
    uint8_t *row;
    int64_t b, h, slice;
} visitor;

static bool fail(fmc_bm_builder *B, fmc_build_status st) {
    if (B->status == FMC_BUILD_OK) B->status = st;
    return false;
}

/* a * b, saturated (tile areas of extreme shapes). */
static int64_t mul_sat(int64_t a, int64_t b) {
    int64_t r;
    return __builtin_mul_overflow(a, b, &r) ? INT64_MAX : r;
}

static int64_t add_sat(int64_t a, int64_t b) {
    int64_t r;
    return __builtin_add_overflow(a, b, &r) ? INT64_MAX : r;
}

/* min(i * block, len) without overflow (shapes and blocks are any int64). */
static int64_t edge(int64_t i, int64_t block, int64_t len) {
    int64_t e;
    return __builtin_mul_overflow(i, block, &e) || e > len ? len : e;
}

static fmc_box tile_box(const visitor *V, const region *r) {
    const fmc_blockmask *m = V->m;
    fmc_box box;
    box.b0 = box.b1 = V->b;
    box.h0 = box.h1 = V->h;
    box.q0 = r->qa * m->block_q;
    box.q1 = edge(r->qb, m->block_q, m->q_len) - 1;
    box.k0 = r->ka * m->block_kv;
    box.k1 = edge(r->kb, m->block_kv, m->kv_len) - 1;
    return box;
}

static bool q_clipped(const fmc_blockmask *m, int64_t qb) {
    return edge(qb + 1, m->block_q, m->q_len) - qb * m->block_q < m->block_q;
}

static bool kv_clipped(const fmc_blockmask *m, int64_t kb) {
    return edge(kb + 1, m->block_kv, m->kv_len) - kb * m->block_kv < m->block_kv;
}

/* An all-true region: full tiles, except clipped edge tiles (partial). */
static bool emit_all_true(visitor *V, const region *r) {
    fmc_blockmask *m = V->m;
    for (int64_t i = r->qa; i < r->qb; i++) {
        int64_t row = V->slice * m->nqb + i;
        int64_t qn = edge(i + 1, m->block_q, m->q_len) - i * m->block_q;
        int64_t kend = r->kb;
        bool last_clipped = r->kb == m->nkvb && kv_clipped(m, m->nkvb - 1);
        if (last_clipped) kend--;
        if (q_clipped(m, i)) {
            for (int64_t j = r->ka; j < kend; j++)
                if (!fmc_bm_emit(V->B, row, j, j + 1, true, mul_sat(qn, m->block_kv))) return false;
        } else if (kend > r->ka && !fmc_bm_emit(V->B, row, r->ka, kend, false, -1)) {
            return false;
        }
        if (last_clipped) {
            int64_t kn = m->kv_len - (m->nkvb - 1) * m->block_kv;
            if (!fmc_bm_emit(V->B, row, m->nkvb - 1, m->nkvb, true, mul_sat(qn, kn))) return false;
        }
    }
    return true;
}

/* Point-evaluates box row by row, adding to the tile's tallies; with
 * `stop`, returns once both a true and a false position have been seen
 * (setting *partly when rows were left out). */
static bool points(visitor *V, const fmc_box *box, bool stop, int64_t *ntrue, int64_t *nfalse,
                   bool *partly) {
    fmc_blockmask *m = V->m;
    const fmc_program *p = V->B->p;
    /* Offsets, not positions, drive the loops: positions may end at
     * INT64_MAX - 1, where position + step would overflow. */
    int64_t rows = box->q1 - box->q0 + 1, cols = box->k1 - box->k0 + 1;
    for (int64_t i = 0; i < rows; i++) {
        int64_t q = box->q0 + i;
        if (stop && *ntrue > 0 && *nfalse > 0) {
            *partly = true;
            return true;
        }
        for (int64_t off = 0; off < cols; off += ROW_CHUNK) {
            int64_t k = box->k0 + off;
            int64_t n = cols - off < ROW_CHUNK ? cols - off : ROW_CHUNK;
            fmc_violation v;
            if (V->B->max_evals && m->stats.evaluations + n > V->B->max_evals) {
                fmd_diag_add(V->B->diags, FMD_ERROR, NULL, (fmd_span){0, 0},
                             "the analysis cannot decide some tiles of this mask, so they are "
                             "evaluated point by point; raise the bound or use another shape",
                             "building this BlockMask needs more than %lld point evaluations "
                             "of the mask (the evaluation bound)",
                             (long long)V->B->max_evals);
                return fail(V->B, FMC_BUILD_LIMIT);
            }
            m->stats.evaluations += n;
            if (!fmc_eval_row(p, &m->env, V->b, V->h, q, k, n, V->row, V->scratch, &v)) {
                fmc_report_violation(p, &m->env, &v, V->B->diags);
                return fail(V->B, FMC_BUILD_SAFETY);
            }
            int64_t t = 0;
            for (int64_t j = 0; j < n; j++) t += V->row[j];
            *ntrue = add_sat(*ntrue, t);
            *nfalse = add_sat(*nfalse, n - t);
        }
    }
    return true;
}

/* Settles a tile the analysis left open: the analysis again over halves
 * of it, down to small leaves that are evaluated point by point. A tile
 * proven safe stops as soon as it holds a true and a false position; one
 * not proven safe is covered entirely (every evaluated point checked). */
static bool settle_tile(visitor *V, const region *r, const fmc_box *tile, bool safe) {
    fmc_blockmask *m = V->m;
    /* Halving a box of up to 2^63 x 2^63 positions takes at most 126
     * levels; depth-first, the stack holds one pending half per level. */
    fmc_box stack[SETTLE_STACK];
    int n = 0;
    stack[n++] = *tile;
    int64_t ntrue = 0, nfalse = 0, evals0 = m->stats.evaluations;
    bool counted = true, first = true;
    while (n > 0) {
        if (safe && ntrue > 0 && nfalse > 0) {
            counted = false;
            break;
        }
        fmc_box b = stack[--n];
        int64_t rows = b.q1 - b.q0 + 1, cols = b.k1 - b.k0 + 1;
        int64_t area = mul_sat(rows, cols);
        if (area <= SETTLE_LEAF || n + 2 > SETTLE_STACK) {
            bool partly = false;
            if (!points(V, &b, safe, &ntrue, &nfalse, &partly)) return false;
            if (partly) counted = false;
            continue;
        }
        if (!first) {
            fmc_abs_answer a = fmc_absint_eval(&V->A, &b, true);
            if (V->A.oom) return fail(V->B, FMC_BUILD_NO_MEMORY);
            if (a.safe && a.cls != FMC_ABS_MIXED) {
                if (a.cls == FMC_ABS_TRUE) ntrue = add_sat(ntrue, area);
                else nfalse = add_sat(nfalse, area);
                continue;
            }
            if (a.safe && a.exact) {
                /* Both exist; the count may stay unknown. */
                if (a.ntrue >= 0) {
                    ntrue = add_sat(ntrue, a.ntrue);
                    nfalse = add_sat(nfalse, area - a.ntrue);
                } else {
                    counted = false;
                    ntrue++;
                    nfalse++;
                }
                continue;
            }
        }
        first = false;
        fmc_box lo = b, hi = b;
        if (rows >= cols) lo.q1 = (hi.q0 = b.q0 + rows / 2) - 1;
        else lo.k1 = (hi.k0 = b.k0 + cols / 2) - 1;
        stack[n++] = hi;
        stack[n++] = lo;
    }
    if (ntrue == 0) return true;
    bool by_points = m->stats.evaluations > evals0;
    if (by_points) m->stats.tiles_by_points++;
    else m->stats.tiles_by_analysis++;
    int64_t row = V->slice * m->nqb + r->qa;
    bool full = nfalse == 0 && !q_clipped(m, r->qa) && !kv_clipped(m, r->ka);
    return fmc_bm_emit(V->B, row, r->ka, r->ka + 1, !full, counted ? ntrue : -1);
}

static bool visit_slice(visitor *V) {
    fmc_blockmask *m = V->m;
    region stack[160];
    int n = 0;
    stack[n++] = (region){0, m->nqb, 0, m->nkvb};
    while (n > 0) {
        region r = stack[--n];
        fmc_box box = tile_box(V, &r);
        bool single = r.qb - r.qa == 1 && r.kb - r.ka == 1;
        fmc_abs_answer ans = fmc_absint_eval(&V->A, &box, single);
        if (V->A.oom) return fail(V->B, FMC_BUILD_NO_MEMORY);
        if (ans.safe && ans.cls == FMC_ABS_FALSE) {
            m->stats.regions_decided++;
            continue;
        }
        if (ans.safe && ans.cls == FMC_ABS_TRUE) {
            m->stats.regions_decided++;
            m->stats.tiles_by_analysis += (r.qb - r.qa) * (r.kb - r.ka);
            if (!emit_all_true(V, &r)) return false;
            continue;
        }
        if (single && ans.safe && ans.exact) {
            m->stats.regions_decided++;
            m->stats.tiles_by_analysis++;
            if (!fmc_bm_emit(V->B, V->slice * m->nqb + r.qa, r.ka, r.ka + 1, true, ans.ntrue))
                return false;
            continue;
        }
        if (single) {
            if (!settle_tile(V, &r, &box, ans.safe)) return false;
            continue;
        }
        region a = r, b = r;
        if (r.qb - r.qa >= r.kb - r.ka) {
            a.qb = b.qa = r.qa + (r.qb - r.qa) / 2;
        } else {
            a.kb = b.ka = r.ka + (r.kb - r.ka) / 2;
        }
        stack[n++] = b; /* the left / top half is decided first */
        stack[n++] = a;
    }
    return true;
}

static bool copy_env(fmc_blockmask *m, const fmc_program *p, const fmc_env *env) {
    m->own_params = calloc(p->nparams + 1, sizeof *m->own_params);
    m->own_inputs = calloc(p->ninputs + 1, sizeof *m->own_inputs);
    m->own_bytes = calloc(p->ninputs + 1, sizeof *m->own_bytes);
    m->own_dims = calloc(p->ninputs + 1, sizeof *m->own_dims);
    if (!m->own_params || !m->own_inputs || !m->own_bytes || !m->own_dims) return false;
    for (size_t i = 0; i < p->nparams; i++) m->own_params[i] = env->params[i];
    for (size_t i = 0; i < p->ninputs; i++) {
        if (fmc_input_is_bytes(&p->inputs[i])) m->own_bytes[i] = env->bytes[i];
        else m->own_inputs[i] = env->inputs[i];
        memcpy(m->own_dims[i], env->input_dims[i], sizeof m->own_dims[i]);
    }
    m->env = *env;
    m->env.params = m->own_params;
    m->env.inputs = m->own_inputs;
    m->env.bytes = m->own_bytes;
    m->env.input_dims = (const int64_t(*)[FMD_MAX_RANK])m->own_dims;
    return true;
}

fmc_blockmask *fmc_blockmask_build(const fmc_program *p, const fmc_env *env, int64_t block_q,
                                   int64_t block_kv, int64_t memory_budget, fmd_diags *diags,
                                   fmc_build_status *status) {
    fmc_build_limits limits = {.memory_budget = memory_budget};
    return fmc_blockmask_build_limited(p, env, block_q, block_kv, &limits, diags, status);
}

fmc_blockmask *fmc_blockmask_build_limited(const fmc_program *p, const fmc_env *env,
                                           int64_t block_q, int64_t block_kv,
                                           const fmc_build_limits *limits, fmd_diags *diags,
                                           fmc_build_status *status) {
    int64_t memory_budget = limits ? limits->memory_budget : 0;
    fmc_build_status dummy;
    if (!status) status = &dummy;
    *status = FMC_BUILD_INVALID;
    if (!p || !env || !diags) return NULL;
    if (block_q < 1 || block_kv < 1) {
        fmd_diag_add(diags, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL,
                     "block sizes must be positive (got %lld x %lld)", (long long)block_q,
                     (long long)block_kv);
        return NULL;
    }
    if (env->batch < 1 || env->heads < 1 || env->q_len < 1 || env->kv_len < 1) {
        fmc_env_validate(p, env, diags);
        return NULL;
    }
    if (!fmc_env_validate(p, env, diags)) {
        *status = FMC_BUILD_BINDING;
        return NULL;
    }
    int64_t nqb = (env->q_len - 1) / block_q + 1, nkvb = (env->kv_len - 1) / block_kv + 1;
    int64_t sb = p->reads_batch ? env->batch : 1, sh = p->reads_heads ? env->heads : 1;
    int64_t budget = memory_budget > 0 ? memory_budget : DEFAULT_BUDGET;
    __int128 rows = (__int128)sb * sh * nqb, trows = (__int128)sb * sh * nkvb;
    __int128 offsets = (rows + 1 + trows + 1) * 2 * (__int128)sizeof(int64_t);
    if (nqb > INT32_MAX || nkvb > INT32_MAX || offsets > budget) {
        *status = FMC_BUILD_LIMIT;
        fmd_diag_add(diags, FMD_ERROR, NULL, (fmd_span){0, 0},
                     "use larger blocks or raise the memory budget",
                     "a BlockMask with %lld x %lld tiles per slice and %lld stored slices "
                     "exceeds the memory budget of %lld bytes",
                     (long long)nqb, (long long)nkvb, (long long)(sb * sh), (long long)budget);
        return NULL;
    }
    fmc_blockmask *m = calloc(1, sizeof *m);
    fmc_bm_builder B = {.m = m, .p = p, .diags = diags, .budget = budget,
                        .max_evals = limits && limits->max_evaluations > 0 ? limits->max_evaluations : 0,
                        .list_bytes = (int64_t)offsets, .status = FMC_BUILD_OK};
    visitor V = {.B = &B, .m = m};
    fmc_rtab *tabs = NULL;
    bool ok = m && copy_env(m, p, env);
    if (ok) {
        m->batch = env->batch;
        m->heads = env->heads;
        m->q_len = env->q_len;
        m->kv_len = env->kv_len;
        m->block_q = block_q;
        m->block_kv = block_kv;
        m->nqb = nqb;
        m->nkvb = nkvb;
        m->bcast_batch = !p->reads_batch;
        m->bcast_heads = !p->reads_heads;
        m->stored_batch = sb;
        m->stored_heads = sh;
        m->program = p;
        int64_t lanes = block_kv < ROW_CHUNK ? block_kv : ROW_CHUNK;
        tabs = fmc_rtab_build(p, &m->env);
        V.scratch = malloc(fmc_row_scratch_bytes(p, lanes));
        V.row = malloc((size_t)lanes);
        ok = tabs && V.scratch && V.row && fmc_absint_init(&V.A, p, &m->env, tabs);
    }
    if (!ok) fail(&B, FMC_BUILD_NO_MEMORY);
    for (int64_t b = 0; ok && b < sb; b++)
        for (int64_t h = 0; ok && h < sh; h++) {
            V.b = b;
            V.h = h;
            V.slice = b * sh + h;
            ok = visit_slice(&V);
        }
    if (ok) ok = fmc_bm_assemble(&B);
    fmc_absint_free(&V.A);
    free(V.scratch);
    free(V.row);
    fmc_rtab_free(tabs);
    free(B.runs);
    if (!ok) {
        if (B.status == FMC_BUILD_OK) B.status = FMC_BUILD_NO_MEMORY;
        if (B.status == FMC_BUILD_NO_MEMORY)
            fmd_diag_add(diags, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL,
                         "out of memory while building the BlockMask");
        *status = B.status;
        fmc_blockmask_free(m);
        return NULL;
    }
    *status = FMC_BUILD_OK;
    return m;
}
