/* fmc attend: attention with a mask over NumPy arrays, so any mask can be
 * run and checked from a shell or from Python without writing C.
 *
 * Q is [BATCH, HEADS, Q_LEN, D], K and V [BATCH, KV_HEADS, KV_LEN, D]
 * (float32 or float16, C order); OUT is float32 [BATCH, HEADS, Q_LEN, D]
 * and LSE float32 [BATCH, HEADS, Q_LEN]. Shape flags left out are taken
 * from the arrays; given ones must agree with them. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flexmask_tools.h"
#include "tools/cli.h"
#include "tools/fmc_cmds.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: fmc attend FILE --q Q.npy --k K.npy --v V.npy --out OUT.npy [flags]\n"
            "\n"
            "Runs attention with the mask: out = softmax(scale * Q K^T over the positions\n"
            "where the mask is true) V, skipping empty tiles and evaluating the mask only\n"
            "in partial ones. Q is [BATCH, HEADS, Q_LEN, D]; K and V are\n"
            "[BATCH, KV_HEADS, KV_LEN, D] with KV_HEADS dividing HEADS (grouped-query\n"
            "attention); float32 (<f4) or float16 (<f2), C order. OUT is float32\n"
            "[BATCH, HEADS, Q_LEN, D]; a query row with no true position gets zeros.\n"
            "The shape flags may be left out: they are taken from the arrays, and\n"
            "given ones must agree with them.\n"
            "\n"
            "flags:\n"
            "%s"
            "  --q FILE.npy          queries (required)\n"
            "  --k FILE.npy          keys (required)\n"
            "  --v FILE.npy          values (required); one of --q, --k, --v may be '-'\n"
            "                        (standard input)\n"
            "  --out FILE.npy        where the output goes (required)\n"
            "  --lse FILE.npy        also write the log-sum-exp of each row, float32\n"
            "                        [BATCH, HEADS, Q_LEN], natural log, -inf for a row\n"
            "                        with no true position\n"
            "  --scale X             softmax scale (default 1/sqrt(D))\n"
            "  --device auto|cpu|cuda  where to run (default auto: a GPU when one is\n"
            "                        usable and supports the shape, else the CPU;\n"
            "                        stderr says which ran). On a GPU, float32 arrays\n"
            "                        are rounded to float16 (float32 accumulation)\n"
            "  --threads N           CPU threads (default: OpenMP's default)\n"
            "  -h, --help            this text\n"
            "\n"
            "example:\n"
            "  fmc attend examples/masks/causal.mask --q q.npy --k k.npy --v v.npy \\\n"
            "      --out out.npy --lse lse.npy --device cpu\n"
            "\n"
            "Exit status: 0 ok, 1 the mask, a param, an input or an array is wrong (or\n"
            "the device asked for is unavailable), 2 bad usage.\n",
            fmcli_common_help_shape_from_arrays);
}

typedef struct attend_opts {
    const char *q, *k, *v, *out, *lse;
    float scale;
    const char *device;
    int threads;
} attend_opts;

/* Prints the messages of d in the chosen form and frees it. */
static void flush_diags(const fmcli_common *c, fm_diagnostics *d) {
    fmcli_print_diags(c, d);
    fm_diagnostics_free(d);
}

static const char *const attend_flags[] = {"--q",     "--k",      "--v",      "--out",
                                            "--lse",   "--scale",  "--device", "--threads"};

