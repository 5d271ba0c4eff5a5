/* include/flexmask_tools.h: the few internals fmc and fmviz need, behind
 * public types, so the tools never see the library's structs. */
#define _POSIX_C_SOURCE 200809L
#include "flexmask_tools.h"

#include <stdlib.h>
#include <string.h>

#include "compiler/codegen_cuda.h"
#include "compiler/eval.h"
#include "dsl/diag.h"
#include "runtime/api/api_internal.h"
#include "runtime/cuda/jit.h"
#include "runtime/interop/file_io.h"
#include "runtime/interop/npy.h"

#define FM_MASK_ENV_T fmc_cuda_mask_env
#include "kernels/fm_fwd_params.h"

/* ---- diagnostics ---- */

bool fmt_diags_addv(fm_diagnostics *diags, const char *severity, const char *hint,
                    const char *fmt, va_list ap) {
    if (!diags) return false;
    fmd_severity sev = !strcmp(severity, "note")      ? FMD_NOTE
                       : !strcmp(severity, "warning") ? FMD_WARNING
                                                      : FMD_ERROR;
    return fmd_diag_addv(&diags->d, sev, NULL, (fmd_span){0, 0}, hint, fmt, ap);
}

static void render_one(const fmd_diag *x, const char *prog, bool json, FILE *out) {
    fmd_diag view = *x;
    char *msg = NULL;
    size_t plen = strlen(prog);
    const char *m = x->message ? x->message : "";
    if (!x->file && !(strncmp(m, prog, plen) == 0 && m[plen] == ':')) {
        size_t n = plen + 2 + strlen(m) + 1;
        msg = malloc(n);
        if (msg) {
            snprintf(msg, n, "%s: %s", prog, m);
            view.message = msg;
        }
    }
    if (json)
        fmd_diag_render_json(&view, out);
    else
        fmd_diag_render_text(&view, out);
    free(msg);
}

void fmt_diags_render(const fm_diagnostics *diags, const char *prog, bool json, FILE *out) {
    if (!diags) return;
    const fmd_diags *d = &diags->d;
    for (size_t i = 0; i < d->count; i++)
        render_one(&d->items[i], prog, json, out);
    if (d->truncated && !json)
        fprintf(out, "error: %s: too many errors (%zu shown); stopping\n", prog, d->max_errors);
}

const char *fmt_closest_name(const char *name, const char *const *cands, size_t n) {
    return fmd_closest_name(name, cands, n);
}

void fmt_json_string(FILE *out, const char *s) {
    fmd_json_string(out, s);
}

/* ---- .npy arrays ---- */

static fm_status moved(fm_diagnostics *diags, fmd_diags *scratch, fm_status st) {
    fmr_diags_done(diags, scratch);
    return st;
}

/* Whether an input has already taken standard input: the tools load their
 * inputs one after another on one thread, and stdin can be read once. */
static bool stdin_taken;

/* path, or standard input for "-" (named "<stdin>" in messages). */
static fm_status load_path_or_stdin(const char *path, fmr_npy *a, fmd_diags *d) {
    if (strcmp(path, "-") != 0) return fmr_npy_load(path, a, d);
    if (stdin_taken) {
        memset(a, 0, sizeof *a);
        fmd_diag_add(d, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL,
                     "<stdin>: standard input was already read for another input; only one input "
                     "may be '-'");
        return FM_ERR_INVALID_ARGUMENT;
    }
    stdin_taken = true;
    return fmr_npy_load_stream("<stdin>", stdin, a, d);
}

fm_status fmt_npy_load(const char *path, fmt_array *out, fm_diagnostics *diags) {
    memset(out, 0, sizeof *out);
    fmd_diags scratch;
    fmd_diags *d = fmr_diags_of(diags, &scratch);
    fmr_npy a;
    fm_status st = load_path_or_stdin(path, &a, d);
    if (st != FM_OK) return moved(diags, &scratch, st);
    out->dtype = fmr_npy_dtype_name(a.dtype);
    out->rank = a.rank;
    memcpy(out->shape, a.shape, a.rank * sizeof *a.shape);
    out->count = a.count;
    out->data = a.data;
    return moved(diags, &scratch, FM_OK);
}

