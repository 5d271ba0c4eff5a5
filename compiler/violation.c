/* Messages for safety violations and for bindings that do not match the
 * declarations: what a user sees when a build is refused. */
#include <stdlib.h>
#include <string.h>

#include "compiler/ir.h"

/* The source text of span with runs of whitespace collapsed (long texts
 * are shortened in the middle). */
/* Whether text[a..b] is one parenthesized group "( ... )". */
static bool wrapped(const char *t, uint32_t a, uint32_t b) {
    if (b - a < 2 || t[a] != '(' || t[b - 1] != ')') return false;
    int depth = 0;
    for (uint32_t i = a; i < b; i++) {
        depth += t[i] == '(';
        depth -= t[i] == ')';
        if (depth == 0 && i + 1 < b) return false;
    }
    return true;
}

static void span_text(const fmc_program *p, fmd_span s, char *buf, size_t cap) {
    size_t n = 0;
    buf[0] = '\0';
    if (!p->source || s.end <= s.start || s.end > p->source->len) return;
    while (wrapped(p->source->text, s.start, s.end)) {
        s.start++;
        s.end--;
        while (s.start < s.end && (p->source->text[s.start] == ' ' || p->source->text[s.start] == '\t')) s.start++;
        while (s.end > s.start && (p->source->text[s.end - 1] == ' ' || p->source->text[s.end - 1] == '\t')) s.end--;
    }
    bool space = false;
    for (uint32_t i = s.start; i < s.end && n + 1 < cap; i++) {
        char c = p->source->text[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            space = n > 0;
            continue;
        }
        if (space && n + 2 < cap) buf[n++] = ' ';
        space = false;
        buf[n++] = c;
    }
    buf[n] = '\0';
    if (n + 1 >= cap && cap > 8) memcpy(buf + cap - 5, "...", 4);
}

static void point_text(const fmc_program *p, const fmc_env *env, const fmc_violation *v,
                       char *buf, size_t cap) {
    bool bh = p->reads_batch || p->reads_heads || env->batch > 1 || env->heads > 1;
    if (bh)
        snprintf(buf, cap, "b=%lld, h=%lld, q=%lld, kv=%lld", (long long)v->b, (long long)v->h,
                 (long long)v->q, (long long)v->kv);
    else
        snprintf(buf, cap, "q=%lld, kv=%lld", (long long)v->q, (long long)v->kv);
}

static fmd_span arg_span(const fmc_program *p, int32_t insn, int arg) {
    if (p->arg_spans) {
        fmd_span s = p->arg_spans[insn][arg];
        if (s.end > s.start) return s;
    }
    const fmc_insn *x = &p->insns[insn];
    if (arg < x->nargs && x->op != FMC_OP_CONST && x->op != FMC_OP_VAR &&
        x->op != FMC_OP_PARAM)
        return p->insns[x->args[arg]].span;
    return x->span;
}

void fmc_report_violation(const fmc_program *p, const fmc_env *env, const fmc_violation *v,
                          fmd_diags *diags) {
    if (!v || v->insn < 0 || (size_t)v->insn >= p->count) return;
    const fmc_insn *x = &p->insns[v->insn];
    char pt[160], text[96];
    point_text(p, env, v, pt, sizeof pt);
    switch (v->kind) {
    case FMC_VIOLATION_INDEX: {
        fmd_span s = arg_span(p, v->insn, v->arg);
        span_text(p, s, text, sizeof text);
        const char *name = x->imm >= 0 && (size_t)x->imm < p->ninputs ? p->inputs[x->imm].name
                                                                        : "?";
        size_t rank = x->imm >= 0 && (size_t)x->imm < p->ninputs ? p->inputs[x->imm].rank : 1;
        if (v->value < 0)
            fmd_diag_add(diags, FMD_ERROR, p->source, s,
                         "guard the read, e.g. `i >= 0 && a[i] ...`",
                         "index %s of '%s' is %lld at %s, but indices start at 0", text, name,
                         (long long)v->value, pt);
        else if (rank == 1)
            fmd_diag_add(diags, FMD_ERROR, p->source, s,
                         "guard the read, e.g. `i < N && a[i] ...`",
                         "index %s of '%s' reaches %lld at %s, but '%s' has length %lld", text,
                         name, (long long)v->value, pt, name, (long long)v->limit);
        else
            fmd_diag_add(diags, FMD_ERROR, p->source, s,
                         "guard the read, e.g. `i < N && a[..., i] ...`",
                         "index %s of '%s' reaches %lld at %s, but dimension %d of '%s' has "
                         "size %lld",
                         text, name, (long long)v->value, pt, v->arg + 1, name,
                         (long long)v->limit);
        break;
    }
    case FMC_VIOLATION_DIV_ZERO: {
        fmd_span s = arg_span(p, v->insn, 1);
        span_text(p, s, text, sizeof text);
        fmd_diag_add(diags, FMD_ERROR, p->source, s,
                     "guard it, e.g. `d != 0 && x / d ...`, or use max(d, 1)",
                     "%s '%s' is zero at %s", x->op == FMC_OP_MOD ? "modulus" : "divisor", text,
                     pt);
        break;
    }
    case FMC_VIOLATION_OVERFLOW:
        span_text(p, x->span, text, sizeof text);
        fmd_diag_add(diags, FMD_ERROR, p->source, x->span, NULL,
                     "'%s' overflows 64 bits at %s", text, pt);
        break;
    default: break;
    }
}

