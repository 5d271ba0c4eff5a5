/* IR -> Python (torch) text. One statement per instruction, like the CUDA
 * generator; instructions that depend on no point (constants, params, the
 * shape) are computed once in the factory and captured by the closure. */
#include "compiler/codegen_torch.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct tbuf {
    char *p;
    size_t len, cap;
    bool oom;
} tbuf;

static void tb_printf(tbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tb_printf(tbuf *s, const char *fmt, ...) {
    if (s->oom) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        s->oom = true;
        return;
    }
    if (s->len + (size_t)n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + (size_t)n + 1) cap *= 2;
        char *np = realloc(s->p, cap);
        if (!np) {
            s->oom = true;
            return;
        }
        s->p = np;
        s->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(s->p + s->len, s->cap - s->len, fmt, ap);
    va_end(ap);
    s->len += (size_t)n;
}

/* Helpers shared by every mask. _div and _mod never divide by 0 or -1
 * (INT64_MIN // -1 traps on some hardware): -1 is a negation / 0, and 0 is
 * replaced by 1 (the build proved no selected point divides by 0). */
static const char prelude[] =
    "def " FMC_TORCH_FACTORY "(torch, P, I, D, SHAPE):\n"
    "    i64 = torch.int64\n"
    "    def _t(v, dt=i64):\n"
    "        return torch.tensor(v, dtype=dt)\n"
    "    def _div(n, d):\n"
    "        bad = (d == 0) | (d == -1)\n"
    "        q = torch.div(n, torch.where(bad, 1, d), rounding_mode='floor')\n"
    "        return torch.where(d == -1, -n, q)\n"
    "    def _mod(n, d):\n"
    "        bad = (d == 0) | (d == -1)\n"
    "        r = torch.remainder(n, torch.where(bad, 1, d))\n"
    "        return torch.where(bad, 0, r)\n"
    "    # Inputs flat, int64, never empty, so a clamped index is always valid.\n"
    "    I = [(x.reshape(-1).to(i64) if x.numel() else torch.zeros(1, dtype=i64,\n"
    "          device=x.device)) for x in I]\n"
    "    N = [int(x.numel()) for x in I]\n";

static bool is_hoisted(const fmc_insn *in) {
    if (in->op == FMC_OP_CONST || in->op == FMC_OP_PARAM) return true;
    if (in->op == FMC_OP_VAR)
        return in->imm == FMD_VAR_Q_LEN || in->imm == FMD_VAR_KV_LEN ||
               in->imm == FMD_VAR_BATCH || in->imm == FMD_VAR_HEADS;
    return false;
}

static bool emit_hoisted(tbuf *s, const fmc_insn *in, size_t i) {
    tb_printf(s, "    r%zu = ", i);
    switch ((fmc_op)in->op) {
    case FMC_OP_CONST:
        if (in->type == FMD_TYPE_BOOL) tb_printf(s, "_t(%s, torch.bool)", in->imm ? "True" : "False");
        else tb_printf(s, "_t(%" PRId64 ")", in->imm);
        break;
    case FMC_OP_PARAM: tb_printf(s, "_t(int(P[%" PRId64 "]))", in->imm); break;
    case FMC_OP_VAR: {
        int k = in->imm == FMD_VAR_BATCH ? 0 : in->imm == FMD_VAR_HEADS ? 1
              : in->imm == FMD_VAR_Q_LEN ? 2 : 3;
        tb_printf(s, "_t(int(SHAPE[%d]))", k);
        break;
    }
    default: return false;
    }
    tb_printf(s, "\n");
    return true;
}

