/* The public API: bindings, BlockMask build and reading, CPU attention. */
#include <stdlib.h>
#include <string.h>

#include "compiler/eval.h"
#include "runtime/api/api_internal.h"
#include "runtime/api/api_names.h"
#include "runtime/cpu/attention_cpu.h"

/* Lengths past this would overflow the int32 block indices kernels use. */
#define FMR_MAX_SEQ_LEN ((int64_t)1 << 31) - 1
#define FMR_MAX_BATCH_HEADS ((int64_t)1 << 24)
#define FMR_DEFAULT_BLOCK 128
#define FMR_DEFAULT_BUDGET ((int64_t)1 << 30)

static const fmc_program *program_of(const fm_bindings *b) {
    return b->mask->shared->program;
}

FM_API fm_status fm_bindings_create(const fm_mask *mask, fm_bindings **out) {
    if (!mask || !out) return FM_ERR_INVALID_ARGUMENT;
    const fmc_program *p = mask->shared->program;
    fm_bindings *b = calloc(1, sizeof *b);
    if (!b) return FM_ERR_NO_MEMORY;
    b->mask = mask;
    b->params = calloc(p->nparams + 1, sizeof *b->params);
    b->param_set = calloc(p->nparams + 1, sizeof *b->param_set);
    b->inputs = calloc(p->ninputs + 1, sizeof *b->inputs);
    if (!b->params || !b->param_set || !b->inputs) {
        fm_bindings_free(b);
        return FM_ERR_NO_MEMORY;
    }
    for (size_t i = 0; i < p->nparams; i++)
        if (p->params[i].has_default) b->params[i] = p->params[i].default_value;
    *out = b;
    return FM_OK;
}

FM_API void fm_bindings_free(fm_bindings *bindings) {
    if (!bindings) return;
    if (bindings->inputs) {
        for (size_t i = 0; i < program_of(bindings)->ninputs; i++) free(bindings->inputs[i].owned);
    }
    free(bindings->params);
    free(bindings->param_set);
    free(bindings->inputs);
    free(bindings);
}

FM_API fm_status fm_bindings_set_param(fm_bindings *bindings, const char *name, int64_t value,
                                       fm_diagnostics *diags) {
    if (!bindings || !name) return FM_ERR_INVALID_ARGUMENT;
    const fmc_program *p = program_of(bindings);
    for (size_t i = 0; i < p->nparams; i++) {
        if (!strcmp(p->params[i].name, name)) {
            bindings->params[i] = value;
            bindings->param_set[i] = true;
            return FM_OK;
        }
    }
    fmr_unknown_binding(diags, p, name, false);
    return FM_ERR_NOT_FOUND;
}

/* Finds input `name` and checks its dims; its slot in *slot, its element
 * count in *count. */
static fm_status find_input(fm_bindings *bindings, const char *name, size_t rank,
                            const int64_t *dims, fm_diagnostics *diags, size_t *slot,
                            int64_t *count) {
    if (!bindings || !name || !dims || rank == 0 || rank > FMD_MAX_RANK)
        return FM_ERR_INVALID_ARGUMENT;
    const fmc_program *p = program_of(bindings);
    size_t i = 0;
    while (i < p->ninputs && strcmp(p->inputs[i].name, name) != 0) i++;
    if (i == p->ninputs) {
        fmr_unknown_binding(diags, p, name, true);
        return FM_ERR_NOT_FOUND;
    }
    int64_t n = 1;
    for (size_t k = 0; k < rank; k++) {
        if (dims[k] < 0 || (dims[k] && n > INT64_MAX / 4 / dims[k])) {
            if (diags)
                fmd_diag_add(&diags->d, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL,
                             "input '%s': dimension %zu has an invalid size %lld", name, k,
                             (long long)dims[k]);
            return FM_ERR_BINDING;
        }
        n *= dims[k];
    }
    *slot = i;
    *count = n;
    return FM_OK;
}