static int parse_args(fmcli_common *c, attend_opts *o, int argc, char **argv, bool *help) {
    for (int i = 1; i < argc;) {
        const char *arg = argv[i];
        fmcli_parse_result r = fmcli_parse_common(c, argc, argv, &i);
        if (r == FMCLI_BAD) return FMCLI_EXIT_USAGE;
        if (r == FMCLI_TAKEN) continue;
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            *help = true;
            return 0;
        }
        static const char *const path_flags[] = {"--q", "--k", "--v", "--out", "--lse"};
        const char **dests[] = {&o->q, &o->k, &o->v, &o->out, &o->lse};
        bool taken = false;
        for (int f = 0; f < 5 && !taken; f++) {
            if (!fmcli_is_flag(arg, path_flags[f])) continue;
            const char *v = fmcli_flag_value(c, path_flags[f], argc, argv, &i);
            if (!v) return FMCLI_EXIT_USAGE;
            if (!*v) return fmcli_usage_error(c, "%s needs a file name", path_flags[f]);
            *dests[f] = v;
            taken = true;
        }
        if (taken) continue;
        if (fmcli_is_flag(arg, "--scale")) {
            const char *v = fmcli_flag_value(c, "--scale", argc, argv, &i);
            if (!v) return FMCLI_EXIT_USAGE;
            char *end;
            errno = 0;
            double x = strtod(v, &end);
            if (end == v || *end || errno == ERANGE || !isfinite(x) || x == 0.0 ||
                !isfinite((float)x) || (float)x == 0.0f)
                return fmcli_usage_error(c, "--scale must be a finite, nonzero number, got '%s'",
                                         v);
            o->scale = (float)x;
        } else if (fmcli_is_flag(arg, "--device")) {
            const char *v = fmcli_flag_value(c, "--device", argc, argv, &i);
            if (!v) return FMCLI_EXIT_USAGE;
            if (strcmp(v, "auto") && strcmp(v, "cpu") && strcmp(v, "cuda"))
                return fmcli_usage_error(c, "--device must be auto, cpu or cuda, got '%s'", v);
            o->device = v;
        } else if (fmcli_is_flag(arg, "--threads")) {
            const char *v = fmcli_flag_value(c, "--threads", argc, argv, &i);
            if (!v) return FMCLI_EXIT_USAGE;
            int64_t n;
            if (!fmcli_parse_int(v, &n) || n < 1 || n > 4096)
                return fmcli_usage_error(c, "--threads must be an integer from 1 to 4096, got '%s'",
                                         v);
            o->threads = (int)n;
        } else if (arg[0] == '-' && arg[1] != '\0') {
            return fmcli_unknown_flag(c, arg, true, attend_flags,
                                      sizeof attend_flags / sizeof *attend_flags);
        } else if (c->file) {
            return fmcli_usage_error(c, "more than one mask file given ('%s' and '%s')", c->file,
                                     arg);
        } else {
            c->file = arg;
            i++;
        }
    }
    if (!c->file) return fmcli_usage_error(c, "no mask file given");
    const char *missing = !o->q ? "--q" : !o->k ? "--k" : !o->v ? "--v" : !o->out ? "--out" : NULL;
    if (missing) return fmcli_usage_error(c, "%s is required", missing);
    static const char *const flags[3] = {"--q", "--k", "--v"};
    const char *const paths[3] = {o->q, o->k, o->v};
    return fmcli_check_stdin_inputs(c, flags, paths, 3);
}

/* Loads a rank-4 float32 or float16 array. */
static int load_array(const fmcli_common *c, const char *path, const char *what, fmt_array *a) {
    fm_diagnostics *d = fm_diagnostics_create();
    fm_status st = d ? fmt_npy_load(path, a, d) : FM_ERR_NO_MEMORY;
    if (st != FM_OK) {
        if (!fm_diagnostics_count(d))
            fmcli_input_error(c, NULL, "%s: %s", path, fm_status_string(st));
        flush_diags(c, d);
        return FMCLI_EXIT_INPUT;
    }
    fm_diagnostics_free(d);
    path = fmcli_input_name(path);
    if (strcmp(a->dtype, "float32") && strcmp(a->dtype, "float16"))
        return fmcli_input_error(c, "convert it with numpy: a.astype(np.float32)",
                                 "%s: %s must be float32 (<f4) or float16 (<f2), not %s", path,
                                 what, a->dtype);
    if (a->rank != 4)
        return fmcli_input_error(c, NULL, "%s: %s must have 4 dimensions, it has %zu", path, what,
                                 a->rank);
    for (int i = 0; i < 4; i++)
        if (a->shape[i] < 1)
            return fmcli_input_error(c, NULL,
                                     "%s: %s has an empty dimension (shape [%lld, %lld, "
                                     "%lld, %lld])",
                                     path, what, (long long)a->shape[0], (long long)a->shape[1],
                                     (long long)a->shape[2], (long long)a->shape[3]);
    return 0;
}

/* A shape flag given on the command line must agree with the arrays;
 * one left out is taken from them. */
static int agree(const fmcli_common *c, const char *flag, bool given, int64_t *flag_value,
                 int64_t array_value, const char *path, const char *dim) {
    if (given && *flag_value != array_value)
        return fmcli_input_error(c, NULL, "%s %lld disagrees with %s, whose %s is %lld", flag,
                                 (long long)*flag_value, path, dim, (long long)array_value);
    *flag_value = array_value;
    return 0;
}

