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
    free(p->row_slot);
    for (size_t i = 0; i < p->nparams; i++) free(p->params[i].name);
    free(p->params);
    for (size_t i = 0; i < p->ninputs; i++) free(p->inputs[i].name);
    free(p->inputs);
    free(p);
}

/* Linear-scan slot assignment: a value's row is freed after the last
 * instruction that reads it (never during it: the row loops write their
 * result through a restrict pointer). The result stays live to the end. */
bool fmc_program_assign_rows(fmc_program *p) {
    size_t n = p->count;
    int32_t *last = malloc((n + 1) * sizeof *last);
    int32_t *slot = malloc((n + 1) * sizeof *slot);
    int32_t *freed = malloc((n + 1) * sizeof *freed);
    /* dying[j]: head of the list of values whose last use is j (linked through next). */
    int32_t *dying = malloc((n + 1) * sizeof *dying);
    int32_t *next = malloc((n + 1) * sizeof *next);
    if (!last || !slot || !freed || !dying || !next) {
        free(last);
        free(slot);
        free(freed);
        free(dying);
        free(next);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        last[i] = (int32_t)i;
        dying[i] = -1;
    }
    for (size_t i = 0; i < n; i++) {
        const fmc_insn *x = &p->insns[i];
        if (x->guard >= 0) last[x->guard] = (int32_t)i;
        if (x->op != FMC_OP_CONST && x->op != FMC_OP_VAR && x->op != FMC_OP_PARAM)
            for (int k = 0; k < x->nargs; k++) last[x->args[k]] = (int32_t)i;
    }
    if (p->result >= 0 && (size_t)p->result < n) last[p->result] = (int32_t)n;
    for (size_t i = 0; i < n; i++)
        if ((size_t)last[i] < n) {
            next[i] = dying[last[i]];
            dying[last[i]] = (int32_t)i;
        }
    size_t nfree = 0, used = 0;
    for (size_t i = 0; i < n; i++) {
        slot[i] = nfree ? freed[--nfree] : (int32_t)used++;
        for (int32_t d = dying[i]; d >= 0; d = next[d]) freed[nfree++] = slot[d];
    }
    free(last);
    free(freed);
    free(dying);
    free(next);
    free(p->row_slot);
    p->row_slot = slot;
    p->nrow_slots = used;
    return true;
}
