/* Lowering a checked AST to the guarded SSA IR, second half: the
 * expression machine, lets, and building the program.
 *
 * Expressions are lowered with an explicit work stack (a let's body is
 * lowered where it is first used, so the nesting of lets composes, and the
 * C stack must not follow it). Lets and masks are memoized per
 * (declaration, guard), and each is lowered under the widest guard its
 * uses allow (lower_reach.c), so a let is normally lowered once. An operand
 * that is evaluated is never dropped, so dead-code elimination at the end
 * cannot remove a safety check. Instruction emission and sharing:
 * lower_emit.c. */
#include <stdlib.h>
#include <string.h>

#include "compiler/lower_internal.h"

/* ---- lets and masks: memoized per (declaration, guard) ------------------ */

static int32_t memo_find(const lowerer *L, const fmd_decl *d, int32_t guard) {
    int32_t e = L->memo_head[d->kind][d->index];
    for (int n = 0; e >= 0 && n < MEMO_SCAN; e = L->memo[e].next, n++)
        if (fmc_lw_implies(L, guard, L->memo[e].guard)) return L->memo[e].reg;
    return -1;
}

static void memo_add(lowerer *L, const fmd_decl *d, int32_t guard, int32_t reg) {
    if (L->nmemo == L->memocap) {
        size_t ncap = L->memocap ? L->memocap * 2 : 64;
        memo_entry *n = realloc(L->memo, ncap * sizeof *n);
        if (!n) return; /* only a cache */
        L->memo = n;
        L->memocap = ncap;
    }
    memo_entry *m = &L->memo[L->nmemo];
    m->guard = guard;
    m->reg = reg;
    m->next = L->memo_head[d->kind][d->index];
    L->memo_head[d->kind][d->index] = (int32_t)L->nmemo++;
}

/* ---- the expression machine --------------------------------------------- */

enum { STEP_DONE, STEP_PUSH, STEP_FAIL };

static fmd_span join(fmd_span a, fmd_span b) {
    fmd_span s = {a.start < b.start ? a.start : b.start, a.end > b.end ? a.end : b.end};
    return s;
}

static int32_t combine(lowerer *L, fmd_binop op, int32_t a, int32_t b, int32_t guard,
                       fmd_span span, fmd_span as, fmd_span bs) {
    switch (op) {
    case FMD_OP_AND: return fmc_lw_emit2(L, FMC_OP_AND, FMD_TYPE_BOOL, a, b, guard, span, as, bs);
    case FMD_OP_OR: return fmc_lw_emit2(L, FMC_OP_OR, FMD_TYPE_BOOL, a, b, guard, span, as, bs);
    case FMD_OP_EQ: return fmc_lw_emit2(L, FMC_OP_EQ, FMD_TYPE_BOOL, a, b, guard, span, as, bs);
    case FMD_OP_NE: return fmc_lw_emit2(L, FMC_OP_NE, FMD_TYPE_BOOL, a, b, guard, span, as, bs);
    case FMD_OP_LT: return fmc_lw_emit2(L, FMC_OP_LT, FMD_TYPE_BOOL, a, b, guard, span, as, bs);
    case FMD_OP_LE: return fmc_lw_emit2(L, FMC_OP_LE, FMD_TYPE_BOOL, a, b, guard, span, as, bs);
    case FMD_OP_GT: return fmc_lw_emit2(L, FMC_OP_LT, FMD_TYPE_BOOL, b, a, guard, span, bs, as);
    case FMD_OP_GE: return fmc_lw_emit2(L, FMC_OP_LE, FMD_TYPE_BOOL, b, a, guard, span, bs, as);
    case FMD_OP_ADD: return fmc_lw_emit2(L, FMC_OP_ADD, FMD_TYPE_INT, a, b, guard, span, as, bs);
    case FMD_OP_SUB: return fmc_lw_emit2(L, FMC_OP_SUB, FMD_TYPE_INT, a, b, guard, span, as, bs);
    case FMD_OP_MUL: return fmc_lw_emit2(L, FMC_OP_MUL, FMD_TYPE_INT, a, b, guard, span, as, bs);
    case FMD_OP_DIV: return fmc_lw_emit2(L, FMC_OP_DIV, FMD_TYPE_INT, a, b, guard, span, as, bs);
    case FMD_OP_MOD: return fmc_lw_emit2(L, FMC_OP_MOD, FMD_TYPE_INT, a, b, guard, span, as, bs);
    default: return -1;
    }
}

