/* Fuzz target: the language front end on arbitrary bytes.
 *
 * Parses, checks and prints the input, renders its diagnostics as text and
 * JSON, then compiles it through the public API and selects (lowers) each
 * mask. Binds names a mask does not reach and mistypes a mask's name: each
 * must be refused with a message inside the source. Asserts what the
 * language page promises of `fmc print`: the canonical text of a valid
 * program is itself valid and prints to the same text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsl/ast.h"
#include "dsl/diag.h"
#include "flexmask.h"

static FILE *sink(void) {
    static FILE *f;
    if (!f) f = fopen("/dev/null", "w");
    return f;
}

/* Parses and checks text; returns the program (NULL on OOM) and whether it
 * checked clean. */
static fmd_program *front(const char *text, size_t len, fmd_diags *d, bool *ok) {
    fmd_source *src = fmd_source_new("fuzz.mask", text, len);
    if (!src) return NULL;
    fmd_program *p = fmd_parse(src, d);
    if (!p) return NULL;
    *ok = fmd_check(p, d) && d->errors == 0;
    return p;
}

/* The refusal of name must have left a message (diags held none before)
 * and, when located, one inside the source: line and column within it,
 * the line's text given. */
static void check_messages(const fm_diagnostics *diags, const char *text, size_t len,
                           const char *what, const char *name) {
    size_t n = fm_diagnostics_count(diags);
    if (n == 0) {
        fprintf(stderr, "%s '%s' gave no message\n", what, name);
        __builtin_trap();
    }
    int lines = 1;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    for (size_t i = 0; i < n; i++) {
        fm_diagnostic g;
        if (fm_diagnostics_get(diags, i, &g) != FM_OK || !g.message) __builtin_trap();
        if (g.file && (g.line < 1 || g.line > lines || g.col < 1 || !g.source_line ||
                       (size_t)g.col > strlen(g.source_line) + 1 || g.end_line < g.line)) {
            fprintf(stderr, "%s '%s': message outside the source (%d:%d): %s\n", what, name, g.line,
                    g.col, g.message);
            __builtin_trap();
        }
    }
}

/* Binds names a user might type by mistake (another declaration's name,
 * a reachable name with its case changed, a name from nowhere): each must
 * be FM_ERR_NOT_FOUND with a sound message, and the reachable names bind. */
static void bind_names(const fm_mask *m, const char *text, size_t len, fm_diagnostics *diags) {
    fm_bindings *bind = NULL;
    if (fm_bindings_create(m, &bind) != FM_OK) return;
    size_t np = fm_mask_param_count(m), ni = fm_mask_input_count(m);
    for (size_t i = 0; i < np; i++)
        if (fm_bindings_set_param(bind, fm_mask_param_name(m, i), 3, diags) != FM_OK)
            __builtin_trap();
    char names[4][64];
    size_t nn = 0;
    snprintf(names[nn++], sizeof names[0], "%s", "zz_not_declared");
    snprintf(names[nn++], sizeof names[0], "%s", fm_mask_name(m));
    if (np) snprintf(names[nn++], sizeof names[0], "%s", fm_mask_param_name(m, 0));
    if (ni) snprintf(names[nn++], sizeof names[0], "%s", fm_mask_input_name(m, 0));
    for (size_t k = 0; k < nn; k++) {
        for (int flip = 0; flip < 2; flip++) {
            char name[64];
            snprintf(name, sizeof name, "%s", names[k]);
            if (flip) name[0] ^= 0x20; /* a change of case (or some other byte) */
            bool param = false, input = false;
            for (size_t i = 0; i < np; i++)
                param = param || !strcmp(name, fm_mask_param_name(m, i));
            for (size_t i = 0; i < ni; i++)
                input = input || !strcmp(name, fm_mask_input_name(m, i));
            fm_diagnostics_clear(diags); /* below the 20-error cap */
            fm_status st = fm_bindings_set_param(bind, name, 1, diags);
            if ((st == FM_OK) != param || (st != FM_OK && st != FM_ERR_NOT_FOUND)) __builtin_trap();
            if (!param) check_messages(diags, text, len, "unknown param", name);
            if (input) continue; /* a real input: binding it is fuzz_blockmask's business */
            int32_t one = 0;
            int64_t dim = 1;
            fm_diagnostics_clear(diags);
            if (fm_bindings_set_input(bind, name, &one, 1, &dim, FM_COPY, diags) !=
                FM_ERR_NOT_FOUND)
                __builtin_trap();
            check_messages(diags, text, len, "unknown input", name);
        }
    }
    fm_bindings_free(bind);
}

