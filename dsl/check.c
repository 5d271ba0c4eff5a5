/* Name resolution, type checking and folding of literal arithmetic.
 *
 * Every independent error is reported once: an expression found wrong gets
 * FMD_TYPE_ERROR, and whatever contains it stays quiet about it. Chains are
 * walked with loops; recursion follows real nesting only (which the parser
 * caps at FMD_MAX_NESTING). */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "dsl/ast.h"
#include "dsl/parse_internal.h"

typedef struct checker {
    fmd_program *p;
    fmd_diags *diags;
    size_t *slots; /* open addressing: 1 + index of the first declaration of a name */
    size_t mask;
    unsigned char *dup; /* per declaration: a name declared before */
    size_t current;     /* index of the declaration being checked */
    bool failed;
    bool stop; /* the error limit was reached */
} checker;

static void error(checker *c, fmd_span span, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void error(checker *c, fmd_span span, const char *hint, const char *fmt, ...) {
    c->failed = true;
    if (c->stop) return;
    va_list ap;
    va_start(ap, fmt);
    if (!fmd_diag_addv(c->diags, FMD_ERROR, c->p->source, span, hint, fmt, ap)) c->stop = true;
    va_end(ap);
}

static fmd_span join(fmd_span a, fmd_span b) {
    fmd_span s = {a.start, b.end};
    return s;
}

static int line_of(checker *c, fmd_span s) {
    int line, col;
    fmd_source_position(c->p->source, s.start, &line, &col);
    return line;
}

/* ---- names ------------------------------------------------------------ */

static size_t hash_name(const char *s) {
    size_t h = 1469598103934665603u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

/* Index of the first declaration called name, or (size_t)-1. */
static size_t lookup(const checker *c, const char *name) {
    for (size_t i = hash_name(name) & c->mask;; i = (i + 1) & c->mask) {
        size_t s = c->slots[i];
        if (!s) return (size_t)-1;
        if (!strcmp(c->p->decls[s - 1]->name, name)) return s - 1;
    }
}

static bool builtin_var(const char *name, fmd_builtin_var *out) {
    for (int v = 0; v < FMD_VAR_COUNT; v++) {
        if (!strcmp(name, fmd_builtin_var_name((fmd_builtin_var)v))) {
            if (out) *out = (fmd_builtin_var)v;
            return true;
        }
    }
    return false;
}

static const char *const function_names[] = {"min", "max", "abs"};

static int builtin_fn(const char *name) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, function_names[i])) return i;
    return -1;
}

static const char *var_meaning(fmd_builtin_var v) {
    switch (v) {
    case FMD_VAR_B: return "the batch index";
    case FMD_VAR_H: return "the head index";
    case FMD_VAR_Q: return "the query position";
    case FMD_VAR_KV: return "the key/value position";
    case FMD_VAR_Q_LEN: return "the query length";
    case FMD_VAR_KV_LEN: return "the key/value length";
    case FMD_VAR_BATCH: return "the batch size";
    case FMD_VAR_HEADS: return "the number of heads";
    default: return "built in";
    }
}

/* "did you mean 'window'?" for the closest name in scope, if any is close. */
static const char *suggest(checker *c, const char *name, bool functions, char *buf, size_t cap) {
    if (c->stop) return NULL;
    fmd_closest near;
    fmd_closest_init(&near, name);
    if (functions) {
        for (int i = 0; i < 3; i++)
            fmd_closest_consider(&near, function_names[i]);
    } else {
        for (int v = 0; v < FMD_VAR_COUNT; v++)
            fmd_closest_consider(&near, fmd_builtin_var_name((fmd_builtin_var)v));
        for (size_t i = 0; i < c->current && i < c->p->count; i++)
            fmd_closest_consider(&near, c->p->decls[i]->name);
    }
    const char *found = near.found;
    if (!found) return NULL;
    snprintf(buf, cap, "did you mean '%s'?", found);
    return buf;
}

/* Resolves a declared name used at span; NULL after reporting why not (or
 * silently when the declaration itself is broken). */
