/* The abstract interpreter: one forward pass over the instructions,
 * computing an fmc_aval per register over a box. See absint.h for the
 * domain and why it is sound; the comments here say which facts each rule
 * keeps and why they still hold. */
#include <stdlib.h>
#include <string.h>

#include "compiler/absint_internal.h"

/* ---- constraint pool ------------------------------------------------------- */

static uint32_t pool_put(fmc_absint *A, const fmc_cons *cs, size_t n) {
    if (A->npool + n > A->poolcap) {
        size_t ncap = A->poolcap ? A->poolcap * 2 : 256;
        while (ncap < A->npool + n) ncap *= 2;
        fmc_cons *np = realloc(A->pool, ncap * sizeof *np);
        if (!np) {
            A->oom = true;
            return UINT32_MAX;
        }
        A->pool = np;
        A->poolcap = ncap;
    }
    uint32_t off = (uint32_t)A->npool;
    for (size_t i = 0; i < n; i++) A->pool[A->npool++] = cs[i];
    return off;
}

static fmc_cons negate(fmc_cons c) {
    fmc_cons r = {-c.a, -c.c, -c.d + 1};
    return r;
}

/* Stores a form (conjunction or disjunction) of n constraints. */
static void set_form(fmc_absint *A, uint32_t *off, uint8_t *cnt, const fmc_cons *cs, size_t n) {
    if (n > MAXC) {
        *cnt = FMC_NOCONS;
        return;
    }
    uint32_t o = pool_put(A, cs, n);
    if (o == UINT32_MAX) {
        *cnt = FMC_NOCONS;
        return;
    }
    *off = o;
    *cnt = (uint8_t)n;
}

/* ---- bools -------------------------------------------------------------------- */

static fmc_abs_class cls(const aval *x) {
    return x->lo == x->hi ? (x->lo ? FMC_ABS_TRUE : FMC_ABS_FALSE) : FMC_ABS_MIXED;
}

static void set_mixed(aval *r, bool exact, uint8_t deps) {
    memset(r, 0, sizeof *r);
    r->lo = 0;
    r->hi = 1;
    r->f = exact ? FMC_AF_ATT | FMC_AF_CON : 0;
    r->deps = deps;
    r->nconj = r->ndisj = FMC_NOCONS;
}

static void a_not(fmc_absint *A, aval *r, const aval *x) {
    if (cls(x) != FMC_ABS_MIXED) {
        set_bool(r, !x->lo);
        return;
    }
    set_mixed(r, x->f & FMC_AF_ATT, x->deps);
    fmc_cons tmp[MAXC];
    if (x->ndisj != FMC_NOCONS) {
        for (size_t i = 0; i < x->ndisj; i++) tmp[i] = negate(A->pool[x->disj + i]);
        set_form(A, &r->conj, &r->nconj, tmp, x->ndisj);
    }
    if (x->nconj != FMC_NOCONS) {
        for (size_t i = 0; i < x->nconj; i++) tmp[i] = negate(A->pool[x->conj + i]);
        set_form(A, &r->disj, &r->ndisj, tmp, x->nconj);
    }
}

/* x && y (or, with dual, x || y expressed through negations). */
static void a_and(const ctx *C, aval *r, const aval *x, const aval *y) {
    fmc_absint *A = C->A;
    fmc_abs_class cx = cls(x), cy = cls(y);
    if (cx == FMC_ABS_FALSE || cy == FMC_ABS_FALSE) {
        set_bool(r, false);
        return;
    }
    if (cx == FMC_ABS_TRUE) {
        *r = *y;
        return;
    }
    if (cy == FMC_ABS_TRUE) {
        *r = *x;
        return;
    }
    bool ex = x->f & FMC_AF_ATT, ey = y->f & FMC_AF_ATT;
    uint8_t deps = x->deps | y->deps;
    bool exact = ex && ey && separable(x, y);
    fmc_cons tmp[2 * MAXC];
    size_t n = 0;
    bool have = x->nconj != FMC_NOCONS && y->nconj != FMC_NOCONS && x->nconj + y->nconj <= MAXC;
    if (have) {
        for (size_t i = 0; i < x->nconj; i++) tmp[n++] = A->pool[x->conj + i];
        for (size_t i = 0; i < y->nconj; i++) tmp[n++] = A->pool[y->conj + i];
        int f = fmc_feasible(tmp, n, C->box);
        if (f == 0) {
            set_bool(r, false);
            return;
        }
        /* A point with both true exists; one with the result false exists
         * when either operand is proven mixed. */
        if (f == 1 && (ex || ey)) exact = true;
    }
    set_mixed(r, exact, deps);
    if (have) set_form(A, &r->conj, &r->nconj, tmp, n);
}

