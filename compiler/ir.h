/* The typed expression IR of one selected mask.
 *
 * A program is a flat list of instructions in SSA form: instruction i
 * computes register i from registers < i, so every evaluator is one loop
 * and nothing recurses. Lets and masks are lowered where they are used,
 * once (under the OR of their uses' guards) where that can be built;
 * common subexpressions are shared; literal arithmetic is folded.
 *
 * Short-circuit semantics (`&&`, `||`, `?:`) are carried by guards, not by
 * control flow: an instruction that can break a safety rule (an array read,
 * a division, arithmetic that can overflow) has a guard register, a bool
 * that is true exactly at the points where the spec says the operation is
 * evaluated. Where its guard is false the instruction is not evaluated and
 * its register reads 0. Safe instructions (constants, comparisons, min,
 * max, boolean logic) have no guard and may be computed everywhere.
 * So `x && y` lowers to: x; g = AND(guard, x); y's unsafe parts under g;
 * AND(x, y). */
#ifndef FM_COMPILER_IR_H
#define FM_COMPILER_IR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dsl/ast.h"
#include "dsl/diag.h"

/* X(NAME, number of register arguments (-1: the input's rank), may break a rule) */
#define FMC_OPS(X)                                                                                 \
    X(CONST, 0, false)  /* imm: the value (bools 0/1) */                                          \
    X(VAR, 0, false)    /* imm: an fmd_builtin_var (b, h, q, kv, Q_LEN, ...) */                   \
    X(PARAM, 0, false)  /* imm: the param's slot */                                               \
    X(NEG, 1, true)                                                                                \
    X(ABS, 1, true)                                                                                \
    X(ADD, 2, true)                                                                                \
    X(SUB, 2, true)                                                                                \
    X(MUL, 2, true)                                                                                \
    X(DIV, 2, true)     /* floor division */                                                       \
    X(MOD, 2, true)     /* floor remainder (sign of the divisor) */                                \
    X(MIN, 2, false)                                                                               \
    X(MAX, 2, false)                                                                               \
    X(EQ, 2, false)     /* ints or bools */                                                        \
    X(NE, 2, false)                                                                                \
    X(LT, 2, false)     /* a > b is lowered as LT(b, a) */                                        \
    X(LE, 2, false)                                                                                \
    X(NOT, 1, false)                                                                               \
    X(AND, 2, false)    /* plain conjunction of two computed bools */                             \
    X(OR, 2, false)                                                                                \
    X(SELECT, 3, false) /* args[0] ? args[1] : args[2] */                                         \
    X(LOAD, -1, true)   /* imm: the input's slot; args: one index per dimension */

typedef enum fmc_op {
#define X(name, nargs, unsafe) FMC_OP_##name,
    FMC_OPS(X)
#undef X
        FMC_OP_COUNT
} fmc_op;

typedef struct fmc_insn {
    uint8_t op;     /* fmc_op */
    uint8_t type;   /* FMD_TYPE_INT or FMD_TYPE_BOOL */
    uint8_t nargs;
    int32_t guard;  /* a BOOL register, or -1: always evaluated */
    int32_t args[FMD_MAX_RANK];
    int64_t imm;
    fmd_span span;  /* the source expression it came from (for messages) */
} fmc_insn;

/* How an input dimension is given. */
typedef struct fmc_dim {
    fmd_dim_kind kind; /* LITERAL: value; PARAM: param slot in value; SHAPE: fmd_builtin_var */
    int64_t value;
} fmc_dim;

typedef struct fmc_param_info {
    char *name;
    bool has_default;
    int64_t default_value;
    fmd_span span; /* the declaration's name, in the program's source */
} fmc_param_info;

typedef struct fmc_input_info {
    char *name;
    size_t rank;
    fmc_dim dims[FMD_MAX_RANK];
    fmd_span span; /* the declaration's name, in the program's source */
    /* Element width of the bound array: 4, int32 (every input a user
     * declares; lowering sets it); 1, uint8 (masks the runtime writes
     * itself, like a dense import, so a big 0/1 array costs one byte per
     * element). Any value but 1 reads as int32, so hand-built programs
     * that leave it 0 keep int32 inputs. */
    uint8_t elem_bytes;
} fmc_input_info;

/* A lowered mask. Self-contained: owns a copy of its source for messages. */
typedef struct fmc_program {
    char *mask_name;
    fmd_source *source;
    fmc_insn *insns;
    size_t count;
    int32_t result; /* the BOOL register holding the mask's value */
    /* Only the params and inputs the selected mask reaches get a slot. */
    fmc_param_info *params;
    size_t nparams;
    fmc_input_info *inputs;
    size_t ninputs;
    bool reads_batch, reads_heads; /* after folding: does the mask read b / h */
    /* Per instruction, the source span of each argument as written at the
     * occurrence that created the instruction (index expressions, divisors:
     * what messages quote). count entries; may be NULL in hand-built programs. */
    fmd_span (*arg_spans)[FMD_MAX_RANK];
    /* Row evaluator storage: instruction i's lanes live in row row_slot[i];
     * rows are reused once a value is dead, so nrow_slots is the most values
     * live at once. NULL in hand-built programs: one row per instruction. */
    int32_t *row_slot;
    size_t nrow_slots;
} fmc_program;