static fmd_decl *resolve_decl(checker *c, const char *name, fmd_span span) {
    size_t i = lookup(c, name);
    if (i == (size_t)-1) {
        char buf[128];
        if (builtin_fn(name) >= 0) {
            snprintf(buf, sizeof buf, "call it, e.g. '%s(%s)'", name,
                     strcmp(name, "abs") ? "a, b" : "a");
            error(c, span, buf, "'%s' is a function", name);
        } else {
            error(c, span, suggest(c, name, false, buf, sizeof buf), "unknown name '%s'", name);
        }
        return NULL;
    }
    fmd_decl *d = c->p->decls[i];
    if (i == c->current) {
        error(c, span, NULL, "'%s' is used in its own declaration", name);
        return NULL;
    }
    if (i > c->current) {
        char buf[96];
        snprintf(buf, sizeof buf, "'%s' is declared on line %d; move the declaration up", name,
                 line_of(c, d->name_span));
        error(c, span, buf, "'%s' is used before its declaration", name);
        return NULL;
    }
    return d->type == FMD_TYPE_ERROR && d->kind != FMD_DECL_MASK ? NULL : d;
}

/* ---- folding ---------------------------------------------------------- */

static bool fold_binop(checker *c, fmd_binop op, int64_t a, int64_t b, int64_t *out, fmd_span span,
                       fmd_span divisor) {
    bool of = false;
    switch (op) {
    case FMD_OP_ADD: of = __builtin_add_overflow(a, b, out); break;
    case FMD_OP_SUB: of = __builtin_sub_overflow(a, b, out); break;
    case FMD_OP_MUL: of = __builtin_mul_overflow(a, b, out); break;
    case FMD_OP_DIV:
    case FMD_OP_MOD:
        if (b == 0) {
            error(c, divisor, "the divisor is always 0",
                  op == FMD_OP_DIV ? "division by zero" : "modulo by zero");
            return false;
        }
        if (op == FMD_OP_MOD)
            *out = fmd_floormod(a, b);
        else if (a == INT64_MIN && b == -1)
            of = true;
        else
            *out = fmd_floordiv(a, b);
        break;
    case FMD_OP_LT: *out = a < b; break;
    case FMD_OP_LE: *out = a <= b; break;
    case FMD_OP_GT: *out = a > b; break;
    case FMD_OP_GE: *out = a >= b; break;
    case FMD_OP_EQ: *out = a == b; break;
    case FMD_OP_NE: *out = a != b; break;
    case FMD_OP_AND: *out = a && b; break;
    case FMD_OP_OR: *out = a || b; break;
    default: break;
    }
    if (of) {
        char buf[160];
        snprintf(buf, sizeof buf, "%lld %s %lld is out of the 64-bit range", (long long)a,
                 fmd_binop_spelling(op), (long long)b);
        error(c, span, FMD_INT_RANGE_HINT, "integer overflow: %s", buf);
        return false;
    }
    return true;
}

/* ---- expressions ------------------------------------------------------ */

static fmd_type check_expr(checker *c, fmd_expr *e);

static void set_const(fmd_expr *e, int64_t v) {
    e->is_const = true;
    e->const_value = v;
}

static fmd_type check_literal(checker *c, fmd_expr *e) {
    if (e->u.lit.overflow || e->u.lit.magnitude > (uint64_t)INT64_MAX) {
        error(c, e->span, FMD_INT_RANGE_HINT, "integer literal out of the 64-bit range");
        return FMD_TYPE_ERROR;
    }
    set_const(e, (int64_t)e->u.lit.magnitude);
    return FMD_TYPE_INT;
}

static fmd_type check_name(checker *c, fmd_expr *e) {
    const char *name = e->u.name.name;
    fmd_builtin_var v;
    if (builtin_var(name, &v)) {
        e->u.name.ref = FMD_REF_BUILTIN;
        e->u.name.var = v;
        return FMD_TYPE_INT;
    }
    fmd_decl *d = resolve_decl(c, name, e->span);
    if (!d) return FMD_TYPE_ERROR;
    if (d->kind == FMD_DECL_INPUT) {
        char buf[96];
        snprintf(buf, sizeof buf, "read an element, e.g. '%s[%s]'", name,
                 d->rank == 1   ? "kv"
                 : d->rank == 2 ? "q, kv"
                                : "...");
        error(c, e->span, buf, "input '%s' is used without indices", name);
        return FMD_TYPE_ERROR;
    }
    e->u.name.ref = FMD_REF_DECL;
    e->u.name.decl = d;
    if (d->kind == FMD_DECL_MASK) return FMD_TYPE_BOOL;
    if (d->kind == FMD_DECL_PARAM) return FMD_TYPE_INT;
    return d->type == FMD_TYPE_INT || d->type == FMD_TYPE_BOOL ? d->type : FMD_TYPE_ERROR;
}