static void a_or(const ctx *C, aval *r, const aval *x, const aval *y) {
    aval nx, ny, t;
    a_not(C->A, &nx, x);
    a_not(C->A, &ny, y);
    a_and(C, &t, &nx, &ny);
    a_not(C->A, r, &t);
}

/* ---- comparisons ----------------------------------------------------------------- */

typedef enum { CMP_LT, CMP_LE, CMP_EQ, CMP_NE } cmp_op;

static void cmp_from_diff(const ctx *C, aval *r, cmp_op op, __int128 lo, __int128 hi,
                          bool lt_exact, bool eq_exact, uint8_t deps) {
    switch (op) {
    case CMP_LT:
        if (hi < 0) set_bool(r, true);
        else if (lo >= 0) set_bool(r, false);
        else set_mixed(r, lt_exact, deps);
        return;
    case CMP_LE:
        if (hi <= 0) set_bool(r, true);
        else if (lo > 0) set_bool(r, false);
        else set_mixed(r, lt_exact, deps);
        return;
    case CMP_EQ:
    case CMP_NE: {
        bool eq_true = lo == 0 && hi == 0, eq_false = lo > 0 || hi < 0;
        if (eq_true || eq_false) set_bool(r, (op == CMP_EQ) == eq_true);
        else set_mixed(r, eq_exact, deps);
        return;
    }
    }
}

static void a_cmp(const ctx *C, aval *r, cmp_op op, const aval *x, const aval *y, bool booleans) {
    fmc_absint *A = C->A;
    if (booleans) {
        /* b == true is b; b == false is !b. */
        const aval *d = is_single(y) ? y : is_single(x) ? x : NULL;
        const aval *o = d == y ? x : y;
        if (d) {
            bool keep = (d->lo != 0) == (op == CMP_EQ);
            if (keep) *r = *o;
            else a_not(A, r, o);
            return;
        }
    }
    if ((x->f & y->f & FMC_AF_AFF) && !booleans) {
        __int128 a = (__int128)x->a - y->a, c = (__int128)x->c - y->c, d = (__int128)x->d - y->d;
        if (fits(a, COEF_LIMIT) && fits(c, COEF_LIMIT) && fits(d, COEF_LIMIT)) {
            __int128 lo, hi;
            affine_range(C, a, c, d, &lo, &hi);
            uint8_t deps = affine_deps(C, a, c);
            fmc_cons e = {(int64_t)a, (int64_t)c, (int64_t)d};
            bool eq_exact = affine_contiguous(C, e.a, e.c);
            fmc_cons eqc[2] = {e, {-e.a, -e.c, -e.d}};
            if ((op == CMP_EQ || op == CMP_NE) && !eq_exact && lo <= 0 && hi >= 0 && lo < hi) {
                int f = fmc_feasible(eqc, 2, C->box);
                if (f == 0) {
                    set_bool(r, op == CMP_NE);
                    return;
                }
                eq_exact = f == 1;
            }
            cmp_from_diff(C, r, op, lo, hi, true, eq_exact, deps);
            if (cls(r) != FMC_ABS_MIXED) return;
            if (op == CMP_LT || op == CMP_LE) {
                fmc_cons k = e;
                if (op == CMP_LT) k.d += 1;
                set_form(A, &r->conj, &r->nconj, &k, 1);
                set_form(A, &r->disj, &r->ndisj, &k, 1);
            } else if (op == CMP_EQ) {
                set_form(A, &r->conj, &r->nconj, eqc, 2);
            } else {
                fmc_cons ne[2] = {negate(eqc[1]), negate(eqc[0])};
                set_form(A, &r->disj, &r->ndisj, ne, 2);
            }
            return;
        }
    }
    __int128 lo = (__int128)x->lo - y->hi, hi = (__int128)x->hi - y->lo;
    uint8_t deps = x->deps | y->deps;
    bool indep = is_single(x) || is_single(y) || separable(x, y);
    bool lt_exact = indep && (x->f & y->f & FMC_AF_ATT);
    bool eq_exact = false;
    if (indep) {
        if (x->f & y->f & FMC_AF_CON) eq_exact = true;
        else if (is_single(x) && (y->f & FMC_AF_ATT) && (x->lo == y->lo || x->lo == y->hi))
            eq_exact = true;
        else if (is_single(y) && (x->f & FMC_AF_ATT) && (y->lo == x->lo || y->lo == x->hi))
            eq_exact = true;
    }
    cmp_from_diff(C, r, op, lo, hi, lt_exact, eq_exact, deps);
}

