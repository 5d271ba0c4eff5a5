/* Concrete evaluation of a lowered mask: at one point, and along a row of
 * key/value positions (the tile evaluator partial tiles use). Both respect
 * guards exactly as the spec's short-circuit rules say, and report the
 * first point that breaks a safety rule instead of computing garbage. */
#ifndef FM_COMPILER_EVAL_H
#define FM_COMPILER_EVAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compiler/ir.h"

/* Evaluates the mask at (b, h, q, kv). regs is scratch of p->count int64s.
 * Returns true and sets *value, or false and fills *v when the point breaks
 * a safety rule. */
bool fmc_eval_point(const fmc_program *p, const fmc_env *env, int64_t b, int64_t h, int64_t q,
                    int64_t kv, int64_t *regs, bool *value, fmc_violation *v);

/* Bytes of scratch fmc_eval_row needs for rows of up to n positions. */
size_t fmc_row_scratch_bytes(const fmc_program *p, int64_t n);

/* Evaluates the mask at (b, h, q, kv0 + i) for i in [0, n) into out[i]
 * (0 or 1), vectorised along kv. Returns false and fills *v at the first
 * point (in kv order) that breaks a safety rule. */
bool fmc_eval_row(const fmc_program *p, const fmc_env *env, int64_t b, int64_t h, int64_t q,
                  int64_t kv0, int64_t n, uint8_t *out, void *scratch, fmc_violation *v);

#endif
