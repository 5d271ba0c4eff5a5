/* Concrete evaluation: one point, and a row of key/value positions.
 *
 * The row evaluator works structure-of-arrays: one int64 lane per kv
 * position and one tight loop per instruction, which compilers vectorize.
 * Instructions that do not depend on kv (directly or through their
 * arguments or guard) are computed once as scalars; so is one whose
 * arguments do not but whose guard does, when some lane's guard is true.
 * Rank-1 loads run without branches so they vectorise. Unsafe instructions
 * check only the lanes whose guard is true and compute a harmless value
 * elsewhere; when any lane breaks a rule, the row is re-run point by point
 * to name the first offending position exactly as the point evaluator
 * would. */
/* GCC's -O2 vectorizes only loops that need no runtime checks; the row
 * loops are this file's reason to exist, so ask for the full vectorizer
 * (clang vectorizes them at -O2 already). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic", "unswitch-loops")
#endif

#include <stdlib.h>
#include <string.h>

#include "compiler/arith.h"
#include "compiler/eval.h"

static int64_t var_value(const fmc_env *env, int64_t var, int64_t b, int64_t h, int64_t q,
                         int64_t kv) {
    switch ((fmd_builtin_var)var) {
    case FMD_VAR_B: return b;
    case FMD_VAR_H: return h;
    case FMD_VAR_Q: return q;
    case FMD_VAR_KV: return kv;
    case FMD_VAR_Q_LEN: return env->q_len;
    case FMD_VAR_KV_LEN: return env->kv_len;
    case FMD_VAR_BATCH: return env->batch;
    case FMD_VAR_HEADS: return env->heads;
    default: return 0;
    }
}

static void set_violation(fmc_violation *v, fmc_violation_kind kind, int32_t insn, int arg,
                          int64_t value, int64_t limit, int64_t b, int64_t h, int64_t q,
                          int64_t kv) {
    if (!v) return;
    v->kind = kind;
    v->insn = insn;
    v->arg = arg;
    v->value = value;
    v->limit = limit;
    v->b = b;
    v->h = h;
    v->q = q;
    v->kv = kv;
}

/* Executes instruction i reading its arguments from regs (scalars).
 * False with *v filled when it breaks a rule. */
static bool exec1(const fmc_program *p, const fmc_env *env, size_t i, const int64_t *regs,
                  int64_t b, int64_t h, int64_t q, int64_t kv, int64_t *out, fmc_violation *v) {
    const fmc_insn *x = &p->insns[i];
    int64_t a0 = 0, a1 = 0, r = 0;
    if (x->op != FMC_OP_CONST && x->op != FMC_OP_VAR && x->op != FMC_OP_PARAM &&
        x->op != FMC_OP_LOAD) {
        if (x->nargs > 0) a0 = regs[x->args[0]];
        if (x->nargs > 1) a1 = regs[x->args[1]];
    }
    int32_t ii = (int32_t)i;
    switch ((fmc_op)x->op) {
    case FMC_OP_CONST: r = x->imm; break;
    case FMC_OP_VAR: r = var_value(env, x->imm, b, h, q, kv); break;
    case FMC_OP_PARAM: r = env->params[x->imm]; break;
    case FMC_OP_NEG:
    case FMC_OP_ABS:
        if (a0 == INT64_MIN) {
            set_violation(v, FMC_VIOLATION_OVERFLOW, ii, 0, 0, 0, b, h, q, kv);
            return false;
        }
        r = x->op == FMC_OP_NEG || a0 < 0 ? -a0 : a0;
        break;
    case FMC_OP_ADD:
    case FMC_OP_SUB:
    case FMC_OP_MUL: {
        bool o = x->op == FMC_OP_ADD   ? __builtin_add_overflow(a0, a1, &r)
                 : x->op == FMC_OP_SUB ? __builtin_sub_overflow(a0, a1, &r)
                                       : __builtin_mul_overflow(a0, a1, &r);
        if (o) {
            set_violation(v, FMC_VIOLATION_OVERFLOW, ii, 0, 0, 0, b, h, q, kv);
            return false;
        }
        break;
    }
    case FMC_OP_DIV:
    case FMC_OP_MOD:
        if (a1 == 0) {
            set_violation(v, FMC_VIOLATION_DIV_ZERO, ii, 1, 0, 0, b, h, q, kv);
            return false;
        }
        if (x->op == FMC_OP_DIV) {
            if (a0 == INT64_MIN && a1 == -1) {
                set_violation(v, FMC_VIOLATION_OVERFLOW, ii, 0, 0, 0, b, h, q, kv);
                return false;
            }
            r = fmd_floordiv(a0, a1);
        } else {
            r = fmd_floormod(a0, a1);
        }
        break;
    case FMC_OP_MIN: r = a0 < a1 ? a0 : a1; break;
    case FMC_OP_MAX: r = a0 > a1 ? a0 : a1; break;
    case FMC_OP_EQ: r = a0 == a1; break;
    case FMC_OP_NE: r = a0 != a1; break;
    case FMC_OP_LT: r = a0 < a1; break;
    case FMC_OP_LE: r = a0 <= a1; break;
    case FMC_OP_NOT: r = !a0; break;
    case FMC_OP_AND: r = a0 && a1; break;
    case FMC_OP_OR: r = a0 || a1; break;
    case FMC_OP_SELECT: r = a0 ? a1 : regs[x->args[2]]; break;
    case FMC_OP_LOAD: {
        const int64_t *dims = env->input_dims[x->imm];
        int64_t flat = 0;
        for (int k = 0; k < x->nargs; k++) {
            int64_t idx = regs[x->args[k]];
            if (idx < 0 || idx >= dims[k]) {
                set_violation(v, FMC_VIOLATION_INDEX, ii, k, idx, dims[k], b, h, q, kv);
                return false;
            }
            flat = flat * dims[k] + idx;
        }
        r = fmc_env_input_at(p, env, (size_t)x->imm, flat);
        break;
    }
    default: r = 0; break;
    }
    *out = r;
    return true;
}