static void select_masks(const char *text, size_t len) {
    fm_diagnostics *diags = fm_diagnostics_create();
    fm_program *prog = NULL;
    if (fm_compile_string("fuzz.mask", text, len, diags, &prog) == FM_OK) {
        size_t n = fm_program_mask_count(prog);
        for (size_t i = 0; i < n && i < 4; i++) {
            fm_mask *m = NULL;
            if (fm_mask_select(prog, fm_program_mask_name(prog, i), diags, &m) == FM_OK) {
                (void)fm_mask_reads_batch(m);
                (void)fm_mask_param_count(m);
                bind_names(m, text, len, diags);
                fm_mask_free(m);
            }
        }
        if (n) {
            /* A mistyped --mask name. */
            char name[64];
            snprintf(name, sizeof name, "%s", fm_program_mask_name(prog, 0));
            name[0] ^= 0x20;
            bool exists = false;
            for (size_t i = 0; i < n; i++)
                exists = exists || !strcmp(name, fm_program_mask_name(prog, i));
            fm_mask *m = NULL;
            fm_diagnostics_clear(diags); /* below the 20-error cap */
            fm_status st = fm_mask_select(prog, name, diags, &m);
            if (!exists) {
                if (st != FM_ERR_NOT_FOUND) __builtin_trap();
                check_messages(diags, text, len, "unknown mask", name);
            }
            fm_mask_free(m);
        }
        char *t = fm_program_print(prog);
        fm_free(t);
    }
    char *s = fm_diagnostics_format(diags, false);
    fm_free(s);
    s = fm_diagnostics_format(diags, true);
    fm_free(s);
    fm_program_free(prog);
    fm_diagnostics_free(diags);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (size > 1 << 20) return 0;
    fmd_diags d;
    fmd_diags_init(&d);
    bool ok = false;
    fmd_program *p = front((const char *)data, size, &d, &ok);
    if (!p) {
        fmd_diags_clear(&d);
        return 0;
    }
    /* Every located message points inside the source (a caret line past
     * the end of a line is a rendering bug waiting to happen). */
    for (size_t i = 0; i < d.count; i++) {
        const fmd_diag *g = &d.items[i];
        if (!g->message) __builtin_trap();
        if (g->file &&
            (g->line < 1 || g->col < 1 || g->span_start > g->span_end || g->span_end > size ||
             g->end_line < g->line || (g->end_line == g->line && g->end_col < g->col)))
            __builtin_trap();
    }
    fmd_diags_render(&d, sink(), false);
    fmd_diags_render(&d, sink(), true);
    char *t1 = fmd_print(p);
    if (ok && t1) {
        fmd_diags d2;
        fmd_diags_init(&d2);
        bool ok2 = false;
        fmd_program *p2 = front(t1, strlen(t1), &d2, &ok2);
        if (p2) {
            /* The canonical text of a valid program must be valid ... */
            if (!ok2) {
                fmd_diags_render(&d2, stderr, false);
                fprintf(stderr, "printed text does not check:\n%s\n", t1);
                __builtin_trap();
            }
            /* ... and print to itself. */
            char *t2 = fmd_print(p2);
            if (t2 && strcmp(t1, t2) != 0) {
                fprintf(stderr, "print is not idempotent:\n--- first\n%s\n--- second\n%s\n", t1,
                        t2);
                __builtin_trap();
            }
            free(t2);
            fmd_program_free(p2);
        }
        fmd_diags_clear(&d2);
    }
    free(t1);
    fmd_program_free(p);
    fmd_diags_clear(&d);
    select_masks((const char *)data, size);
    return 0;
}
