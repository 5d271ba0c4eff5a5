/* The naive attention reference the tests check the runtimes against:
 * dense over every (q, kv) position, the mask evaluated point by point
 * with fmc_eval_point, all arithmetic in float64. Used only by tests. */
#ifndef FM_TESTS_REF_ATTENTION_H
#define FM_TESTS_REF_ATTENTION_H

#include <stdbool.h>
#include <stdint.h>

#include "compiler/blockmask.h"
#include "flexmask.h"

/* Element (i0, i1, i2, i3) of t, widened to double. */
double ref_tensor_get(const fm_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3);
/* Stores v into element (i0, i1, i2, i3) of t, rounded to t's dtype. */
void ref_tensor_set(fm_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3, double v);

/* Attention of args->q, k, v (shapes, strides and dtypes as in
 * fm_attention_args; args->out is not used) under the mask of bm. Writes
 * out as a contiguous [BATCH, HEADS, Q_LEN, D] array and lse as
 * [BATCH, HEADS, Q_LEN] (natural log; -inf and zero output for a row with
 * no true position or only -inf scores; NaN output for a row with a NaN or
 * +inf score at a true position, and LSE NaN if one is NaN, else +inf; a
 * score past the float32 range counts as infinite). When true_count is not NULL it receives the number of
 * true positions over every (b, h). Returns false when a point breaks a
 * safety rule. */
bool ref_attention(const fmc_blockmask *bm, const fm_attention_args *args, double *out, double *lse,
                   int64_t *true_count);

#endif
