/* Operator tables and the lifetime of a lowered program. */
#include "compiler/ir.h"

#include <stdlib.h>

static const char *const op_names[] = {
#define X(name, nargs, unsafe) #name,
    FMC_OPS(X)
#undef X
};
static const signed char op_nargs[] = {
#define X(name, nargs, unsafe) nargs,
    FMC_OPS(X)
#undef X
};
static const bool op_unsafe[] = {
#define X(name, nargs, unsafe) unsafe,
    FMC_OPS(X)
#undef X
};

const char *fmc_op_name(fmc_op op) {
    return (unsigned)op < FMC_OP_COUNT ? op_names[op] : "?";
}

int fmc_op_nargs(fmc_op op) {
    return (unsigned)op < FMC_OP_COUNT ? op_nargs[op] : 0;
}

bool fmc_op_unsafe(fmc_op op) {
    return (unsigned)op < FMC_OP_COUNT && op_unsafe[op];
}

void fmc_program_free(fmc_program *p) {
    if (!p) return;
    free(p->mask_name);
    fmd_source_free(p->source);
    free(p->insns);
    free(p->arg_spans);
    for (size_t i = 0; i < p->nparams; i++) free(p->params[i].name);
    free(p->params);
    for (size_t i = 0; i < p->ninputs; i++) free(p->inputs[i].name);
    free(p->inputs);
    free(p);
}
