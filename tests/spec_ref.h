/* A reference evaluator for mask programs, written from the language
 * specification alone (mask-language.md): it walks the checked syntax tree
 * with 128-bit arithmetic, floor division, short-circuit evaluation and
 * lets and masks evaluated where they are used, and shares nothing with
 * lowering, the interpreters or the analysis. Header-only, for
 * test_spec.c. */
#ifndef FM_TESTS_SPEC_REF_H
#define FM_TESTS_SPEC_REF_H

#include <stdbool.h>
#include <stdint.h>

#include "testutil.h"

#include "dsl/ast.h"

/* The specification's arithmetic in 128 bits: false when the operation
 * breaks a rule (zero divisor, a result outside 64 bits). op is one of
 * + - * / %, or n (negation), a (abs), m (min), M (max). */
static bool ref_arith(char op, int64_t a, int64_t b, int64_t *out) {
    __int128 x = a, y = b, r = 0;
    switch (op) {
    case '+': r = x + y; break;
    case '-': r = x - y; break;
    case '*': r = x * y; break;
    case '/':
    case '%': {
        if (y == 0) return false;
        __int128 qt = x / y, rm = x % y;
        if (rm != 0 && ((rm < 0) != (y < 0))) {
            qt -= 1;
            rm += y;
        }
        r = op == '/' ? qt : rm;
        break;
    }
    case 'n': r = -x; break;
    case 'a': r = x < 0 ? -x : x; break;
    case 'm': r = x < y ? x : y; break;
    case 'M': r = x > y ? x : y; break;
    }
    if (r < INT64_MIN || r > INT64_MAX) return false;
    *out = (int64_t)r;
    return true;
}

typedef struct ref_world {
    int64_t B, H, Q, KV;
    int64_t pt[4];              /* b, h, q, kv */
    const int64_t *params;      /* by a param's index among params */
    const int32_t *const *data; /* by an input's index among inputs; NULL: unbound */
    bool read_unbound;          /* evaluation reached an input that was not bound */
} ref_world;

static int64_t ref_shape(const ref_world *w, fmd_builtin_var v) {
    switch (v) {
    case FMD_VAR_B: return w->pt[0];
    case FMD_VAR_H: return w->pt[1];
    case FMD_VAR_Q: return w->pt[2];
    case FMD_VAR_KV: return w->pt[3];
    case FMD_VAR_Q_LEN: return w->Q;
    case FMD_VAR_KV_LEN: return w->KV;
    case FMD_VAR_BATCH: return w->B;
    case FMD_VAR_HEADS: return w->H;
    default: return 0;
    }
}

static int64_t ref_dim(const ref_world *w, const fmd_dim *d) {
    if (d->kind == FMD_DIM_LITERAL) return d->value;
    if (d->kind == FMD_DIM_SHAPE) return ref_shape(w, d->shape);
    return w->params[d->param->index];
}

/* The value of e at w's point; false when evaluating it breaks a rule.
 * Recursion follows the nesting of the (small, generated) programs. */
static bool ref_eval(ref_world *w, const fmd_expr *e, int64_t *out) {
    int64_t x = 0, y = 0;
    switch (e->kind) {
    case FMD_EXPR_INT: *out = (int64_t)e->u.lit.magnitude; return true;
    case FMD_EXPR_BOOL: *out = e->u.boolean; return true;
    case FMD_EXPR_NAME: {
        if (e->u.name.ref == FMD_REF_BUILTIN) {
            *out = ref_shape(w, e->u.name.var);
            return true;
        }
        const fmd_decl *d = e->u.name.decl;
        if (d->kind == FMD_DECL_PARAM) {
            *out = w->params[d->index];
            return true;
        }
        return ref_eval(w, d->expr, out); /* a let or mask: its expression, here */
    }
    case FMD_EXPR_UNARY: {
        const fmd_expr *o = e->u.unary.operand;
        if (e->u.unary.op == FMD_UNOP_NEG && o->kind == FMD_EXPR_INT && !o->paren &&
            o->u.lit.magnitude == (uint64_t)INT64_MAX + 1) {
            *out = INT64_MIN;
            return true;
        }
        if (!ref_eval(w, o, &x)) return false;
        if (e->u.unary.op == FMD_UNOP_NOT) {
            *out = !x;
            return true;
        }
        return ref_arith('n', x, 0, out);
    }
    case FMD_EXPR_COND:
        if (!ref_eval(w, e->u.cond.cond, &x)) return false;
        return ref_eval(w, x ? e->u.cond.then_expr : e->u.cond.else_expr, out);
    case FMD_EXPR_CALL:
        if (!ref_eval(w, e->u.call.args[0], &x)) return false;
        if (e->u.call.fn == FMD_FN_ABS) return ref_arith('a', x, 0, out);
        if (!ref_eval(w, e->u.call.args[1], &y)) return false;
        return ref_arith(e->u.call.fn == FMD_FN_MIN ? 'm' : 'M', x, y, out);
    case FMD_EXPR_INDEX: {
        const fmd_decl *d = e->u.index.decl;
        if (!w->data[d->index]) {
            w->read_unbound = true;
            return false;
        }
        int64_t flat = 0;
        for (size_t k = 0; k < e->u.index.count; k++) {
            if (!ref_eval(w, e->u.index.indices[k], &x)) return false;
            int64_t n = ref_dim(w, &d->dims[k]);
            if (x < 0 || x >= n) return false;
            flat = flat * n + x;
        }
        *out = w->data[d->index][flat];
        return true;
    }
    case FMD_EXPR_CHAIN: {
        const fmd_expr *const *xs = (const fmd_expr *const *)e->u.chain.operands;
        if (!ref_eval(w, xs[0], &x)) return false;
        for (size_t i = 1; i < e->u.chain.count; i++) {
            fmd_binop op = e->u.chain.ops[i - 1];
            /* && and || stop as soon as the result is known. */
            if ((op == FMD_OP_AND && !x) || (op == FMD_OP_OR && x)) continue;
            if (!ref_eval(w, xs[i], &y)) return false;
            switch (op) {
            case FMD_OP_AND:
            case FMD_OP_OR: x = y != 0; break;
            case FMD_OP_EQ: x = x == y; break;
            case FMD_OP_NE: x = x != y; break;
            case FMD_OP_LT: x = x < y; break;
            case FMD_OP_LE: x = x <= y; break;
            case FMD_OP_GT: x = x > y; break;
            case FMD_OP_GE: x = x >= y; break;
            default: {
                static const char sym[] = {[FMD_OP_ADD] = '+',
                                           [FMD_OP_SUB] = '-',
                                           [FMD_OP_MUL] = '*',
                                           [FMD_OP_DIV] = '/',
                                           [FMD_OP_MOD] = '%'};
                if (!ref_arith(sym[op], x, y, &x)) return false;
            }
            }
        }
        *out = x;
        return true;
    }
    default: fail_msg("unexpected expression kind %d", (int)e->kind);
    }
    return false;
}

#endif
