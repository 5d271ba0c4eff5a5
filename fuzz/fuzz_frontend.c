/* Fuzz target: the language front end on arbitrary bytes.
 *
 * Parses, checks and prints the input, renders its diagnostics as text and
 * JSON, then compiles it through the public API and selects (lowers) each
 * mask. Asserts what the language page promises of `fmc print`: the
 * canonical text of a valid program is itself valid and prints to the same
 * text. */
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
                fm_mask_free(m);
            }
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
        if (g->file && (g->line < 1 || g->col < 1 || g->span_start > g->span_end ||
                        g->span_end > size || g->end_line < g->line ||
                        (g->end_line == g->line && g->end_col < g->col)))
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