static fmd_type check_unary(checker *c, fmd_expr *e) {
    fmd_expr *x = e->u.unary.operand;
    if (e->u.unary.op == FMD_UNOP_NEG && x->kind == FMD_EXPR_INT && !x->paren) {
        /* -9223372036854775808 is in range although its digits alone are not;
         * the literal itself is then left unfolded, the negation holds it.
         * In parentheses the literal is a value of its own, and 2^63 is not
         * one. */
        uint64_t m = x->u.lit.magnitude;
        if (x->u.lit.overflow || m > (uint64_t)INT64_MAX + 1) {
            error(c, e->span, FMD_INT_RANGE_HINT, "integer literal out of the 64-bit range");
            return FMD_TYPE_ERROR;
        }
        x->type = FMD_TYPE_INT;
        if (m <= (uint64_t)INT64_MAX) set_const(x, (int64_t)m);
        set_const(e, m == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)m);
        return FMD_TYPE_INT;
    }
    fmd_type t = check_expr(c, x);
    if (t == FMD_TYPE_ERROR) return t;
    bool neg = e->u.unary.op == FMD_UNOP_NEG;
    fmd_type want = neg ? FMD_TYPE_INT : FMD_TYPE_BOOL;
    if (t != want) {
        error(c, x->span, NULL, "operand of %s must be %s, found %s", neg ? "unary '-'" : "'!'",
              fmd_type_name(want), fmd_type_name(t));
        return FMD_TYPE_ERROR;
    }
    if (x->is_const) {
        if (neg && x->const_value == INT64_MIN) {
            error(c, e->span, FMD_INT_RANGE_HINT,
                  "integer overflow: -(-9223372036854775808) is out of the 64-bit range");
            return FMD_TYPE_ERROR;
        }
        set_const(e, neg ? -x->const_value : !x->const_value);
    }
    return t;
}

static fmd_type check_chain(checker *c, fmd_expr *e) {
    size_t n = e->u.chain.count;
    fmd_expr **xs = e->u.chain.operands;
    fmd_prec prec = e->u.chain.prec;
    bool bad = false;
    /* The operands, then the operators over them, left to right. */
    for (size_t i = 0; i < n; i++)
        bad |= check_expr(c, xs[i]) == FMD_TYPE_ERROR;
    fmd_type want = prec == FMD_PREC_OR || prec == FMD_PREC_AND ? FMD_TYPE_BOOL : FMD_TYPE_INT;
    fmd_type result = prec == FMD_PREC_ADD || prec == FMD_PREC_MUL ? FMD_TYPE_INT : FMD_TYPE_BOOL;
    if (prec == FMD_PREC_EQ) {
        fmd_type acc = xs[0]->type;
        for (size_t i = 1; i < n && !bad; i++) {
            if (xs[i]->type != acc) {
                error(c, join(xs[0]->span, xs[i]->span), NULL,
                      "operands of '%s' must have the same type, found %s and %s",
                      fmd_binop_spelling(e->u.chain.ops[i - 1]), fmd_type_name(acc),
                      fmd_type_name(xs[i]->type));
                bad = true;
            }
            acc = FMD_TYPE_BOOL;
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            if (xs[i]->type == FMD_TYPE_ERROR || xs[i]->type == want) continue;
            error(c, xs[i]->span, NULL, "operand of '%s' must be %s, found %s",
                  fmd_binop_spelling(e->u.chain.ops[i ? i - 1 : 0]), fmd_type_name(want),
                  fmd_type_name(xs[i]->type));
            bad = true;
        }
    }
    if (bad) return FMD_TYPE_ERROR;
    /* A literal divisor of zero is wrong wherever the division sits. */
    if (prec == FMD_PREC_MUL) {
        for (size_t i = 1; i < n; i++) {
            fmd_binop op = e->u.chain.ops[i - 1];
            if ((op == FMD_OP_DIV || op == FMD_OP_MOD) && xs[i]->is_const &&
                xs[i]->const_value == 0) {
                error(c, xs[i]->span, "the divisor is always 0",
                      op == FMD_OP_DIV ? "division by zero" : "modulo by zero");
                bad = true;
            }
        }
        if (bad) return FMD_TYPE_ERROR;
    }
    if (!xs[0]->is_const) return result;
    int64_t acc = xs[0]->const_value;
    for (size_t i = 1; i < n; i++) {
        if (!xs[i]->is_const) return result;
    }
    for (size_t i = 1; i < n; i++) {
        if (!fold_binop(c, e->u.chain.ops[i - 1], acc, xs[i]->const_value, &acc,
                        join(xs[0]->span, xs[i]->span), xs[i]->span))
            return FMD_TYPE_ERROR;
    }
    set_const(e, acc);
    return result;
}

