/* fmc check / fmc print: the front end on its own. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsl/ast.h"
#include "tools/fmc_cmds.h"

static const char check_help[] =
    "usage: fmc check [--diagnostics text|json] FILE...\n"
    "\n"
    "Parse and type-check mask files. Prints nothing when every file is\n"
    "correct. Otherwise each error goes to stderr as\n"
    "\n"
    "  FILE:LINE:COL: error: MESSAGE\n"
    "\n"
    "followed by the source line, a line of carets under the offending text\n"
    "and, where one helps, a hint. Every file is checked, even after one\n"
    "fails, and every independent error in a file is reported (up to 20).\n"
    "\n"
    "options:\n"
    "  --diagnostics text|json  how errors are printed: text (the default), or\n"
    "                           one JSON object per line with the fields file,\n"
    "                           line, col, end_line, end_col, severity, message\n"
    "                           and hint\n"
    "  -h, --help               show this help\n"
    "\n"
    "exit status: 0 every file is correct; 1 a file has an error or cannot be\n"
    "read; 2 bad usage (an unknown flag, no FILE).\n"
    "\n"
    "example:\n"
    "  fmc check examples/masks/causal.mask examples/masks/document.mask\n";

static const char print_help[] =
    "usage: fmc print [--diagnostics text|json] FILE\n"
    "\n"
    "Print the canonical form of a mask file on stdout: one declaration per\n"
    "line, uniform spacing, only the parentheses that precedence needs, no\n"
    "comments. The output declares the same names with the same meaning, and\n"
    "printing it again gives the same text. A file with errors is not\n"
    "printed; its errors go to stderr as with 'fmc check'.\n"
    "\n"
    "options:\n"
    "  --diagnostics text|json  how errors are printed (see 'fmc check --help')\n"
    "  -h, --help               show this help\n"
    "\n"
    "exit status: 0 printed; 1 the file has an error or cannot be read;\n"
    "2 bad usage.\n"
    "\n"
    "example:\n"
    "  fmc print examples/masks/sliding_with_sinks.mask\n";

typedef struct options {
    bool json;
    const char **files;
    int nfiles;
} options;

/* Returns -1 to go on, else the exit status (help printed, or bad usage). */
static int parse_options(const char *cmd, const char *help, int argc, char **argv, options *o) {
    o->json = false;
    o->nfiles = 0;
    o->files = calloc((size_t)argc + 1, sizeof *o->files);
    if (!o->files) {
        fprintf(stderr, "fmc %s: out of memory\n", cmd);
        return 1;
    }
    bool only_files = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_files || a[0] != '-' || !strcmp(a, "-")) {
            o->files[o->nfiles++] = a;
        } else if (!strcmp(a, "--")) {
            only_files = true;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(help, stdout);
            return 0;
        } else if (!strcmp(a, "--diagnostics") || !strncmp(a, "--diagnostics=", 14)) {
            const char *v = a[13] == '=' ? a + 14 : (i + 1 < argc ? argv[++i] : NULL);
            if (!v) {
                fprintf(stderr, "fmc %s: '--diagnostics' needs a value: text or json\n", cmd);
                return 2;
            }
            if (!strcmp(v, "json"))
                o->json = true;
            else if (!strcmp(v, "text"))
                o->json = false;
            else {
                fprintf(stderr, "fmc %s: '--diagnostics' is text or json, not '%s'\n", cmd, v);
                return 2;
            }
        } else {
            fprintf(stderr, "fmc %s: unknown flag '%s'\nRun 'fmc %s --help' for usage.\n", cmd, a,
                    cmd);
            return 2;
        }
    }
    return -1;
}

/* Reads, parses and checks one file, reporting its errors on stderr.
 * Returns the checked program, or NULL when there was any error. */
static fmd_program *load(const char *path, bool json) {
    fmd_diags diags;
    fmd_diags_init(&diags);
    fmd_program *prog = NULL;
    fmd_source *src = fmd_source_read_file(path, &diags, NULL);
    if (src) {
        prog = fmd_parse(src, &diags);
        if (!prog) {
            fmd_span none = {0, 0};
            fmd_diag_add(&diags, FMD_ERROR, NULL, none, NULL, "'%s': out of memory", path);
        } else if (!fmd_check(prog, &diags) || diags.errors) {
            fmd_program_free(prog);
            prog = NULL;
        }
    }
    fmd_diags_sort(&diags, 0);
    fmd_diags_render(&diags, stderr, json);
    fmd_diags_clear(&diags);
    return prog;
}

int fmc_cmd_check(int argc, char **argv) {
    options o;
    int rc = parse_options("check", check_help, argc, argv, &o);
    if (rc < 0 && o.nfiles == 0) {
        fprintf(stderr, "fmc check: no FILE given\nRun 'fmc check --help' for usage.\n");
        rc = 2;
    }
    if (rc < 0) {
        rc = 0;
        for (int i = 0; i < o.nfiles; i++) {
            fmd_program *p = load(o.files[i], o.json);
            if (!p) rc = 1;
            fmd_program_free(p);
        }
    }
    free(o.files);
    return rc;
}

int fmc_cmd_print(int argc, char **argv) {
    options o;
    int rc = parse_options("print", print_help, argc, argv, &o);
    if (rc < 0 && o.nfiles != 1) {
        fprintf(stderr, "fmc print: expected one FILE, got %d\nRun 'fmc print --help' for usage.\n",
                o.nfiles);
        rc = 2;
    }
    if (rc < 0) {
        fmd_program *p = load(o.files[0], o.json);
        char *text = p ? fmd_print(p) : NULL;
        if (p && !text) fprintf(stderr, "fmc print: out of memory\n");
        if (text) fputs(text, stdout);
        rc = text ? 0 : 1;
        free(text);
        fmd_program_free(p);
    }
    free(o.files);
    return rc;
}
