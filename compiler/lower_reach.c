/* Lowering, third part: the guard a let is lowered under, so that each
 * let is lowered once (the expression machine, lower.c, asks at the first
 * use of a let that no memoized lowering covers). */
#include <stdlib.h>

#include "compiler/lower_internal.h"

/* ---- one lowering per let: the widest guard that still reaches it -------- */

/* Does evaluating e always evaluate let (or mask) d? Only the operands that
 * e evaluates unconditionally count: every operand of arithmetic,
 * comparisons, calls and reads, the first of && and ||, the condition of
 * ?: and the operands both branches share; a folded constant evaluates
 * nothing. References to other lets are not followed (the lowering stack
 * does that: see fmc_lw_widest_guard). Recurses only on real nesting; *budget
 * bounds the nodes visited (false when it runs out: the answer is then
 * "unsure", which only costs sharing). */
static bool always_evaluates(const fmd_expr *e, const fmd_decl *d, size_t *budget) {
    for (;;) {
        if (!e || *budget == 0) return false;
        --*budget;
        if (e->is_const && (e->type == FMD_TYPE_INT || e->type == FMD_TYPE_BOOL)) return false;
        switch (e->kind) {
        case FMD_EXPR_NAME: return e->u.name.ref == FMD_REF_DECL && e->u.name.decl == d;
        case FMD_EXPR_UNARY: e = e->u.unary.operand; continue;
        case FMD_EXPR_CHAIN: {
            size_t n = e->u.chain.count;
            if (e->u.chain.prec == FMD_PREC_AND || e->u.chain.prec == FMD_PREC_OR) n = n ? 1 : 0;
            for (size_t i = 0; i < n; i++)
                if (always_evaluates(e->u.chain.operands[i], d, budget)) return true;
            return false;
        }
        case FMD_EXPR_COND:
            if (always_evaluates(e->u.cond.cond, d, budget)) return true;
            if (!always_evaluates(e->u.cond.then_expr, d, budget)) return false;
            e = e->u.cond.else_expr;
            continue;
        case FMD_EXPR_CALL:
        case FMD_EXPR_INDEX: {
            bool call = e->kind == FMD_EXPR_CALL;
            size_t n = call ? e->u.call.count : e->u.index.count;
            fmd_expr *const *args = call ? e->u.call.args : e->u.index.indices;
            for (size_t i = 0; i < n; i++)
                if (always_evaluates(args[i], d, budget)) return true;
            return false;
        }
        default: return false;
        }
    }
}

/* ---- reach guards: where a let is used inside one declaration's body ----- */

enum { SCAN_LET = 1, SCAN_OTHER = 2 };

/* Which lets e reads: SCAN_LET for d, SCAN_OTHER for any other let or mask
 * (both when *budget runs out). */
static int scan_refs(const fmd_expr *e, const fmd_decl *d, size_t *budget) {
    if (!e) return 0;
    if (*budget == 0) return SCAN_LET | SCAN_OTHER;
    --*budget;
    if (e->is_const && (e->type == FMD_TYPE_INT || e->type == FMD_TYPE_BOOL)) return 0;
    int f = 0, all = SCAN_LET | SCAN_OTHER;
    switch (e->kind) {
    case FMD_EXPR_NAME:
        if (e->u.name.ref != FMD_REF_DECL || !e->u.name.decl) return 0;
        if (e->u.name.decl == d) return SCAN_LET;
        return e->u.name.decl->kind == FMD_DECL_LET || e->u.name.decl->kind == FMD_DECL_MASK
                   ? SCAN_OTHER
                   : 0;
    case FMD_EXPR_UNARY: return scan_refs(e->u.unary.operand, d, budget);
    case FMD_EXPR_CHAIN:
        for (size_t i = 0; i < e->u.chain.count && f != all; i++)
            f |= scan_refs(e->u.chain.operands[i], d, budget);
        return f;
    case FMD_EXPR_COND:
        f = scan_refs(e->u.cond.cond, d, budget);
        if (f != all) f |= scan_refs(e->u.cond.then_expr, d, budget);
        if (f != all) f |= scan_refs(e->u.cond.else_expr, d, budget);
        return f;
    case FMD_EXPR_CALL:
    case FMD_EXPR_INDEX: {
        bool call = e->kind == FMD_EXPR_CALL;
        size_t n = call ? e->u.call.count : e->u.index.count;
        fmd_expr *const *args = call ? e->u.call.args : e->u.index.indices;
        for (size_t i = 0; i < n && f != all; i++) f |= scan_refs(args[i], d, budget);
        return f;
    }
    default: return 0;
    }
}