static fmd_type check_cond(checker *c, fmd_expr *e) {
    fmd_expr *k = e->u.cond.cond, *a = e->u.cond.then_expr, *b = e->u.cond.else_expr;
    fmd_type tk = check_expr(c, k), ta = check_expr(c, a), tb = check_expr(c, b);
    bool bad = tk == FMD_TYPE_ERROR || ta == FMD_TYPE_ERROR || tb == FMD_TYPE_ERROR;
    if (tk == FMD_TYPE_INT) {
        error(c, k->span, "compare it, e.g. 'x != 0'", "condition of '?:' must be bool, found int");
        bad = true;
    }
    if (ta != FMD_TYPE_ERROR && tb != FMD_TYPE_ERROR && ta != tb) {
        error(c, join(a->span, b->span), NULL, "branches of '?:' have different types: %s and %s",
              fmd_type_name(ta), fmd_type_name(tb));
        bad = true;
    }
    if (bad) return FMD_TYPE_ERROR;
    if (k->is_const && a->is_const && b->is_const)
        set_const(e, k->const_value ? a->const_value : b->const_value);
    return ta;
}

static const char *what_is(const fmd_decl *d) {
    switch (d->kind) {
    case FMD_DECL_PARAM: return "a param";
    case FMD_DECL_INPUT: return "an input";
    case FMD_DECL_LET: return "a let";
    case FMD_DECL_MASK: return "a mask";
    default: return "a declaration";
    }
}

/* Checks every argument (for their own errors); false if any is wrong. */
static bool check_args(checker *c, fmd_expr **args, size_t n, const char *what, const char *name) {
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        fmd_type t = check_expr(c, args[i]);
        if (t == FMD_TYPE_ERROR)
            ok = false;
        else if (t != FMD_TYPE_INT) {
            error(c, args[i]->span, NULL, "%s of '%s' must be int, found %s", what, name,
                  fmd_type_name(t));
            ok = false;
        }
    }
    return ok;
}

static fmd_type check_call(checker *c, fmd_expr *e) {
    const char *name = e->u.call.name;
    int fn = builtin_fn(name);
    bool ok = check_args(c, e->u.call.args, e->u.call.count, "argument", name);
    if (fn < 0) {
        char buf[128];
        size_t i = lookup(c, name);
        if (builtin_var(name, NULL))
            error(c, e->u.call.name_span, NULL, "'%s' is not a function", name);
        else if (i != (size_t)-1 && i < c->current)
            error(c, e->u.call.name_span, NULL, "'%s' is %s, not a function", name,
                  what_is(c->p->decls[i]));
        else
            error(c, e->u.call.name_span,
                  suggest(c, name, true, buf, sizeof buf)
                      ? buf
                      : "the functions are 'min', 'max' and 'abs'",
                  "unknown function '%s'", name);
        return FMD_TYPE_ERROR;
    }
    e->u.call.known = true;
    e->u.call.fn = (fmd_builtin_fn)fn;
    size_t want = fn == FMD_FN_ABS ? 1 : 2;
    if (e->u.call.count != want) {
        error(c, e->span, NULL, "'%s' takes %zu argument%s, found %zu", name, want,
              want == 1 ? "" : "s", e->u.call.count);
        return FMD_TYPE_ERROR;
    }
    if (!ok) return FMD_TYPE_ERROR;
    fmd_expr **a = e->u.call.args;
    if (fn == FMD_FN_ABS) {
        if (a[0]->is_const) {
            if (a[0]->const_value == INT64_MIN) {
                error(c, e->span, FMD_INT_RANGE_HINT,
                      "integer overflow: abs(-9223372036854775808) is out of the 64-bit range");
                return FMD_TYPE_ERROR;
            }
            set_const(e, a[0]->const_value < 0 ? -a[0]->const_value : a[0]->const_value);
        }
    } else if (a[0]->is_const && a[1]->is_const) {
        int64_t x = a[0]->const_value, y = a[1]->const_value;
        set_const(e, fn == FMD_FN_MIN ? (x < y ? x : y) : (x > y ? x : y));
    }
    return FMD_TYPE_INT;
}