/* ---- safety under a guard -------------------------------------------------------------- */

/* Whether every point where guard g holds keeps cons-violation `bad`
 * (a conjunction) unsatisfiable: uses the guard's exact conjunctive form. */
static bool guard_excludes(const ctx *C, int32_t g, const fmc_cons *bad, size_t nbad) {
    const fmc_absint *A = C->A;
    fmc_cons tmp[MAXC + 2];
    size_t n = 0;
    if (g >= 0) {
        const aval *gv = &A->v[g];
        if (gv->nconj == FMC_NOCONS || gv->nconj + nbad > MAXC + 2) return false;
        for (size_t i = 0; i < gv->nconj; i++) tmp[n++] = A->pool[gv->conj + i];
    }
    for (size_t i = 0; i < nbad; i++) tmp[n++] = bad[i];
    return fmc_feasible(tmp, n, C->box) == 0;
}

/* Retries a possible fault of a read or a division where the guard is
 * undecided: the guard's constraints may exclude every bad point. */
static bool refine_fault(const ctx *C, const fmc_insn *x) {
    const fmc_absint *A = C->A;
    if (x->op == FMC_OP_LOAD) {
        const int64_t *dims = A->env->input_dims[x->imm];
        for (int k = 0; k < x->nargs; k++) {
            const aval *ix = &A->v[x->args[k]];
            if (ix->lo >= 0 && ix->hi < dims[k]) continue;
            /* A constant index keeps its value as d unbounded (set_const):
             * d + 1 and dim - d below must not overflow. */
            if (!(ix->f & FMC_AF_AFF) || !fits(ix->d, COEF_LIMIT) || dims[k] <= 0 ||
                dims[k] > COEF_LIMIT)
                return false;
            fmc_cons below = {ix->a, ix->c, (int64_t)ix->d + 1};       /* i <= -1 */
            fmc_cons above = {-ix->a, -ix->c, dims[k] - ix->d};       /* i >= dim */
            if (ix->lo < 0 && !guard_excludes(C, x->guard, &below, 1)) return false;
            if (ix->hi >= dims[k] && !guard_excludes(C, x->guard, &above, 1)) return false;
        }
        return true;
    }
    if (x->op == FMC_OP_DIV || x->op == FMC_OP_MOD) {
        const aval *n = &A->v[x->args[0]], *d = &A->v[x->args[1]];
        if (x->op == FMC_OP_DIV && n->lo == INT64_MIN && d->lo <= -1 && d->hi >= -1) return false;
        if (d->lo > 0 || d->hi < 0) return true;
        if (!(d->f & FMC_AF_AFF)) return false;
        fmc_cons zero[2] = {{d->a, d->c, d->d}, {-d->a, -d->c, -d->d}};
        return guard_excludes(C, x->guard, zero, 2);
    }
    return false;
}