/* The value of condition e, evaluated under g, for the guards of the uses
 * of d after it. A condition that reads d is lowered with d read as 0:
 * where d was not used before it (in evaluation order, e included), its
 * value cannot depend on d (the spec has not evaluated d there), and where
 * d was used, the reach guard is already true whatever the guards after
 * it say. Those guards are then wrong there, so from the first such
 * condition on, every condition is lowered only where d was not used yet
 * (L->rsofar): its divisions and reads never run where the spec would not
 * run them, or on the stand-in 0. A condition that reads other lets is
 * lowered as it will be in place (they are memoized under the same guards,
 * so the real lowering shares them), a few levels deep at most; in one
 * that reads d too, d reads as 0 only where the condition names it, and
 * the other lets are lowered for real (d inside their bodies is evaluated
 * where they are). GUARD_ERROR when unsure. */
static int32_t reach_value(lowerer *L, const fmd_expr *e, int32_t g, const fmd_decl *d,
                           size_t *budget) {
    int f = scan_refs(e, d, budget);
    if ((f & SCAN_OTHER) && L->nest >= REACH_NEST_MAX) return GUARD_ERROR;
    if ((f & SCAN_LET) || L->rjunk) {
        if (L->rsofar == GUARD_NONE) g = GUARD_FALSE;
        else if (L->rsofar != GUARD_FALSE && g != GUARD_FALSE) {
            int32_t n = fmc_lw_emit1(L, FMC_OP_NOT, FMD_TYPE_BOOL, L->rsofar, GUARD_NONE, e->span,
                                     e->span);
            g = fmc_lw_make_guard(L, g, n, e->span);
            if (g == GUARD_ERROR) return GUARD_ERROR;
        }
    }
    if (g == GUARD_FALSE)
        return fmc_lw_emit_const(L, e->type == FMD_TYPE_BOOL ? FMD_TYPE_BOOL : FMD_TYPE_INT, 0,
                                 e->span);
    const fmd_decl *junk = L->junk;
    bool miss = L->junk_miss;
    if (f & SCAN_LET) {
        L->junk = d;
        L->rjunk = true;
    }
    L->nest++;
    L->junk_miss = false;
    int32_t v = fmc_lw_lower_nested(L, e, g);
    L->nest--;
    if (L->junk_miss) v = -1;
    L->junk = junk;
    L->junk_miss = miss;
    return v < 0 ? GUARD_ERROR : v;
}

static int32_t reach_or(lowerer *L, int32_t a, int32_t b, int32_t g, fmd_span span) {
    if (a == GUARD_ERROR || b == GUARD_ERROR) return GUARD_ERROR;
    if (a == GUARD_FALSE) return b;
    if (b == GUARD_FALSE || a == g) return a;
    if (b == g) return b;
    int32_t r = fmc_lw_emit2(L, FMC_OP_OR, FMD_TYPE_BOOL, a, b, GUARD_NONE, span, span, span);
    return r < 0 ? GUARD_ERROR : r;
}

/* Where let d is used inside e, e being evaluated under g: g itself when
 * always, GUARD_FALSE when never, otherwise the OR of the guards of its
 * uses, built the way the expression machine builds them (so the
 * conditions it lowers are shared with the real lowering). GUARD_ERROR
 * when unsure: a condition reads another let, or *budget runs out. Uses
 * inside other lets' bodies do not count. */