static bool emit_insn(tbuf *s, const fmc_program *p, size_t i) {
    const fmc_insn *in = &p->insns[i];
    const int32_t *a = in->args;
    tb_printf(s, "        r%zu = ", i);
    if (in->guard >= 0) tb_printf(s, "torch.where(r%d, ", (int)in->guard);
    switch ((fmc_op)in->op) {
    case FMC_OP_VAR:
        switch ((fmd_builtin_var)in->imm) {
        case FMD_VAR_B: tb_printf(s, "b"); break;
        case FMD_VAR_H: tb_printf(s, "h"); break;
        case FMD_VAR_Q: tb_printf(s, "q"); break;
        case FMD_VAR_KV: tb_printf(s, "kv"); break;
        default: return false;
        }
        break;
    case FMC_OP_NEG: tb_printf(s, "-r%d", (int)a[0]); break;
    case FMC_OP_ABS: tb_printf(s, "torch.abs(r%d)", (int)a[0]); break;
    case FMC_OP_ADD: tb_printf(s, "r%d + r%d", (int)a[0], (int)a[1]); break;
    case FMC_OP_SUB: tb_printf(s, "r%d - r%d", (int)a[0], (int)a[1]); break;
    case FMC_OP_MUL: tb_printf(s, "r%d * r%d", (int)a[0], (int)a[1]); break;
    case FMC_OP_DIV: tb_printf(s, "_div(r%d, r%d)", (int)a[0], (int)a[1]); break;
    case FMC_OP_MOD: tb_printf(s, "_mod(r%d, r%d)", (int)a[0], (int)a[1]); break;
    case FMC_OP_MIN: tb_printf(s, "torch.minimum(r%d, r%d)", (int)a[0], (int)a[1]); break;
    case FMC_OP_MAX: tb_printf(s, "torch.maximum(r%d, r%d)", (int)a[0], (int)a[1]); break;
    case FMC_OP_EQ: tb_printf(s, "r%d == r%d", (int)a[0], (int)a[1]); break;
    case FMC_OP_NE: tb_printf(s, "r%d != r%d", (int)a[0], (int)a[1]); break;
    case FMC_OP_LT: tb_printf(s, "r%d < r%d", (int)a[0], (int)a[1]); break;
    case FMC_OP_LE: tb_printf(s, "r%d <= r%d", (int)a[0], (int)a[1]); break;
    case FMC_OP_NOT: tb_printf(s, "~r%d", (int)a[0]); break;
    case FMC_OP_AND: tb_printf(s, "r%d & r%d", (int)a[0], (int)a[1]); break;
    case FMC_OP_OR: tb_printf(s, "r%d | r%d", (int)a[0], (int)a[1]); break;
    case FMC_OP_SELECT:
        tb_printf(s, "torch.where(r%d, r%d, r%d)", (int)a[0], (int)a[1], (int)a[2]);
        break;
    case FMC_OP_LOAD: {
        int64_t inp = in->imm;
        if (inp < 0 || (size_t)inp >= p->ninputs) return false;
        size_t rank = p->inputs[inp].rank;
        if (rank < 1 || rank > FMD_MAX_RANK || in->nargs != rank) return false;
        tb_printf(s, "I[%" PRId64 "][torch.clamp(", inp);
        for (size_t d = 1; d < rank; d++) tb_printf(s, "(");
        tb_printf(s, "r%d", (int)a[0]);
        for (size_t d = 1; d < rank; d++)
            tb_printf(s, " * D[%" PRId64 "][%zu] + r%d)", inp, d, (int)a[d]);
        tb_printf(s, ", 0, N[%" PRId64 "] - 1)]", inp);
        break;
    }
    default: return false;
    }
    if (in->guard >= 0) tb_printf(s, ", 0)");
    tb_printf(s, "\n");
    return true;
}

/* Arguments must name earlier registers: the text reads them by name. */
static bool well_formed(const fmc_program *p) {
    if (p->count == 0 || p->result < 0 || (size_t)p->result >= p->count) return false;
    for (size_t i = 0; i < p->count; i++) {
        const fmc_insn *in = &p->insns[i];
        if (in->op >= FMC_OP_COUNT) return false;
        int nargs = fmc_op_nargs((fmc_op)in->op);
        if (nargs < 0) nargs = in->nargs;
        if (nargs > FMD_MAX_RANK) return false;
        for (int k = 0; k < nargs; k++)
            if (in->args[k] < 0 || (size_t)in->args[k] >= i) return false;
        if (in->guard >= 0 && (size_t)in->guard >= i) return false;
        if (in->op == FMC_OP_PARAM && (in->imm < 0 || (size_t)in->imm >= p->nparams)) return false;
    }
    return true;
}

char *fmc_codegen_torch(const fmc_program *p, size_t *len, fmd_diags *diags) {
    if (!p || !well_formed(p)) {
        if (diags) fmd_diag_add(diags, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL,
                                "internal error: malformed IR given to the torch code generator");
        return NULL;
    }
    tbuf s = {0};
    /* The mask name is an identifier (the grammar's), safe in a comment. */
    tb_printf(&s, "# Generated by flexmask from mask '%s': %zu instructions.\n",
              p->mask_name ? p->mask_name : "", p->count);
    tb_printf(&s, "%s", prelude);
    for (size_t i = 0; i < p->count; i++)
        if (is_hoisted(&p->insns[i]) && !emit_hoisted(&s, &p->insns[i], i)) goto bad;
    tb_printf(&s, "    def mask_mod(b, h, q_idx, kv_idx):\n"
                  "        b, h, q, kv = b.to(i64), h.to(i64), q_idx.to(i64), kv_idx.to(i64)\n");
    for (size_t i = 0; i < p->count; i++) {
        if (is_hoisted(&p->insns[i])) continue;
        if (!emit_insn(&s, p, i)) goto bad;
    }
    /* A mask that folded to a constant still answers with the points' shape. */
    tb_printf(&s, "        return r%d.to(torch.bool) & torch.ones_like(q, dtype=torch.bool)\n",
              (int)p->result);
    tb_printf(&s, "    return mask_mod\n");
    if (s.oom) {
        free(s.p);
        if (diags) fmd_diag_add(diags, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL, "out of memory");
        return NULL;
    }
    if (len) *len = s.len;
    return s.p;
bad:
    free(s.p);
    if (diags) fmd_diag_add(diags, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL,
                            "internal error: an instruction cannot be translated to torch");
    return NULL;
}
