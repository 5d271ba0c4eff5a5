/* IR -> CUDA C (and host C) text. One statement per instruction, in
 * instruction order: the IR is already flat, so nothing here recurses and a
 * 100,000-term chain is 100,000 lines, not 100,000 nesting levels. */
#include "compiler/codegen_cuda.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_vappend(sbuf *s, const char *fmt, va_list ap) {
    if (s->oom) return;
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(s->p ? s->p + s->len : NULL, s->p ? s->cap - s->len : 0, fmt, ap);
    if (n < 0) {
        s->oom = true;
        va_end(ap2);
        return;
    }
    if (!s->p || s->len + (size_t)n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + (size_t)n + 1) cap *= 2;
        char *np = realloc(s->p, cap);
        if (!np) {
            s->oom = true;
            va_end(ap2);
            return;
        }
        s->p = np;
        s->cap = cap;
        vsnprintf(s->p + s->len, s->cap - s->len, fmt, ap2);
    }
    s->len += (size_t)n;
    va_end(ap2);
}

static void sb_printf(sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sb_vappend(s, fmt, ap);
    va_end(ap);
}

/* Fixed text shared by every mask. The include guard lets a kernel source
 * hold several masks' functions without redefining the helpers. */
static const char prelude[] =
    "#ifndef FM_MASK_PRELUDE\n"
    "#define FM_MASK_PRELUDE\n"
    "#ifndef FM_DEVICE\n"
    "#ifdef __CUDACC__\n"
    "#define FM_DEVICE static __device__ __forceinline__\n"
    "#pragma nv_diag_suppress 177 /* a helper this mask does not use */\n"
    "#else\n"
    "#define FM_DEVICE static inline\n"
    "#endif\n"
    "#endif\n"
    "/* FM_MASK_INT32 selects 32-bit arithmetic; the runtime defines it only\n"
    "   when the analysis proved every value of the mask fits for the shape. */\n"
    "#ifdef FM_MASK_INT32\n"
    "typedef int fm_int;\n"
    "typedef unsigned int fm_uint;\n"
    "#else\n"
    "typedef long long fm_int;\n"
    "typedef unsigned long long fm_uint;\n"
    "#endif\n"
    "#define FM_MAX_MASK_PARAMS %d\n"
    "#define FM_MAX_MASK_INPUTS %d\n"
    "/* Shape, param values and input arrays: kernel arguments, not text. */\n"
    "typedef struct fm_mask_env {\n"
    "    long long batch, heads, q_len, kv_len;\n"
    "    long long params[FM_MAX_MASK_PARAMS];\n"
    "    const void *inputs[FM_MAX_MASK_INPUTS]; /* int or unsigned char arrays */\n"
    "    long long dims[FM_MAX_MASK_INPUTS][%d];\n"
    "} fm_mask_env;\n"
    "/* Wrapping arithmetic through unsigned types: the build proved no value\n"
    "   overflows, and this keeps the code free of undefined behaviour anyway. */\n"
    "#define FM_ADD(a, b) ((fm_int)((fm_uint)(a) + (fm_uint)(b)))\n"
    "#define FM_SUB(a, b) ((fm_int)((fm_uint)(a) - (fm_uint)(b)))\n"
    "#define FM_MUL(a, b) ((fm_int)((fm_uint)(a) * (fm_uint)(b)))\n"
    "#define FM_NEG(a) ((fm_int)((fm_uint)0 - (fm_uint)(a)))\n"
    "#define FM_ABS(a) ((a) < 0 ? FM_NEG(a) : (a))\n"
    "/* x where the guard g (0 or 1) holds, else 0, without a branch: for\n"
    "   operations that are harmless to compute anyway (wrapping arithmetic). */\n"
    "#define FM_GUARD(g, x) ((fm_int)((fm_uint)(x) & ((fm_uint)0 - (fm_uint)(g))))\n"
    "/* Floor division and remainder (Python's): -7/2 == -4, -7%%2 == 1.\n"
    "   A divisor of -1 is handled apart so the smallest value never traps. */\n"
    "FM_DEVICE fm_int fm_floordiv(fm_int n, fm_int d) {\n"
    "    if (d == -1) return FM_NEG(n);\n"
    "    fm_int q = n / d;\n"
    "    return (q * d != n && ((n < 0) != (d < 0))) ? q - 1 : q;\n"
    "}\n"
    "FM_DEVICE fm_int fm_floormod(fm_int n, fm_int d) {\n"
    "    if (d == -1) return 0;\n"
    "    fm_int r = n %% d;\n"
    "    return (r != 0 && ((r < 0) != (d < 0))) ? r + d : r;\n"
    "}\n"
    "#endif\n";

