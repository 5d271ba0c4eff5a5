/* From parsed common flags to a built BlockMask: compile, select, bind,
 * build, printing every diagnostic on the way. Errors here are the user's
 * mask, params or inputs (exit 1). */
#include "tools/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flexmask_tools.h"

static bool ident_char(char ch) {
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '_';
}

/* Whether the file declares `param NAME` (or `input NAME`). The selected
 * mask need not reach every declared name, and setting one it does not
 * reach is harmless; a name the file does not declare is an error. The
 * canonical text holds only declarations and expressions (no comments), so
 * the keyword followed by the name is a declaration. */
static bool file_declares(const fmcli_session *s, const char *name, bool input) {
    char *text = fm_program_print(s->program);
    if (!text) return false;
    const char *kw = input ? "input" : "param";
    size_t kn = strlen(kw), nn = strlen(name);
    bool found = false;
    for (const char *p = text; !found && (p = strstr(p, kw)) != NULL; p += kn) {
        if (p != text && ident_char(p[-1])) continue;
        const char *q = p + kn;
        if (*q != ' ' && *q != '\t' && *q != '\n') continue;
        while (*q == ' ' || *q == '\t' || *q == '\n')
            q++;
        found = !strncmp(q, name, nn) && !ident_char(q[nn]);
    }
    fm_free(text);
    return found;
}

static bool mask_input_index(const fm_mask *m, const char *name, size_t *idx) {
    for (size_t j = 0; j < fm_mask_input_count(m); j++)
        if (!strcmp(fm_mask_input_name(m, j), name)) {
            *idx = j;
            return true;
        }
    return false;
}

static int bind_input(const fmcli_common *c, fmcli_session *s, const fmcli_input *in) {
    size_t idx;
    if (!mask_input_index(s->mask, in->name, &idx)) {
        if (file_declares(s, in->name, true)) return 0;
        /* The library words this error (what the file declares, a
         * did-you-mean, where); an empty array can fail only on the name. */
        static const int64_t no_dims[1] = {0};
        fm_diagnostics_clear(s->diags);
        fm_bindings_set_input(s->bindings, in->name, NULL, 1, no_dims, FM_COPY, s->diags);
        fmcli_print_diags(c, s->diags);
        if (!fm_diagnostics_count(s->diags))
            fmcli_input_error(c, NULL, "%s: mask '%s' reads no input named '%s'", c->file,
                              fm_mask_name(s->mask), in->name);
        return FMCLI_EXIT_INPUT;
    }
    size_t want_rank = fm_mask_input_rank(s->mask, idx);
    const int32_t *data;
    size_t rank;
    int64_t dims[8];
    int32_t *loaded = NULL;
    if (in->npy_path) {
        char err[512];
        if (!fmt_npy_load_int32(in->npy_path, &loaded, &rank, dims, 8, err, sizeof err))
            return fmcli_input_error(c, NULL, "input '%s': %s", in->name, err);
        data = loaded;
    } else {
        data = in->values;
        rank = 1;
        dims[0] = in->count;
    }
    if (rank != want_rank) {
        free(loaded);
        return fmcli_input_error(
            c, NULL, "input '%s' has rank %zu in %s but the mask declares rank %zu", in->name, rank,
            in->npy_path ? in->npy_path : "the --input list", want_rank);
    }
    fm_status st =
        fm_bindings_set_input(s->bindings, in->name, data, rank, dims, FM_COPY, s->diags);
    free(loaded);
    if (st != FM_OK) {
        fmcli_print_diags(c, s->diags);
        if (!fm_diagnostics_count(s->diags))
            fmcli_input_error(c, NULL, "input '%s': %s", in->name, fm_status_string(st));
        return FMCLI_EXIT_INPUT;
    }
    return 0;
}

fm_status fmcli_compile(const char *path, fm_diagnostics *diags, fm_program **out) {
    if (strcmp(path, "-") != 0) return fm_compile_file(path, diags, out);
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            char *t = cap > SIZE_MAX / 4 ? NULL : realloc(text, cap ? cap * 2 : 65536);
            if (!t) {
                free(text);
                return FM_ERR_NO_MEMORY;
            }
            text = t;
            cap = cap ? cap * 2 : 65536;
        }
        size_t got = fread(text + len, 1, cap - len, stdin);
        len += got;
        if (got == 0) break;
    }
    fm_status st = ferror(stdin) ? FM_ERR_IO : fm_compile_string("<stdin>", text, len, diags, out);
    free(text);
    return st;
}