static int32_t reach(lowerer *L, const fmd_expr *e, int32_t g, const fmd_decl *d,
                     size_t *budget) {
    if (g == GUARD_FALSE || !e) return GUARD_FALSE;
    if (g == GUARD_ERROR || *budget == 0) return GUARD_ERROR;
    --*budget;
    if (e->is_const && (e->type == FMD_TYPE_INT || e->type == FMD_TYPE_BOOL)) return GUARD_FALSE;
    int32_t r = GUARD_FALSE;
    switch (e->kind) {
    case FMD_EXPR_NAME:
        if (e->u.name.ref != FMD_REF_DECL || e->u.name.decl != d) return GUARD_FALSE;
        L->rsofar = reach_or(L, L->rsofar, g, GUARD_NONE, e->span);
        return L->rsofar == GUARD_ERROR ? GUARD_ERROR : g;
    case FMD_EXPR_UNARY: return reach(L, e->u.unary.operand, g, d, budget);
    case FMD_EXPR_CALL:
    case FMD_EXPR_INDEX: {
        bool call = e->kind == FMD_EXPR_CALL;
        size_t n = call ? e->u.call.count : e->u.index.count;
        fmd_expr *const *args = call ? e->u.call.args : e->u.index.indices;
        for (size_t i = 0; i < n && r != g && r != GUARD_ERROR; i++)
            r = reach_or(L, r, reach(L, args[i], g, d, budget), g, e->span);
        return r;
    }
    case FMD_EXPR_CHAIN: {
        fmd_expr *const *ops = e->u.chain.operands;
        size_t n = e->u.chain.count;
        bool and = e->u.chain.prec == FMD_PREC_AND;
        if (!and && e->u.chain.prec != FMD_PREC_OR) {
            for (size_t i = 0; i < n && r != g && r != GUARD_ERROR; i++)
                r = reach_or(L, r, reach(L, ops[i], g, d, budget), g, e->span);
            return r;
        }
        /* Operand i is evaluated where g holds and the operands before it
         * combine to true (&&) or false (||), as in step(). */
        int32_t acc = -1;
        for (size_t i = 0; i < n; i++) {
            int32_t gi = g;
            if (i > 0) {
                int64_t c;
                fmd_span sofar = {ops[0]->span.start, ops[i - 1]->span.end};
                if (fmc_lw_is_const(L, acc, &c)) {
                    if (and ? !c : c) break;
                } else {
                    int32_t x = acc;
                    if (!and)
                        x = fmc_lw_emit1(L, FMC_OP_NOT, FMD_TYPE_BOOL, acc, GUARD_NONE, sofar,
                                         sofar);
                    gi = fmc_lw_make_guard(L, g, x, sofar);
                }
            }
            int32_t ri = reach(L, ops[i], gi, d, budget);
            r = reach_or(L, r, ri, g, e->span);
            if (r == g || r == GUARD_ERROR || i + 1 == n) break;
            int32_t v = reach_value(L, ops[i], gi, d, budget);
            if (v == GUARD_ERROR) return GUARD_ERROR;
            acc = i == 0 ? v
                         : fmc_lw_emit2(L, and ? FMC_OP_AND : FMC_OP_OR, FMD_TYPE_BOOL, acc, v,
                                        GUARD_NONE, e->span, e->span, e->span);
            if (acc < 0) return GUARD_ERROR;
        }
        return r;
    }
    case FMD_EXPR_COND: {
        const fmd_expr *ce = e->u.cond.cond;
        r = reach(L, ce, g, d, budget);
        if (r == g || r == GUARD_ERROR) return r;
        int32_t v = reach_value(L, ce, g, d, budget);
        if (v == GUARD_ERROR) return GUARD_ERROR;
        int64_t c;
        if (fmc_lw_is_const(L, v, &c))
            return reach_or(L, r,
                            reach(L, c ? e->u.cond.then_expr : e->u.cond.else_expr, g, d, budget),
                            g, e->span);
        int32_t gt = fmc_lw_make_guard(L, g, v, ce->span);
        r = reach_or(L, r, reach(L, e->u.cond.then_expr, gt, d, budget), g, e->span);
        if (r == g || r == GUARD_ERROR) return r;
        int32_t n = fmc_lw_emit1(L, FMC_OP_NOT, FMD_TYPE_BOOL, v, GUARD_NONE, ce->span, ce->span);
        int32_t ge = fmc_lw_make_guard(L, g, n, ce->span);
        return reach_or(L, r, reach(L, e->u.cond.else_expr, ge, d, budget), g, e->span);
    }
    default: return GUARD_ERROR;
    }
}

