/* fmc cuda: print the CUDA source generated for a mask.
 * fmc ptx: compile it with NVRTC; print the PTX, then each kernel's
 * registers, shared memory, stack frame and spill bytes read from the
 * CUBIN (and ptxas's report). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flexmask_tools.h"
#include "tools/cli.h"
#include "tools/fmc_cmds.h"

typedef struct opts {
    bool full;       /* cuda: the whole NVRTC input, kernel template included */
    int arch;        /* ptx */
    int head_dim;    /* ptx */
    bool fp16;       /* ptx */
    bool int32;      /* ptx */
} opts;

static void usage(FILE *out, bool ptx) {
    if (!ptx)
        fprintf(out,
                "usage: fmc cuda FILE [--mask NAME] [--full] [--diagnostics text|json]\n"
                "\n"
                "Prints the CUDA C source generated for a mask: a device function\n"
                "fm_mask_eval(env, b, h, q, kv) as flat straight-line code. Shapes, param\n"
                "values and input arrays are kernel arguments, not part of the text, so\n"
                "one compiled kernel serves every shape. The text also compiles as C11.\n"
                "\n"
                "flags:\n"
                "  --mask NAME           which mask of the file (default: the last one)\n"
                "  --full                print the whole NVRTC input: the generated text\n"
                "                        followed by the forward kernel template\n"
                "  --diagnostics text|json  how errors are printed (default text)\n"
                "  -h, --help            this text\n"
                "\n"
                "Exit status: 0 ok, 1 the mask file is wrong, 2 bad usage.\n");
    else
        fprintf(out,
                "usage: fmc ptx FILE [--mask NAME] [--arch sm_XX] [--head-dim 64|128]\n"
                "                    [--dtype bf16|fp16] [--int32] [--diagnostics text|json]\n"
                "\n"
                "Compiles the mask's forward kernel with NVRTC to PTX and to a CUBIN for\n"
                "the architecture, prints the PTX, then for each kernel its registers,\n"
                "shared memory, stack frame and spill bytes, read from the CUBIN's ELF\n"
                "sections (spill counts from ptxas's report).\n"
                "\n"
                "flags:\n"
                "  --mask NAME           which mask of the file (default: the last one)\n"
                "  --arch sm_XX          target architecture (default sm_90; clamped to what\n"
                "                        this NVRTC supports; sm_80 or newer)\n"
                "  --head-dim 64|128     the kernel variant's head dim (default 128)\n"
                "  --dtype bf16|fp16     the kernel variant's input type (default bf16)\n"
                "  --int32               the mask's 32-bit arithmetic variant\n"
                "  --diagnostics text|json  how errors are printed (default text)\n"
                "  -h, --help            this text\n"
                "\n"
                "Exit status: 0 ok, 1 the mask file is wrong or NVRTC is unavailable or\n"
                "failed, 2 bad usage.\n");
}

static int parse_arch(fmcli_common *c, const char *v, int *arch) {
    const char *p = v;
    if (!strncmp(p, "sm_", 3)) p += 3;
    else if (!strncmp(p, "compute_", 8)) p += 8;
    char *end;
    long n = strtol(p, &end, 10);
    if (end == p || *end || n < 10 || n > 999)
        return fmcli_usage_error(c, "--arch must look like sm_90, got '%s'", v);
    *arch = (int)n;
    return 0;
}