/* ---- bindings ------------------------------------------------------------- */

int64_t fmc_dim_value(const fmc_dim *d, const fmc_env *env) {
    switch (d->kind) {
    case FMD_DIM_LITERAL: return d->value;
    case FMD_DIM_PARAM: return env->params ? env->params[d->value] : -1;
    default:
        switch ((fmd_builtin_var)d->value) {
        case FMD_VAR_Q_LEN: return env->q_len;
        case FMD_VAR_KV_LEN: return env->kv_len;
        case FMD_VAR_BATCH: return env->batch;
        case FMD_VAR_HEADS: return env->heads;
        default: return -1;
        }
    }
}

void fmc_dims_text(char *buf, size_t cap, const int64_t *dims, size_t rank) {
    size_t n = 0;
    buf[0] = '\0';
    for (size_t k = 0; k < rank && n < cap; k++) {
        int w = snprintf(buf + n, cap - n, "%s%lld", k ? ", " : "", (long long)dims[k]);
        if (w < 0) break;
        n += (size_t)w;
    }
}

bool fmc_env_validate(const fmc_program *p, const fmc_env *env, fmd_diags *diags) {
    bool ok = true;
    const char *file = p->source ? p->source->name : "<string>";
    if (env->batch < 1 || env->heads < 1 || env->q_len < 1 || env->kv_len < 1) {
        fmd_diag_add(diags, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL,
                     "the shape must be positive: BATCH=%lld, HEADS=%lld, Q_LEN=%lld, "
                     "KV_LEN=%lld",
                     (long long)env->batch, (long long)env->heads, (long long)env->q_len,
                     (long long)env->kv_len);
        return false;
    }
    if (p->nparams > 0 && !env->params) {
        fmd_diag_add(diags, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL,
                     "%s: no values given for the mask's params", file);
        return false;
    }
    for (size_t i = 0; i < p->ninputs; i++) {
        const fmc_input_info *in = &p->inputs[i];
        if (!env->input_dims || !fmc_env_input_data(p, env, i)) {
            fmd_diag_add(diags, FMD_ERROR, p->source, in->span,
                         "bind it with --input NAME=... (fmc, fmviz) or fm_bindings_set_input",
                         "input '%s' is not bound", in->name);
            ok = false;
            continue;
        }
        int64_t want[FMD_MAX_RANK];
        bool same = true, negative = false;
        for (size_t k = 0; k < in->rank; k++) {
            want[k] = fmc_dim_value(&in->dims[k], env);
            negative |= want[k] < 0;
            same &= env->input_dims[i][k] == want[k];
        }
        char got[128], exp[128];
        fmc_dims_text(got, sizeof got, env->input_dims[i], in->rank);
        fmc_dims_text(exp, sizeof exp, want, in->rank);
        if (negative) {
            fmd_diag_add(diags, FMD_ERROR, p->source, in->span, NULL,
                         "input '%s' would have dimensions [%s] for these params: a "
                         "dimension is negative",
                         in->name, exp);
            ok = false;
        } else if (!same) {
            fmd_diag_add(diags, FMD_ERROR, p->source, in->span, NULL,
                         "input '%s' is bound with dimensions [%s] but is declared with "
                         "dimensions [%s] for this shape and params",
                         in->name, got, exp);
            ok = false;
        }
    }
    return ok;
}
