/* CUDA C code generation for a lowered mask.
 *
 * The output is one self-contained text: a prelude (integer types, the
 * spec's floor division, the mask environment struct that a kernel's
 * params carry) and a device function
 *
 *     FM_DEVICE int fm_mask_eval(const fm_mask_env *e,
 *                                fm_int b, fm_int h, fm_int q, fm_int kv);
 *
 * computing the mask as flat straight-line code: one statement per IR
 * instruction, guarded instructions as `rN = gM ? op : 0`. Shapes, param
 * values and input arrays are read from the environment, so the text
 * depends only on the mask (with its inputs' element widths: int32, or
 * bytes for the runtime's dense imports) and one compiled kernel serves
 * every shape.
 *
 * The same text compiles as host C11: FM_DEVICE defaults to `static inline`
 * and the arithmetic type is a macro switch (define FM_MASK_INT32 before the
 * text for 32-bit arithmetic, used only when fmc_program_fits_int32 says
 * every value fits for the shape). Arithmetic goes through unsigned types,
 * so even a value the analysis did not bound never triggers undefined
 * behaviour in the generated code. */
#ifndef FM_COMPILER_CODEGEN_CUDA_H
#define FM_COMPILER_CODEGEN_CUDA_H

#include <stdbool.h>
#include <stddef.h>

#include "compiler/ir.h"
#include "dsl/diag.h"

/* Capacity of the environment struct (fixed so the struct, and with it the
 * kernel's params struct, has one layout for every mask). */
#define FMC_CUDA_MAX_PARAMS 64
#define FMC_CUDA_MAX_INPUTS 8

/* Name of the generated predicate and of the environment struct. */
#define FMC_CUDA_MASK_FN "fm_mask_eval"

/* Generates the text for p. Returns a malloc'd NUL-terminated string and
 * its length in *len (may be NULL), or NULL with an error in diags (NULL
 * diags allowed) when the mask needs more params or inputs than the
 * environment holds or memory runs out. */
char *fmc_codegen_cuda(const fmc_program *p, size_t *len, fmd_diags *diags);

/* The host-side mirror of the generated environment struct, with the same
 * layout (C11 on the host and CUDA on the device use the same rules for
 * these member types). The runtime fills it from an fmc_env. */
typedef struct fmc_cuda_mask_env {
    long long batch, heads, q_len, kv_len;
    long long params[FMC_CUDA_MAX_PARAMS];
    /* Device (or host) addresses of int32 or, for byte inputs, uint8 arrays. */
    const void *inputs[FMC_CUDA_MAX_INPUTS];
    long long dims[FMC_CUDA_MAX_INPUTS][FMD_MAX_RANK];
} fmc_cuda_mask_env;

/* Fills env's shape, params and dims from a concrete environment (input
 * pointers are left NULL: the caller stores addresses it owns). Returns
 * false when p needs more params or inputs than the struct holds. */
bool fmc_cuda_fill_env(const fmc_program *p, const fmc_env *env, fmc_cuda_mask_env *out);

#endif
