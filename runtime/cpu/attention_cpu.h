/* CPU attention forward over a BlockMask (the runtime behind the public
 * fm_attention_cpu, and the reference the GPU kernels are checked against).
 *
 * Flash-style: each (b, h, query block) is one task, run by one thread, that
 * walks the non-empty tiles of its row once in ascending kv order with an
 * online softmax. Full tiles never evaluate the mask; partial tiles evaluate
 * it row by row through fmc_eval_row. Because a task's arithmetic does not
 * depend on which thread runs it, results are bit-for-bit the same for any
 * thread count. */
#ifndef FM_RUNTIME_ATTENTION_CPU_H
#define FM_RUNTIME_ATTENTION_CPU_H

#include <stdbool.h>
#include <stdint.h>

#include "compiler/blockmask.h"
#include "runtime/cpu/tile_bits.h"
#include "dsl/diag.h"
#include "flexmask.h"

/* Which inner kernels run. AUTO takes AVX2/FMA when the CPU has it, unless
 * the environment variable FLEXMASK_CPU_ISA says "portable" (or "avx2",
 * "auto"); tests force each path so neither goes untested. */
typedef enum fmr_isa { FMR_ISA_AUTO, FMR_ISA_PORTABLE, FMR_ISA_AVX2 } fmr_isa;

/* Whether this CPU can run the AVX2/FMA kernels. */
bool fmr_cpu_has_avx2(void);

/* Runs attention over bm (args->mask is not read: bm is the BlockMask).
 * Every argument is validated; errors go to diags (no source location).
 * *mask_evaluations (when not NULL) receives the number of (q, kv)
 * positions at which the mask predicate was evaluated: exactly the
 * positions inside partial tiles. The ISA comes from FLEXMASK_CPU_ISA. */
fm_status fmr_attention_cpu(const fmc_blockmask *bm, const fm_attention_args *args,
                            fmd_diags *diags, int64_t *mask_evaluations);

/* The same with the ISA chosen by the caller (FMR_ISA_AVX2 on a CPU without
 * it is FM_ERR_UNSUPPORTED; FMR_ISA_AUTO still honours FLEXMASK_CPU_ISA). */
fm_status fmr_attention_cpu_isa(const fmc_blockmask *bm, const fm_attention_args *args, fmr_isa isa,
                                fmd_diags *diags, int64_t *mask_evaluations);

/* The argument checks of the calls below (shapes against the BlockMask,
 * dtypes, strides, head dims), with their messages; FM_OK when they pass. */
fm_status fmr_attention_cpu_check(const fmc_blockmask *bm, const fm_attention_args *args,
                                  fmd_diags *diags);

/* The same, reading partial tiles from bits (fmr_tile_bits_build of this
 * bm) instead of evaluating the mask; bits NULL (or holding none) is
 * fmr_attention_cpu_isa. *mask_evaluations then counts only evaluations
 * made here: 0 with bits. */
fm_status fmr_attention_cpu_tiles(const fmc_blockmask *bm, const fmr_tile_bits *bits,
                                  const fm_attention_args *args, fmr_isa isa, fmd_diags *diags,
                                  int64_t *mask_evaluations);

#endif