static fmd_type check_index(checker *c, fmd_expr *e) {
    const char *name = e->u.index.name;
    fmd_span at = e->u.index.name_span;
    bool ok = check_args(c, e->u.index.indices, e->u.index.count, "index", name);
    fmd_builtin_var v;
    if (builtin_var(name, &v)) {
        error(c, at, NULL, "'%s' is not an input; only inputs take indices", name);
        return FMD_TYPE_ERROR;
    }
    fmd_decl *d = resolve_decl(c, name, at);
    if (!d) return FMD_TYPE_ERROR;
    if (d->kind != FMD_DECL_INPUT) {
        error(c, at, NULL, "'%s' is %s, not an input; only inputs take indices", name, what_is(d));
        return FMD_TYPE_ERROR;
    }
    e->u.index.decl = d;
    if (e->u.index.count != d->rank) {
        error(c, e->span, NULL, "'%s' has %zu dimension%s, but %zu ind%s given", name, d->rank,
              d->rank == 1 ? "" : "s", e->u.index.count,
              e->u.index.count == 1 ? "ex is" : "ices are");
        return FMD_TYPE_ERROR;
    }
    return ok ? FMD_TYPE_INT : FMD_TYPE_ERROR;
}

static fmd_type check_expr(checker *c, fmd_expr *e) {
    /* The parser marks what it already reported (chained comparisons). */
    if (e->type == FMD_TYPE_ERROR) return e->type;
    e->is_const = false;
    fmd_type t = FMD_TYPE_ERROR;
    switch (e->kind) {
    case FMD_EXPR_INT: t = check_literal(c, e); break;
    case FMD_EXPR_BOOL:
        set_const(e, e->u.boolean);
        t = FMD_TYPE_BOOL;
        break;
    case FMD_EXPR_NAME: t = check_name(c, e); break;
    case FMD_EXPR_UNARY: t = check_unary(c, e); break;
    case FMD_EXPR_CHAIN: t = check_chain(c, e); break;
    case FMD_EXPR_COND: t = check_cond(c, e); break;
    case FMD_EXPR_CALL: t = check_call(c, e); break;
    case FMD_EXPR_INDEX: t = check_index(c, e); break;
    default: break;
    }
    if (t == FMD_TYPE_ERROR) e->is_const = false;
    e->type = t;
    return t;
}

/* ---- declarations ----------------------------------------------------- */

static const char *const keywords[] = {"param", "input", "let", "mask", "true", "false"};

static bool is_reserved(const char *name) {
    for (size_t i = 0; i < sizeof keywords / sizeof *keywords; i++)
        if (!strcmp(name, keywords[i])) return true;
    return builtin_fn(name) >= 0 || builtin_var(name, NULL);
}

/* False (after reporting) when name may not be declared. */
static bool check_reserved(checker *c, const fmd_decl *d) {
    char buf[96];
    fmd_builtin_var v;
    for (size_t i = 0; i < sizeof keywords / sizeof *keywords; i++) {
        if (!strcmp(d->name, keywords[i])) {
            error(c, d->name_span, "choose another name", "cannot declare '%s': it is a keyword",
                  d->name);
            return false;
        }
    }
    if (builtin_fn(d->name) >= 0) {
        error(c, d->name_span, "choose another name",
              "cannot declare '%s': it is a built-in function", d->name);
        return false;
    }
    if (builtin_var(d->name, &v)) {
        snprintf(buf, sizeof buf, "'%s' is always %s; choose another name", d->name,
                 var_meaning(v));
        error(c, d->name_span, buf, "cannot declare '%s': it is a built-in name", d->name);
        return false;
    }
    return true;
}

/* Indexes the first declaration of every name; later ones are marked in
 * c->dup and reported in source order by check_decl. */
static bool build_table(checker *c) {
    size_t cap = 16;
    while (cap < c->p->count * 2)
        cap *= 2;
    c->slots = calloc(cap, sizeof *c->slots);
    c->dup = calloc(c->p->count + 1, 1);
    if (!c->slots || !c->dup) return false;
    c->mask = cap - 1;
    for (size_t i = 0; i < c->p->count; i++) {
        fmd_decl *d = c->p->decls[i];
        if (is_reserved(d->name)) continue;
        size_t j = hash_name(d->name) & c->mask;
        while (c->slots[j] && strcmp(c->p->decls[c->slots[j] - 1]->name, d->name))
            j = (j + 1) & c->mask;
        if (!c->slots[j])
            c->slots[j] = i + 1;
        else
            c->dup[i] = 1;
    }
    return true;
}

