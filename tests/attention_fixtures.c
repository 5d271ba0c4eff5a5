#include "attention_fixtures.h"

#include <stdlib.h>
#include <string.h>

#include "compiler/eval.h"
#include "ref_attention.h"

/* ---- hand-lowered programs ---- */

static const int op_nargs[] = {
#define X(name, nargs, unsafe) nargs,
    FMC_OPS(X)
#undef X
};

static int emit(pb *b, fmc_op op, fmd_type type, int guard, int64_t imm, int a0, int a1, int a2) {
    fmc_insn *i = &b->ins[b->n];
    memset(i, 0, sizeof *i);
    i->op = (uint8_t)op;
    i->type = (uint8_t)type;
    i->nargs = (uint8_t)(op_nargs[op] < 0 ? 1 : op_nargs[op]);
    i->guard = guard;
    i->imm = imm;
    i->args[0] = a0;
    i->args[1] = a1;
    i->args[2] = a2;
    return b->n++;
}

#define I FMD_TYPE_INT
#define Bo FMD_TYPE_BOOL
#define VAR(v) emit(&b, FMC_OP_VAR, I, -1, FMD_VAR_##v, 0, 0, 0)
#define CST(t, x) emit(&b, FMC_OP_CONST, t, -1, x, 0, 0, 0)
#define OP2(op, t, g, x, y) emit(&b, FMC_OP_##op, t, g, 0, x, y, 0)

const char *const af_mask_names[AF_M_COUNT] = {"causal",   "sliding", "document", "sparse_q",
                                               "per_head", "scatter", "full",     "none",
                                               "strict",   "padding"};

void af_make_mask(af_mask *t, int kind, int64_t B, int64_t H, int64_t Q, int64_t KV, tu_rng *rng) {
    memset(t, 0, sizeof *t);
    pb b;
    b.n = 0;
    int r = -1;
    switch (kind) {
    case AF_M_CAUSAL: r = OP2(LE, Bo, -1, VAR(KV), VAR(Q)); break;
    case AF_M_SLIDING: {
        int q = VAR(Q), kv = VAR(KV);
        int le = OP2(LE, Bo, -1, kv, q);
        int diff = OP2(SUB, I, le, q, kv);
        int w = emit(&b, FMC_OP_PARAM, I, -1, 0, 0, 0, 0);
        r = OP2(AND, Bo, -1, le, OP2(LT, Bo, -1, diff, w));
        t->prog.nparams = 1;
        t->param_values[0] = tu_rng_range(rng, 1, 40);
        break;
    }
    case AF_M_DOCUMENT: {
        int a = emit(&b, FMC_OP_LOAD, I, -1, 0, VAR(Q), 0, 0);
        int c = emit(&b, FMC_OP_LOAD, I, -1, 1, VAR(KV), 0, 0);
        r = OP2(EQ, Bo, -1, a, c);
        t->prog.ninputs = 2;
        /* Contiguous runs of ids, as packed sequences have. */
        int64_t lens[2] = {Q, KV};
        for (int k = 0; k < 2; k++) {
            t->docs[k] = malloc((size_t)lens[k] * sizeof(int32_t));
            int32_t id = 0;
            for (int64_t i = 0; i < lens[k]; i++) {
                if (i > 0 && tu_rng_range(rng, 0, 15) == 0) id++;
                t->docs[k][i] = id;
            }
            t->input_ptrs[k] = t->docs[k];
            t->input_dims[k][0] = lens[k];
            t->inputs[k].rank = 1;
            t->inputs[k].dims[0].kind = FMD_DIM_SHAPE;
            t->inputs[k].dims[0].value = k == 0 ? FMD_VAR_Q_LEN : FMD_VAR_KV_LEN;
        }
        break;
    }
    case AF_M_SPARSE_Q: {
        int q = VAR(Q);
        int mod = OP2(MOD, I, -1, q, CST(I, 3));
        int ne = OP2(NE, Bo, -1, mod, CST(I, 0));
        r = OP2(AND, Bo, -1, ne, OP2(LE, Bo, -1, VAR(KV), q));
        break;
    }
    case AF_M_PER_HEAD: {
        int q = VAR(Q), kv = VAR(KV);
        int even = OP2(EQ, Bo, -1, OP2(MOD, I, -1, VAR(H), CST(I, 2)), CST(I, 0));
        int odd = emit(&b, FMC_OP_NOT, Bo, -1, 0, even, 0, 0);
        int sum = OP2(ADD, I, odd, kv, CST(I, 4));
        r = emit(&b, FMC_OP_SELECT, Bo, -1, 0, even, OP2(LE, Bo, -1, kv, q),
                 OP2(LE, Bo, -1, q, sum));
        t->prog.reads_heads = true;
        break;
    }
    case AF_M_SCATTER: {
        int a = OP2(MUL, I, -1, VAR(Q), CST(I, 7));
        int c = OP2(MUL, I, -1, VAR(KV), CST(I, 13));
        int s = OP2(ADD, I, -1, OP2(ADD, I, -1, a, c), VAR(B));
        r = OP2(LT, Bo, -1, OP2(MOD, I, -1, s, CST(I, 5)), CST(I, 2));
        t->prog.reads_batch = true;
        break;
    }
    case AF_M_FULL: r = CST(Bo, 1); break;
    case AF_M_NONE: r = CST(Bo, 0); break;
    case AF_M_STRICT: r = OP2(LT, Bo, -1, VAR(KV), VAR(Q)); break;
    case AF_M_PADDING: r = OP2(LT, Bo, -1, VAR(KV), CST(I, 50)); break;
    }
    t->b = b;
    t->prog.mask_name = (char *)af_mask_names[kind];
    t->prog.insns = t->b.ins;
    t->prog.count = (size_t)t->b.n;
    t->prog.result = r;
    t->prog.params = t->params;
    t->prog.inputs = t->inputs;
    t->env.batch = B;
    t->env.heads = H;
    t->env.q_len = Q;
    t->env.kv_len = KV;
    t->env.params = t->param_values;
    t->env.inputs = t->input_ptrs;
    t->env.input_dims = (const int64_t(*)[FMD_MAX_RANK])t->input_dims;
}

