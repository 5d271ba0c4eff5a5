/* Random mask programs for the property tests: source text drawn from the
 * language's grammar (params, inputs, lets, affine and nonlinear
 * comparisons, / and %, min/max/abs, ?:, && || !, guarded and unguarded
 * array reads), and random input data for them. Header-only so each test
 * program that needs it stays one file. */
#ifndef FM_TESTS_MASK_GEN_H
#define FM_TESTS_MASK_GEN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

typedef struct mg_buf {
    char *s;
    size_t n, cap;
} mg_buf;

static void mg_printf(mg_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mg_printf(mg_buf *b, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int w = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (w >= 0 && b->s && b->n + (size_t)w < b->cap) {
            b->n += (size_t)w;
            return;
        }
        size_t ncap = (b->cap ? b->cap * 2 : 256) + (size_t)(w > 0 ? w : 0);
        b->s = realloc(b->s, ncap);
        if (!b->s) abort();
        b->cap = ncap;
    }
}

typedef struct mg {
    tu_rng *r;
    mg_buf *out;
    int nparams;
    int nint_lets, nbool_lets;
    bool in_a, in_d, in_t, in_s; /* a[KV_LEN], d[Q_LEN], t[BATCH, KV_LEN], s[5] */
    int guarded;                 /* percent of reads / divisions written with a guard */
} mg;

static int64_t mg_pick(mg *g, int64_t lo, int64_t hi) {
    return tu_rng_range(g->r, lo, hi);
}

static void mg_int(mg *g, mg_buf *b, int depth);
static void mg_bool(mg *g, mg_buf *b, int depth);

/* Writes an int expression into a fresh buffer (for text used twice). */
static char *mg_int_text(mg *g, int depth) {
    mg_buf t = {0};
    mg_int(g, &t, depth);
    return t.s;
}

static void mg_leaf(mg *g, mg_buf *b) {
    switch (mg_pick(g, 0, 11)) {
    case 0:
    case 1: mg_printf(b, "q"); break;
    case 2:
    case 3: mg_printf(b, "kv"); break;
    case 4: mg_printf(b, "b"); break;
    case 5: mg_printf(b, "h"); break;
    case 6: mg_printf(b, mg_pick(g, 0, 1) ? "Q_LEN" : "KV_LEN"); break;
    case 7: mg_printf(b, mg_pick(g, 0, 1) ? "BATCH" : "HEADS"); break;
    case 8:
        if (g->nparams) {
            mg_printf(b, "p%d", (int)mg_pick(g, 0, g->nparams - 1));
            break;
        }
        /* fall through */
    case 9:
        if (g->nint_lets) {
            mg_printf(b, "li%d", (int)mg_pick(g, 0, g->nint_lets - 1));
            break;
        }
        /* fall through */
    default: {
        int64_t v = mg_pick(g, -5, 24);
        if (v < 0) mg_printf(b, "(%lld)", (long long)v);
        else mg_printf(b, "%lld", (long long)v);
    }
    }
}