void fmt_array_free(fmt_array *a) {
    free(a->data);
    memset(a, 0, sizeof *a);
}

fm_status fmt_npy_save_float32(const char *path, size_t rank, const int64_t *shape,
                               const float *data, fm_diagnostics *diags) {
    fmd_diags scratch;
    fmd_diags *d = fmr_diags_of(diags, &scratch);
    return moved(diags, &scratch, fmr_npy_save(path, FMR_NPY_FLOAT32, rank, shape, data, d));
}

static void first_message(const fmd_diags *d, const char *fallback, char *err, size_t n) {
    snprintf(err, n, "%s", d->count ? d->items[0].message : fallback);
}

bool fmt_npy_load_int32(const char *path, int32_t **data, size_t *rank, int64_t *dims,
                        size_t max_rank, char *err, size_t err_size) {
    fmd_diags d;
    fmd_diags_init(&d);
    fmr_npy a;
    fm_status st = load_path_or_stdin(path, &a, &d);
    if (strcmp(path, "-") == 0) path = "<stdin>";
    if (st != FM_OK) {
        first_message(&d, fm_status_string(st), err, err_size);
        fmd_diags_clear(&d);
        return false;
    }
    bool ok = false;
    if (a.dtype != FMR_NPY_INT32 && a.dtype != FMR_NPY_INT64) {
        snprintf(err, err_size, "%s: holds %s values; an input must be int32 or int64", path,
                 fmr_npy_dtype_name(a.dtype));
    } else if (a.rank == 0 || a.rank > max_rank) {
        snprintf(err, err_size, "%s: has rank %zu; an input array has rank 1 to 4", path, a.rank);
    } else if ((st = fmr_npy_to_int32(&a, path, data, &d)) != FM_OK) {
        first_message(&d, fm_status_string(st), err, err_size);
    } else {
        *rank = a.rank;
        memcpy(dims, a.shape, a.rank * sizeof *dims);
        ok = true;
    }
    fmr_npy_free(&a);
    fmd_diags_clear(&d);
    return ok;
}

/* ---- CUDA source and PTX ---- */

fm_status fmt_cuda_source(const fm_mask *mask, bool full, char **text, size_t *len,
                          fm_diagnostics *diags) {
    if (!mask || !text || !len) return FM_ERR_INVALID_ARGUMENT;
    fmd_diags scratch;
    fmd_diags *d = fmr_diags_of(diags, &scratch);
    char *t = fmc_codegen_cuda(mask->shared->program, len, d);
    if (!t) return moved(diags, &scratch, d->errors ? FM_ERR_LIMIT : FM_ERR_NO_MEMORY);
    if (full) {
        char *whole = fmr_jit_full_source(t, *len, len);
        free(t);
        if (!whole) return moved(diags, &scratch, FM_ERR_NO_MEMORY);
        t = whole;
    }
    *text = t;
    return moved(diags, &scratch, FM_OK);
}

#ifdef FM_HAVE_CUDA
/* The PTX, then one line per kernel of bin's CUBIN. */
static char *ptx_report(const char *ptx, const fmr_jit_binary *bin, int head_dim) {
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f) return NULL;
    fputs(ptx, f);
    fmr_kernel_resources res[16];
    int n = fmr_cubin_resources(bin->cubin, bin->cubin_len, res, 16);
    fprintf(f, "\n// CUBIN for sm_%d (%zu bytes): %d kernel%s\n", bin->arch, bin->cubin_len,
            n < 0 ? 0 : n, n == 1 ? "" : "s");
    if (n < 0) fprintf(f, "// the CUBIN could not be read as a CUDA ELF file\n");
    for (int i = 0; i < n && i < 16; i++) {
        int64_t ss = -1, sl = -1;
        bool have = fmr_log_spills(bin->log, res[i].name, &ss, &sl);
        fprintf(f,
                "// kernel %s: registers %d, shared memory %lld bytes static + %d bytes dynamic "
                "at launch, stack frame %lld bytes, ",
                res[i].name, res[i].registers, (long long)res[i].shared_bytes,
                FM_FWD_SMEM_BYTES(head_dim), (long long)res[i].frame_bytes);
        if (have)
            fprintf(f, "spill stores %lld bytes, spill loads %lld bytes\n", (long long)ss,
                    (long long)sl);
        else
            fprintf(f, "spills not reported by ptxas\n");
    }
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
#endif