static int parse(fmcli_common *c, int argc, char **argv, bool ptx, opts *o) {
    for (int i = 1; i < argc;) {
        const char *arg = argv[i];
        if (fmcli_is_flag(arg, "--mask") || fmcli_is_flag(arg, "--diagnostics")) {
            fmcli_parse_result r = fmcli_parse_common(c, argc, argv, &i);
            if (r == FMCLI_BAD) return FMCLI_EXIT_USAGE;
            continue;
        }
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            usage(stdout, ptx);
            return -1;
        }
        if (!ptx && !strcmp(arg, "--full")) {
            o->full = true;
            i++;
        } else if (ptx && !strcmp(arg, "--int32")) {
            o->int32 = true;
            i++;
        } else if (ptx && fmcli_is_flag(arg, "--arch")) {
            const char *v = fmcli_flag_value(c, "--arch", argc, argv, &i);
            if (!v) return FMCLI_EXIT_USAGE;
            int rc = parse_arch(c, v, &o->arch);
            if (rc) return rc;
        } else if (ptx && fmcli_is_flag(arg, "--head-dim")) {
            const char *v = fmcli_flag_value(c, "--head-dim", argc, argv, &i);
            if (!v) return FMCLI_EXIT_USAGE;
            if (!strcmp(v, "64")) o->head_dim = 64;
            else if (!strcmp(v, "128")) o->head_dim = 128;
            else return fmcli_usage_error(c, "--head-dim must be 64 or 128, got '%s'", v);
        } else if (ptx && fmcli_is_flag(arg, "--dtype")) {
            const char *v = fmcli_flag_value(c, "--dtype", argc, argv, &i);
            if (!v) return FMCLI_EXIT_USAGE;
            if (!strcmp(v, "bf16")) o->fp16 = false;
            else if (!strcmp(v, "fp16")) o->fp16 = true;
            else return fmcli_usage_error(c, "--dtype must be bf16 or fp16, got '%s'", v);
        } else if (arg[0] == '-' && arg[1] != '\0') {
            static const char *const cuda_flags[] = {"--mask", "--full"};
            static const char *const ptx_flags[] = {"--mask", "--arch", "--head-dim", "--dtype",
                                                    "--int32"};
            return ptx ? fmcli_unknown_flag(c, arg, false, ptx_flags, 5)
                       : fmcli_unknown_flag(c, arg, false, cuda_flags, 2);
        } else if (c->file) {
            return fmcli_usage_error(c, "more than one mask file given ('%s' and '%s')", c->file, arg);
        } else {
            c->file = arg;
            i++;
        }
    }
    if (!c->file) return fmcli_usage_error(c, "no mask file given");
    return 0;
}

/* Parses flags and compiles the file, selecting the mask. */
static int prepare(int argc, char **argv, bool ptx, fmcli_common *c, fmcli_session *s, opts *o) {
    fmcli_init(c, ptx ? "fmc ptx" : "fmc cuda", argc, argv);
    int rc = parse(c, argc, argv, ptx, o);
    if (rc) return rc;
    return fmcli_prepare(c, s);
}

/* Prints s->diags after a failed library call (or the status when they
 * are empty); returns exit status 1. */
static int failed(const fmcli_common *c, const fmcli_session *s, fm_status st) {
    if (fm_diagnostics_count(s->diags))
        fmcli_print_diags(c, s->diags);
    else
        fmcli_input_error(c, NULL, "%s", fm_status_string(st));
    return FMCLI_EXIT_INPUT;
}

static int finish(int rc, fmcli_common *c, fmcli_session *s, char *text) {
    if (rc == 0) rc = fmcli_stdout_status(c, rc);
    free(text);
    fmcli_session_free(s);
    fmcli_free(c);
    return rc < 0 ? 0 : rc;
}

int fmc_cmd_cuda(int argc, char **argv) {
    fmcli_common c;
    fmcli_session s = {0};
    opts o = {0};
    char *text = NULL;
    size_t len = 0;
    int rc = prepare(argc, argv, false, &c, &s, &o);
    if (rc == 0) {
        fm_status st = fmt_cuda_source(s.mask, o.full, &text, &len, s.diags);
        if (st != FM_OK) rc = failed(&c, &s, st);
    }
    if (rc == 0) fwrite(text, 1, len, stdout);
    return finish(rc, &c, &s, text);
}

int fmc_cmd_ptx(int argc, char **argv) {
#ifndef FM_HAVE_CUDA
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout, true);
            return 0;
        }
    fmcli_common c;
    fmcli_init(&c, "fmc ptx", argc, argv);
    fmcli_error(&c, NULL,
                "this fmc was built without CUDA support (the CUDA Toolkit was not found at "
                "build time), so it cannot compile kernels");
    fmcli_free(&c);
    (void)prepare;
    (void)failed;
    (void)finish;
    return FMCLI_EXIT_INPUT;
#else
    fmcli_common c;
    fmcli_session s = {0};
    opts o = {.arch = 90, .head_dim = 128};
    char *report = NULL;
    int rc = prepare(argc, argv, true, &c, &s, &o);
    if (rc == 0) {
        fmt_ptx_options po = {.arch = o.arch, .head_dim = o.head_dim, .fp16 = o.fp16,
                              .int32 = o.int32};
        fm_status st = fmt_cuda_ptx_report(s.mask, &po, &report, s.diags);
        if (st != FM_OK) rc = failed(&c, &s, st);
    }
    if (rc == 0) {
        /* warnings, such as a JIT cache folder refused */
        if (fm_diagnostics_count(s.diags)) fmcli_print_diags(&c, s.diags);
        fputs(report, stdout);
    }
    return finish(rc, &c, &s, report);
#endif
}
