/* Dense masks in and out of BlockMasks: the bridge from code that already
 * builds [B, H, Q, KV] masks.
 *
 * Import does not classify tiles itself: it writes the mask as a program,
 * `keep[b, h, q, kv] != 0` over a 0/1 byte copy of the array (a literal 0
 * index for a dimension of size 1, so the program does not read b or h
 * there), and builds it like any compiled mask. Tiles then come out exactly
 * as for the equivalent hand-written mask, broadcast flags included, and
 * attention, eval and the safetensors writer need nothing special. The
 * program's input is marked as bytes (fmc_input_info.elem_bytes), which
 * the language cannot say: the copy the BlockMask keeps for its partial
 * tiles is then as large as a boolean mask, not four times that. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/eval.h"
#include "runtime/api/api_internal.h"
#include "runtime/interop/npy.h"

/* 4 Gi positions: the copy is then 4 GiB, past any mask that makes sense
 * to hold densely. */
#define FMR_DENSE_MAX_COUNT ((int64_t)1 << 32)
#define FMR_DENSE_MAX_EXPORT_BYTES ((int64_t)1 << 34)


/* "[1, 0, 17, 3]" for linear index i of an array of the given dims. */
static void format_position(char *buf, size_t n, int64_t i, size_t rank, const int64_t *dims) {
    int64_t idx[FMD_MAX_RANK];
    for (size_t k = rank; k-- > 0;) {
        idx[k] = i % dims[k];
        i /= dims[k];
    }
    size_t used = 0;
    used += (size_t)snprintf(buf, n, "[");
    for (size_t k = 0; k < rank && used < n; k++)
        used += (size_t)snprintf(buf + used, n - used, "%s%lld", k ? ", " : "", (long long)idx[k]);
    if (used < n) snprintf(buf + used, n - used, "]");
}

static fm_status convert(const void *data, fm_dense_kind kind, int64_t count, size_t rank,
                         const int64_t *dims, const char *name, uint8_t *keep,
                         fm_diagnostics *diags) {
    char pos[96];
    if (kind == FM_DENSE_BOOL) {
        /* Checked a chunk at a time (a branch-free OR the compiler
         * vectorises), copied while the chunk is in cache; the first bad
         * element is looked for only once one is known to exist. */
        enum { CHUNK = 1 << 14 };
        const uint8_t *u = data;
        for (int64_t c0 = 0; c0 < count; c0 += CHUNK) {
            int64_t n = count - c0 < CHUNK ? count - c0 : CHUNK;
            uint8_t high = 0;
            if (n == CHUNK)
                for (int64_t i = 0; i < CHUNK; i++) high |= u[c0 + i];
            else
                for (int64_t i = 0; i < n; i++) high |= u[c0 + i];
            if (high > 1) {
                int64_t i = c0;
                while (u[i] <= 1) i++;
                format_position(pos, sizeof pos, i, rank, dims);
                fmr_error(diags,
                    "%s: element %s is %u; a boolean mask holds only 0 (do not attend) and 1 "
                    "(attend)",
                    name, pos, u[i]);
                return FM_ERR_INVALID_ARGUMENT;
            }
            memcpy(keep + c0, u + c0, (size_t)n);
        }
        return FM_OK;
    }
    const float *f = data;
    for (int64_t i = 0; i < count; i++) {
        float x = f[i];
        if (x == 0.0f) {
            keep[i] = 1;
        } else if (isinf(x) && x < 0) {
            keep[i] = 0;
        } else {
            format_position(pos, sizeof pos, i, rank, dims);
            fmr_error(diags,
                "%s: element %s is %.9g; an additive mask holds only 0 (attend) and -inf (do not "
                "attend)",
                name, pos, (double)x);
            return FM_ERR_INVALID_ARGUMENT;
        }
    }
    return FM_OK;
}

/* Builds `keep[...] != 0` over keep, whose ownership passes to the
 * BlockMask on success (and is freed on failure). */
