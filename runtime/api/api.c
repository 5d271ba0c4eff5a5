/* The public API: status, diagnostics, compiling, selecting masks. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/api/api_internal.h"

FM_API const char *fm_version(void) {
    return FM_VERSION;
}

FM_API const char *fm_status_string(fm_status status) {
    switch (status) {
    case FM_OK: return "ok";
    case FM_ERR_INVALID_ARGUMENT: return "invalid argument";
    case FM_ERR_COMPILE: return "the mask does not compile";
    case FM_ERR_NOT_FOUND: return "no such name";
    case FM_ERR_BINDING: return "a param or input binding is missing or wrong";
    case FM_ERR_SAFETY: return "a point breaks a safety rule";
    case FM_ERR_LIMIT: return "a resource limit was exceeded";
    case FM_ERR_NO_MEMORY: return "out of memory";
    case FM_ERR_IO: return "input/output error";
    case FM_ERR_FORMAT: return "malformed file";
    case FM_ERR_UNSUPPORTED: return "not supported";
    case FM_ERR_CUDA: return "CUDA error";
    }
    return "unknown status";
}

FM_API void fm_free(void *p) {
    free(p);
}

/* ---- diagnostics ---- */

FM_API fm_diagnostics *fm_diagnostics_create(void) {
    fm_diagnostics *d = calloc(1, sizeof *d);
    if (d) fmd_diags_init(&d->d);
    return d;
}

FM_API void fm_diagnostics_free(fm_diagnostics *diags) {
    if (!diags) return;
    fmd_diags_clear(&diags->d);
    free(diags);
}

FM_API void fm_diagnostics_clear(fm_diagnostics *diags) {
    if (diags) fmd_diags_clear(&diags->d);
}

FM_API size_t fm_diagnostics_count(const fm_diagnostics *diags) {
    return diags ? diags->d.count : 0;
}

FM_API fm_status fm_diagnostics_get(const fm_diagnostics *diags, size_t i, fm_diagnostic *out) {
    if (!diags || !out || i >= diags->d.count) return FM_ERR_INVALID_ARGUMENT;
    const fmd_diag *x = &diags->d.items[i];
    out->severity = fmd_severity_name(x->severity);
    out->file = x->file;
    out->line = x->line;
    out->col = x->col;
    out->end_line = x->end_line;
    out->end_col = x->end_col;
    out->message = x->message;
    out->hint = x->hint;
    out->source_line = x->source_line;
    return FM_OK;
}

FM_API char *fm_diagnostics_format(const fm_diagnostics *diags, bool json) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    if (diags) fmd_diags_render(&diags->d, f, json);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

bool fmr_versioned_copy(void *dst, size_t dst_size, const void *src, const char *what,
                        fmd_diags *d) {
    size_t given;
    memcpy(&given, src, sizeof given);
    memset(dst, 0, dst_size);
    if (given == 0) {
        fmd_diag_add(d, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL,
                     "%s.struct_size is 0: set it to sizeof(%s) (the FM_*_INIT macros do)", what,
                     what);
        return false;
    }
    if (given < sizeof(size_t) || given > dst_size) {
        fmd_diag_add(d, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL,
                     "%s.struct_size is %zu, but this library's %s is %zu bytes (built against "
                     "another flexmask.h?)",
                     what, given, what, dst_size);
        return false;
    }
    memcpy(dst, src, given);
    return true;
}

void fmr_error(fm_diagnostics *diags, const char *fmt, ...) {
    if (!diags) return;
    va_list ap;
    va_start(ap, fmt);
    fmd_diag_addv(&diags->d, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL, fmt, ap);
    va_end(ap);
}

fmd_diags *fmr_diags_of(fm_diagnostics *diags, fmd_diags *scratch) {
    fmd_diags_init(scratch);
    if (diags) scratch->max_errors = diags->d.max_errors;
    return scratch;
}

void fmr_diags_done(fm_diagnostics *diags, fmd_diags *scratch) {
    if (diags) fmd_diags_move(&diags->d, scratch);
    else fmd_diags_clear(scratch);
}