/* ---- the pass ------------------------------------------------------------------------------ */

bool fmc_absint_init(fmc_absint *a, const fmc_program *p, const fmc_env *env,
                     const fmc_rtab *tabs) {
    memset(a, 0, sizeof *a);
    a->p = p;
    a->env = env;
    a->tabs = tabs;
    a->v = malloc((p->count + 1) * sizeof *a->v);
    return a->v != NULL;
}

void fmc_absint_free(fmc_absint *a) {
    free(a->v);
    free(a->pool);
    memset(a, 0, sizeof *a);
}

fmc_abs_class fmc_absint_class(const fmc_absint *a, int32_t r) {
    return cls(&a->v[r]);
}

fmc_abs_answer fmc_absint_eval(fmc_absint *A, const fmc_box *box, bool count) {
    const fmc_program *p = A->p;
    ctx C = {A, box, box->q1 - box->q0 + 1, box->k1 - box->k0 + 1};
    A->box = *box;
    A->npool = 0;
    A->unsafe = false;
    A->oom = false;
    for (size_t i = 0; i < p->count; i++) {
        const fmc_insn *x = &p->insns[i];
        aval *r = &A->v[i];
        fmc_abs_class g = x->guard >= 0 ? cls(&A->v[x->guard]) : FMC_ABS_TRUE;
        if (g == FMC_ABS_FALSE) {
            /* Not evaluated anywhere in the box: its value is never used. */
            if (x->type == FMD_TYPE_BOOL) set_bool(r, false);
            else set_const(r, 0);
            continue;
        }
        const aval *a0 = x->nargs > 0 && x->op != FMC_OP_VAR && x->op != FMC_OP_CONST &&
                                 x->op != FMC_OP_PARAM
                             ? &A->v[x->args[0]]
                             : NULL;
        const aval *a1 = a0 && x->nargs > 1 ? &A->v[x->args[1]] : NULL;
        bool fault = false;
        switch ((fmc_op)x->op) {
        case FMC_OP_CONST:
            if (x->type == FMD_TYPE_BOOL) set_bool(r, x->imm != 0);
            else set_const(r, x->imm);
            break;
        case FMC_OP_VAR: fmc_ab_var(&C, r, x->imm); break;
        case FMC_OP_PARAM: set_const(r, A->env->params[x->imm]); break;
        case FMC_OP_NEG: fault = fmc_ab_neg(&C, r, a0); break;
        case FMC_OP_ABS: fault = fmc_ab_abs(&C, r, a0); break;
        case FMC_OP_ADD: fault = fmc_ab_addsub(&C, r, a0, a1, false); break;
        case FMC_OP_SUB: fault = fmc_ab_addsub(&C, r, a0, a1, true); break;
        case FMC_OP_MUL: fault = fmc_ab_mul(&C, r, a0, a1); break;
        case FMC_OP_DIV: fault = fmc_ab_div(&C, r, a0, a1); break;
        case FMC_OP_MOD: fault = fmc_ab_mod(&C, r, a0, a1); break;
        case FMC_OP_MIN: fmc_ab_minmax(r, a0, a1, false); break;
        case FMC_OP_MAX: fmc_ab_minmax(r, a0, a1, true); break;
        case FMC_OP_EQ:
        case FMC_OP_NE:
        case FMC_OP_LT:
        case FMC_OP_LE: {
            cmp_op op = x->op == FMC_OP_EQ   ? CMP_EQ
                        : x->op == FMC_OP_NE ? CMP_NE
                        : x->op == FMC_OP_LT ? CMP_LT
                                             : CMP_LE;
            a_cmp(&C, r, op, a0, a1, p->insns[x->args[0]].type == FMD_TYPE_BOOL);
            break;
        }
        case FMC_OP_NOT: a_not(A, r, a0); break;
        case FMC_OP_AND: a_and(&C, r, a0, a1); break;
        case FMC_OP_OR: a_or(&C, r, a0, a1); break;
        case FMC_OP_SELECT: {
            const aval *c = a0, *t = a1, *e = &A->v[x->args[2]];
            fmc_abs_class cc = cls(c);
            if (cc == FMC_ABS_TRUE) *r = *t;
            else if (cc == FMC_ABS_FALSE) *r = *e;
            else if (x->type == FMD_TYPE_BOOL && is_single(t) && is_single(e)) {
                if (t->lo == e->lo) set_bool(r, t->lo != 0);
                else if (t->lo) *r = *c;
                else a_not(A, r, c);
            } else {
                set_range(r, t->lo < e->lo ? t->lo : e->lo, t->hi > e->hi ? t->hi : e->hi, 0,
                          c->deps | t->deps | e->deps);
            }
            break;
        }
        case FMC_OP_LOAD: fault = fmc_ab_load(&C, r, x); break;
        default: set_const(r, 0); break;
        }
        if (fault && !refine_fault(&C, x)) A->unsafe = true;
    }
    fmc_abs_answer ans = {FMC_ABS_MIXED, false, !A->unsafe && !A->oom, -1};
    if (p->count == 0) {
        ans.cls = FMC_ABS_FALSE;
        return ans;
    }
    const aval *res = &A->v[p->result];
    ans.cls = cls(res);
    ans.exact = ans.cls != FMC_ABS_MIXED || (res->f & FMC_AF_ATT);
    if (count) {
        __int128 area = (__int128)C.Lq * C.Lk;
        if (ans.cls == FMC_ABS_TRUE) ans.ntrue = sat(area);
        else if (ans.cls == FMC_ABS_FALSE) ans.ntrue = 0;
        else if (res->nconj != FMC_NOCONS)
            ans.ntrue = fmc_count_feasible(A->pool + res->conj, res->nconj, box);
        else if (res->ndisj != FMC_NOCONS) {
            fmc_cons tmp[MAXC];
            for (size_t i = 0; i < res->ndisj; i++) tmp[i] = negate(A->pool[res->disj + i]);
            int64_t f = fmc_count_feasible(tmp, res->ndisj, box);
            ans.ntrue = f < 0 ? -1 : sat(area - f);
        }
        /* b and h ranges multiply the count; only single slices are counted. */
        if (box->b0 != box->b1 || box->h0 != box->h1) ans.ntrue = -1;
    }
    return ans;
}