static int step_fail(lowerer *L, const fmd_expr *e, const char *what) {
    if (!L->bad)
        fmd_diag_add(L->diags, FMD_ERROR, L->ast->source, e->span, NULL,
                     "internal error: cannot lower %s (was the program checked?)", what);
    L->bad = true;
    return STEP_FAIL;
}

static int step(lowerer *L, frame *f, int32_t ret, int32_t *out, const fmd_expr **child,
                int32_t *child_guard) {
    const fmd_expr *e = f->e;
    if (f->stage == 0) {
        if (f->guard == GUARD_FALSE) {
            *out = fmc_lw_emit_const(L, e->type == FMD_TYPE_BOOL ? FMD_TYPE_BOOL : FMD_TYPE_INT, 0,
                              e->span);
            return STEP_DONE;
        }
        bool param_name = e->kind == FMD_EXPR_NAME && e->u.name.ref == FMD_REF_DECL &&
                          e->u.name.decl && e->u.name.decl->kind == FMD_DECL_PARAM;
        if (e->is_const && !param_name &&
            (e->type == FMD_TYPE_INT || e->type == FMD_TYPE_BOOL)) {
            *out = fmc_lw_emit_const(L, e->type, e->const_value, e->span);
            return STEP_DONE;
        }
    }
    switch (e->kind) {
    case FMD_EXPR_INT:
        if (e->u.lit.overflow || e->u.lit.magnitude > (uint64_t)INT64_MAX)
            return step_fail(L, e, "an out-of-range literal");
        *out = fmc_lw_emit_const(L, FMD_TYPE_INT, (int64_t)e->u.lit.magnitude, e->span);
        return STEP_DONE;
    case FMD_EXPR_BOOL:
        *out = fmc_lw_emit_const(L, FMD_TYPE_BOOL, e->u.boolean, e->span);
        return STEP_DONE;
    case FMD_EXPR_NAME: {
        if (e->u.name.ref == FMD_REF_BUILTIN) {
            fmc_insn x = {.op = FMC_OP_VAR, .type = FMD_TYPE_INT, .guard = GUARD_NONE,
                          .imm = e->u.name.var, .span = e->span};
            *out = fmc_lw_emit_raw(L, &x, NULL);
            return STEP_DONE;
        }
        const fmd_decl *d = e->u.name.decl;
        if (e->u.name.ref != FMD_REF_DECL || !d) return step_fail(L, e, "an unresolved name");
        if (d->kind == FMD_DECL_PARAM) {
            fmc_insn x = {.op = FMC_OP_PARAM, .type = FMD_TYPE_INT, .guard = GUARD_NONE,
                          .imm = (int64_t)d->index, .span = e->span};
            *out = fmc_lw_emit_raw(L, &x, NULL);
            return STEP_DONE;
        }
        if (d->kind != FMD_DECL_LET && d->kind != FMD_DECL_MASK)
            return step_fail(L, e, "an input used as a value");
        if (!d->expr) return step_fail(L, e, "a declaration without an expression");
        if (L->junk) { /* a condition for a reach guard: see reach_value */
            int32_t m = -1;
            if (d == L->junk)
                m = fmc_lw_emit_const(L, e->type == FMD_TYPE_BOOL ? FMD_TYPE_BOOL : FMD_TYPE_INT,
                                      0, e->span);
            else if ((m = memo_find(L, d, f->guard)) < 0 && L->nest < REACH_NEST_MAX) {
                const fmd_decl *junk = L->junk;
                L->junk = NULL;
                L->nest++;
                m = fmc_lw_lower_nested(L, d->expr, f->guard);
                L->nest--;
                L->junk = junk;
                if (m >= 0) memo_add(L, d, f->guard, m);
            }
            if (m < 0) {
                if (L->oom || L->too_big || L->bad) return STEP_FAIL;
                L->junk_miss = true;
                m = fmc_lw_emit_const(L, e->type == FMD_TYPE_BOOL ? FMD_TYPE_BOOL : FMD_TYPE_INT,
                                      0, e->span);
            }
            *out = m;
            return STEP_DONE;
        }
        if (f->stage == 0) {
            int32_t m = memo_find(L, d, f->guard);
            if (m < 0) {
                f->tmp[0] = fmc_lw_widest_guard(L, d, f->guard);
                if (f->tmp[0] != f->guard) m = memo_find(L, d, f->tmp[0]);
            }
            if (m >= 0) {
                *out = m;
                return STEP_DONE;
            }
            f->stage = 1;
            *child = d->expr;
            *child_guard = f->tmp[0];
            return STEP_PUSH;
        }
        memo_add(L, d, f->tmp[0], ret);
        *out = ret;
        return STEP_DONE;
    }
    case FMD_EXPR_UNARY:
        if (f->stage == 0) {
            f->stage = 1;
            *child = e->u.unary.operand;
            *child_guard = f->guard;
            return STEP_PUSH;
        }
        if (e->u.unary.op == FMD_UNOP_NEG)
            *out = fmc_lw_emit1(L, FMC_OP_NEG, FMD_TYPE_INT, ret, f->guard, e->span,
                         e->u.unary.operand->span);
        else
            *out = fmc_lw_emit1(L, FMC_OP_NOT, FMD_TYPE_BOOL, ret, f->guard, e->span,
                         e->u.unary.operand->span);
        return STEP_DONE;
    case FMD_EXPR_CHAIN: {
        fmd_expr *const *ops = e->u.chain.operands;
        if (f->stage == 0) {
            if (e->u.chain.count < 1) return step_fail(L, e, "an empty chain");
            f->stage = 1;
            f->i = 0;
            *child = ops[0];
            *child_guard = f->guard;
            return STEP_PUSH;
        }
        size_t i = f->i;
        fmd_span acc_span = {ops[0]->span.start, i > 0 ? ops[i - 1]->span.end : ops[0]->span.end};
        if (i == 0) f->acc = ret;
        else
            f->acc = combine(L, e->u.chain.ops[i - 1], f->acc, ret, f->guard,
                             join(acc_span, ops[i]->span), acc_span, ops[i]->span);
        if (f->acc < 0) return STEP_FAIL;
        f->i = ++i;
        if (i >= e->u.chain.count) {
            *out = f->acc;
            return STEP_DONE;
        }
        int32_t g = f->guard;
        int64_t c;
        fmd_span sofar = {ops[0]->span.start, ops[i - 1]->span.end};
        if (e->u.chain.prec == FMD_PREC_AND) {
            if (fmc_lw_is_const(L, f->acc, &c)) {
                if (!c) {
                    *out = f->acc;
                    return STEP_DONE;
                }
            } else {
                g = fmc_lw_make_guard(L, g, f->acc, sofar);
            }
        } else if (e->u.chain.prec == FMD_PREC_OR) {
            if (fmc_lw_is_const(L, f->acc, &c)) {
                if (c) {
                    *out = f->acc;
                    return STEP_DONE;
                }
            } else {
                int32_t n = fmc_lw_emit1(L, FMC_OP_NOT, FMD_TYPE_BOOL, f->acc, GUARD_NONE, sofar, sofar);
                g = fmc_lw_make_guard(L, g, n, sofar);
            }
        }
        if (g == GUARD_ERROR) return STEP_FAIL;
        *child = ops[i];
        *child_guard = g;
        return STEP_PUSH;
    }
    case FMD_EXPR_COND:
        switch (f->stage) {
        case 0:
            f->stage = 1;
            *child = e->u.cond.cond;
            *child_guard = f->guard;
            return STEP_PUSH;
        case 1: {
            int64_t c;
            f->tmp[0] = ret;
            if (fmc_lw_is_const(L, ret, &c)) {
                f->stage = 4;
                *child = c ? e->u.cond.then_expr : e->u.cond.else_expr;
                *child_guard = f->guard;
                return STEP_PUSH;
            }
            f->stage = 2;
            *child = e->u.cond.then_expr;
            *child_guard = fmc_lw_make_guard(L, f->guard, ret, e->u.cond.cond->span);
            return *child_guard == GUARD_ERROR ? STEP_FAIL : STEP_PUSH;
        }
        case 2: {
            f->tmp[1] = ret;
            f->stage = 3;
            int32_t n = fmc_lw_emit1(L, FMC_OP_NOT, FMD_TYPE_BOOL, f->tmp[0], GUARD_NONE,
                              e->u.cond.cond->span, e->u.cond.cond->span);
            *child = e->u.cond.else_expr;
            *child_guard = fmc_lw_make_guard(L, f->guard, n, e->u.cond.cond->span);
            return *child_guard == GUARD_ERROR ? STEP_FAIL : STEP_PUSH;
        }
        case 3: {
            int32_t args[3] = {f->tmp[0], f->tmp[1], ret};
            fmd_span sp[3] = {e->u.cond.cond->span, e->u.cond.then_expr->span,
                              e->u.cond.else_expr->span};
            *out = fmc_lw_emit(L, FMC_OP_SELECT, e->type, args, 3, 0, GUARD_NONE, e->span, sp);
            return STEP_DONE;
        }
        default: *out = ret; return STEP_DONE;
        }
    case FMD_EXPR_CALL:
    case FMD_EXPR_INDEX: {
        bool call = e->kind == FMD_EXPR_CALL;
        size_t n = call ? e->u.call.count : e->u.index.count;
        fmd_expr *const *args = call ? e->u.call.args : e->u.index.indices;
        if (n < 1 || n > FMD_MAX_RANK) return step_fail(L, e, "a call or read of this arity");
        if (f->stage > 0) f->tmp[f->i++] = ret;
        else f->i = 0;
        if (f->i < n) {
            f->stage = 1;
            *child = args[f->i];
            *child_guard = f->guard;
            return STEP_PUSH;
        }
        fmd_span sp[FMD_MAX_RANK];
        for (size_t k = 0; k < n; k++) sp[k] = args[k]->span;
        if (!call) {
            const fmd_decl *d = e->u.index.decl;
            if (!d || d->kind != FMD_DECL_INPUT || d->rank != n)
                return step_fail(L, e, "an array read");
            *out = fmc_lw_emit(L, FMC_OP_LOAD, FMD_TYPE_INT, f->tmp, (int)n, (int64_t)d->index, f->guard,
                        e->span, sp);
            return STEP_DONE;
        }
        fmc_op op;
        switch (e->u.call.fn) {
        case FMD_FN_MIN: op = FMC_OP_MIN; break;
        case FMD_FN_MAX: op = FMC_OP_MAX; break;
        default: op = FMC_OP_ABS; break;
        }
        if (n != (size_t)fmc_op_nargs(op)) return step_fail(L, e, "a call of this arity");
        *out = fmc_lw_emit(L, op, FMD_TYPE_INT, f->tmp, (int)n, 0, f->guard, e->span, sp);
        return STEP_DONE;
    }
    default: return step_fail(L, e, "this expression");
    }
}

