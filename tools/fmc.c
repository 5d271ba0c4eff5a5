/* fmc: the flexmask mask compiler. Dispatches to one subcommand. */
#include <stdio.h>
#include <string.h>

#include "flexmask.h"
#include "flexmask_tools.h"
#include "tools/cli.h"
#include "tools/fmc_cmds.h"

typedef struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} subcommand;

static const subcommand commands[] = {
    {"check", fmc_cmd_check, "parse and type-check mask files; print nothing on success"},
    {"print", fmc_cmd_print, "print the canonical form of a mask file"},
    {"blockmask", fmc_cmd_blockmask, "build a BlockMask for a shape and print it (text or JSON)"},
    {"attend", fmc_cmd_attend, "run attention with a mask over NumPy arrays"},
    {"cuda", fmc_cmd_cuda, "print the CUDA source generated for a mask"},
    {"ptx", fmc_cmd_ptx, "compile a mask's kernel with NVRTC; print PTX and resource usage"},
};

static void usage(FILE *out) {
    fprintf(out,
            "usage: fmc SUBCOMMAND [ARGS...]\n"
            "\n"
            "fmc compiles attention masks written in the flexmask mask language\n"
            "(version %d) and inspects what they compile to.\n"
            "\n"
            "subcommands:\n",
            FM_LANGUAGE_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out,
            "\n"
            "Run 'fmc SUBCOMMAND --help' for a subcommand's flags.\n"
            "Exit status: 0 ok, 1 the mask, a param or an input is wrong,\n"
            "2 bad usage, 3 a requested check found a mismatch.\n"
            "\n"
            "The manual (docs/cli.md, docs/language.md, docs/errors.md) and the\n"
            "example masks are installed in\n"
            "  %s\n",
            fmcli_share_dir());
}

/* Every path ends here, so a failed write to stdout (help text included)
 * is exit 1 with the reason rather than a silent success. */
static int finish(const char *prog, int argc, char **argv, int rc) {
    fmcli_common c;
    fmcli_init(&c, prog, argc, argv);
    rc = fmcli_stdout_status(&c, rc);
    fmcli_free(&c);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return finish("fmc", argc, argv, 0);
    }
    if (!strcmp(argv[1], "--version")) {
        printf("fmc %s (mask language %d)\n", fm_version(), FM_LANGUAGE_VERSION);
        return finish("fmc", argc, argv, 0);
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) {
            char prog[64];
            snprintf(prog, sizeof prog, "fmc %s", commands[i].name);
            int rc = commands[i].run(argc - 1, argv + 1);
            return finish(prog, argc - 1, argv + 1, rc);
        }
    const char *names[sizeof commands / sizeof commands[0]];
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        names[i] = commands[i].name;
    const char *near = fmt_closest_name(argv[1], names, sizeof names / sizeof names[0]);
    char hint[128];
    snprintf(hint, sizeof hint, "%s%s%srun 'fmc --help' for the subcommands",
             near ? "did you mean '" : "", near ? near : "", near ? "'? " : "");
    fmcli_common c;
    fmcli_init(&c, "fmc", argc, argv);
    fmcli_error(&c, hint, "unknown subcommand '%s'", argv[1]);
    return FMCLI_EXIT_USAGE;
}
