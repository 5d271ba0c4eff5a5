/* PyTorch code generation for a lowered mask: the mask as Python source
 * over torch tensor operations, for torch's flex_attention `mask_mod`.
 *
 * The text defines one factory
 *
 *     def fm_make_mask_mod(torch, P, I, D, SHAPE) -> mask_mod
 *
 * P: the param values by slot (ints); I: the input arrays by slot, each a
 * flat (C order) integer tensor; D: the inputs' dims by slot (tuples of
 * ints); SHAPE: (batch, heads, q_len, kv_len). The returned
 * mask_mod(b, h, q_idx, kv_idx) takes integer tensors of any shape (torch
 * calls it under vmap, eager or compiled) and returns a bool tensor.
 *
 * Semantics are the evaluator's: int64 wrapping arithmetic, floor division
 * and remainder with the divisor's sign, and guards carried by torch.where,
 * so an instruction whose guard is false reads 0. Tensors evaluate both
 * sides of a where, so the unsafe operations are made harmless everywhere:
 * divisors of 0 or -1 are replaced before dividing (-1 is a negation), and
 * array indices are clamped into the array; only the values at points the
 * guard selects are kept, and those are exact. */
#ifndef FM_COMPILER_CODEGEN_TORCH_H
#define FM_COMPILER_CODEGEN_TORCH_H

#include <stddef.h>

#include "compiler/ir.h"
#include "dsl/diag.h"

#define FMC_TORCH_FACTORY "fm_make_mask_mod"

/* Returns a malloc'd NUL-terminated string (length in *len, may be NULL),
 * or NULL with an error in diags (NULL allowed) on malformed IR or when
 * memory runs out. */
char *fmc_codegen_torch(const fmc_program *p, size_t *len, fmd_diags *diags);

#endif
