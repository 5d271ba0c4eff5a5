/* The canonical text of a program: one declaration per line, single spaces
 * around binary operators, and only the parentheses that precedence needs.
 *
 * Left-associative chains lose the parentheses around a left operand of
 * their own level ((a - b) - c prints as a - b - c, which parses to the
 * same computation); a right operand of the same level keeps them, so no
 * regrouping ever changes when an overflow or a short circuit happens.
 * Comparisons keep them on both sides, since they do not chain. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsl/ast.h"

typedef struct buf {
    char *data;
    size_t len, cap;
    bool oom;
} buf;

static void put_n(buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->len + n + 1 > cap)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) {
            b->oom = true;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void put(buf *b, const char *s) {
    put_n(b, s, strlen(s));
}

static void put_fmt(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put_fmt(buf *b, const char *fmt, ...) {
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) put_n(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Binding strength, loosest first: ?: is 1, the chains 2 to 7 (in
 * fmd_prec order), unary operators 8, everything else 9. */
enum { LEVEL_COND = 1, LEVEL_CHAIN = 2, LEVEL_UNARY = 8, LEVEL_PRIMARY = 9 };

static int level(const fmd_expr *e) {
    switch (e->kind) {
    case FMD_EXPR_COND: return LEVEL_COND;
    case FMD_EXPR_CHAIN: return LEVEL_CHAIN + (int)e->u.chain.prec;
    case FMD_EXPR_UNARY: return LEVEL_UNARY;
    default: return LEVEL_PRIMARY;
    }
}

static void print_expr(buf *b, const fmd_program *p, const fmd_expr *e, int min_level);

static void print_list(buf *b, const fmd_program *p, fmd_expr *const *xs, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (i) put(b, ", ");
        print_expr(b, p, xs[i], LEVEL_COND);
    }
}

static void print_literal(buf *b, const fmd_program *p, const fmd_expr *e) {
    if (e->u.lit.overflow) /* only in a program that failed to check */
        put_n(b, p->source->text + e->span.start, e->span.end - e->span.start);
    else
        put_fmt(b, "%" PRIu64, e->u.lit.magnitude);
}

/* Prints e, in parentheses when it binds more loosely than min_level. */
static void print_expr(buf *b, const fmd_program *p, const fmd_expr *e, int min_level) {
    bool paren = level(e) < min_level;
    if (paren) put(b, "(");
    switch (e->kind) {
    case FMD_EXPR_INT: print_literal(b, p, e); break;
    case FMD_EXPR_BOOL: put(b, e->u.boolean ? "true" : "false"); break;
    case FMD_EXPR_NAME: put(b, e->u.name.name); break;
    case FMD_EXPR_UNARY:
        put(b, e->u.unary.op == FMD_UNOP_NEG ? "-" : "!");
        /* "- -x" rather than "--x", which reads like a decrement; not
         * "-(-x)": parentheses count toward the nesting limit, so a long
         * run of unary operators would print as a file that no longer
         * compiles (fuzz_frontend finding, see docs/reliability.md). */
        if (e->u.unary.op == FMD_UNOP_NEG && e->u.unary.operand->kind == FMD_EXPR_UNARY &&
            e->u.unary.operand->u.unary.op == FMD_UNOP_NEG)
            put(b, " ");
        print_expr(b, p, e->u.unary.operand, LEVEL_UNARY);
        break;
    case FMD_EXPR_CHAIN: {
        int lv = level(e);
        bool rel = e->u.chain.prec == FMD_PREC_REL;
        print_expr(b, p, e->u.chain.operands[0], rel ? lv + 1 : lv);
        for (size_t i = 1; i < e->u.chain.count; i++) {
            put(b, " ");
            put(b, fmd_binop_spelling(e->u.chain.ops[i - 1]));
            put(b, " ");
            print_expr(b, p, e->u.chain.operands[i], lv + 1);
        }
        break;
    }
    case FMD_EXPR_COND:
        print_expr(b, p, e->u.cond.cond, LEVEL_CHAIN);
        put(b, " ? ");
        print_expr(b, p, e->u.cond.then_expr, LEVEL_COND);
        put(b, " : ");
        print_expr(b, p, e->u.cond.else_expr, LEVEL_COND);
        break;
    case FMD_EXPR_CALL:
        put(b, e->u.call.name);
        put(b, "(");
        print_list(b, p, e->u.call.args, e->u.call.count);
        put(b, ")");
        break;
    case FMD_EXPR_INDEX:
        put(b, e->u.index.name);
        put(b, "[");
        print_list(b, p, e->u.index.indices, e->u.index.count);
        put(b, "]");
        break;
    default: break;
    }
    if (paren) put(b, ")");
}

static void print_decl(buf *b, const fmd_program *p, const fmd_decl *d) {
    bool has_expr = d->kind == FMD_DECL_LET || d->kind == FMD_DECL_MASK;
    /* Statements that failed to parse have nothing to print. */
    if (has_expr ? d->expr == NULL : d->type == FMD_TYPE_ERROR) return;
    put(b, fmd_decl_keyword(d->kind));
    put(b, " ");
    put(b, d->name);
    switch (d->kind) {
    case FMD_DECL_PARAM:
        if (d->has_default) put_fmt(b, " = %" PRId64, d->default_value);
        break;
    case FMD_DECL_INPUT:
        put(b, "[");
        for (size_t i = 0; i < d->rank; i++) {
            if (i) put(b, ", ");
            if (d->dims[i].kind == FMD_DIM_LITERAL)
                put_fmt(b, "%" PRId64, d->dims[i].value);
            else
                put(b, d->dims[i].name);
        }
        put(b, "]");
        break;
    default:
        put(b, " = ");
        print_expr(b, p, d->expr, LEVEL_COND);
        break;
    }
    put(b, ";\n");
}

char *fmd_print(const fmd_program *p) {
    buf b = {NULL, 0, 0, false};
    put(&b, "");
    for (size_t i = 0; i < p->count; i++)
        print_decl(&b, p, p->decls[i]);
    if (b.oom) {
        free(b.data);
        return NULL;
    }
    return b.data;
}