/* A read of one of the inputs, in range or not, guarded or not. */
static void mg_read(mg *g, mg_buf *b, int depth) {
    int which = (int)mg_pick(g, 0, 3);
    const char *name, *len, *nat, *shift, *rev;
    bool rank2 = false;
    if (which == 1 && g->in_d) {
        name = "d", len = "Q_LEN", nat = "q", shift = "q + 1", rev = "Q_LEN - 1 - q";
    } else if (which == 2 && g->in_s) {
        name = "s", len = "5", nat = "kv % 5", shift = "h + 3", rev = "4";
    } else if (which == 3 && g->in_t) {
        name = "t", len = "KV_LEN", nat = "kv", shift = "kv + 1", rev = "KV_LEN - 1 - kv";
        rank2 = true;
    } else if (g->in_a) {
        name = "a", len = "KV_LEN", nat = "kv", shift = "kv + 1", rev = "KV_LEN - 1 - kv";
    } else {
        mg_printf(b, "0");
        return;
    }
    const char *first = rank2 ? (mg_pick(g, 0, 3) ? "b, " : "BATCH - 1 - b, ") : "";
    bool guard = mg_pick(g, 0, 99) < g->guarded;
    int style = (int)mg_pick(g, 0, 4);
    char *e = NULL;
    switch (style) {
    case 0:
        e = mg_int_text(g, depth);
        mg_printf(b, "%s[%smin(max(%s, 0), %s - 1)]", name, first, e, len);
        break;
    case 1:
        e = mg_int_text(g, depth);
        if (guard)
            mg_printf(b, "((%s) >= 0 && (%s) < %s ? %s[%s%s] : %lld)", e, e, len, name, first, e,
                      (long long)mg_pick(g, -1, 3));
        else mg_printf(b, "%s[%s%s]", name, first, e);
        break;
    case 2: mg_printf(b, "%s[%s%s]", name, first, nat); break;
    case 3:
        if (guard)
            mg_printf(b, "(%s < %s ? %s[%s%s] : %lld)", shift, len, name, first, shift,
                      (long long)mg_pick(g, -1, 3));
        else mg_printf(b, "%s[%s%s]", name, first, shift);
        break;
    default: mg_printf(b, "%s[%s%s]", name, first, rev); break;
    }
    free(e);
}

static void mg_divisor(mg *g, mg_buf *b, int depth) {
    switch (mg_pick(g, 0, 7)) {
    case 6: mg_printf(b, "(q - kv)"); break;
    case 7: mg_printf(b, "(kv %% %lld)", (long long)mg_pick(g, 2, 40)); break;
    case 0: mg_printf(b, "%lld", (long long)mg_pick(g, 1, 9)); break;
    case 1: mg_printf(b, "(%lld)", (long long)-mg_pick(g, 1, 7)); break;
    case 2: mg_printf(b, "(abs("); mg_int(g, b, depth); mg_printf(b, ") + 1)"); break;
    case 3:
        if (g->nparams) {
            mg_printf(b, "p%d", (int)mg_pick(g, 0, g->nparams - 1));
            break;
        }
        /* fall through */
    default: mg_int(g, b, depth); break;
    }
}

static void mg_int(mg *g, mg_buf *b, int depth) {
    if (depth <= 0 || mg_pick(g, 0, 9) < 2) {
        mg_leaf(g, b);
        return;
    }
    int d = depth - 1;
    switch (mg_pick(g, 0, 15)) {
    case 0:
    case 1:
        mg_printf(b, "(");
        mg_int(g, b, d);
        mg_printf(b, mg_pick(g, 0, 1) ? " + " : " - ");
        mg_int(g, b, d);
        mg_printf(b, ")");
        break;
    case 2:
        mg_printf(b, "(%lld * ", (long long)mg_pick(g, -3, 4));
        mg_int(g, b, d);
        mg_printf(b, ")");
        break;
    case 3:
        mg_printf(b, "(");
        mg_int(g, b, d);
        mg_printf(b, " * ");
        mg_int(g, b, d);
        mg_printf(b, ")");
        break;
    case 4:
    case 5: {
        bool guard = mg_pick(g, 0, 99) < g->guarded;
        const char *op = mg_pick(g, 0, 1) ? "/" : "%";
        if (guard) {
            char *e = mg_int_text(g, d);
            mg_printf(b, "((%s) != 0 ? (", e);
            mg_int(g, b, d);
            mg_printf(b, ") %s (%s) : %lld)", op, e, (long long)mg_pick(g, -2, 5));
            free(e);
        } else {
            mg_printf(b, "(");
            mg_int(g, b, d);
            mg_printf(b, " %s ", op);
            mg_divisor(g, b, d);
            mg_printf(b, ")");
        }
        break;
    }
    case 6:
    case 7:
        mg_printf(b, mg_pick(g, 0, 1) ? "min(" : "max(");
        mg_int(g, b, d);
        mg_printf(b, ", ");
        mg_int(g, b, d);
        mg_printf(b, ")");
        break;
    case 8:
        mg_printf(b, mg_pick(g, 0, 1) ? "abs(" : "(-");
        mg_int(g, b, d);
        mg_printf(b, ")");
        break;
    case 9:
        mg_printf(b, "(");
        mg_bool(g, b, d);
        mg_printf(b, " ? ");
        mg_int(g, b, d);
        mg_printf(b, " : ");
        mg_int(g, b, d);
        mg_printf(b, ")");
        break;
    case 10:
    case 11:
    case 12:
    case 13: mg_read(g, b, d); break;
    default: mg_leaf(g, b); break;
    }
}

