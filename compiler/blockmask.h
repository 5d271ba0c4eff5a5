/* The BlockMask: for each stored (b, h, query block) the ascending lists of
 * full and partial key/value blocks, and the transpose (for each kv block,
 * the query blocks), in compressed-row form. Storage follows the number of
 * non-empty tiles. A mask that never reads b (or h) stores one batch (head)
 * slice for all. */
#ifndef FM_COMPILER_BLOCKMASK_H
#define FM_COMPILER_BLOCKMASK_H

#include <stdbool.h>
#include <stdint.h>

#include "compiler/ir.h"

typedef struct fmc_bm_stats {
    int64_t full, partial, empty; /* tiles over every batch and head */
    int64_t evaluations;          /* point evaluations of the predicate */
    int64_t regions_decided;      /* regions (of one or more tiles) decided by analysis */
    int64_t tiles_by_analysis;    /* stored tiles whose class analysis proved */
    int64_t tiles_by_points;      /* stored tiles settled by point evaluation */
    int64_t true_positions;       /* over every batch and head */
    int64_t bytes;                /* storage of the lists and offsets */
} fmc_bm_stats;

/* Compressed lists: row r's entries are idx[off[r] .. off[r+1]). */
typedef struct fmc_bm_lists {
    int64_t *off; /* nrows + 1 */
    int32_t *idx;
} fmc_bm_lists;

typedef struct fmc_blockmask {
    int64_t batch, heads, q_len, kv_len;
    int64_t block_q, block_kv;
    int64_t nqb, nkvb;            /* ceil(q_len / block_q), ceil(kv_len / block_kv) */
    bool bcast_batch, bcast_heads;
    int64_t stored_batch, stored_heads; /* 1 where broadcast */
    /* Rows: r = (sb * stored_heads + sh) * nqb + qb. */
    fmc_bm_lists full, partial;
    /* Transpose rows: r = (sb * stored_heads + sh) * nkvb + kvb; lists of q blocks. */
    fmc_bm_lists t_full, t_partial;
    fmc_bm_stats stats;
    /* What partial tiles are evaluated with: the program and the bound
     * values (params copied; input arrays owned by the blockmask's
     * creator, see the public API). */
    const fmc_program *program;
    fmc_env env;
    /* Owned copies behind env (params, the input pointer table, dims). */
    int64_t *own_params;
    const int32_t **own_inputs;
    const uint8_t **own_bytes; /* byte inputs' arrays (see fmc_env.bytes) */
    int64_t (*own_dims)[FMD_MAX_RANK];
    /* Per entry of partial.idx: the tile's true positions, -1 when the
     * build did not count them (see fmc_blockmask_count_true). */
    int64_t *partial_true;
} fmc_blockmask;

typedef enum fmc_build_status {
    FMC_BUILD_OK,
    FMC_BUILD_SAFETY,    /* some evaluated point breaks a safety rule (message in diags) */
    FMC_BUILD_LIMIT,     /* the lists would exceed memory_budget, or too many blocks */
    FMC_BUILD_BINDING,   /* an input's dims do not match its declaration */
    FMC_BUILD_INVALID,   /* bad shape or block sizes */
    FMC_BUILD_NO_MEMORY
} fmc_build_status;

/* Builds the BlockMask of p for env's shape, params and inputs with
 * block_q x block_kv tiles. memory_budget bounds the bytes of the lists
 * (offsets, indices, transpose); <= 0 means 1 GiB. Tiles are decided by
 * abstract interpretation over regions (large regions first, split where
 * undecided) and point evaluation of the tiles analysis leaves open, so
 * the work follows the number of non-empty tiles and the length of the
 * true/false boundary. Safety is exact: the build fails with a located
 * message (status FMC_BUILD_SAFETY) iff some evaluated point breaks a rule.
 * The BlockMask copies params and dims; it borrows p and the input arrays,
 * which must outlive it. Returns NULL with *status and a message in diags
 * on failure. true_positions in the stats is -1 when some partial tile was
 * decided without counting; fmc_blockmask_count_true fills it in. */
fmc_blockmask *fmc_blockmask_build(const fmc_program *p, const fmc_env *env, int64_t block_q,
                                   int64_t block_kv, int64_t memory_budget, fmd_diags *diags,
                                   fmc_build_status *status);

/* Bounds on one build's work and memory; 0 in a field means its default
 * (memory: 1 GiB; evaluations: no bound). */
typedef struct fmc_build_limits {
    int64_t memory_budget;   /* bytes of the lists */
    int64_t max_evaluations; /* point evaluations of the predicate */
} fmc_build_limits;

/* fmc_blockmask_build with both bounds: a build that would evaluate the
 * predicate at more than max_evaluations positions stops with
 * FMC_BUILD_LIMIT and a message naming the bound (untrusted masks or files
 * can otherwise ask for an arbitrarily long exact build). */
fmc_blockmask *fmc_blockmask_build_limited(const fmc_program *p, const fmc_env *env,
                                           int64_t block_q, int64_t block_kv,
                                           const fmc_build_limits *limits, fmd_diags *diags,
                                           fmc_build_status *status);
void fmc_blockmask_free(fmc_blockmask *m);

/* Counts the true positions of the partial tiles the build left uncounted
 * (evaluating them row by row; these evaluations are not added to
 * stats.evaluations, which reports the build's own work), updates
 * stats.true_positions and returns it; -1 when memory runs out. */
int64_t fmc_blockmask_count_true(fmc_blockmask *m);

static inline int64_t fmc_bm_row(const fmc_blockmask *m, int64_t b, int64_t h, int64_t qb) {
    int64_t sb = m->bcast_batch ? 0 : b, sh = m->bcast_heads ? 0 : h;
    return (sb * m->stored_heads + sh) * m->nqb + qb;
}


#endif