/* The guard to lower let d under, asked for under `guard` by the top frame.
 *
 * The spec evaluates a let wherever one of its uses is reached. Lowering it
 * once per guard of its uses doubles the program with each let of a chain
 * used on both sides of a `?:` (or first in an `&&` and again after it), so
 * instead the let is lowered once, under the guard of the outermost
 * enclosing expression that always evaluates it: that guard is true exactly
 * where one of the uses inside that expression is reached (never where
 * none is, so a let that can fault is checked only where the spec
 * evaluates it), and the uses inside, whose guards all imply it, share the
 * one value through the memo. The guard register already exists (the
 * enclosing expression is being lowered), so the IR stays in order.
 *
 * The walk goes down the stack while each frame's guard implies the one
 * below (a child's guard is its parent's, or the parent's AND a
 * condition); a let body lowered under a guard wider than its use's ends
 * the walk, because frames below it do not cover all of its points. */
int32_t fmc_lw_widest_guard(lowerer *L, const fmd_decl *d, int32_t guard) {
    int32_t best = guard;
    size_t budget = WIDEN_BUDGET, at = L->nstack - 1, frames = WIDEN_FRAMES;
    /* Only a frame whose guard is wider than the best so far can help;
     * nothing is wider than no guard. */
    for (size_t j = L->nstack - 1; j-- > 0 && budget > 0 && frames-- > 0 && best != GUARD_NONE;) {
        const frame *in = &L->stack[j + 1], *out = &L->stack[j];
        if (out->guard == GUARD_FALSE || !fmc_lw_implies(L, in->guard, out->guard)) break;
        if (out->guard == best) continue;
        size_t before = budget;
        if (always_evaluates(out->e, d, &budget)) {
            best = out->guard;
            at = j;
        }
        L->work += before - budget;
    }
    /* Within the body that uses d (the frames above the innermost let or
     * mask reference), the OR of the guards of all its uses there. */
    size_t root = 0;
    for (size_t j = L->nstack - 1; j-- > 0;) {
        const fmd_expr *x = L->stack[j].e;
        if (x->kind == FMD_EXPR_NAME && x->u.name.ref == FMD_REF_DECL && x->u.name.decl &&
            (x->u.name.decl->kind == FMD_DECL_LET || x->u.name.decl->kind == FMD_DECL_MASK)) {
            root = j + 1;
            break;
        }
    }
    const frame *rf = &L->stack[root];
    if (at <= root || rf->guard == GUARD_FALSE) return best;
    widen_entry *w = &L->widen[d->kind][d->index];
    if (w->e != rf->e || w->at != rf->guard) {
        size_t rb = WIDEN_BUDGET;
        int32_t sofar = L->rsofar;
        bool rjunk = L->rjunk;
        L->rsofar = GUARD_FALSE;
        L->rjunk = false;
        w->e = rf->e;
        w->at = rf->guard;
        w->guard = reach(L, rf->e, rf->guard, d, &rb);
        L->rsofar = sofar;
        L->rjunk = rjunk;
        L->work += WIDEN_BUDGET - rb;
    }
    return w->guard == GUARD_ERROR || w->guard == GUARD_FALSE ? best : w->guard;
}