/* Refuses to bind an array of the other width (an internal misuse). */
static fm_status check_width(fm_bindings *bindings, size_t slot, bool bytes,
                             fm_diagnostics *diags) {
    const fmc_program *p = program_of(bindings);
    if (fmc_input_is_bytes(&p->inputs[slot]) == bytes) return FM_OK;
    if (diags)
        fmd_diag_add(&diags->d, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL,
                     "%s: input '%s' of mask '%s' holds %s, not %s", p->source->name,
                     p->inputs[slot].name, p->mask_name, bytes ? "int32 values" : "bytes",
                     bytes ? "bytes" : "int32 values");
    return FM_ERR_INVALID_ARGUMENT;
}

static void set_dims(fmr_input_binding *in, size_t rank, const int64_t *dims) {
    in->bound = true;
    in->rank = rank;
    memcpy(in->dims, dims, rank * sizeof *dims);
}

FM_API fm_status fm_bindings_set_input(fm_bindings *bindings, const char *name,
                                       const int32_t *data, size_t rank, const int64_t *dims,
                                       fm_ownership ownership, fm_diagnostics *diags) {
    size_t i;
    int64_t count;
    fm_status st = find_input(bindings, name, rank, dims, diags, &i, &count);
    if (st == FM_OK) st = check_width(bindings, i, false, diags);
    if (st != FM_OK) return st;
    if (!data && count) return FM_ERR_INVALID_ARGUMENT;
    fmr_input_binding *in = &bindings->inputs[i];
    int32_t *copy = NULL;
    if (ownership == FM_COPY) {
        copy = malloc(count ? (size_t)count * sizeof *copy : 1);
        if (!copy) return FM_ERR_NO_MEMORY;
        if (count) memcpy(copy, data, (size_t)count * sizeof *copy);
    }
    free(in->owned);
    in->owned = copy;
    in->data = copy ? copy : data;
    set_dims(in, rank, dims);
    return FM_OK;
}

fm_status fmr_bindings_set_bytes(fm_bindings *bindings, const char *name, const uint8_t *data,
                                 size_t rank, const int64_t *dims, fm_diagnostics *diags) {
    size_t i;
    int64_t count;
    fm_status st = find_input(bindings, name, rank, dims, diags, &i, &count);
    if (st == FM_OK) st = check_width(bindings, i, true, diags);
    if (st != FM_OK) return st;
    if (!data) return FM_ERR_INVALID_ARGUMENT; /* validation takes NULL for "not bound" */
    bindings->inputs[i].bytes = data;
    set_dims(&bindings->inputs[i], rank, dims);
    return FM_OK;
}

/* ---- building ---- */

static fm_status check_shape(fm_shape s, int64_t bq, int64_t bkv, fmd_diags *d) {
    struct {
        const char *name;
        int64_t v, max;
    } f[] = {{"batch", s.batch, FMR_MAX_BATCH_HEADS},
             {"heads", s.heads, FMR_MAX_BATCH_HEADS},
             {"q_len", s.q_len, FMR_MAX_SEQ_LEN},
             {"kv_len", s.kv_len, FMR_MAX_SEQ_LEN},
             {"block_q", bq, FMR_MAX_SEQ_LEN},
             {"block_kv", bkv, FMR_MAX_SEQ_LEN}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        if (f[i].v < 1) {
            fmd_diag_add(d, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL,
                         "%s must be at least 1, got %lld", f[i].name, (long long)f[i].v);
            return FM_ERR_INVALID_ARGUMENT;
        }
        if (f[i].v > f[i].max) {
            fmd_diag_add(d, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL,
                         "%s is %lld; the limit is %lld", f[i].name, (long long)f[i].v,
                         (long long)f[i].max);
            return FM_ERR_LIMIT;
        }
    }
    return FM_OK;
}