fm_status fmt_cuda_ptx_report(const fm_mask *mask, const fmt_ptx_options *opts, char **report,
                              fm_diagnostics *diags) {
    if (!mask || !opts || !report) return FM_ERR_INVALID_ARGUMENT;
    fmd_diags scratch;
    fmd_diags *d = fmr_diags_of(diags, &scratch);
#ifndef FM_HAVE_CUDA
    fmd_diag_add(d, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL,
                 "this build has no CUDA support (the CUDA Toolkit was not found at build "
                 "time), so it cannot compile kernels");
    return moved(diags, &scratch, FM_ERR_UNSUPPORTED);
#else
    char why[512];
    if (!fmr_nvrtc_available(why, sizeof why)) {
        fmd_diag_add(d, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL, "%s", why);
        return moved(diags, &scratch, FM_ERR_UNSUPPORTED);
    }
    size_t len = 0;
    char *text = fmc_codegen_cuda(mask->shared->program, &len, d);
    if (!text) return moved(diags, &scratch, d->errors ? FM_ERR_LIMIT : FM_ERR_NO_MEMORY);
    fmr_kernel_config cfg = {
        .head_dim = opts->head_dim, .bf16 = !opts->fp16, .int32 = opts->int32, .arch = opts->arch};
    char *ptx = NULL, *log = NULL;
    fmr_jit_binary bin;
    fm_status st = fmr_jit_ptx(text, len, &cfg, &ptx, &log, d);
    if (st == FM_OK) st = fmr_jit_compile(NULL, text, len, &cfg, false, &bin, d);
    if (st == FM_OK && !(*report = ptx_report(ptx, &bin, opts->head_dim))) st = FM_ERR_NO_MEMORY;
    free(ptx);
    free(log);
    free(text);
    return moved(diags, &scratch, st);
#endif
}

/* ---- independent evaluation ---- */

struct fmt_row_eval {
    const fmc_blockmask *bm;
    int64_t max_n;
    void *scratch;
    int64_t *regs;
};

fmt_row_eval *fmt_row_eval_create(const fm_blockmask *bm, int64_t max_n) {
    if (!bm || max_n < 1) return NULL;
    fmt_row_eval *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    const fmc_program *p = bm->bm->program;
    e->bm = bm->bm;
    e->max_n = max_n;
    e->scratch = malloc(fmc_row_scratch_bytes(p, max_n));
    e->regs = malloc((p->count ? p->count : 1) * sizeof *e->regs);
    if (!e->scratch || !e->regs) {
        fmt_row_eval_free(e);
        return NULL;
    }
    return e;
}

void fmt_row_eval_free(fmt_row_eval *e) {
    if (!e) return;
    free(e->scratch);
    free(e->regs);
    free(e);
}

bool fmt_row_eval_row(fmt_row_eval *e, int64_t b, int64_t h, int64_t q, int64_t kv0, int64_t n,
                      uint8_t *out) {
    if (n < 0 || n > e->max_n) return false;
    fmc_violation viol;
    return fmc_eval_row(e->bm->program, &e->bm->env, b, h, q, kv0, n, out, e->scratch, &viol);
}

bool fmt_row_eval_point(fmt_row_eval *e, int64_t b, int64_t h, int64_t q, int64_t kv,
                        bool *value) {
    fmc_violation viol;
    return fmc_eval_point(e->bm->program, &e->bm->env, b, h, q, kv, e->regs, value, &viol);
}

bool fmt_write_file(const char *path, bool (*write)(FILE *f, void *ctx), void *ctx, char *error,
                    size_t error_size) {
    return fmr_write_file(path, write, ctx, error, error_size);
}