static int32_t lower_expr(lowerer *L, const fmd_expr *root, int32_t guard) {
    L->nstack = 0;
    int32_t ret = -1;
    const fmd_expr *child = root;
    int32_t child_guard = guard;
    bool push = true;
    for (;;) {
        if (push) {
            if (L->nstack == L->stackcap) {
                size_t ncap = L->stackcap ? L->stackcap * 2 : 64;
                frame *ns = realloc(L->stack, ncap * sizeof *ns);
                if (!ns) {
                    L->oom = true;
                    return -1;
                }
                L->stack = ns;
                L->stackcap = ncap;
            }
            frame *nf = &L->stack[L->nstack++];
            memset(nf, 0, sizeof *nf);
            nf->e = child;
            nf->guard = child_guard;
        }
        if (++L->work > L->max_work) L->too_big = true;
        if (L->oom || L->too_big) return -1;
        int32_t out = -1;
        int st = step(L, &L->stack[L->nstack - 1], ret, &out, &child, &child_guard);
        if (st == STEP_FAIL || L->oom || L->too_big) return -1;
        if (st == STEP_PUSH) {
            push = true;
            continue;
        }
        if (out < 0) return -1;
        push = false;
        ret = out;
        if (--L->nstack == 0) return ret;
    }
}

/* Lowers e on a stack of its own (the caller's frames stay as they are). */
int32_t fmc_lw_lower_nested(lowerer *L, const fmd_expr *e, int32_t guard) {
    frame *stack = L->stack;
    size_t n = L->nstack, cap = L->stackcap;
    L->stack = NULL;
    L->nstack = L->stackcap = 0;
    int32_t r = lower_expr(L, e, guard);
    free(L->stack);
    L->stack = stack;
    L->nstack = n;
    L->stackcap = cap;
    return r;
}

