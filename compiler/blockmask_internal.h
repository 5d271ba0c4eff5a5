/* State shared by the region visitor (blockmask_build.c) and the list
 * assembly (blockmask.c). */
#ifndef FM_COMPILER_BLOCKMASK_INTERNAL_H
#define FM_COMPILER_BLOCKMASK_INTERNAL_H

#include "compiler/absint.h"
#include "compiler/blockmask.h"

/* Tiles kv0 .. kv1-1 of one stored row, all of one class, in the order the
 * visitor decided them (ascending kv within each row). */
typedef struct fmc_bm_run {
    int64_t row; /* stored row: (slice) * nqb + qb */
    int32_t kv0, kv1;
    uint8_t partial;
    int64_t ntrue; /* partial single tiles: true positions, -1 unknown */
} fmc_bm_run;

typedef struct fmc_bm_builder {
    fmc_blockmask *m;
    const fmc_program *p;
    fmd_diags *diags;
    int64_t budget;
    int64_t max_evals; /* 0: no bound */
    fmc_bm_run *runs;
    size_t nruns, cap;
    int64_t nfull, npartial; /* stored tiles so far */
    int64_t list_bytes;      /* offsets already reserved */
    fmc_build_status status;
} fmc_bm_builder;

/* Appends a run; false (status set) when memory or the budget runs out. */
bool fmc_bm_emit(fmc_bm_builder *B, int64_t row, int64_t kv0, int64_t kv1, bool partial,
                 int64_t ntrue);
/* Turns the runs into the row lists and their transpose; fills stats. */
bool fmc_bm_assemble(fmc_bm_builder *B);

#endif
