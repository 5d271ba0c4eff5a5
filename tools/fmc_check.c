/* fmc check / fmc print: the front end, and for check every mask lowered
 * the way a build selects it (so the lowering limit is reported by both). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cli.h"
#include "tools/fmc_cmds.h"

static const char check_help[] =
    "usage: fmc check [--diagnostics text|json] FILE...\n"
    "\n"
    "Parse and type-check mask files, and lower each of their masks as a\n"
    "build would (so a mask past the lowering limit is an error here too).\n"
    "Prints nothing when every file is correct. Otherwise each error goes to\n"
    "stderr as\n"
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
    fmcli_common c; /* only --diagnostics and the usage-error form are used */
    const char **files;
    int nfiles;
} options;

/* Returns -1 to go on, else the exit status (help printed, or bad usage).
 * Usage errors take the same form as every other subcommand's (and honour
 * --diagnostics json, wherever it stands). */
static int parse_options(const char *prog, const char *help, int argc, char **argv, options *o) {
    fmcli_init(&o->c, prog, argc, argv);
    o->nfiles = 0;
    o->files = calloc((size_t)argc + 1, sizeof *o->files);
    if (!o->files) return fmcli_input_error(&o->c, NULL, "%s: out of memory", prog);
    bool only_files = false;
    for (int i = 1; i < argc;) {
        const char *a = argv[i];
        if (only_files || a[0] != '-' || !strcmp(a, "-")) {
            o->files[o->nfiles++] = a;
            i++;
        } else if (!strcmp(a, "--")) {
            only_files = true;
            i++;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(help, stdout);
            return 0;
        } else if (fmcli_is_flag(a, "--diagnostics")) {
            if (fmcli_parse_common(&o->c, argc, argv, &i) == FMCLI_BAD) return FMCLI_EXIT_USAGE;
        } else {
            return fmcli_unknown_flag(&o->c, a, false, NULL, 0);
        }
    }
    return -1;
}

/* Compiles one file, reporting its errors on stderr. Returns the checked
 * program, or NULL when there was any error. */
static fm_program *load(const fmcli_common *c, const char *path) {
    fm_diagnostics *diags = fm_diagnostics_create();
    if (!diags) {
        fmcli_input_error(c, NULL, "'%s': out of memory", path);
        return NULL;
    }
    fm_program *prog = NULL;
    fm_status st = fmcli_compile(path, diags, &prog);
    fmcli_print_diags(c, diags);
    if (st != FM_OK && fm_diagnostics_count(diags) == 0)
        fmcli_input_error(c, NULL, "'%s': %s", path, fm_status_string(st));
    fm_diagnostics_free(diags);
    return st == FM_OK ? prog : NULL;
}

/* Compiles one file and selects each of its masks through the public API,
 * as a build does, reporting every error on stderr. Returns true when the
 * file and all its masks are correct. */
static bool check_file(const fmcli_common *c, const char *path) {
    fm_diagnostics *diags = fm_diagnostics_create();
    if (!diags) {
        fmcli_input_error(c, NULL, "out of memory");
        return false;
    }
    fm_program *prog = NULL;
    fm_status st = fmcli_compile(path, diags, &prog);
    fmcli_print_diags(c, diags);
    if (st != FM_OK && !fm_diagnostics_count(diags))
        fmcli_input_error(c, NULL, "%s: %s", path, fm_status_string(st));
    bool ok = st == FM_OK;
    for (size_t i = 0; ok && i < fm_program_mask_count(prog); i++) {
        fm_diagnostics_clear(diags);
        fm_mask *m = NULL;
        st = fm_mask_select(prog, fm_program_mask_name(prog, i), diags, &m);
        fmcli_print_diags(c, diags);
        if (st != FM_OK && !fm_diagnostics_count(diags))
            fmcli_input_error(c, NULL, "%s: mask '%s': %s", path, fm_program_mask_name(prog, i),
                              fm_status_string(st));
        ok = st == FM_OK;
        fm_mask_free(m);
    }
    fm_program_free(prog);
    fm_diagnostics_free(diags);
    return ok;
}

int fmc_cmd_check(int argc, char **argv) {
    options o;
    int rc = parse_options("fmc check", check_help, argc, argv, &o);
    if (rc < 0 && o.nfiles == 0) rc = fmcli_usage_error(&o.c, "no mask file given");
    if (rc < 0) {
        rc = 0;
        for (int i = 0; i < o.nfiles; i++)
            if (!check_file(&o.c, o.files[i])) rc = 1;
    }
    free(o.files);
    fmcli_free(&o.c);
    return rc;
}

int fmc_cmd_print(int argc, char **argv) {
    options o;
    int rc = parse_options("fmc print", print_help, argc, argv, &o);
    if (rc < 0 && o.nfiles == 0) rc = fmcli_usage_error(&o.c, "no mask file given");
    if (rc < 0 && o.nfiles > 1)
        rc = fmcli_usage_error(&o.c, "more than one mask file given ('%s' and '%s')", o.files[0],
                               o.files[1]);
    if (rc < 0) {
        fm_program *p = load(&o.c, o.files[0]);
        char *text = p ? fm_program_print(p) : NULL;
        if (p && !text) fmcli_input_error(&o.c, NULL, "out of memory");
        if (text) fputs(text, stdout);
        rc = text ? 0 : 1;
        fm_free(text);
        fm_program_free(p);
    }
    free(o.files);
    fmcli_free(&o.c);
    return rc;
}