static int check_shapes(fmcli_common *c, const attend_opts *o, const fmt_array *q,
                        const fmt_array *k, const fmt_array *v) {
    const int64_t *qs = q->shape, *ks = k->shape, *vs = v->shape;
    if (memcmp(ks, vs, 4 * sizeof *ks) != 0)
        return fmcli_input_error(c, NULL,
                                 "%s has shape [%lld, %lld, %lld, %lld] but %s has [%lld, %lld, "
                                 "%lld, %lld]; K and V must have the same shape",
                                 o->k, (long long)ks[0], (long long)ks[1], (long long)ks[2],
                                 (long long)ks[3], o->v, (long long)vs[0], (long long)vs[1],
                                 (long long)vs[2], (long long)vs[3]);
    if (ks[0] != qs[0])
        return fmcli_input_error(c, NULL, "%s has BATCH %lld but %s has %lld", o->k,
                                 (long long)ks[0], o->q, (long long)qs[0]);
    if (ks[3] != qs[3])
        return fmcli_input_error(c, NULL, "%s has head dimension %lld but %s has %lld", o->k,
                                 (long long)ks[3], o->q, (long long)qs[3]);
    if (qs[1] % ks[1] != 0)
        return fmcli_input_error(c,
                                 "K and V may have fewer heads than Q (grouped-query "
                                 "attention), but their number must divide HEADS",
                                 "%s has %lld heads, which is not a multiple of the %lld heads "
                                 "of %s",
                                 o->q, (long long)qs[1], (long long)ks[1], o->k);
    int rc;
    if ((rc = agree(c, "--batch", c->have_batch, &c->batch, qs[0], o->q, "BATCH (dimension 0)")) ||
        (rc = agree(c, "--heads", c->have_heads, &c->heads, qs[1], o->q, "HEADS (dimension 1)")) ||
        (rc = agree(c, "--q-len", c->have_q_len, &c->q_len, qs[2], o->q, "Q_LEN (dimension 2)")) ||
        (rc =
             agree(c, "--kv-len", c->have_kv_len, &c->kv_len, ks[2], o->k, "KV_LEN (dimension 2)")))
        return rc;
    c->have_batch = c->have_heads = c->have_q_len = c->have_kv_len = true;
    return 0;
}

/* Opens the device --device asks for. --device cuda without a usable GPU
 * is an error that says why; auto falls back to the CPU. Returns 0 or an
 * exit status. */
static int open_device(const fmcli_common *c, const attend_opts *o, fm_device **dev) {
    const char *name = o->device ? o->device : "auto";
    fm_device_kind kind = !strcmp(name, "cpu")    ? FM_DEVICE_CPU
                          : !strcmp(name, "cuda") ? FM_DEVICE_CUDA
                                                  : FM_DEVICE_AUTO;
    if (kind == FM_DEVICE_CUDA) {
        char why[512];
        if (!fm_cuda_available(why, sizeof why))
            return fmcli_input_error(c, "use --device cpu (or auto) to run on the CPU",
                                     "the GPU path is unavailable: %s", why);
    }
    fm_diagnostics *d = fm_diagnostics_create();
    fm_status st = fm_device_open(kind, d, dev);
    if (st != FM_OK) {
        fmcli_print_diags(c, d);
        fm_diagnostics_free(d);
        return fmcli_input_error(c, NULL, "cannot open the %s device: %s", name,
                                 fm_status_string(st));
    }
    fm_diagnostics_free(d);
    return 0;
}