static const char *var_expr(int64_t v) {
    switch ((fmd_builtin_var)v) {
    case FMD_VAR_B: return "b";
    case FMD_VAR_H: return "h";
    case FMD_VAR_Q: return "q";
    case FMD_VAR_KV: return "kv";
    case FMD_VAR_Q_LEN: return "(fm_int)e->q_len";
    case FMD_VAR_KV_LEN: return "(fm_int)e->kv_len";
    case FMD_VAR_BATCH: return "(fm_int)e->batch";
    case FMD_VAR_HEADS: return "(fm_int)e->heads";
    default: return NULL;
    }
}

/* A 64-bit literal as C text; the smallest value has no literal of its own. */
static void emit_const(sbuf *s, int64_t v) {
    if (v == INT64_MIN)
        sb_printf(s, "(fm_int)(-9223372036854775807LL - 1)");
    else
        sb_printf(s, "(fm_int)%" PRId64 "LL", v);
}

/* Registers live in a few reused variables: instruction i writes v<slot[i]>.
 * A slot is reused once the last reader of its value has run, so a chain
 * of 100,000 terms needs a handful of variables, not 100,000 (compilers
 * are slow on functions with that many locals). Reading and writing the
 * same variable in one statement is fine: the right side is evaluated
 * before the assignment. */
#define R(x) slot[(x)]
static bool emit_insn(sbuf *s, const fmc_program *p, size_t i, const int32_t *slot) {
    const fmc_insn *in = &p->insns[i];
    int32_t a[FMD_MAX_RANK + 1] = {0};
    int nargs = fmc_op_nargs((fmc_op)in->op);
    if (nargs < 0) nargs = in->nargs;
    for (int k = 0; k < nargs && k < FMD_MAX_RANK; k++) a[k] = R(in->args[k]);
    sb_printf(s, "    v%d = ", (int)slot[i]);
    /* Division and array reads must not run where the guard is false;
       wrapping arithmetic may, and is masked to 0 there without a branch
       (thousands of branches make host compilers slow). */
    bool masked = in->guard >= 0 && (in->op == FMC_OP_NEG || in->op == FMC_OP_ABS ||
                                     in->op == FMC_OP_ADD || in->op == FMC_OP_SUB ||
                                     in->op == FMC_OP_MUL);
    if (masked) sb_printf(s, "FM_GUARD(v%d, ", (int)R(in->guard));
    else if (in->guard >= 0) sb_printf(s, "v%d ? ", (int)R(in->guard));
    switch ((fmc_op)in->op) {
    case FMC_OP_CONST: emit_const(s, in->imm); break;
    case FMC_OP_VAR: {
        const char *v = var_expr(in->imm);
        if (!v) return false;
        sb_printf(s, "%s", v);
        break;
    }
    case FMC_OP_PARAM: sb_printf(s, "(fm_int)e->params[%" PRId64 "]", in->imm); break;
    case FMC_OP_NEG: sb_printf(s, "FM_NEG(v%d)", (int)a[0]); break;
    case FMC_OP_ABS: sb_printf(s, "FM_ABS(v%d)", (int)a[0]); break;
    case FMC_OP_ADD: sb_printf(s, "FM_ADD(v%d, v%d)", (int)a[0], (int)a[1]); break;
    case FMC_OP_SUB: sb_printf(s, "FM_SUB(v%d, v%d)", (int)a[0], (int)a[1]); break;
    case FMC_OP_MUL: sb_printf(s, "FM_MUL(v%d, v%d)", (int)a[0], (int)a[1]); break;
    case FMC_OP_DIV: sb_printf(s, "fm_floordiv(v%d, v%d)", (int)a[0], (int)a[1]); break;
    case FMC_OP_MOD: sb_printf(s, "fm_floormod(v%d, v%d)", (int)a[0], (int)a[1]); break;
    case FMC_OP_MIN: sb_printf(s, "(v%d < v%d ? v%d : v%d)", (int)a[0], (int)a[1], (int)a[0], (int)a[1]); break;
    case FMC_OP_MAX: sb_printf(s, "(v%d > v%d ? v%d : v%d)", (int)a[0], (int)a[1], (int)a[0], (int)a[1]); break;
    case FMC_OP_EQ: sb_printf(s, "(fm_int)(v%d == v%d)", (int)a[0], (int)a[1]); break;
    case FMC_OP_NE: sb_printf(s, "(fm_int)(v%d != v%d)", (int)a[0], (int)a[1]); break;
    case FMC_OP_LT: sb_printf(s, "(fm_int)(v%d < v%d)", (int)a[0], (int)a[1]); break;
    case FMC_OP_LE: sb_printf(s, "(fm_int)(v%d <= v%d)", (int)a[0], (int)a[1]); break;
    case FMC_OP_NOT: sb_printf(s, "(fm_int)(v%d == 0)", (int)a[0]); break;
    /* Bools are 0 or 1 everywhere, so bitwise forms are exact and branch-free. */
    case FMC_OP_AND: sb_printf(s, "(v%d & v%d)", (int)a[0], (int)a[1]); break;
    case FMC_OP_OR: sb_printf(s, "(v%d | v%d)", (int)a[0], (int)a[1]); break;
    case FMC_OP_SELECT: sb_printf(s, "(v%d ? v%d : v%d)", (int)a[0], (int)a[1], (int)a[2]); break;
    case FMC_OP_LOAD: {
        int64_t inp = in->imm;
        if (inp < 0 || (size_t)inp >= p->ninputs) return false;
        size_t rank = p->inputs[inp].rank;
        if (rank < 1 || rank > FMD_MAX_RANK || in->nargs != rank) return false;
        /* Row-major offset in 64 bits: the array may be larger than the
           range of the 32-bit variant's values. */
        /* The element type is the input's width, a property of the program. */
        sb_printf(s, "(fm_int)((const %s *)e->inputs[%" PRId64 "])[",
                  fmc_input_is_bytes(&p->inputs[inp]) ? "unsigned char" : "int", inp);
        for (size_t d = 1; d < rank; d++) sb_printf(s, "(");
        sb_printf(s, "(long long)v%d", (int)a[0]);
        for (size_t d = 1; d < rank; d++)
            sb_printf(s, " * e->dims[%" PRId64 "][%zu] + (long long)v%d)", inp, d, (int)a[d]);
        sb_printf(s, "]");
        break;
    }
    default: return false;
    }
    if (masked) sb_printf(s, ")");
    else if (in->guard >= 0) sb_printf(s, " : 0");
    sb_printf(s, ";\n");
    return true;
}