static fm_status build_keep(uint8_t *keep, size_t rank, const int64_t *dims, fm_shape shape,
                            const char *name, const fm_build_options *opts, fm_diagnostics *diags,
                            fm_blockmask **out) {
    /* Leading dims: batch then heads; a size-1 dim is indexed by 0. */
    static const char *const lead_dim[2] = {"BATCH", "HEADS"};
    static const char *const lead_idx[2] = {"b", "h"};
    char decl[96] = "", index[32] = "";
    size_t nlead = rank - 2;
    for (size_t k = 0; k < nlead; k++) {
        size_t which = nlead == 2 ? k : 1; /* rank 3 leads with heads */
        bool one = dims[k] == 1;
        size_t dl = strlen(decl), il = strlen(index);
        snprintf(decl + dl, sizeof decl - dl, "%s, ", one ? "1" : lead_dim[which]);
        snprintf(index + il, sizeof index - il, "%s, ", one ? "0" : lead_idx[which]);
    }
    char text[512];
    int len = snprintf(text, sizeof text,
                       "# A dense mask imported by flexmask (1: attend, 0: do not).\n"
                       "input keep[%sQ_LEN, KV_LEN];\n"
                       "mask dense = keep[%sq, kv] != 0;\n",
                       decl, index);
    fm_program *prog = NULL;
    fm_mask *mask = NULL;
    fm_bindings *bind = NULL;
    fm_blockmask *bm = NULL;
    fm_status st = fm_compile_string(name, text, (size_t)len, diags, &prog);
    if (st == FM_OK) st = fm_mask_select(prog, "dense", diags, &mask);
    if (st == FM_OK) {
        /* The mask is this import's own (nothing else holds its program),
         * so its one input can still change width before anything binds it. */
        fmc_program *p = mask->shared->program;
        if (p->ninputs == 1) p->inputs[0].elem_bytes = 1;
        else st = FM_ERR_INVALID_ARGUMENT; /* a lowering that renumbered inputs */
    }
    if (st == FM_OK) st = fm_bindings_create(mask, &bind);
    if (st == FM_OK) st = fmr_bindings_set_bytes(bind, "keep", keep, rank, dims, diags);
    if (st == FM_OK) st = fm_blockmask_build(mask, bind, shape, opts, diags, &bm);
    if (st == FM_OK) {
        /* The build borrowed keep; hand it to the BlockMask, which frees its
         * owned inputs with itself. Slot 0 is the program's only input. */
        if (bm->byte_inputs[0] == keep && bm->owned_bytes[0] == NULL) {
            bm->owned_bytes[0] = keep;
            keep = NULL;
        } else {
            st = FM_ERR_INVALID_ARGUMENT; /* a lowering that renumbered inputs: refuse, not leak */
            fm_blockmask_free(bm);
            bm = NULL;
        }
    }
    free(keep);
    fm_bindings_free(bind);
    fm_mask_free(mask);
    fm_program_free(prog);
    if (st == FM_OK) *out = bm;
    return st;
}

static fm_status dense_common(const void *data, fm_dense_kind kind, size_t rank,
                              const int64_t *dims, const fm_shape *shape, const char *name,
                              const fm_build_options *opts, fm_diagnostics *diags,
                              fm_blockmask **out) {
    if (!out || !dims || (kind != FM_DENSE_BOOL && kind != FM_DENSE_ADDITIVE))
        return FM_ERR_INVALID_ARGUMENT;
    if (rank < 2 || rank > 4) {
        fmr_error(diags,
            "%s: a dense mask has rank 2 [Q_LEN, KV_LEN], 3 [HEADS, Q_LEN, KV_LEN] or 4 [BATCH, "
            "HEADS, Q_LEN, KV_LEN], not %zu",
            name, rank);
        return FM_ERR_INVALID_ARGUMENT;
    }
    int64_t count = 1;
    for (size_t k = 0; k < rank; k++) {
        if (dims[k] < 1 || dims[k] > FMR_DENSE_MAX_COUNT || count > FMR_DENSE_MAX_COUNT / dims[k]) {
            fmr_error(diags, "%s: dimension %zu of the dense mask has size %lld%s", name, k,
                (long long)dims[k],
                dims[k] < 1 ? "; every dimension must be at least 1"
                            : "; the mask is larger than 2^32 positions");
            return dims[k] < 1 ? FM_ERR_INVALID_ARGUMENT : FM_ERR_LIMIT;
        }
        count *= dims[k];
    }
    if (!data) return FM_ERR_INVALID_ARGUMENT;
    int64_t arr_b = rank == 4 ? dims[0] : 1, arr_h = rank >= 3 ? dims[rank - 3] : 1;
    fm_shape s = {arr_b, arr_h, dims[rank - 2], dims[rank - 1]};
    if (shape) {
        /* A 0 takes the array's size. */
        fm_shape want = *shape;
        if (!want.batch) want.batch = s.batch;
        if (!want.heads) want.heads = s.heads;
        if (!want.q_len) want.q_len = s.q_len;
        if (!want.kv_len) want.kv_len = s.kv_len;
        shape = &want;
        if (shape->q_len != s.q_len || shape->kv_len != s.kv_len) {
            fmr_error(diags,
                "%s: the dense mask is %lld x %lld (Q_LEN x KV_LEN) but the shape asks for "
                "%lld x %lld",
                name, (long long)s.q_len, (long long)s.kv_len, (long long)shape->q_len,
                (long long)shape->kv_len);
            return FM_ERR_INVALID_ARGUMENT;
        }
        if ((arr_b != 1 && arr_b != shape->batch) || (arr_h != 1 && arr_h != shape->heads)) {
            fmr_error(diags,
                "%s: the dense mask has %lld batch and %lld head slices; building for BATCH=%lld, "
                "HEADS=%lld needs each to be that size or 1 (which broadcasts)",
                name, (long long)arr_b, (long long)arr_h, (long long)shape->batch,
                (long long)shape->heads);
            return FM_ERR_INVALID_ARGUMENT;
        }
        s = *shape;
    }
    uint8_t *keep = malloc((size_t)count);
    if (!keep) return FM_ERR_NO_MEMORY;
    fm_status st = convert(data, kind, count, rank, dims, name, keep, diags);
    if (st != FM_OK) {
        free(keep);
        return st;
    }
    return build_keep(keep, rank, dims, s, name, opts, diags, out);
}