/* ---- compiling ---- */

static fm_status compile_source(fmd_source *src, fm_diagnostics *diags, fm_program **out) {
    fmd_diags scratch;
    fmd_diags *d = fmr_diags_of(diags, &scratch);
    fmd_program *ast = fmd_parse(src, d);
    if (!ast) {
        fmr_diags_done(diags, &scratch);
        return FM_ERR_NO_MEMORY;
    }
    /* The checker copes with statements that failed to parse, so run it
     * anyway: every independent error in the file is reported at once. */
    bool ok = fmd_check(ast, d) && d->errors == 0;
    fmd_diags_sort(d, 0);
    if (!ok) {
        bool oom = d->oom;
        fmr_diags_done(diags, &scratch);
        fmd_program_free(ast);
        return oom ? FM_ERR_NO_MEMORY : FM_ERR_COMPILE;
    }
    fmr_diags_done(diags, &scratch);
    fm_program *p = calloc(1, sizeof *p);
    if (!p) {
        fmd_program_free(ast);
        return FM_ERR_NO_MEMORY;
    }
    p->ast = ast;
    for (size_t i = 0; i < ast->count; i++) p->nmasks += ast->decls[i]->kind == FMD_DECL_MASK;
    p->mask_names = calloc(p->nmasks ? p->nmasks : 1, sizeof *p->mask_names);
    if (!p->mask_names) {
        fm_program_free(p);
        return FM_ERR_NO_MEMORY;
    }
    size_t k = 0;
    for (size_t i = 0; i < ast->count; i++)
        if (ast->decls[i]->kind == FMD_DECL_MASK) p->mask_names[k++] = ast->decls[i]->name;
    *out = p;
    return FM_OK;
}

FM_API fm_status fm_compile_string(const char *name, const char *text, size_t len,
                                   fm_diagnostics *diags, fm_program **out) {
    if ((!text && len) || !out) return FM_ERR_INVALID_ARGUMENT;
    if (len > FMD_MAX_SOURCE_BYTES) {
        fmr_error(diags, "%s: mask source is %zu bytes; the limit is %u bytes (16 MiB)",
                  name ? name : "<string>", len, FMD_MAX_SOURCE_BYTES);
        return FM_ERR_LIMIT;
    }
    fmd_source *src = fmd_source_new(name ? name : "<string>", text ? text : "", len);
    if (!src) return FM_ERR_NO_MEMORY;
    return compile_source(src, diags, out);
}

FM_API fm_status fm_compile_file(const char *path, fm_diagnostics *diags, fm_program **out) {
    if (!path || !out) return FM_ERR_INVALID_ARGUMENT;
    fmd_diags scratch;
    fmd_diags *d = fmr_diags_of(diags, &scratch);
    fmd_read_status why = FMD_READ_OK;
    fmd_source *src = fmd_source_read_file(path, d, &why);
    fmr_diags_done(diags, &scratch);
    if (!src) {
        switch (why) {
        case FMD_READ_TOO_BIG: return FM_ERR_LIMIT;
        case FMD_READ_NO_MEMORY: return FM_ERR_NO_MEMORY;
        default: return FM_ERR_IO;
        }
    }
    return compile_source(src, diags, out);
}

FM_API void fm_program_free(fm_program *program) {
    if (!program) return;
    fmd_program_free(program->ast);
    free(program->mask_names);
    free(program);
}

FM_API size_t fm_program_mask_count(const fm_program *program) {
    return program ? program->nmasks : 0;
}

FM_API const char *fm_program_mask_name(const fm_program *program, size_t i) {
    return program && i < program->nmasks ? program->mask_names[i] : NULL;
}

FM_API char *fm_program_print(const fm_program *program) {
    return program ? fmd_print(program->ast) : NULL;
}

/* ---- masks ---- */

fmr_shared_program *fmr_shared_retain(fmr_shared_program *s) {
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void fmr_shared_release(fmr_shared_program *s) {
    if (!s) return;
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) {
        fmc_program_free(s->program);
        free(s);
    }
}