char *fmc_codegen_cuda(const fmc_program *p, size_t *len, fmd_diags *diags) {
    if (!p || p->count == 0 || p->result < 0 || (size_t)p->result >= p->count) {
        if (diags) fmd_diag_add(diags, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL,
                                "internal error: code generation got an empty program");
        return NULL;
    }
    if (p->nparams > FMC_CUDA_MAX_PARAMS || p->ninputs > FMC_CUDA_MAX_INPUTS) {
        if (diags)
            fmd_diag_add(diags, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL,
                         "mask '%s' uses %zu params and %zu inputs; the CUDA kernel supports at "
                         "most %d params and %d inputs",
                         p->mask_name ? p->mask_name : "?", p->nparams, p->ninputs,
                         FMC_CUDA_MAX_PARAMS, FMC_CUDA_MAX_INPUTS);
        return NULL;
    }
    /* Slot allocation by linear scan over last uses. */
    size_t n = p->count;
    int32_t *last = malloc(n * sizeof *last), *slot = malloc(n * sizeof *slot);
    int32_t *free_slots = malloc(n * sizeof *free_slots);
    if (!last || !slot || !free_slots) {
        free(last), free(slot), free(free_slots);
        if (diags) fmd_diag_add(diags, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL, "out of memory");
        return NULL;
    }
    bool bad = false;
    for (size_t i = 0; i < n; i++) last[i] = (int32_t)i; /* unread: dies where it is made */
    for (size_t i = 0; i < n; i++) {
        const fmc_insn *in = &p->insns[i];
        int nargs = fmc_op_nargs((fmc_op)in->op);
        if (nargs < 0) nargs = in->nargs;
        if (nargs > FMD_MAX_RANK) bad = true;
        for (int k = 0; k < nargs && k < FMD_MAX_RANK; k++) {
            int32_t r = in->args[k];
            if (r < 0 || (size_t)r >= i) bad = true;
            else last[r] = (int32_t)i;
        }
        if (in->guard >= 0) {
            if ((size_t)in->guard >= i) bad = true;
            else last[in->guard] = (int32_t)i;
        }
    }
    last[p->result] = (int32_t)n; /* read by the return */
    int32_t nslots = 0, nfree = 0;
    /* Values whose last reader is instruction i are released just before
       i picks its slot, so i may take over one of its own operands'. The
       dying list is built per step from a bucket chain to stay linear. */
    int32_t *die_head = malloc((n + 1) * sizeof *die_head), *die_next = malloc(n * sizeof *die_next);
    if (!die_head || !die_next) bad = true;
    if (!bad) {
        for (size_t i = 0; i <= n; i++) die_head[i] = -1;
        for (size_t i = 0; i < n; i++) {
            die_next[i] = die_head[last[i]];
            die_head[last[i]] = (int32_t)i;
        }
        for (size_t i = 0; i < n; i++) {
            for (int32_t r = die_head[i]; r >= 0; r = die_next[r])
                if ((size_t)r != i) free_slots[nfree++] = slot[r];
            slot[i] = nfree ? free_slots[--nfree] : nslots++;
            if (last[i] == (int32_t)i) free_slots[nfree++] = slot[i]; /* never read */
        }
    }
    free(die_head);
    free(die_next);
    free(last);
    free(free_slots);
    if (bad) {
        free(slot);
        if (diags) fmd_diag_add(diags, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL,
                                "internal error: malformed IR given to code generation");
        return NULL;
    }

    sbuf s = {0};
    sb_printf(&s, "/* Generated by flexmask from mask '%s'. */\n", p->mask_name ? p->mask_name : "");
    sb_printf(&s, prelude, FMC_CUDA_MAX_PARAMS, FMC_CUDA_MAX_INPUTS, FMD_MAX_RANK);
    sb_printf(&s,
              "/* %zu instructions in %d reused variables; guarded ones read 0 where\n"
              "   their guard is false, exactly as the short-circuit rules say, and\n"
              "   are not evaluated there. */\n"
              "FM_DEVICE int " FMC_CUDA_MASK_FN
              "(const fm_mask_env *e, fm_int b, fm_int h, fm_int q, fm_int kv) {\n"
              "    (void)e; (void)b; (void)h; (void)q; (void)kv;\n",
              p->count, (int)nslots);
    for (int32_t k = 0; k < nslots; k++)
        sb_printf(&s, "%s v%d%s", k % 16 == 0 ? "    fm_int" : ",", (int)k,
                  k % 16 == 15 || k == nslots - 1 ? ";\n" : "");
    for (size_t i = 0; i < p->count && !s.oom; i++) {
        if (!emit_insn(&s, p, i, slot)) {
            free(s.p);
            free(slot);
            if (diags)
                fmd_diag_add(diags, FMD_ERROR, p->source, p->insns[i].span, NULL,
                             "internal error: instruction %zu (%s) cannot be translated to CUDA",
                             i, fmc_op_name((fmc_op)p->insns[i].op));
            return NULL;
        }
    }
    sb_printf(&s, "    return v%d != 0;\n}\n", (int)slot[p->result]);
    free(slot);
    if (s.oom) {
        free(s.p);
        if (diags) fmd_diag_add(diags, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL, "out of memory");
        return NULL;
    }
    if (len) *len = s.len;
    return s.p;
}

bool fmc_cuda_fill_env(const fmc_program *p, const fmc_env *env, fmc_cuda_mask_env *out) {
    if (p->nparams > FMC_CUDA_MAX_PARAMS || p->ninputs > FMC_CUDA_MAX_INPUTS) return false;
    memset(out, 0, sizeof *out);
    out->batch = env->batch;
    out->heads = env->heads;
    out->q_len = env->q_len;
    out->kv_len = env->kv_len;
    for (size_t i = 0; i < p->nparams; i++) out->params[i] = env->params ? env->params[i] : 0;
    for (size_t i = 0; i < p->ninputs; i++)
        for (size_t d = 0; d < p->inputs[i].rank && d < FMD_MAX_RANK; d++)
            out->dims[i][d] = env->input_dims ? env->input_dims[i][d] : 0;
    return true;
}