static void check_name_free(checker *c, size_t i) {
    fmd_decl *d = c->p->decls[i];
    if (!check_reserved(c, d) || !c->dup[i]) return;
    const fmd_decl *first = c->p->decls[lookup(c, d->name)];
    char buf[96];
    snprintf(buf, sizeof buf, "the first declaration is on line %d", line_of(c, first->name_span));
    error(c, d->name_span, buf, "'%s' is already declared", d->name);
}

static void check_dims(checker *c, fmd_decl *d) {
    for (size_t k = 0; k < d->rank; k++) {
        fmd_dim *dim = &d->dims[k];
        if (dim->kind == FMD_DIM_LITERAL) {
            /* 0 is a valid (empty) array, as for a dimension from a param:
             * refusing it would refuse masks that never read the input. */
            if (dim->value < 0)
                error(c, dim->span, NULL, "dimension of input '%s' cannot be negative, found %lld",
                      d->name, (long long)dim->value);
            continue;
        }
        if (dim->kind == FMD_DIM_SHAPE) continue;
        static const char *const shape_hint =
            "a dimension is an integer, a param, Q_LEN, KV_LEN, BATCH or HEADS";
        if (builtin_var(dim->name, NULL)) {
            error(c, dim->span, shape_hint, "'%s' cannot be a dimension", dim->name);
            continue;
        }
        if (lookup(c, dim->name) == (size_t)-1) {
            char buf[128];
            error(c, dim->span, suggest(c, dim->name, false, buf, sizeof buf) ? buf : shape_hint,
                  "unknown name '%s'", dim->name);
            continue;
        }
        fmd_decl *p = resolve_decl(c, dim->name, dim->span);
        if (!p) continue;
        if (p->kind != FMD_DECL_PARAM) {
            error(c, dim->span, shape_hint, "'%s' is %s; it cannot be a dimension", dim->name,
                  what_is(p));
            continue;
        }
        dim->param = p;
    }
}

static void check_decl(checker *c, fmd_decl *d) {
    check_name_free(c, c->current);
    if (d->type == FMD_TYPE_ERROR) {
        /* Broken in the parser (already reported); a mask stays a bool. */
        if (d->kind == FMD_DECL_MASK) d->type = FMD_TYPE_BOOL;
        d->checked = true;
        return;
    }
    switch (d->kind) {
    case FMD_DECL_PARAM: d->type = FMD_TYPE_INT; break;
    case FMD_DECL_INPUT:
        d->type = FMD_TYPE_INT;
        check_dims(c, d);
        break;
    case FMD_DECL_LET: d->type = d->expr ? check_expr(c, d->expr) : FMD_TYPE_ERROR; break;
    case FMD_DECL_MASK: {
        fmd_type t = d->expr ? check_expr(c, d->expr) : FMD_TYPE_ERROR;
        if (t == FMD_TYPE_INT)
            error(c, d->expr->span, "compare it, e.g. 'x != 0'",
                  "mask '%s' must be bool, found int", d->name);
        d->type = FMD_TYPE_BOOL;
        break;
    }
    default: break;
    }
    d->checked = true;
}

static void check_has_mask(checker *c) {
    fmd_program *p = c->p;
    for (size_t i = 0; i < p->count; i++)
        if (p->decls[i]->kind == FMD_DECL_MASK) return;
    const char *hint = "add one, e.g. 'mask causal = kv <= q;'";
    if (p->count == 0) {
        fmd_span s = {0, 0};
        error(c, s, hint,
              p->source->len ? "no mask declared: the file has no statements"
                             : "empty file: no mask declared");
    } else {
        fmd_span end = p->decls[p->count - 1]->span;
        fmd_span s = {end.end, end.end};
        error(c, s, hint, "no mask declared");
    }
}

bool fmd_check(fmd_program *p, fmd_diags *diags) {
    checker c;
    memset(&c, 0, sizeof c);
    c.p = p;
    c.diags = diags;
    c.stop = diags->max_errors && diags->errors >= diags->max_errors;
    size_t first = diags->count;
    if (!build_table(&c)) {
        free(c.slots);
        free(c.dup);
        diags->oom = true;
        return false;
    }
    for (size_t i = 0; i < p->count; i++) {
        c.current = i;
        check_decl(&c, p->decls[i]);
    }
    /* After a syntax error a missing mask may just be a statement lost. */
    if (p->parse_errors == 0) check_has_mask(&c);
    free(c.slots);
    free(c.dup);
    /* Operands are checked before the operator over them: put the
     * messages back in source order. */
    fmd_diags_sort(diags, first);
    return !c.failed && p->parse_errors == 0;
}