FM_API fm_status fm_blockmask_from_dense(const void *data, fm_dense_kind kind, size_t rank,
                                         const int64_t *dims, const fm_shape *shape,
                                         const fm_build_options *opts, fm_diagnostics *diags,
                                         fm_blockmask **out) {
    return dense_common(data, kind, rank, dims, shape, "<dense mask>", opts, diags, out);
}

FM_API fm_status fm_blockmask_from_npy(const char *path, const fm_shape *shape,
                                       const fm_build_options *opts, fm_diagnostics *diags,
                                       fm_blockmask **out) {
    if (!path || !out) return FM_ERR_INVALID_ARGUMENT;
    fmr_npy a;
    fm_status st = fmr_npy_load(path, &a, diags ? &diags->d : NULL);
    if (st != FM_OK) return st;
    int64_t dims[FMD_MAX_RANK] = {0};
    if (a.rank < 2 || a.rank > 4) {
        fmr_error(diags,
            "%s: a dense mask has rank 2 [Q_LEN, KV_LEN], 3 [HEADS, Q_LEN, KV_LEN] or 4 [BATCH, "
            "HEADS, Q_LEN, KV_LEN], not %zu",
            path, a.rank);
        fmr_npy_free(&a);
        return FM_ERR_INVALID_ARGUMENT;
    }
    for (size_t k = 0; k < a.rank; k++)
        dims[k] = a.shape[k];
    switch (a.dtype) {
    case FMR_NPY_BOOL:
    case FMR_NPY_UINT8:
        st = dense_common(a.data, FM_DENSE_BOOL, a.rank, dims, shape, path, opts, diags, out);
        break;
    case FMR_NPY_FLOAT32:
        st = dense_common(a.data, FM_DENSE_ADDITIVE, a.rank, dims, shape, path, opts, diags, out);
        break;
    case FMR_NPY_FLOAT16:
    case FMR_NPY_FLOAT64: {
        /* 0 and -inf convert exactly; anything else stays something else. */
        float *f = NULL;
        st = fmr_npy_to_float32(&a, path, &f, diags ? &diags->d : NULL);
        if (st == FM_OK)
            st = dense_common(f, FM_DENSE_ADDITIVE, a.rank, dims, shape, path, opts, diags, out);
        free(f);
        break;
    }
    default:
        fmr_error(diags,
            "%s: a dense mask is bool or uint8 (1 = attend) or float (additive: 0 = attend, -inf "
            "= do not), not %s",
            path, fmr_npy_dtype_name(a.dtype));
        st = FM_ERR_UNSUPPORTED;
        break;
    }
    fmr_npy_free(&a);
    return st;
}

/* ---- export ---- */

