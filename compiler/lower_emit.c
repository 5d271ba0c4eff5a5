/* Lowering, first half: emitting instructions. Every instruction is
 * hash-consed; an unsafe one is reused only when its guard is the current
 * guard or implied by it, so sharing never moves an array read or a
 * division to points where the spec does not evaluate it. Folding covers
 * literals only and never folds a value that would break a safety rule. */
#include <stdlib.h>
#include <string.h>

#include "compiler/arith.h"
#include "compiler/lower_internal.h"

/* ---- instructions ------------------------------------------------------ */

static uint64_t key_hash(const fmc_insn *x) {
    uint64_t h = 1469598103934665603ull;
#define MIX(v)                                                                                     \
    do {                                                                                           \
        h ^= (uint64_t)(v);                                                                        \
        h *= 1099511628211ull;                                                                     \
        h ^= h >> 29;                                                                              \
    } while (0)
    MIX(x->op);
    MIX(x->type);
    MIX(x->nargs);
    for (int k = 0; k < x->nargs; k++) MIX((uint32_t)x->args[k]);
    MIX(x->imm);
#undef MIX
    return h;
}

static bool same_key(const fmc_insn *a, const fmc_insn *b) {
    if (a->op != b->op || a->type != b->type || a->nargs != b->nargs || a->imm != b->imm)
        return false;
    for (int k = 0; k < a->nargs; k++)
        if (a->args[k] != b->args[k]) return false;
    return true;
}

/* Is g0 one of the conjuncts of g (g itself, or under its ANDs)? */
static bool conjunct_of(const lowerer *L, int32_t g, int32_t g0, int *budget) {
    int32_t todo[IMPLY_BUDGET];
    int n = 0;
    todo[n++] = g;
    while (n > 0 && *budget > 0) {
        int32_t r = todo[--n];
        --*budget;
        if (r == g0) return true;
        const fmc_insn *x = &L->insns[r];
        if (x->op == FMC_OP_AND && n + 2 <= IMPLY_BUDGET) {
            todo[n++] = x->args[1];
            todo[n++] = x->args[0];
        }
    }
    return false;
}

static bool implies(const lowerer *L, int32_t g, int32_t g0, int *budget) {
    if (g0 == GUARD_NONE || g == g0) return true;
    if (g < 0 || g0 < 0) return false;
    if (conjunct_of(L, g, g0, budget)) return true;
    /* A let's guard may be an OR of its uses' guards (lower.c), and those
     * ANDs of conditions: g implies it when it implies one side of an OR,
     * or both sides of an AND. */
    const fmc_insn *x = &L->insns[g0];
    if (*budget <= 0 || (x->op != FMC_OP_OR && x->op != FMC_OP_AND)) return false;
    --*budget;
    if (x->op == FMC_OP_OR)
        return implies(L, g, x->args[0], budget) || implies(L, g, x->args[1], budget);
    return implies(L, g, x->args[0], budget) && implies(L, g, x->args[1], budget);
}

/* Does guard g being true imply guard g0 is true? A bounded walk over the
 * ANDs and ORs of both (false when unsure). */
bool fmc_lw_implies(const lowerer *L, int32_t g, int32_t g0) {
    int budget = IMPLY_BUDGET;
    return implies(L, g, g0, &budget);
}

static bool ht_grow(lowerer *L) {
    size_t ncap = L->htcap ? L->htcap * 2 : 1024;
    int32_t *t = malloc(ncap * sizeof *t);
    if (!t) return false;
    for (size_t i = 0; i < ncap; i++) t[i] = -1;
    for (size_t i = 0; i < L->htcap; i++) {
        int32_t r = L->ht[i];
        if (r < 0) continue;
        size_t s = key_hash(&L->insns[r]) & (ncap - 1);
        while (t[s] >= 0) s = (s + 1) & (ncap - 1);
        t[s] = r;
    }
    free(L->ht);
    L->ht = t;
    L->htcap = ncap;
    return true;
}

bool fmc_lw_is_const(const lowerer *L, int32_t r, int64_t *v) {
    if (r < 0 || L->insns[r].op != FMC_OP_CONST) return false;
    if (v) *v = L->insns[r].imm;
    return true;
}

/* Literal folding. False when the op is not foldable or would break a
 * safety rule (left for the build check, which names the point). */