static void note(fm_diagnostics *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(fm_diagnostics *d, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fmt_diags_addv(d, "note", NULL, fmt, ap);
    va_end(ap);
}

/* Says which device ran (under --device auto): plain text, or a JSON note
 * when diagnostics are JSON, so every stderr line stays parseable. */
static void report_device(const fmcli_common *c, const char *msg) {
    if (!c->json_diags) {
        fprintf(stderr, "%s\n", msg);
        return;
    }
    fm_diagnostics *d = fm_diagnostics_create();
    note(d, "%s", msg);
    flush_diags(c, d);
}

/* Runs attention on dev. Under auto, a GPU that cannot take this shape
 * (head dim, block sizes) hands the run to the CPU, with the reason. */
static fm_status run_attention(const fmcli_common *c, const attend_opts *o, fm_device *dev,
                               const fm_attention_args *a, fm_diagnostics *diags) {
    bool auto_pick = !o->device || !strcmp(o->device, "auto");
    char msg[1024];
    if (fm_device_get_kind(dev) == FM_DEVICE_CPU) {
        snprintf(msg, sizeof msg, "fmc attend: running on cpu (%s)", fm_device_reason(dev));
        if (auto_pick) report_device(c, msg);
        return fm_attention_cpu(a, diags);
    }
    fm_status st = fm_device_attention(dev, a, diags);
    if (st == FM_ERR_UNSUPPORTED && auto_pick) {
        fm_diagnostic first;
        const char *why =
            fm_diagnostics_get(diags, 0, &first) == FM_OK ? first.message : fm_status_string(st);
        snprintf(msg, sizeof msg, "fmc attend: running on cpu (%s: %s)", fm_device_name(dev), why);
        report_device(c, msg);
        fm_diagnostics_clear(diags);
        return fm_attention_cpu(a, diags);
    }
    if (st == FM_OK && auto_pick) {
        snprintf(msg, sizeof msg, "fmc attend: running on %s", fm_device_name(dev));
        report_device(c, msg);
    }
    return st;
}

int fmc_cmd_attend(int argc, char **argv) {
    fmcli_common c;
    fmcli_init(&c, "fmc attend", argc, argv);
    attend_opts o;
    memset(&o, 0, sizeof o);
    bool help = false;
    int rc = parse_args(&c, &o, argc, argv, &help);
    if (help) {
        usage(stdout);
        fmcli_free(&c);
        return 0;
    }
    fmt_array q = {0}, k = {0}, v = {0};
    float *out = NULL, *lse = NULL;
    fmcli_session s = {0};
    fm_device *dev = NULL;
    if (!rc) rc = open_device(&c, &o, &dev);
    if (!rc) rc = load_array(&c, o.q, "Q", &q);
    if (!rc) rc = load_array(&c, o.k, "K", &k);
    if (!rc) rc = load_array(&c, o.v, "V", &v);
    if (!rc) rc = check_shapes(&c, &o, &q, &k, &v);
    if (!rc) rc = fmcli_build(&c, &s);
    if (!rc) {
        out = malloc(q.count * sizeof *out);
        if (o.lse) lse = malloc((q.count / (size_t)q.shape[3]) * sizeof *lse);
        if (!out || (o.lse && !lse)) rc = fmcli_input_error(&c, NULL, "out of memory");
    }
    if (!rc) {
        fm_attention_args a;
        memset(&a, 0, sizeof a);
        a.struct_size = sizeof a;
        a.mask = s.blockmask;
        fm_dtype qd = !strcmp(q.dtype, "float16") ? FM_FLOAT16 : FM_FLOAT32;
        fm_dtype kd = !strcmp(k.dtype, "float16") ? FM_FLOAT16 : FM_FLOAT32;
        fm_dtype vd = !strcmp(v.dtype, "float16") ? FM_FLOAT16 : FM_FLOAT32;
        a.q = fm_tensor_contiguous(q.data, qd, q.shape[0], q.shape[1], q.shape[2], q.shape[3]);
        a.k = fm_tensor_contiguous(k.data, kd, k.shape[0], k.shape[1], k.shape[2], k.shape[3]);
        a.v = fm_tensor_contiguous(v.data, vd, v.shape[0], v.shape[1], v.shape[2], v.shape[3]);
        a.out =
            fm_tensor_contiguous(out, FM_FLOAT32, q.shape[0], q.shape[1], q.shape[2], q.shape[3]);
        a.lse = lse;
        a.scale = o.scale;
        a.num_threads = o.threads;
        fm_status st = run_attention(&c, &o, dev, &a, s.diags);
        if (st != FM_OK) {
            fmcli_print_diags(&c, s.diags);
            if (fm_diagnostics_count(s.diags) == 0)
                fmcli_input_error(&c, NULL, "attention failed: %s", fm_status_string(st));
            rc = FMCLI_EXIT_INPUT;
        }
    }
    if (!rc) {
        fm_diagnostics *d = fm_diagnostics_create();
        fm_status st = !d ? FM_ERR_NO_MEMORY : fmt_npy_save_float32(o.out, 4, q.shape, out, d);
        if (st == FM_OK && o.lse) st = fmt_npy_save_float32(o.lse, 3, q.shape, lse, d);
        if (st != FM_OK) {
            if (!fm_diagnostics_count(d))
                fmcli_input_error(&c, NULL, "cannot write the output: %s", fm_status_string(st));
            rc = FMCLI_EXIT_INPUT;
        }
        flush_diags(&c, d);
    }
    free(out);
    free(lse);
    fmt_array_free(&q);
    fmt_array_free(&k);
    fmt_array_free(&v);
    fm_device_free(dev);
    fmcli_session_free(&s);
    fmcli_free(&c);
    return rc;
}