FM_API fm_status fm_mask_select(const fm_program *program, const char *name,
                                fm_diagnostics *diags, fm_mask **out) {
    if (!program || !out) return FM_ERR_INVALID_ARGUMENT;
    if (program->nmasks == 0) return FM_ERR_NOT_FOUND;
    if (name) {
        size_t i = 0;
        while (i < program->nmasks && strcmp(program->mask_names[i], name) != 0) i++;
        if (i == program->nmasks) {
            if (diags) {
                /* Name the masks there are, so the fix is obvious. */
                char list[512] = "";
                size_t used = 0;
                for (size_t k = 0; k < program->nmasks && used + 4 < sizeof list; k++) {
                    int w = snprintf(list + used, sizeof list - used, "%s'%s'", k ? ", " : "",
                                     program->mask_names[k]);
                    if (w < 0) break;
                    used += (size_t)w;
                }
                const char *near = fmd_closest_name(
                    name, (const char *const *)program->mask_names, program->nmasks);
                char hint[160];
                if (near) snprintf(hint, sizeof hint, "did you mean '%s'?", near);
                fmd_diag_add(&diags->d, FMD_ERROR, NULL, (fmd_span){0, 0}, near ? hint : NULL,
                             "%s: no mask named '%s' (the file declares %s)",
                             program->ast->source->name, name, list);
            }
            return FM_ERR_NOT_FOUND;
        }
    }
    fmd_diags scratch;
    fmd_diags *d = fmr_diags_of(diags, &scratch);
    fmc_lower_failure why;
    fmc_program *p = fmc_lower_why(program->ast, name, d, &why);
    fmr_diags_done(diags, &scratch);
    if (!p)
        return why == FMC_LOWER_LIMIT     ? FM_ERR_LIMIT
               : why == FMC_LOWER_INVALID ? FM_ERR_COMPILE
                                          : FM_ERR_NO_MEMORY;
    fm_mask *m = calloc(1, sizeof *m);
    fmr_shared_program *s = calloc(1, sizeof *s);
    if (!m || !s) {
        free(m);
        free(s);
        fmc_program_free(p);
        return FM_ERR_NO_MEMORY;
    }
    s->program = p;
    atomic_init(&s->refs, 1);
    m->shared = s;
    *out = m;
    return FM_OK;
}

FM_API void fm_mask_free(fm_mask *mask) {
    if (!mask) return;
    fmr_shared_release(mask->shared);
    free(mask);
}

FM_API const char *fm_mask_name(const fm_mask *mask) {
    return mask ? mask->shared->program->mask_name : NULL;
}

FM_API bool fm_mask_reads_batch(const fm_mask *mask) {
    return mask && mask->shared->program->reads_batch;
}

FM_API bool fm_mask_reads_heads(const fm_mask *mask) {
    return mask && mask->shared->program->reads_heads;
}

FM_API size_t fm_mask_param_count(const fm_mask *mask) {
    return mask ? mask->shared->program->nparams : 0;
}

FM_API const char *fm_mask_param_name(const fm_mask *mask, size_t i) {
    if (!mask || i >= mask->shared->program->nparams) return NULL;
    return mask->shared->program->params[i].name;
}

FM_API bool fm_mask_param_default(const fm_mask *mask, size_t i, int64_t *value) {
    if (!mask || i >= mask->shared->program->nparams) return false;
    const fmc_param_info *pi = &mask->shared->program->params[i];
    if (pi->has_default && value) *value = pi->default_value;
    return pi->has_default;
}

FM_API size_t fm_mask_input_count(const fm_mask *mask) {
    return mask ? mask->shared->program->ninputs : 0;
}

FM_API const char *fm_mask_input_name(const fm_mask *mask, size_t i) {
    if (!mask || i >= mask->shared->program->ninputs) return NULL;
    return mask->shared->program->inputs[i].name;
}

FM_API size_t fm_mask_input_rank(const fm_mask *mask, size_t i) {
    if (!mask || i >= mask->shared->program->ninputs) return 0;
    return mask->shared->program->inputs[i].rank;
}