bool fmc_eval_point(const fmc_program *p, const fmc_env *env, int64_t b, int64_t h, int64_t q,
                    int64_t kv, int64_t *regs, bool *value, fmc_violation *v) {
    for (size_t i = 0; i < p->count; i++) {
        int32_t g = p->insns[i].guard;
        if (g >= 0 && !regs[g]) {
            regs[i] = 0;
            continue;
        }
        if (!exec1(p, env, i, regs, b, h, q, kv, &regs[i], v)) return false;
    }
    *value = p->count > 0 && regs[p->result] != 0;
    return true;
}

/* ---- rows ------------------------------------------------------------------ */

#define ROW_ALIGN 64

static size_t align_up(size_t n) {
    return (n + ROW_ALIGN - 1) & ~(size_t)(ROW_ALIGN - 1);
}

static size_t row_count(const fmc_program *p) {
    return p->row_slot ? p->nrow_slots : p->count;
}

size_t fmc_row_scratch_bytes(const fmc_program *p, int64_t n) {
    if (n < 1) n = 1;
    size_t lanes = align_up((size_t)n * sizeof(int64_t));
    return row_count(p) * lanes + align_up(p->count * sizeof(int64_t)) + align_up(p->count) +
           ROW_ALIGN;
}

/* Re-runs the row point by point: the first failing point in kv order. */
static bool row_by_points(const fmc_program *p, const fmc_env *env, int64_t b, int64_t h,
                          int64_t q, int64_t kv0, int64_t n, uint8_t *out, int64_t *regs,
                          fmc_violation *v) {
    for (int64_t j = 0; j < n; j++) {
        bool val;
        if (!fmc_eval_point(p, env, b, h, q, kv0 + j, regs, &val, v)) return false;
        out[j] = val;
    }
    return true;
}

/* True when x's value can differ between lanes for a reason other than
 * its guard: it reads kv, or a register that varies. */
static bool args_vary(const fmc_insn *x, const uint8_t *varies) {
    if (x->op == FMC_OP_VAR) return x->imm == FMD_VAR_KV;
    if (x->op == FMC_OP_CONST || x->op == FMC_OP_PARAM) return false;
    for (int k = 0; k < x->nargs; k++)
        if (varies[x->args[k]]) return true;
    return false;
}

/* Rank-1 loads without branches, so they vectorise (gathers): an index out
 * of range reads element 0 instead (the array is not empty) and yields 0;
 * it is a violation only where the guard is true. The in-range index is
 * narrowed to int32 (callers check lim) because GCC 12 gathers with 32-bit
 * offsets only. One loop per element type and guard presence keeps each
 * loop free of invariant tests. Returns nonzero when some guarded lane is
 * out of range. */
#define FMC_LOAD1(NAME, T)                                                                  \
    static inline int64_t NAME(int64_t *restrict r, const int64_t *a, const int64_t *g,    \
                               int64_t n, const T *arr, uint64_t lim) {                    \
        int64_t bad = 0;                                                                   \
        if (g) {                                                                           \
            for (int64_t j = 0; j < n; j++) {                                              \
                int64_t idx = a[j];                                                        \
                int64_t ok = -(int64_t)((uint64_t)idx < lim); /* all ones or 0 */          \
                int64_t val = arr[(int32_t)(idx & ok)];                                    \
                int64_t gj = -(int64_t)(g[j] != 0);                                        \
                bad |= gj & ~ok;                                                           \
                r[j] = val & ok & gj;                                                      \
            }                                                                              \
        } else {                                                                           \
            for (int64_t j = 0; j < n; j++) {                                              \
                int64_t idx = a[j];                                                        \
                int64_t ok = -(int64_t)((uint64_t)idx < lim);                              \
                int64_t val = arr[(int32_t)(idx & ok)];                                    \
                bad |= ~ok;                                                                \
                r[j] = val & ok;                                                           \
            }                                                                              \
        }                                                                                  \
        return bad;                                                                        \
    }