/* One stored slice [q_len, kv_len] of bm into out (zeroed by the caller). */
static fm_status slice_to_dense(const fmc_blockmask *bm, int64_t sb, int64_t sh, uint8_t *out,
                                void *scratch, fm_diagnostics *diags) {
    for (int64_t qb = 0; qb < bm->nqb; qb++) {
        int64_t r = (sb * bm->stored_heads + sh) * bm->nqb + qb;
        int64_t q0 = qb * bm->block_q, q1 = q0 + bm->block_q;
        if (q1 > bm->q_len) q1 = bm->q_len;
        for (int64_t k = bm->full.off[r]; k < bm->full.off[r + 1]; k++) {
            int64_t kv0 = (int64_t)bm->full.idx[k] * bm->block_kv;
            for (int64_t q = q0; q < q1; q++)
                memset(out + q * bm->kv_len + kv0, 1, (size_t)bm->block_kv);
        }
        for (int64_t k = bm->partial.off[r]; k < bm->partial.off[r + 1]; k++) {
            int64_t kv0 = (int64_t)bm->partial.idx[k] * bm->block_kv;
            int64_t n = bm->kv_len - kv0 < bm->block_kv ? bm->kv_len - kv0 : bm->block_kv;
            for (int64_t q = q0; q < q1; q++) {
                fmc_violation v;
                if (!fmc_eval_row(bm->program, &bm->env, sb, sh, q, kv0, n,
                                  out + q * bm->kv_len + kv0, scratch, &v)) {
                    /* The build evaluated or proved every point of this tile. */
                    fmr_error(diags, "dense export: the mask breaks a safety rule at q=%lld, kv=%lld",
                        (long long)v.q, (long long)v.kv);
                    return FM_ERR_SAFETY;
                }
            }
        }
    }
    return FM_OK;
}

FM_API fm_status fm_blockmask_to_dense(const fm_blockmask *blockmask, uint8_t **out, size_t *count,
                                       fm_diagnostics *diags) {
    if (!blockmask || !out) return FM_ERR_INVALID_ARGUMENT;
    const fmc_blockmask *bm = blockmask->bm;
    int64_t slice = bm->q_len * bm->kv_len; /* each below 2^31: no overflow */
    int64_t slices = bm->batch * bm->heads;
    if (slice > FMR_DENSE_MAX_EXPORT_BYTES / slices) {
        fmr_error(diags,
            "dense export: %lld x %lld x %lld x %lld positions is more than the limit of 2^34 "
            "bytes",
            (long long)bm->batch, (long long)bm->heads, (long long)bm->q_len,
            (long long)bm->kv_len);
        return FM_ERR_LIMIT;
    }
    uint8_t *dense = calloc((size_t)(slice * slices), 1);
    void *scratch = malloc(fmc_row_scratch_bytes(bm->program, bm->block_kv) + 64);
    if (!dense || !scratch) {
        free(dense);
        free(scratch);
        return FM_ERR_NO_MEMORY;
    }
    fm_status st = FM_OK;
    /* Fill each stored slice once, at its first (b, h), then copy it to the
     * (b, h) it stands for. */
    for (int64_t sb = 0; sb < bm->stored_batch && st == FM_OK; sb++)
        for (int64_t sh = 0; sh < bm->stored_heads && st == FM_OK; sh++)
            st = slice_to_dense(bm, sb, sh, dense + (sb * bm->heads + sh) * slice, scratch, diags);
    for (int64_t b = 0; b < bm->batch && st == FM_OK; b++) {
        for (int64_t h = 0; h < bm->heads; h++) {
            int64_t sb = bm->bcast_batch ? 0 : b, sh = bm->bcast_heads ? 0 : h;
            if (sb == b && sh == h) continue;
            memcpy(dense + (b * bm->heads + h) * slice, dense + (sb * bm->heads + sh) * slice,
                   (size_t)slice);
        }
    }
    free(scratch);
    if (st != FM_OK) {
        free(dense);
        return st;
    }
    *out = dense;
    if (count) *count = (size_t)(slice * slices);
    return FM_OK;
}

FM_API fm_status fm_blockmask_save_dense_npy(const fm_blockmask *blockmask, const char *path,
                                             fm_diagnostics *diags) {
    if (!blockmask || !path) return FM_ERR_INVALID_ARGUMENT;
    uint8_t *dense = NULL;
    fm_status st = fm_blockmask_to_dense(blockmask, &dense, NULL, diags);
    if (st != FM_OK) return st;
    const fmc_blockmask *bm = blockmask->bm;
    int64_t shape[4] = {bm->batch, bm->heads, bm->q_len, bm->kv_len};
    st = fmr_npy_save(path, FMR_NPY_BOOL, 4, shape, dense, diags ? &diags->d : NULL);
    free(dense);
    return st;
}