/* ---- building the program ------------------------------------------------ */

static char *dupstr(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static const fmd_decl *select_mask(const fmd_program *ast, const char *name, fmd_diags *diags) {
    const fmd_decl *last = NULL, *found = NULL;
    for (size_t i = 0; i < ast->count; i++) {
        const fmd_decl *d = ast->decls[i];
        if (d->kind != FMD_DECL_MASK) continue;
        last = d;
        if (name && d->name && strcmp(d->name, name) == 0) found = d;
    }
    if (!name && last) return last;
    if (found) return found;
    const char *file = ast->source ? ast->source->name : "<string>";
    if (!name) {
        fmd_diag_add(diags, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL,
                     "%s: the file declares no mask", file);
        return NULL;
    }
    char list[256];
    size_t len = 0;
    list[0] = '\0';
    for (size_t i = 0; i < ast->count && len + 4 < sizeof list; i++) {
        const fmd_decl *d = ast->decls[i];
        if (d->kind != FMD_DECL_MASK || !d->name) continue;
        int w = snprintf(list + len, sizeof list - len, "%s%s", len ? ", " : "", d->name);
        if (w < 0) break;
        len += (size_t)w;
        if (len >= sizeof list) len = sizeof list - 1;
    }
    if (list[0])
        fmd_diag_add(diags, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL,
                     "%s: no mask named '%s' (the file's masks: %s)", file, name, list);
    else
        fmd_diag_add(diags, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL,
                     "%s: no mask named '%s' (the file declares no mask)", file, name);
    return NULL;
}

static bool setup(lowerer *L) {
    for (size_t i = 0; i < L->ast->count; i++) {
        const fmd_decl *d = L->ast->decls[i];
        if ((unsigned)d->kind >= FMD_DECL_KIND_COUNT) return false;
        if (d->index + 1 > L->nkind[d->kind]) L->nkind[d->kind] = d->index + 1;
    }
    for (int k = 0; k < FMD_DECL_KIND_COUNT; k++) {
        size_t n = L->nkind[k] + 1;
        L->memo_head[k] = malloc(n * sizeof *L->memo_head[k]);
        L->widen[k] = calloc(n, sizeof *L->widen[k]);
        if (!L->widen[k]) return false;
        L->kind_decls[k] = calloc(n, sizeof *L->kind_decls[k]);
        if (!L->memo_head[k] || !L->kind_decls[k]) return false;
        for (size_t j = 0; j < n; j++) L->memo_head[k][j] = -1;
    }
    for (size_t i = 0; i < L->ast->count; i++) {
        const fmd_decl *d = L->ast->decls[i];
        L->kind_decls[d->kind][d->index] = d;
    }
    return true;
}

static void lowerer_free(lowerer *L) {
    free(L->insns);
    free(L->argsp);
    free(L->chain);
    free(L->ht);
    free(L->memo);
    free(L->stack);
    for (int k = 0; k < FMD_DECL_KIND_COUNT; k++) {
        free(L->memo_head[k]);
        free(L->widen[k]);
        free(L->kind_decls[k]);
    }
}

/* Keeps what the result reaches (args and guards), renumbers, and gives
 * slots to the params and inputs that remain, in declaration order. */
static fmc_program *finish(lowerer *L, const fmd_decl *mask, int32_t result) {
    size_t n = L->count;
    size_t np = L->nkind[FMD_DECL_PARAM], ni = L->nkind[FMD_DECL_INPUT];
    uint8_t *live = calloc(n + 1, 1);
    int32_t *map = malloc((n + 1) * sizeof *map);
    int32_t *pslot = malloc((np + 1) * sizeof *pslot);
    int32_t *islot = malloc((ni + 1) * sizeof *islot);
    fmc_program *p = calloc(1, sizeof *p);
    if (!live || !map || !pslot || !islot || !p) goto oom;
    live[result] = 1;
    for (size_t i = n; i-- > 0;) {
        if (!live[i]) continue;
        const fmc_insn *x = &L->insns[i];
        if (x->guard >= 0) live[x->guard] = 1;
        if (x->op != FMC_OP_CONST && x->op != FMC_OP_VAR && x->op != FMC_OP_PARAM)
            for (int k = 0; k < x->nargs; k++) live[x->args[k]] = 1;
    }
    for (size_t k = 0; k <= np; k++) pslot[k] = -1;
    for (size_t k = 0; k <= ni; k++) islot[k] = -1;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!live[i]) continue;
        map[i] = (int32_t)m++;
        const fmc_insn *x = &L->insns[i];
        if (x->op == FMC_OP_PARAM) pslot[x->imm] = 0;
        if (x->op == FMC_OP_LOAD) {
            islot[x->imm] = 0;
            const fmd_decl *d = L->kind_decls[FMD_DECL_INPUT][x->imm];
            for (size_t k = 0; d && k < d->rank; k++)
                if (d->dims[k].kind == FMD_DIM_PARAM && d->dims[k].param)
                    pslot[d->dims[k].param->index] = 0;
        }
        if (x->op == FMC_OP_VAR && x->imm == FMD_VAR_B) p->reads_batch = true;
        if (x->op == FMC_OP_VAR && x->imm == FMD_VAR_H) p->reads_heads = true;
    }
    for (size_t k = 0; k < np; k++)
        if (pslot[k] == 0) pslot[k] = (int32_t)p->nparams++;
    for (size_t k = 0; k < ni; k++)
        if (islot[k] == 0) islot[k] = (int32_t)p->ninputs++;
    p->insns = malloc(m * sizeof *p->insns);
    p->arg_spans = malloc(m * sizeof *p->arg_spans);
    p->params = calloc(p->nparams + 1, sizeof *p->params);
    p->inputs = calloc(p->ninputs + 1, sizeof *p->inputs);
    p->mask_name = dupstr(mask->name ? mask->name : "");
    const fmd_source *s = L->ast->source;
    p->source = s ? fmd_source_new(s->name, s->text, s->len) : fmd_source_new("<string>", "", 0);
    if (!p->insns || !p->arg_spans || !p->params || !p->inputs || !p->mask_name || !p->source)
        goto oom;
    p->count = m;
    for (size_t i = 0; i < n; i++) {
        if (!live[i]) continue;
        fmc_insn x = L->insns[i];
        if (x.guard >= 0) x.guard = map[x.guard];
        if (x.op == FMC_OP_PARAM) x.imm = pslot[x.imm];
        else if (x.op == FMC_OP_LOAD) x.imm = islot[x.imm];
        if (x.op != FMC_OP_CONST && x.op != FMC_OP_VAR && x.op != FMC_OP_PARAM)
            for (int k = 0; k < x.nargs; k++) x.args[k] = map[x.args[k]];
        for (int k = x.nargs; k < FMD_MAX_RANK; k++) x.args[k] = 0;
        p->insns[map[i]] = x;
        memcpy(p->arg_spans[map[i]], L->argsp[i], sizeof p->arg_spans[0]);
    }
    p->result = map[result];
    if (!fmc_program_assign_rows(p)) goto oom;
    for (size_t k = 0; k < np; k++) {
        if (pslot[k] < 0) continue;
        const fmd_decl *d = L->kind_decls[FMD_DECL_PARAM][k];
        fmc_param_info *pi = &p->params[pslot[k]];
        pi->name = dupstr(d->name);
        pi->has_default = d->has_default;
        pi->default_value = d->default_value;
        pi->span = d->name_span;
        if (!pi->name) goto oom;
    }
    for (size_t k = 0; k < ni; k++) {
        if (islot[k] < 0) continue;
        const fmd_decl *d = L->kind_decls[FMD_DECL_INPUT][k];
        fmc_input_info *ii = &p->inputs[islot[k]];
        ii->name = dupstr(d->name);
        ii->rank = d->rank;
        ii->span = d->name_span;
        ii->elem_bytes = 4; /* the language's inputs are int32 */
        if (!ii->name) goto oom;
        for (size_t j = 0; j < d->rank; j++) {
            ii->dims[j].kind = d->dims[j].kind;
            switch (d->dims[j].kind) {
            case FMD_DIM_LITERAL: ii->dims[j].value = d->dims[j].value; break;
            case FMD_DIM_PARAM:
                ii->dims[j].value = d->dims[j].param ? pslot[d->dims[j].param->index] : 0;
                break;
            default: ii->dims[j].value = d->dims[j].shape; break;
            }
        }
    }
    free(live);
    free(map);
    free(pslot);
    free(islot);
    return p;