/* ---- 32-bit arithmetic check --------------------------------------------------------------- */

bool fmc_program_fits_int32(const fmc_program *p, const fmc_env *env) {
    if (env->batch < 1 || env->heads < 1 || env->q_len < 1 || env->kv_len < 1) return false;
    fmc_rtab *t = fmc_rtab_build(p, env);
    if (!t) return false;
    fmc_absint A;
    bool ok = fmc_absint_init(&A, p, env, t);
    if (ok) {
        fmc_box box = {0, env->batch - 1, 0, env->heads - 1, 0, env->q_len - 1, 0, env->kv_len - 1};
        fmc_absint_eval(&A, &box, false);
        ok = !A.oom;
        for (size_t i = 0; ok && i < p->count; i++) {
            const fmc_insn *x = &p->insns[i];
            if (x->type != FMD_TYPE_INT) continue;
            if (x->guard >= 0 && cls(&A.v[x->guard]) == FMC_ABS_FALSE) continue;
            ok = A.v[i].lo >= INT32_MIN && A.v[i].hi <= INT32_MAX;
        }
        /* Shape values and params are stored as 32-bit values too. */
        ok = ok && env->q_len <= INT32_MAX && env->kv_len <= INT32_MAX &&
             env->batch <= INT32_MAX && env->heads <= INT32_MAX;
    }
    fmc_absint_free(&A);
    fmc_rtab_free(t);
    return ok;
}