static void blockmask_release(fm_blockmask *m) {
    if (!m) return;
    fmc_blockmask_free(m->bm);
    if (m->owned_inputs && m->shared)
        for (size_t i = 0; i < m->shared->program->ninputs; i++) free(m->owned_inputs[i]);
    if (m->owned_bytes && m->shared)
        for (size_t i = 0; i < m->shared->program->ninputs; i++) free(m->owned_bytes[i]);
    free(m->owned_inputs);
    free(m->owned_bytes);
    free(m->byte_inputs);
    free(m->inputs);
    free(m->input_dims);
    free(m->params);
    fmr_shared_release(m->shared);
    fmr_tile_bits_free(&m->tile_bits);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* Resolves params and inputs into m (copying what the BlockMask must own).
 * Errors name the param or input; params without a value point at their
 * declaration. */
static fm_status bind_values(fm_blockmask *m, const fm_bindings *b, fm_shape s, fmd_diags *d) {
    const fmc_program *p = m->shared->program;
    m->params = calloc(p->nparams + 1, sizeof *m->params);
    m->inputs = calloc(p->ninputs + 1, sizeof *m->inputs);
    m->owned_inputs = calloc(p->ninputs + 1, sizeof *m->owned_inputs);
    m->byte_inputs = calloc(p->ninputs + 1, sizeof *m->byte_inputs);
    m->owned_bytes = calloc(p->ninputs + 1, sizeof *m->owned_bytes);
    m->input_dims = calloc(p->ninputs + 1, sizeof *m->input_dims);
    if (!m->params || !m->inputs || !m->owned_inputs || !m->byte_inputs || !m->owned_bytes ||
        !m->input_dims)
        return FM_ERR_NO_MEMORY;
    fm_status st = FM_OK;
    for (size_t i = 0; i < p->nparams; i++) {
        bool set = b && b->param_set[i];
        if (!set && !p->params[i].has_default) {
            fmd_diag_add(d, FMD_ERROR, p->source, p->params[i].span,
                         "give it a value with -D NAME=VALUE (fmc, fmviz) or "
                         "fm_bindings_set_param (C API)",
                         "param '%s' has no default and no value was given", p->params[i].name);
            st = FM_ERR_BINDING;
            continue;
        }
        m->params[i] = set ? b->params[i] : p->params[i].default_value;
    }
    if (st != FM_OK) return st;
    const fmc_env dims_env = {.batch = s.batch, .heads = s.heads, .q_len = s.q_len,
                              .kv_len = s.kv_len, .params = m->params};
    for (size_t i = 0; i < p->ninputs; i++) {
        const fmc_input_info *info = &p->inputs[i];
        const fmr_input_binding *in = b ? &b->inputs[i] : NULL;
        if (!in || !in->bound) {
            fmd_diag_add(d, FMD_ERROR, p->source, info->span,
                         "bind it with --input NAME=... (fmc, fmviz) or fm_bindings_set_input",
                         "input '%s' is not bound", info->name);
            st = FM_ERR_BINDING;
            continue;
        }
        int64_t want[FMD_MAX_RANK];
        bool ok = in->rank == info->rank, negative = false;
        for (size_t k = 0; k < info->rank; k++) {
            want[k] = fmc_dim_value(&info->dims[k], &dims_env);
            if (ok && in->dims[k] != want[k]) ok = false;
            negative |= want[k] < 0;
        }
        if (negative) {
            char exp[128];
            fmc_dims_text(exp, sizeof exp, want, info->rank);
            fmd_diag_add(d, FMD_ERROR, p->source, info->span,
                         "its dimensions come from params: give them non-negative values",
                         "input '%s' would have shape [%s] with these params; a dimension "
                         "cannot be negative",
                         info->name, exp);
            st = FM_ERR_BINDING;
            continue;
        }
        if (!ok) {
            char got[128], exp[128], hint[256];
            fmc_dims_text(got, sizeof got, in->dims, in->rank);
            fmc_dims_text(exp, sizeof exp, want, info->rank);
            fmr_input_dims_hint(p, info, &dims_env, hint, sizeof hint);
            fmd_diag_add(d, FMD_ERROR, p->source, info->span, hint,
                         "input '%s' is bound with shape [%s] but the mask declares "
                         "shape [%s] for this shape and params",
                         info->name, got, exp);
            st = FM_ERR_BINDING;
            continue;
        }
        memcpy(m->input_dims[i], want, sizeof want);
        /* The bound dims, whose product fm_bindings_set_input checked; 0 for
         * an empty array. (Declared dims alone may overflow a product.) */
        int64_t count = 1;
        for (size_t k = 0; k < info->rank; k++) count *= want[k];
        if (fmc_input_is_bytes(info)) {
            m->byte_inputs[i] = in->bytes; /* borrowed: only the runtime binds bytes */
        } else if (in->owned) {
            m->owned_inputs[i] = malloc(count ? (size_t)count * sizeof(int32_t) : 1);
            if (!m->owned_inputs[i]) return FM_ERR_NO_MEMORY;
            memcpy(m->owned_inputs[i], in->owned, (size_t)count * sizeof(int32_t));
            m->inputs[i] = m->owned_inputs[i];
        } else {
            m->inputs[i] = in->data;
        }
    }
    return st;
}

FM_API fm_status fm_blockmask_build(const fm_mask *mask, const fm_bindings *bindings,
                                    fm_shape shape, const fm_build_options *opts,
                                    fm_diagnostics *diags, fm_blockmask **out) {
    if (!mask || !out) return FM_ERR_INVALID_ARGUMENT;
    if (bindings && bindings->mask->shared != mask->shared) return FM_ERR_INVALID_ARGUMENT;
    fm_build_options given;
    if (opts) {
        fmd_diags scratch_v;
        fmd_diags *dv = fmr_diags_of(diags, &scratch_v);
        bool ok = fmr_versioned_copy(&given, sizeof given, opts, "fm_build_options", dv);
        fmr_diags_done(diags, &scratch_v);
        if (!ok) return FM_ERR_INVALID_ARGUMENT;
        opts = &given;
    }
    int64_t bq = opts && opts->block_q ? opts->block_q : FMR_DEFAULT_BLOCK;
    int64_t bkv = opts && opts->block_kv ? opts->block_kv : FMR_DEFAULT_BLOCK;
    int64_t budget = opts && opts->memory_budget ? opts->memory_budget : FMR_DEFAULT_BUDGET;
    fmd_diags scratch;
    fmd_diags *d = fmr_diags_of(diags, &scratch);
    fm_status st = check_shape(shape, bq, bkv, d);
    fm_blockmask *m = NULL;
    if (st == FM_OK) {
        m = calloc(1, sizeof *m);
        if (!m) st = FM_ERR_NO_MEMORY;
        else pthread_mutex_init(&m->lock, NULL);
    }
    if (st == FM_OK) {
        m->shared = fmr_shared_retain(mask->shared);
        st = bind_values(m, bindings, shape, d);
    }
    if (st == FM_OK) {
        fmc_env env = {.batch = shape.batch,
                       .heads = shape.heads,
                       .q_len = shape.q_len,
                       .kv_len = shape.kv_len,
                       .params = m->params,
                       .inputs = m->inputs,
                       .input_dims = (const int64_t(*)[FMD_MAX_RANK])m->input_dims,
                       .bytes = m->byte_inputs};
        fmc_build_status bs = FMC_BUILD_OK;
        fmc_build_limits limits = {.memory_budget = budget,
                                   .max_evaluations = opts ? opts->max_evaluations : 0};
        m->bm = fmc_blockmask_build_limited(m->shared->program, &env, bq, bkv, &limits, d, &bs);
        switch (bs) {
        case FMC_BUILD_OK: st = m->bm ? FM_OK : FM_ERR_NO_MEMORY; break;
        case FMC_BUILD_SAFETY: st = FM_ERR_SAFETY; break;
        case FMC_BUILD_LIMIT: st = FM_ERR_LIMIT; break;
        case FMC_BUILD_BINDING: st = FM_ERR_BINDING; break;
        case FMC_BUILD_INVALID: st = FM_ERR_INVALID_ARGUMENT; break;
        default: st = FM_ERR_NO_MEMORY; break;
        }
    }
    fmr_diags_done(diags, &scratch);
    if (st != FM_OK) {
        blockmask_release(m);
        return st;
    }
    *out = m;
    return FM_OK;
}

FM_API void fm_blockmask_free(fm_blockmask *blockmask) {
    blockmask_release(blockmask);
}

FM_API fm_status fm_blockmask_get_info(const fm_blockmask *blockmask, fm_blockmask_info *out) {
    if (!blockmask || !out) return FM_ERR_INVALID_ARGUMENT;
    const fmc_blockmask *bm = blockmask->bm;
    memset(out, 0, sizeof *out);
    out->shape = (fm_shape){bm->batch, bm->heads, bm->q_len, bm->kv_len};
    out->block_q = bm->block_q;
    out->block_kv = bm->block_kv;
    out->num_q_blocks = bm->nqb;
    out->num_kv_blocks = bm->nkvb;
    out->broadcast_batch = bm->bcast_batch;
    out->broadcast_heads = bm->bcast_heads;
    out->full_tiles = bm->stats.full;
    out->partial_tiles = bm->stats.partial;
    out->empty_tiles = bm->stats.empty;
    out->evaluations = bm->stats.evaluations;
    out->regions_decided = bm->stats.regions_decided;
    out->tiles_by_analysis = bm->stats.tiles_by_analysis;
    out->tiles_by_points = bm->stats.tiles_by_points;
    pthread_mutex_lock(&((fm_blockmask *)blockmask)->lock);
    out->true_positions = bm->stats.true_positions;
    pthread_mutex_unlock(&((fm_blockmask *)blockmask)->lock);
    out->bytes = bm->stats.bytes;
    return FM_OK;
}

static fm_status read_lists(const fmc_bm_lists *fl, const fmc_bm_lists *pl, int64_t r,
                            const int32_t **full, int64_t *num_full, const int32_t **partial,
                            int64_t *num_partial) {
    if (full) *full = fl->idx + fl->off[r];
    if (num_full) *num_full = fl->off[r + 1] - fl->off[r];
    if (partial) *partial = pl->idx + pl->off[r];
    if (num_partial) *num_partial = pl->off[r + 1] - pl->off[r];
    return FM_OK;
}

FM_API fm_status fm_blockmask_row(const fm_blockmask *blockmask, int64_t b, int64_t h,
                                  int64_t q_block, const int32_t **full, int64_t *num_full,
                                  const int32_t **partial, int64_t *num_partial) {
    if (!blockmask) return FM_ERR_INVALID_ARGUMENT;
    const fmc_blockmask *bm = blockmask->bm;
    if (b < 0 || b >= bm->batch || h < 0 || h >= bm->heads || q_block < 0 || q_block >= bm->nqb)
        return FM_ERR_INVALID_ARGUMENT;
    return read_lists(&bm->full, &bm->partial, fmc_bm_row(bm, b, h, q_block), full, num_full,
                      partial, num_partial);
}

FM_API fm_status fm_blockmask_column(const fm_blockmask *blockmask, int64_t b, int64_t h,
                                     int64_t kv_block, const int32_t **full, int64_t *num_full,
                                     const int32_t **partial, int64_t *num_partial) {
    if (!blockmask) return FM_ERR_INVALID_ARGUMENT;
    const fmc_blockmask *bm = blockmask->bm;
    if (b < 0 || b >= bm->batch || h < 0 || h >= bm->heads || kv_block < 0 ||
        kv_block >= bm->nkvb)
        return FM_ERR_INVALID_ARGUMENT;
    int64_t sb = bm->bcast_batch ? 0 : b, sh = bm->bcast_heads ? 0 : h;
    int64_t r = (sb * bm->stored_heads + sh) * bm->nkvb + kv_block;
    return read_lists(&bm->t_full, &bm->t_partial, r, full, num_full, partial, num_partial);
}

FM_API fm_status fm_blockmask_count_true(const fm_blockmask *blockmask, int64_t *count) {
    if (!blockmask || !count) return FM_ERR_INVALID_ARGUMENT;
    fm_blockmask *m = (fm_blockmask *)blockmask; /* only the cache changes */
    pthread_mutex_lock(&m->lock);
    int64_t n = m->bm->stats.true_positions;
    if (n < 0) n = fmc_blockmask_count_true(m->bm);
    pthread_mutex_unlock(&m->lock);
    if (n < 0) return FM_ERR_NO_MEMORY;
    *count = n;
    return FM_OK;
}

FM_API fm_status fm_blockmask_eval(const fm_blockmask *blockmask, int64_t b, int64_t h,
                                   int64_t q, int64_t kv, bool *value) {
    if (!blockmask || !value) return FM_ERR_INVALID_ARGUMENT;
    const fmc_blockmask *bm = blockmask->bm;
    if (b < 0 || b >= bm->batch || h < 0 || h >= bm->heads || q < 0 || q >= bm->q_len ||
        kv < 0 || kv >= bm->kv_len)
        return FM_ERR_INVALID_ARGUMENT;
    const fmc_program *p = bm->program;
    int64_t stack_regs[256];
    int64_t *regs = p->count <= 256 ? stack_regs : malloc(p->count * sizeof *regs);
    if (!regs) return FM_ERR_NO_MEMORY;
    fmc_violation v;
    bool ok = fmc_eval_point(p, &bm->env, b, h, q, kv, regs, value, &v);
    if (regs != stack_regs) free(regs);
    /* The build checked every evaluated point, so this cannot fail for a
     * BlockMask that exists; report it rather than trust it. */
    return ok ? FM_OK : FM_ERR_SAFETY;
}

/* ---- attention ---- */

FM_API fm_tensor fm_tensor_contiguous(void *data, fm_dtype dtype, int64_t d0, int64_t d1,
                                      int64_t d2, int64_t d3) {
    fm_tensor t;
    t.data = data;
    t.dtype = dtype;
    t.shape[0] = d0;
    t.shape[1] = d1;
    t.shape[2] = d2;
    t.shape[3] = d3;
    t.strides[3] = 1;
    t.strides[2] = d3;
    t.strides[1] = d2 * d3;
    t.strides[0] = d1 * d2 * d3;
    return t;
}

FM_API fm_status fm_attention_cpu(const fm_attention_args *caller_args, fm_diagnostics *diags) {
    if (!caller_args) return FM_ERR_INVALID_ARGUMENT;
    fmd_diags scratch;
    fmd_diags *d = fmr_diags_of(diags, &scratch);
    fm_attention_args copy;
    if (!fmr_versioned_copy(&copy, sizeof copy, caller_args, "fm_attention_args", d)) {
        fmr_diags_done(diags, &scratch);
        return FM_ERR_INVALID_ARGUMENT;
    }
    const fm_attention_args *args = &copy;
    if (!args->mask) {
        fmr_diags_done(diags, &scratch);
        return FM_ERR_INVALID_ARGUMENT;
    }
    /* The first attention over this BlockMask evaluates its partial tiles
     * once; every later head, batch entry and call reads the bits. Only
     * the lazy fill is under the lock: afterwards the table is read-only. */
    fm_blockmask *m = (fm_blockmask *)args->mask;
    /* Checked first: a call that is going to fail should not pay for
     * evaluating the tiles. */
    fm_status st = fmr_attention_cpu_check(m->bm, args, d);
    pthread_mutex_lock(&m->lock);
    if (st == FM_OK && !m->tile_bits_tried) {
        if (fmr_tile_bits_build(m->bm, args->num_threads, &m->tile_bits)) {
            m->tile_bits_tried = true;
        } else {
            st = FM_ERR_NO_MEMORY;
            fmd_diag_add(d, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL,
                         "attention: out of memory while evaluating the partial tiles");
        }
    }
    pthread_mutex_unlock(&m->lock);
    if (st == FM_OK) st = fmr_attention_cpu_tiles(m->bm, &m->tile_bits, args, FMR_ISA_AUTO, d, NULL);
    fmr_diags_done(diags, &scratch);
    return st;
}