int fmcli_prepare(const fmcli_common *c, fmcli_session *s) {
    memset(s, 0, sizeof *s);
    s->diags = fm_diagnostics_create();
    if (!s->diags) return fmcli_input_error(c, NULL, "out of memory");
    fm_status st = fmcli_compile(c->file, s->diags, &s->program);
    if (st != FM_OK) {
        fmcli_print_diags(c, s->diags);
        if (!fm_diagnostics_count(s->diags))
            fmcli_input_error(c, NULL, "%s: %s", c->file, fm_status_string(st));
        return FMCLI_EXIT_INPUT;
    }
    fmcli_print_diags(c, s->diags); /* warnings */
    fm_diagnostics_clear(s->diags);
    st = fm_mask_select(s->program, c->mask_name, s->diags, &s->mask);
    if (st != FM_OK) {
        fmcli_print_diags(c, s->diags);
        if (st == FM_ERR_NOT_FOUND && c->mask_name && !fm_diagnostics_count(s->diags)) {
            size_t n = fm_program_mask_count(s->program);
            char names[512] = "";
            size_t used = 0;
            for (size_t i = 0; i < n && used + 2 < sizeof names; i++)
                used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "",
                                         fm_program_mask_name(s->program, i));
            return fmcli_input_error(c, NULL, "%s: no mask named '%s' (the file has: %s)", c->file,
                                     c->mask_name, names);
        }
        if (!fm_diagnostics_count(s->diags))
            fmcli_input_error(c, NULL, "%s: %s", c->file, fm_status_string(st));
        return FMCLI_EXIT_INPUT;
    }
    fm_diagnostics_clear(s->diags);
    st = fm_bindings_create(s->mask, &s->bindings);
    if (st != FM_OK) return fmcli_input_error(c, NULL, "%s", fm_status_string(st));
    for (size_t i = 0; i < c->num_defines; i++) {
        const fmcli_define *d = &c->defines[i];
        fm_diagnostics_clear(s->diags);
        st = fm_bindings_set_param(s->bindings, d->name, d->value, s->diags);
        if (st == FM_ERR_NOT_FOUND && file_declares(s, d->name, false)) continue;
        if (st != FM_OK) {
            fmcli_print_diags(c, s->diags);
            if (!fm_diagnostics_count(s->diags))
                fmcli_input_error(c, NULL, "-D %s: %s", d->name, fm_status_string(st));
            return FMCLI_EXIT_INPUT;
        }
    }
    fm_diagnostics_clear(s->diags);
    for (size_t i = 0; i < c->num_inputs; i++) {
        int rc = bind_input(c, s, &c->inputs[i]);
        if (rc) return rc;
    }
    return 0;
}

int fmcli_build_blockmask(const fmcli_common *c, fmcli_session *s, fm_shape shape) {
    fm_build_options opts = {.struct_size = sizeof(fm_build_options), .block_q = c->block_q,
                             .block_kv = c->block_kv,
                             .memory_budget = c->memory_budget,
                             .max_evaluations = c->max_evaluations};
    fm_diagnostics_clear(s->diags);
    fm_status st = fm_blockmask_build(s->mask, s->bindings, shape, &opts, s->diags, &s->blockmask);
    fmcli_print_diags(c, s->diags);
    if (st != FM_OK) {
        if (!fm_diagnostics_count(s->diags))
            fmcli_input_error(c, NULL, "%s: building the BlockMask failed: %s", c->file,
                              fm_status_string(st));
        return FMCLI_EXIT_INPUT;
    }
    fm_diagnostics_clear(s->diags);
    return 0;
}

int fmcli_build(const fmcli_common *c, fmcli_session *s) {
    int rc = fmcli_prepare(c, s);
    if (rc) return rc;
    return fmcli_build_blockmask(c, s, fmcli_shape(c));
}

void fmcli_session_free(fmcli_session *s) {
    fm_blockmask_free(s->blockmask);
    fm_bindings_free(s->bindings);
    fm_mask_free(s->mask);
    fm_program_free(s->program);
    fm_diagnostics_free(s->diags);
    memset(s, 0, sizeof *s);
}