void af_free_mask(af_mask *t) {
    free(t->docs[0]);
    free(t->docs[1]);
}

/* ---- a brute-force BlockMask ---- */

fmc_blockmask *af_build_bm(const af_mask *t, int64_t bq, int64_t bkv) {
    fmc_blockmask *m = calloc(1, sizeof *m);
    m->batch = t->env.batch;
    m->heads = t->env.heads;
    m->q_len = t->env.q_len;
    m->kv_len = t->env.kv_len;
    m->block_q = bq;
    m->block_kv = bkv;
    m->nqb = (m->q_len + bq - 1) / bq;
    m->nkvb = (m->kv_len + bkv - 1) / bkv;
    m->bcast_batch = !t->prog.reads_batch;
    m->bcast_heads = !t->prog.reads_heads;
    m->stored_batch = m->bcast_batch ? 1 : m->batch;
    m->stored_heads = m->bcast_heads ? 1 : m->heads;
    int64_t rows = m->stored_batch * m->stored_heads * m->nqb;
    m->full.off = calloc((size_t)rows + 1, sizeof(int64_t));
    m->partial.off = calloc((size_t)rows + 1, sizeof(int64_t));
    m->full.idx = calloc((size_t)(rows * m->nkvb) + 1, sizeof(int32_t));
    m->partial.idx = calloc((size_t)(rows * m->nkvb) + 1, sizeof(int32_t));
    m->program = &t->prog;
    m->env = t->env;
    int64_t *regs = malloc((t->prog.count + 1) * sizeof *regs);
    int64_t nf = 0, np = 0;
    int64_t mult = (m->bcast_batch ? m->batch : 1) * (m->bcast_heads ? m->heads : 1);
    for (int64_t sb = 0; sb < m->stored_batch; sb++)
        for (int64_t sh = 0; sh < m->stored_heads; sh++)
            for (int64_t qb = 0; qb < m->nqb; qb++) {
                int64_t r = fmc_bm_row(m, sb, sh, qb);
                for (int64_t kb = 0; kb < m->nkvb; kb++) {
                    bool any_t = false, any_f = false;
                    int64_t q1 = (qb + 1) * bq, k1 = (kb + 1) * bkv;
                    bool clipped = q1 > m->q_len || k1 > m->kv_len;
                    for (int64_t q = qb * bq; q < q1 && q < m->q_len; q++)
                        for (int64_t kv = kb * bkv; kv < k1 && kv < m->kv_len; kv++) {
                            bool v = false;
                            fmc_violation viol;
                            assert_true(
                                fmc_eval_point(&t->prog, &t->env, sb, sh, q, kv, regs, &v, &viol));
                            if (v)
                                any_t = true;
                            else
                                any_f = true;
                        }
                    if (!any_t) {
                        m->stats.empty += mult;
                    } else if (any_f || clipped) {
                        m->partial.idx[np++] = (int32_t)kb;
                        m->stats.partial += mult;
                    } else {
                        m->full.idx[nf++] = (int32_t)kb;
                        m->stats.full += mult;
                    }
                }
                m->full.off[r + 1] = nf;
                m->partial.off[r + 1] = np;
            }
    free(regs);
    return m;
}