static const char *const mg_cmp_ops[] = {"<", "<=", ">", ">=", "==", "!="};

static void mg_cmp(mg *g, mg_buf *b, int depth) {
    const char *op = mg_cmp_ops[mg_pick(g, 0, 5)];
    switch (mg_pick(g, 0, 7)) {
    case 7: /* separable remainders and quotients */
        mg_printf(b, "((q + %lld) %% %lld %s (kv %s %lld) %% %lld)", (long long)mg_pick(g, 0, 9),
                  (long long)mg_pick(g, 2, 12), op, mg_pick(g, 0, 1) ? "+" : "/",
                  (long long)mg_pick(g, 1, 5), (long long)mg_pick(g, 2, 12));
        break;
    case 0: /* the affine comparisons real masks are made of */
        mg_printf(b, "(%s - %s %s ", mg_pick(g, 0, 1) ? "q" : "kv", mg_pick(g, 0, 1) ? "kv" : "q",
                  op);
        mg_int(g, b, 0);
        mg_printf(b, ")");
        break;
    case 1:
        mg_printf(b, "(%s %s ", mg_pick(g, 0, 1) ? "kv" : "q", op);
        if (mg_pick(g, 0, 1)) mg_printf(b, "%lld * ", (long long)mg_pick(g, -2, 3));
        mg_printf(b, "%s + ", mg_pick(g, 0, 1) ? "q" : "kv");
        mg_int(g, b, 0);
        mg_printf(b, ")");
        break;
    case 2: /* separable: f(q) op g(kv) */
        mg_printf(b, "(%s / %lld %s kv / %lld)", "q", (long long)mg_pick(g, 1, 8), op,
                  (long long)mg_pick(g, 1, 8));
        break;
    default:
        mg_printf(b, "(");
        mg_int(g, b, depth);
        mg_printf(b, " %s ", op);
        mg_int(g, b, depth);
        mg_printf(b, ")");
        break;
    }
}

static void mg_bool(mg *g, mg_buf *b, int depth) {
    if (depth <= 0 || mg_pick(g, 0, 9) < 2) {
        int k = (int)mg_pick(g, 0, 9);
        if (k == 0) mg_printf(b, mg_pick(g, 0, 1) ? "true" : "false");
        else if (k == 1 && g->nbool_lets) mg_printf(b, "lb%d", (int)mg_pick(g, 0, g->nbool_lets - 1));
        else mg_cmp(g, b, (int)mg_pick(g, 0, 2));
        return;
    }
    int d = depth - 1;
    switch (mg_pick(g, 0, 9)) {
    case 0:
    case 1:
    case 2: {
        int n = (int)mg_pick(g, 2, 4);
        const char *op = mg_pick(g, 0, 1) ? " && " : " || ";
        mg_printf(b, "(");
        for (int i = 0; i < n; i++) {
            if (i) mg_printf(b, "%s", op);
            mg_bool(g, b, d);
        }
        mg_printf(b, ")");
        break;
    }
    case 3:
        mg_printf(b, "!");
        mg_bool(g, b, d);
        break;
    case 4:
        mg_printf(b, "(");
        mg_bool(g, b, d);
        mg_printf(b, " ? ");
        mg_bool(g, b, d);
        mg_printf(b, " : ");
        mg_bool(g, b, d);
        mg_printf(b, ")");
        break;
    case 5:
        mg_printf(b, "(");
        mg_bool(g, b, d);
        mg_printf(b, mg_pick(g, 0, 1) ? " == " : " != ");
        mg_bool(g, b, d);
        mg_printf(b, ")");
        break;
    case 6: /* a read one past the position, under its bounds test */
        if (g->in_a) {
            mg_printf(b, "(kv < KV_LEN - 1 && a[kv + 1] %s a[kv])", mg_cmp_ops[mg_pick(g, 0, 5)]);
            break;
        }
        /* fall through */
    default: mg_cmp(g, b, d); break;
    }
}