FMC_LOAD1(load1_i32, int32_t)
FMC_LOAD1(load1_u8, uint8_t)
#undef FMC_LOAD1

/* An AVX2 copy (64-bit lane compares) chosen at load time where the CPU has
 * it; the portable copy serves everywhere else. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define FMC_ROW_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define FMC_ROW_CLONES
#endif

FMC_ROW_CLONES
bool fmc_eval_row(const fmc_program *p, const fmc_env *env, int64_t b, int64_t h, int64_t q,
                  int64_t kv0, int64_t n, uint8_t *out, void *scratch, fmc_violation *v) {
    if (n <= 0) return true;
    size_t cnt = p->count;
    size_t stride = align_up((size_t)n * sizeof(int64_t)) / sizeof(int64_t);
    char *base = (char *)(((uintptr_t)scratch + ROW_ALIGN - 1) & ~(uintptr_t)(ROW_ALIGN - 1));
    int64_t *lanes = (int64_t *)base;
    int64_t *sval = (int64_t *)(base + row_count(p) * stride * sizeof(int64_t));
    uint8_t *varies = (uint8_t *)sval + align_up(cnt * sizeof(int64_t));
    const int32_t *slot = p->row_slot;
#define R(i) (lanes + (size_t)(slot ? slot[i] : (int32_t)(i)) * stride)
    for (size_t i = 0; i < cnt; i++) {
        const fmc_insn *x = &p->insns[i];
        uint8_t d = x->op == FMC_OP_VAR && x->imm == FMD_VAR_KV;
        if (x->guard >= 0) d |= varies[x->guard];
        if (x->op != FMC_OP_CONST && x->op != FMC_OP_VAR && x->op != FMC_OP_PARAM)
            for (int k = 0; k < x->nargs; k++) d |= varies[x->args[k]];
        varies[i] = d;
        if (!d) {
            /* Uniform along the row: one scalar, broadcast for varying users. */
            int64_t s = 0;
            if (x->guard < 0 || sval[x->guard]) {
                if (!exec1(p, env, i, sval, b, h, q, kv0, &s, v)) {
                    /* Every lane performs it: the first point fails. */
                    if (v) v->kv = kv0;
                    return false;
                }
            }
            sval[i] = s;
            int64_t *r = R(i);
            for (int64_t j = 0; j < n; j++) r[j] = s;
            continue;
        }
        int64_t *restrict r = R(i);
        const int64_t *a = x->nargs > 0 && x->op != FMC_OP_VAR ? R(x->args[0]) : NULL;
        const int64_t *c = x->nargs > 1 ? R(x->args[1]) : NULL;
        const int64_t *g = x->guard >= 0 ? R(x->guard) : NULL;
        int64_t bad = 0;
        if (!args_vary(x, varies)) {
            /* Only the guard varies (doc[q] on the right of `kv <= q &&`):
             * the value is one scalar, computed once if any lane needs it.
             * A failure is re-run point by point to find its first lane. */
            int64_t any = 0;
            for (int64_t j = 0; j < n; j++) any |= g[j];
            int64_t s = 0;
            if (any && !exec1(p, env, i, sval, b, h, q, kv0, &s, NULL))
                return row_by_points(p, env, b, h, q, kv0, n, out, sval, v);
            for (int64_t j = 0; j < n; j++) r[j] = g[j] ? s : 0;
            continue;
        }
        switch ((fmc_op)x->op) {
        case FMC_OP_VAR: /* only kv varies */
            for (int64_t j = 0; j < n; j++) r[j] = kv0 + j;
            break;
        case FMC_OP_NEG:
            for (int64_t j = 0; j < n; j++) {
                int64_t gj = g ? g[j] : 1, aj = a[j];
                bad |= gj & (aj == INT64_MIN);
                r[j] = (int64_t)(0u - (uint64_t)aj) & -gj;
            }
            break;
        case FMC_OP_ABS:
            for (int64_t j = 0; j < n; j++) {
                int64_t gj = g ? g[j] : 1, aj = a[j];
                bad |= gj & (aj == INT64_MIN);
                int64_t m = aj < 0 ? (int64_t)(0u - (uint64_t)aj) : aj;
                r[j] = m & -gj;
            }
            break;
        case FMC_OP_ADD:
            for (int64_t j = 0; j < n; j++) {
                int64_t gj = g ? g[j] : 1;
                int64_t s = (int64_t)((uint64_t)a[j] + (uint64_t)c[j]);
                bad |= gj & (((a[j] ^ s) & (c[j] ^ s)) < 0);
                r[j] = s & -gj;
            }
            break;
        case FMC_OP_SUB:
            for (int64_t j = 0; j < n; j++) {
                int64_t gj = g ? g[j] : 1;
                int64_t s = (int64_t)((uint64_t)a[j] - (uint64_t)c[j]);
                bad |= gj & (((a[j] ^ c[j]) & (a[j] ^ s)) < 0);
                r[j] = s & -gj;
            }
            break;
        case FMC_OP_MUL:
            for (int64_t j = 0; j < n; j++) {
                int64_t gj = g ? g[j] : 1, s;
                bad |= gj & __builtin_mul_overflow(a[j], c[j], &s);
                r[j] = s & -gj;
            }
            break;
        case FMC_OP_DIV:
        case FMC_OP_MOD: {
            bool div = x->op == FMC_OP_DIV;
            for (int64_t j = 0; j < n; j++) {
                int64_t gj = g ? g[j] : 1;
                int64_t nn = gj ? a[j] : 0, dd = gj ? c[j] : 1;
                if (dd == 0 || (div && nn == INT64_MIN && dd == -1)) {
                    bad = 1;
                    r[j] = 0;
                    continue;
                }
                r[j] = div ? fmd_floordiv(nn, dd) : fmd_floormod(nn, dd);
            }
            break;
        }
        case FMC_OP_MIN:
            for (int64_t j = 0; j < n; j++) r[j] = a[j] < c[j] ? a[j] : c[j];
            break;
        case FMC_OP_MAX:
            for (int64_t j = 0; j < n; j++) r[j] = a[j] > c[j] ? a[j] : c[j];
            break;
        case FMC_OP_EQ:
            for (int64_t j = 0; j < n; j++) r[j] = a[j] == c[j];
            break;
        case FMC_OP_NE:
            for (int64_t j = 0; j < n; j++) r[j] = a[j] != c[j];
            break;
        case FMC_OP_LT:
            for (int64_t j = 0; j < n; j++) r[j] = a[j] < c[j];
            break;
        case FMC_OP_LE:
            for (int64_t j = 0; j < n; j++) r[j] = a[j] <= c[j];
            break;
        case FMC_OP_NOT:
            for (int64_t j = 0; j < n; j++) r[j] = a[j] == 0;
            break;
        case FMC_OP_AND:
            for (int64_t j = 0; j < n; j++) r[j] = (a[j] != 0) & (c[j] != 0);
            break;
        case FMC_OP_OR:
            for (int64_t j = 0; j < n; j++) r[j] = (a[j] != 0) | (c[j] != 0);
            break;
        case FMC_OP_SELECT: {
            const int64_t *e = R(x->args[2]);
            for (int64_t j = 0; j < n; j++) r[j] = a[j] ? c[j] : e[j];
            break;
        }
        case FMC_OP_LOAD: {
            const int64_t *dims = env->input_dims[x->imm];
            /* Exactly one is set; the test below is loop-invariant (unswitched). */
            const int32_t *arr = NULL;
            const uint8_t *arr8 = NULL;
            if (fmc_input_is_bytes(&p->inputs[x->imm])) arr8 = env->bytes[x->imm];
            else arr = env->inputs[x->imm];
            if (x->nargs == 1 && dims[0] > 0 && dims[0] <= INT32_MAX) {
                bad = arr8 ? load1_u8(r, a, g, n, arr8, (uint64_t)dims[0])
                           : load1_i32(r, a, g, n, arr, (uint64_t)dims[0]);
                break;
            }
            for (int64_t j = 0; j < n; j++) {
                int64_t gj = g ? g[j] : 1, flat = 0;
                r[j] = 0;
                if (!gj) continue;
                bool ok = true;
                for (int k = 0; k < x->nargs; k++) {
                    int64_t idx = R(x->args[k])[j];
                    ok &= idx >= 0 && idx < dims[k];
                    flat = flat * dims[k] + idx;
                }
                if (!ok) {
                    bad = 1;
                    continue;
                }
                r[j] = arr8 ? arr8[flat] : arr[flat];
            }
            break;
        }
        default: /* CONST and PARAM never vary */
            for (int64_t j = 0; j < n; j++) r[j] = 0;
            break;
        }
        if (bad) return row_by_points(p, env, b, h, q, kv0, n, out, sval, v);
    }
    const int64_t *res = R(p->result);
    for (int64_t j = 0; j < n; j++) out[j] = res[j] != 0;
#undef R
    return true;
}