void af_free_bm(fmc_blockmask *m) {
    free(m->full.off);
    free(m->full.idx);
    free(m->partial.off);
    free(m->partial.idx);
    free(m);
}

/* Positions inside partial tiles over every (b, h): what the runtime must
 * evaluate, no more and no less. */
int64_t af_partial_positions(const fmc_blockmask *m) {
    int64_t total = 0;
    for (int64_t b = 0; b < m->batch; b++)
        for (int64_t h = 0; h < m->heads; h++)
            for (int64_t qb = 0; qb < m->nqb; qb++) {
                int64_t r = fmc_bm_row(m, b, h, qb);
                int64_t rows = m->q_len - qb * m->block_q;
                if (rows > m->block_q) rows = m->block_q;
                for (int64_t i = m->partial.off[r]; i < m->partial.off[r + 1]; i++) {
                    int64_t cols = m->kv_len - m->partial.idx[i] * m->block_kv;
                    if (cols > m->block_kv) cols = m->block_kv;
                    total += rows * cols;
                }
            }
    return total;
}

/* ---- tensors ---- */

static size_t af_dsize(fm_dtype t) {
    return t == FM_FLOAT32 ? 4 : 2;
}

/* A [d0, d1, d2, d3] tensor in one of the layouts (zero-filled memory, so
 * gaps hold zeros). */
fm_tensor af_make_tensor(fm_dtype dt, int layout, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    fm_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = dt;
    t.shape[0] = d0;
    t.shape[1] = d1;
    t.shape[2] = d2;
    t.shape[3] = d3;
    int64_t total;
    switch (layout) {
    case AF_L_BSHD: /* memory [B, S, H, D] */
        t.strides[3] = 1;
        t.strides[1] = d3;
        t.strides[2] = d1 * d3;
        t.strides[0] = d2 * d1 * d3;
        total = d0 * d1 * d2 * d3;
        break;
    case AF_L_PADDED: /* rows of D + 5 elements */
        t.strides[3] = 1;
        t.strides[2] = d3 + 5;
        t.strides[1] = d2 * (d3 + 5);
        t.strides[0] = d1 * d2 * (d3 + 5);
        total = d0 * t.strides[0];
        break;
    case AF_L_DSTRIDE2: /* every other element along D */
        t.strides[3] = 2;
        t.strides[2] = 2 * d3;
        t.strides[1] = d2 * 2 * d3;
        t.strides[0] = d1 * d2 * 2 * d3;
        total = d0 * t.strides[0];
        break;
    default:
        t = fm_tensor_contiguous(NULL, dt, d0, d1, d2, d3);
        total = d0 * d1 * d2 * d3;
        break;
    }
    t.data = calloc((size_t)total + 1, af_dsize(dt));
    return t;
}

void af_fill_random(fm_tensor *t, tu_rng *rng, double amp) {
    for (int64_t a = 0; a < t->shape[0]; a++)
        for (int64_t b = 0; b < t->shape[1]; b++)
            for (int64_t c = 0; c < t->shape[2]; c++)
                for (int64_t d = 0; d < t->shape[3]; d++) {
                    double u = (double)(tu_rng_next(rng) >> 11) * 0x1p-53;
                    ref_tensor_set(t, a, b, c, d, amp * (2.0 * u - 1.0));
                }
}