/* A whole program: declarations, lets, one or two masks. */
static char *mg_program(tu_rng *r, int guarded, bool *reads_inputs) {
    mg_buf out = {0};
    mg g = {.r = r, .out = &out, .guarded = guarded};
    g.nparams = (int)tu_rng_range(r, 0, 2);
    for (int i = 0; i < g.nparams; i++)
        mg_printf(&out, "param p%d = %lld;\n", i, (long long)tu_rng_range(r, -3, 30));
    g.in_a = tu_rng_range(r, 0, 2) == 0;
    g.in_d = tu_rng_range(r, 0, 3) == 0;
    g.in_t = tu_rng_range(r, 0, 4) == 0;
    g.in_s = tu_rng_range(r, 0, 4) == 0;
    if (g.in_a) mg_printf(&out, "input a[KV_LEN];\n");
    if (g.in_d) mg_printf(&out, "input d[Q_LEN];\n");
    if (g.in_t) mg_printf(&out, "input t[BATCH, KV_LEN];\n");
    if (g.in_s) mg_printf(&out, "input s[5];\n");
    int nlets = (int)tu_rng_range(r, 0, 3);
    for (int i = 0; i < nlets; i++) {
        if (tu_rng_range(r, 0, 1)) {
            mg_printf(&out, "let li%d = ", g.nint_lets);
            mg_int(&g, &out, 2);
            g.nint_lets++;
        } else {
            mg_printf(&out, "let lb%d = ", g.nbool_lets);
            mg_bool(&g, &out, 2);
            g.nbool_lets++;
        }
        mg_printf(&out, ";\n");
    }
    mg_printf(&out, "mask m0 = ");
    mg_bool(&g, &out, (int)tu_rng_range(r, 1, 4));
    mg_printf(&out, ";\n");
    if (tu_rng_range(r, 0, 3) == 0) {
        mg_printf(&out, "mask m1 = m0 %s ", tu_rng_range(r, 0, 1) ? "&&" : "||");
        mg_bool(&g, &out, 2);
        mg_printf(&out, ";\n");
    }
    if (reads_inputs) *reads_inputs = g.in_a || g.in_d || g.in_t || g.in_s;
    return out.s;
}

/* Fills an int32 array: small random values, document ids (non-decreasing
 * in steps of at most one), or ids with larger jumps. */
static void mg_fill(tu_rng *r, int32_t *x, int64_t n) {
    int kind = (int)tu_rng_range(r, 0, 3);
    int32_t cur = (int32_t)tu_rng_range(r, -2, 2);
    for (int64_t i = 0; i < n; i++) {
        switch (kind) {
        case 0: x[i] = (int32_t)tu_rng_range(r, 0, 5); break;
        case 1:
            if (i > 0 && tu_rng_range(r, 0, 5) == 0) cur++;
            x[i] = cur;
            break;
        case 2:
            if (i > 0 && tu_rng_range(r, 0, 4) == 0) cur += (int32_t)tu_rng_range(r, 1, 3);
            x[i] = cur;
            break;
        default: x[i] = (int32_t)tu_rng_range(r, -3, 70); break;
        }
    }
}

#endif