static bool fold(fmc_op op, const int64_t *a, int64_t *out) {
    int64_t r;
    switch (op) {
    case FMC_OP_NEG:
        if (a[0] == INT64_MIN) return false;
        *out = -a[0];
        return true;
    case FMC_OP_ABS:
        if (a[0] == INT64_MIN) return false;
        *out = a[0] < 0 ? -a[0] : a[0];
        return true;
    case FMC_OP_ADD:
        if (__builtin_add_overflow(a[0], a[1], &r)) return false;
        *out = r;
        return true;
    case FMC_OP_SUB:
        if (__builtin_sub_overflow(a[0], a[1], &r)) return false;
        *out = r;
        return true;
    case FMC_OP_MUL:
        if (__builtin_mul_overflow(a[0], a[1], &r)) return false;
        *out = r;
        return true;
    case FMC_OP_DIV:
        if (a[1] == 0 || (a[0] == INT64_MIN && a[1] == -1)) return false;
        *out = fmd_floordiv(a[0], a[1]);
        return true;
    case FMC_OP_MOD:
        if (a[1] == 0) return false;
        *out = fmd_floormod(a[0], a[1]);
        return true;
    case FMC_OP_MIN: *out = a[0] < a[1] ? a[0] : a[1]; return true;
    case FMC_OP_MAX: *out = a[0] > a[1] ? a[0] : a[1]; return true;
    case FMC_OP_EQ: *out = a[0] == a[1]; return true;
    case FMC_OP_NE: *out = a[0] != a[1]; return true;
    case FMC_OP_LT: *out = a[0] < a[1]; return true;
    case FMC_OP_LE: *out = a[0] <= a[1]; return true;
    case FMC_OP_NOT: *out = !a[0]; return true;
    case FMC_OP_AND: *out = a[0] && a[1]; return true;
    case FMC_OP_OR: *out = a[0] || a[1]; return true;
    case FMC_OP_SELECT: *out = a[0] ? a[1] : a[2]; return true;
    default: return false;
    }
}

int32_t fmc_lw_emit_raw(lowerer *L, const fmc_insn *x, const fmd_span *argsp) {
    if (L->count * 2 + 2 > L->htcap && !ht_grow(L)) {
        L->oom = true;
        return -1;
    }
    size_t s = key_hash(x) & (L->htcap - 1);
    int32_t head = -1;
    while (L->ht[s] >= 0) {
        if (same_key(&L->insns[L->ht[s]], x)) {
            head = L->ht[s];
            break;
        }
        s = (s + 1) & (L->htcap - 1);
    }
    /* The most recent instances only: a mask whose lets are used under
     * many different guards makes long chains, and a full scan per
     * emission is quadratic (minutes). Missing a share costs one more
     * instruction, never correctness. */
    int scanned = 0;
    for (int32_t j = head; j >= 0 && scanned < MEMO_SCAN; j = L->chain[j], scanned++)
        if (fmc_lw_implies(L, x->guard, L->insns[j].guard)) return j;
    if (L->count >= L->max_insns) {
        L->too_big = true;
        return -1;
    }
    if (L->count == L->cap) {
        size_t ncap = L->cap ? L->cap * 2 : 256;
        fmc_insn *ni = realloc(L->insns, ncap * sizeof *ni);
        if (ni) L->insns = ni;
        fmd_span(*na)[FMD_MAX_RANK] = realloc(L->argsp, ncap * sizeof *na);
        if (na) L->argsp = na;
        int32_t *nc = realloc(L->chain, ncap * sizeof *nc);
        if (nc) L->chain = nc;
        if (!ni || !na || !nc) {
            L->oom = true;
            return -1;
        }
        L->cap = ncap;
    }
    int32_t r = (int32_t)L->count++;
    L->insns[r] = *x;
    memset(L->argsp[r], 0, sizeof L->argsp[r]);
    if (argsp)
        for (int k = 0; k < x->nargs; k++) L->argsp[r][k] = argsp[k];
    L->chain[r] = head;
    L->ht[s] = r;
    return r;
}

int32_t fmc_lw_emit_const(lowerer *L, fmd_type type, int64_t v, fmd_span span) {
    fmc_insn x = {.op = FMC_OP_CONST, .type = (uint8_t)type, .guard = GUARD_NONE, .imm = v,
                  .span = span};
    return fmc_lw_emit_raw(L, &x, NULL);
}

