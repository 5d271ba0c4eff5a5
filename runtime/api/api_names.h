/* Messages for a name that a caller binds and nothing declares (what there
 * is instead, and the closest match through fmd_closest_name), and for an
 * input of the wrong size. */
#ifndef FM_RUNTIME_API_NAMES_H
#define FM_RUNTIME_API_NAMES_H

#include <stddef.h>

#include "compiler/ir.h"
#include "flexmask.h"

/* Records the error for binding param (input when `input`) `name`, which
 * mask p does not reach. The file's declarations decide the wording: a
 * declaration of that name the mask does not reach, one of another kind,
 * or none, with the declared names and a did-you-mean in the hint. Points
 * at the declaration concerned, else at the mask's. diags NULL: nothing. */
void fmr_unknown_binding(fm_diagnostics *diags, const fmc_program *p, const char *name, bool input);

/* The hint for an input bound with the wrong dims: what each dimension
 * named in input `info`'s declaration is for env ("KV_LEN is 8 here"). */
void fmr_input_dims_hint(const fmc_program *p, const fmc_input_info *info, const fmc_env *env,
                         char *buf, size_t cap);

#endif