oom:
    free(live);
    free(map);
    free(pslot);
    free(islot);
    fmc_program_free(p);
    return NULL;
}

fmc_program *fmc_lower(const fmd_program *prog, const char *name, fmd_diags *diags) {
    return fmc_lower_why(prog, name, diags, NULL);
}

fmc_program *fmc_lower_why(const fmd_program *prog, const char *name, fmd_diags *diags,
                           fmc_lower_failure *why) {
    fmc_lower_failure unused;
    if (!why) why = &unused;
    *why = FMC_LOWER_INVALID;
    if (!prog) return NULL;
    const fmd_decl *mask = select_mask(prog, name, diags);
    if (!mask) return NULL;
    lowerer L;
    memset(&L, 0, sizeof L);
    L.ast = prog;
    L.diags = diags;
    size_t src_len = prog->source ? prog->source->len : 0;
    L.max_insns = LOWER_MAX_INSNS;
    if (src_len * LOWER_INSNS_PER_BYTE > L.max_insns) L.max_insns = src_len * LOWER_INSNS_PER_BYTE;
    L.max_work = LOWER_MAX_WORK;
    if (src_len * LOWER_WORK_PER_BYTE > L.max_work) L.max_work = src_len * LOWER_WORK_PER_BYTE;
    fmc_program *p = NULL;
    if (!setup(&L)) {
        L.oom = true;
    } else if (!mask->expr) {
        fmd_diag_add(diags, FMD_ERROR, prog->source, mask->span, NULL,
                     "mask '%s' has no expression", mask->name);
    } else {
        int32_t r = lower_expr(&L, mask->expr, GUARD_NONE);
        if (r >= 0 && L.insns[r].type != FMD_TYPE_BOOL) {
            fmd_diag_add(diags, FMD_ERROR, prog->source, mask->expr->span, NULL,
                         "mask '%s' is not a bool", mask->name);
        } else if (r >= 0) {
            p = finish(&L, mask, r);
            if (!p) L.oom = true;
        }
    }
    if (L.too_big)
        fmd_diag_add(diags, FMD_ERROR, prog->source, mask->name_span,
                     "a let is lowered once, unless its uses sit under conditions that read "
                     "lets not lowered yet; then once per guard: restructure the lets",
                     "mask '%s' is too large to lower (limit %zu operations)", mask->name,
                     L.max_insns);
    else if (L.oom)
        fmd_diag_add(diags, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL,
                     "out of memory while lowering mask '%s'", mask->name);
    lowerer_free(&L);
    *why = p ? FMC_LOWER_OK
           : L.too_big ? FMC_LOWER_LIMIT
           : L.oom     ? FMC_LOWER_NO_MEMORY
                       : FMC_LOWER_INVALID;
    return p;
}