static bool commutative(fmc_op op) {
    return op == FMC_OP_ADD || op == FMC_OP_MUL || op == FMC_OP_MIN || op == FMC_OP_MAX ||
           op == FMC_OP_EQ || op == FMC_OP_NE;
}

/* Emits op(args) under guard with simplification and sharing. */
int32_t fmc_lw_emit(lowerer *L, fmc_op op, fmd_type type, const int32_t *args, int nargs,
                    int64_t imm, int32_t guard, fmd_span span, const fmd_span *argsp) {
    for (int k = 0; k < nargs; k++)
        if (args[k] < 0) return -1;
    if (!fmc_op_unsafe(op)) guard = GUARD_NONE;
    int64_t cv[FMD_MAX_RANK];
    bool all_const = nargs > 0 && op != FMC_OP_LOAD;
    for (int k = 0; k < nargs && all_const; k++) all_const = fmc_lw_is_const(L, args[k], &cv[k]);
    int64_t folded;
    if (all_const && fold(op, cv, &folded)) return fmc_lw_emit_const(L, type, folded, span);
    int64_t c0 = 0, c1 = 0;
    bool k0 = nargs > 0 && fmc_lw_is_const(L, args[0], &c0), k1 = nargs > 1 && fmc_lw_is_const(L, args[1], &c1);
    switch (op) {
    case FMC_OP_NOT:
        if (L->insns[args[0]].op == FMC_OP_NOT) return L->insns[args[0]].args[0];
        break;
    case FMC_OP_AND:
        /* A constant left operand short-circuits; a constant right operand
         * may only remove itself (the left one is evaluated). */
        if (k0) return c0 ? args[1] : args[0];
        if (k1 && c1) return args[0];
        if (args[0] == args[1]) return args[0];
        break;
    case FMC_OP_OR:
        if (k0) return c0 ? args[0] : args[1];
        if (k1 && !c1) return args[0];
        if (args[0] == args[1]) return args[0];
        break;
    case FMC_OP_SELECT:
        /* Equal branches do not make the condition dead: it is evaluated,
         * and its reads and divisions must stay checked. */
        if (k0) return c0 ? args[1] : args[2];
        break;
    default: break;
    }
    fmc_insn x = {.op = (uint8_t)op, .type = (uint8_t)type, .nargs = (uint8_t)nargs,
                  .guard = guard, .imm = imm, .span = span};
    fmd_span sp[FMD_MAX_RANK] = {{0, 0}};
    for (int k = 0; k < nargs; k++) {
        x.args[k] = args[k];
        if (argsp) sp[k] = argsp[k];
    }
    if (commutative(op) && x.args[1] < x.args[0]) {
        int32_t t = x.args[0];
        x.args[0] = x.args[1];
        x.args[1] = t;
        fmd_span ts = sp[0];
        sp[0] = sp[1];
        sp[1] = ts;
    }
    return fmc_lw_emit_raw(L, &x, sp);
}

int32_t fmc_lw_emit1(lowerer *L, fmc_op op, fmd_type t, int32_t a, int32_t guard, fmd_span span,
                     fmd_span as) {
    /* Padded to the widest instruction: the folding code indexes by op. */
    int32_t args[FMD_MAX_RANK] = {a, -1, -1, -1};
    return fmc_lw_emit(L, op, t, args, 1, 0, guard, span, &as);
}

int32_t fmc_lw_emit2(lowerer *L, fmc_op op, fmd_type t, int32_t a, int32_t b, int32_t guard,
                     fmd_span span, fmd_span as, fmd_span bs) {
    int32_t args[FMD_MAX_RANK] = {a, b, -1, -1};
    fmd_span sp[2] = {as, bs};
    return fmc_lw_emit(L, op, t, args, 2, 0, guard, span, sp);
}

/* The guard of code evaluated where g holds and x is true. */
int32_t fmc_lw_make_guard(lowerer *L, int32_t g, int32_t x, fmd_span span) {
    int64_t c;
    if (g == GUARD_FALSE) return GUARD_FALSE;
    if (x < 0) return GUARD_ERROR;
    if (fmc_lw_is_const(L, x, &c)) return c ? g : GUARD_FALSE;
    if (g == GUARD_NONE) return x;
    return fmc_lw_emit2(L, FMC_OP_AND, FMD_TYPE_BOOL, g, x, GUARD_NONE, span, span, span);
}