/* Fills row_slot / nrow_slots from liveness (fmc_lower does it); false when
 * memory runs out (the program then keeps one row per instruction). */
bool fmc_program_assign_rows(fmc_program *p);

/* Lowers mask `name` (NULL: the last mask) of a checked program. Returns
 * NULL with an error in diags when the mask does not exist or memory runs out. */
fmc_program *fmc_lower(const fmd_program *prog, const char *name, fmd_diags *diags);
/* Why fmc_lower_why returned NULL (FMC_LOWER_OK when it did not). */
typedef enum fmc_lower_failure {
    FMC_LOWER_OK,
    FMC_LOWER_INVALID,   /* no such mask, or the mask is not a checked bool */
    FMC_LOWER_LIMIT,     /* too large once lowered (lowering limits) */
    FMC_LOWER_NO_MEMORY,
} fmc_lower_failure;
/* fmc_lower, also saying why it failed (why may be NULL). */
fmc_program *fmc_lower_why(const fmd_program *prog, const char *name, fmd_diags *diags,
                           fmc_lower_failure *why);
void fmc_program_free(fmc_program *p);
const char *fmc_op_name(fmc_op op);
int fmc_op_nargs(fmc_op op); /* -1 for LOAD */
bool fmc_op_unsafe(fmc_op op);

/* Concrete values for one build: shape, params by slot, inputs by slot
 * (C order, dims resolved). An int32 input's array is inputs[slot]; a
 * byte input's (elem_bytes 1) is bytes[slot], a table of its own so no
 * byte address ever passes through an int32 pointer. Either table may be
 * NULL when no input of its width exists. */
typedef struct fmc_env {
    int64_t batch, heads, q_len, kv_len;
    const int64_t *params;           /* nparams values */
    const int32_t *const *inputs;    /* ninputs arrays */
    const int64_t (*input_dims)[FMD_MAX_RANK]; /* ninputs x rank sizes */
    const uint8_t *const *bytes;     /* ninputs arrays, read for byte inputs only */
} fmc_env;

static inline bool fmc_input_is_bytes(const fmc_input_info *in) {
    return in->elem_bytes == 1;
}

/* Bytes per element of an input's array: 1 or 4. */
static inline size_t fmc_input_elem_size(const fmc_input_info *in) {
    return fmc_input_is_bytes(in) ? 1 : sizeof(int32_t);
}

/* Input slot's array in env, whatever its width; NULL when not bound. */
static inline const void *fmc_env_input_data(const fmc_program *p, const fmc_env *env,
                                             size_t slot) {
    if (fmc_input_is_bytes(&p->inputs[slot])) return env->bytes ? env->bytes[slot] : NULL;
    return env->inputs ? env->inputs[slot] : NULL;
}

/* Element `flat` (row-major) of input slot's array, widened to int32. */
static inline int32_t fmc_env_input_at(const fmc_program *p, const fmc_env *env, size_t slot,
                                       int64_t flat) {
    if (fmc_input_is_bytes(&p->inputs[slot])) return env->bytes[slot][flat];
    return env->inputs[slot][flat];
}

/* Checks env against p before a build (fmc_blockmask_build calls it):
 * positive shape, inputs present with the declared dimensions (literal,
 * param or shape dims resolved, none negative). Errors name the input and
 * point at its declaration. Param values are taken as given: the caller
 * resolves defaults and reports a param that has no value. */
bool fmc_env_validate(const fmc_program *p, const fmc_env *env, fmd_diags *diags);
/* "d0, d1, ..." of an input's dims, for binding messages (cut at cap). */
void fmc_dims_text(char *buf, size_t cap, const int64_t *dims, size_t rank);

/* The value of dimension d of an input for env (params by slot). */
int64_t fmc_dim_value(const fmc_dim *d, const fmc_env *env);

/* True when every integer value the mask computes at an evaluated point,
 * over the whole shape of env, lies in the signed 32-bit range (proved by
 * the abstract interpreter over the whole domain; false when unsure). */
bool fmc_program_fits_int32(const fmc_program *p, const fmc_env *env);

typedef enum fmc_violation_kind {
    FMC_VIOLATION_NONE,
    FMC_VIOLATION_INDEX,     /* an index outside its dimension */
    FMC_VIOLATION_DIV_ZERO,  /* a zero divisor or modulus */
    FMC_VIOLATION_OVERFLOW   /* a value outside the signed 64-bit range */
} fmc_violation_kind;

/* One point that breaks a safety rule. */
typedef struct fmc_violation {
    fmc_violation_kind kind;
    int32_t insn;        /* the offending instruction */
    int arg;             /* for INDEX: which index (0-based) */
    int64_t value;       /* for INDEX: the index value */
    int64_t limit;       /* for INDEX: the dimension's size */
    int64_t b, h, q, kv; /* the point */
} fmc_violation;

/* Writes the spec's message for v ("index kv+1 of 'doc' reaches 2048 at
 * q=2047, kv=2047, but 'doc' has length 2048") as a located error. */
void fmc_report_violation(const fmc_program *p, const fmc_env *env, const fmc_violation *v,
                          fmd_diags *diags);

#endif
