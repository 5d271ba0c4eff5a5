/* Parsing the common flags, and printing every tool error in one form.
 * Every malformed flag is a usage error (exit 2) naming the flag; nothing
 * here touches the mask file. */
#define _XOPEN_SOURCE 700 /* readlink, realpath */
#include "tools/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flexmask_tools.h"

/* The common flags' help, in pieces so that a subcommand that reads the
 * shape from its arrays can say so without a second copy of the rest. */
#define HELP_MASK "  --mask NAME           which `mask` of the file (default: the last one)\n"
#define HELP_SHAPE                                                                                 \
    "  --q-len N             number of query positions (required)\n"                               \
    "  --kv-len N            number of key/value positions (default: --q-len)\n"                   \
    "  --batch N             batch size (default 1)\n"                                             \
    "  --heads N             number of query heads (default 1)\n"
#define HELP_SHAPE_FROM_ARRAYS                                                                     \
    "  --q-len N             number of query positions (optional: Q's dimension 2)\n"              \
    "  --kv-len N            number of key/value positions (optional: K's dimension 2)\n"          \
    "  --batch N             batch size (optional: Q's dimension 0)\n"                             \
    "  --heads N             number of query heads (optional: Q's dimension 1)\n"
#define HELP_REST                                                                                  \
    "  --block N             both block sizes (default 128)\n"                                     \
    "  --block-q N           query block size (default 128)\n"                                     \
    "  --block-kv N          key/value block size (default 128)\n"                                 \
    "  -D NAME=VALUE         set a `param` (also -DNAME=VALUE; repeatable);\n"                     \
    "                        VALUE is an integer such as 256, -1 or 131_072\n"                     \
    "  --input NAME=v0,v1,.. bind a rank-1 `input` to a list of integers\n"                        \
    "  --input NAME=@F.npy   bind an `input` of any rank to a NumPy file\n"                        \
    "                        (int32 or int64, C order, values within int32)\n"                     \
    "  --max-evaluations N   stop the build (exit 1) when it would evaluate the\n"                 \
    "                        mask at more than N positions (default 0: no bound;\n"                \
    "                        set one for masks or shapes from untrusted sources)\n"                \
    "  --memory-budget SIZE  bytes the BlockMask's tile lists may take: an\n"                      \
    "                        integer, optionally with K, M or G (powers of 1024)\n"                \
    "                        (default 1G); past it the build stops (exit 1)\n"                     \
    "  --diagnostics text|json  how errors are printed (default text)\n"

const char fmcli_common_help[] = HELP_MASK HELP_SHAPE HELP_REST;
const char fmcli_common_help_shape_from_arrays[] = HELP_MASK HELP_SHAPE_FROM_ARRAYS HELP_REST;

static void emitv(const fmcli_common *c, const char *hint, const char *fmt, va_list ap) {
    fm_diagnostics *d = fm_diagnostics_create();
    if (d && fmt_diags_addv(d, "error", hint, fmt, ap)) {
        fmcli_print_diags(c, d);
    } else {
        fflush(stdout);
        fprintf(stderr, "error: %s: out of memory\n", c->prog);
    }
    fm_diagnostics_free(d);
}

void fmcli_error(const fmcli_common *c, const char *hint, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    emitv(c, hint, fmt, ap);
    va_end(ap);
}

int fmcli_usage_error(const fmcli_common *c, const char *fmt, ...) {
    char hint[256];
    snprintf(hint, sizeof hint, "run '%s --help' for the flags", c->prog);
    va_list ap;
    va_start(ap, fmt);
    emitv(c, hint, fmt, ap);
    va_end(ap);
    return FMCLI_EXIT_USAGE;
}

int fmcli_unknown_flag(const fmcli_common *c, const char *arg, bool common,
                       const char *const *own, size_t n) {
    static const char *const common_flags[] = {
        "--diagnostics", "--help",  "--mask",   "--q-len",           "--kv-len",
        "--batch",       "--heads", "--block",  "--block-q",         "--block-kv",
        "--input",       "-D",      "--memory-budget", "--max-evaluations"};
    size_t ncommon = common ? sizeof common_flags / sizeof *common_flags : 2;
    const char *cands[64];
    size_t k = 0;
    for (size_t i = 0; i < ncommon; i++) cands[k++] = common_flags[i];
    for (size_t i = 0; i < n && k < sizeof cands / sizeof *cands; i++) cands[k++] = own[i];
    /* "--qlen=8" is compared as "--qlen". */
    char name[128];
    size_t len = strcspn(arg, "=");
    snprintf(name, sizeof name, "%.*s", (int)(len < sizeof name ? len : sizeof name - 1), arg);
    const char *near = fmt_closest_name(name, cands, k);
    char hint[256];
    snprintf(hint, sizeof hint, "%s%s%srun '%s --help' for the flags", near ? "did you mean '" : "",
             near ? near : "", near ? "'? " : "", c->prog);
    fmcli_error(c, hint, "unknown flag '%s'", arg);
    return FMCLI_EXIT_USAGE;
}

int fmcli_input_error(const fmcli_common *c, const char *hint, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    emitv(c, hint, fmt, ap);
    va_end(ap);
    return FMCLI_EXIT_INPUT;
}

void fmcli_print_diags(const fmcli_common *c, const fm_diagnostics *diags) {
    if (!diags || fm_diagnostics_count(diags) == 0) return;
    fflush(stdout);
    fmt_diags_render(diags, c->prog, c->json_diags, stderr);
}

int fmcli_stdout_status(const fmcli_common *c, int rc) {
    /* errno still holds the reason when an earlier buffered write failed:
     * later writes to the same stream fail the same way. */
    int saved = errno;
    errno = 0;
    bool flush_failed = fflush(stdout) != 0;
    int why = flush_failed && errno ? errno : saved;
    if (!flush_failed && !ferror(stdout)) return rc;
    clearerr(stdout);
    if (why)
        fmcli_error(c, NULL, "cannot write to standard output: %s", strerror(why));
    else
        fmcli_error(c, NULL, "cannot write to standard output");
    return rc ? rc : FMCLI_EXIT_INPUT;
}

const char *fmcli_share_dir(void) {
    static char dir[4096];
    if (dir[0]) return dir;
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char *slash = n > 0 ? (exe[n] = '\0', strrchr(exe, '/')) : NULL;
    if (slash) {
        *slash = '\0';
        char guess[4200];
        snprintf(guess, sizeof guess, "%s/../share/flexmask", exe);
        if (realpath(guess, dir)) return dir;
    }
    snprintf(dir, sizeof dir, "%s", FM_SHARE_DIR);
    return dir;
}

void fmcli_init(fmcli_common *c, const char *prog, int argc, char **argv) {
    memset(c, 0, sizeof *c);
    c->prog = prog;
    c->batch = c->heads = 1;
    c->block_q = c->block_kv = 128;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--diagnostics") && i + 1 < argc)
            c->json_diags = !strcmp(argv[i + 1], "json");
        else if (!strncmp(argv[i], "--diagnostics=", 14))
            c->json_diags = !strcmp(argv[i] + 14, "json");
    }
}

void fmcli_free(fmcli_common *c) {
    for (size_t i = 0; i < c->num_inputs; i++) {
        free(c->inputs[i].name);
        free(c->inputs[i].values);
    }
    free(c->inputs);
    for (size_t i = 0; i < c->num_defines; i++)
        free(c->defines[i].name);
    free(c->defines);
    c->inputs = NULL;
    c->defines = NULL;
    c->num_inputs = c->num_defines = 0;
}

bool fmcli_is_flag(const char *arg, const char *flag) {
    size_t n = strlen(flag);
    return !strncmp(arg, flag, n) && (arg[n] == '\0' || arg[n] == '=');
}

const char *fmcli_flag_value(fmcli_common *c, const char *flag, int argc, char **argv, int *i) {
    const char *arg = argv[*i];
    size_t n = strlen(flag);
    if (arg[n] == '=') {
        (*i)++;
        return arg + n + 1;
    }
    if (*i + 1 >= argc) {
        fmcli_usage_error(c, "%s needs a value", flag);
        return NULL;
    }
    *i += 2;
    return argv[*i - 1];
}

/* Digits with single '_' between digits; accumulates the magnitude, which
 * may reach 2^63 (for the most negative value). */
static bool parse_magnitude(const char *s, uint64_t *out) {
    uint64_t v = 0;
    bool prev_digit = false;
    if (!*s) return false;
    for (; *s; s++) {
        if (*s == '_') {
            if (!prev_digit || !(s[1] >= '0' && s[1] <= '9')) return false;
            prev_digit = false;
            continue;
        }
        if (*s < '0' || *s > '9') return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
        prev_digit = true;
    }
    *out = v;
    return true;
}

bool fmcli_parse_int(const char *s, int64_t *out) {
    bool neg = *s == '-';
    uint64_t mag;
    if (!parse_magnitude(s + neg, &mag)) return false;
    if (neg) {
        if (mag > (uint64_t)INT64_MAX + 1) return false;
        *out = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
    } else {
        if (mag > (uint64_t)INT64_MAX) return false;
        *out = (int64_t)mag;
    }
    return true;
}

/* Whether s[0..n) is an integer literal in form ('-', then digits with
 * single '_' between digits), whatever its size: fmcli_parse_int failing
 * on such text means out of range, not malformed. */
static bool looks_integer(const char *s, size_t n) {
    size_t i = n > 0 && s[0] == '-';
    if (i == n) return false;
    for (bool prev_digit = false; i < n; i++) {
        if (s[i] >= '0' && s[i] <= '9') {
            prev_digit = true;
        } else if (s[i] == '_' && prev_digit && i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '9') {
            prev_digit = false;
        } else {
            return false;
        }
    }
    return true;
}

fmcli_size_result fmcli_parse_size(const char *s, int64_t *out) {
    size_t n = strlen(s);
    while (n > 0 && ((s[n - 1] >= 'A' && s[n - 1] <= 'Z') || (s[n - 1] >= 'a' && s[n - 1] <= 'z')))
        n--;
    const char *suffix = s + n;
    int64_t unit = 1;
    if (*suffix) {
        if (!looks_integer(s, n)) return FMCLI_SIZE_NOT_A_NUMBER;
        if (!strcmp(suffix, "K"))
            unit = (int64_t)1 << 10;
        else if (!strcmp(suffix, "M"))
            unit = (int64_t)1 << 20;
        else if (!strcmp(suffix, "G"))
            unit = (int64_t)1 << 30;
        else
            return FMCLI_SIZE_BAD_SUFFIX;
    }
    if (!looks_integer(s, n)) return FMCLI_SIZE_NOT_A_NUMBER;
    bool negative = s[0] == '-';
    char buf[128];
    int64_t x;
    if (n >= sizeof buf) return negative ? FMCLI_SIZE_NEGATIVE : FMCLI_SIZE_TOO_LARGE;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (!fmcli_parse_int(buf, &x)) return negative ? FMCLI_SIZE_NEGATIVE : FMCLI_SIZE_TOO_LARGE;
    if (x < 0) return FMCLI_SIZE_NEGATIVE;
    if (x > INT64_MAX / unit) return FMCLI_SIZE_TOO_LARGE;
    *out = x * unit;
    return FMCLI_SIZE_OK;
}

/* --max-evaluations and --memory-budget: build limits handed to
 * fm_build_options. Sizes only for the budget; 0 means no bound for the
 * evaluations, and is refused for the budget (the library would read it
 * as "default", which no one typing 0 means). */
static fmcli_parse_result parse_limit(fmcli_common *c, const char *flag, const char *v, bool sizes,
                                      int64_t *out) {
    int64_t x = 0;
    /* A count takes no suffix: "1K" evaluations would be a guess. */
    fmcli_size_result r =
        sizes || looks_integer(v, strlen(v)) ? fmcli_parse_size(v, &x) : FMCLI_SIZE_NOT_A_NUMBER;
    switch (r) {
    case FMCLI_SIZE_OK: break;
    case FMCLI_SIZE_NOT_A_NUMBER:
        fmcli_usage_error(c,
                          sizes ? "%s: '%s' is not a size (an integer, optionally followed by "
                                  "K, M or G)"
                                : "%s: '%s' is not an integer",
                          flag, v);
        return FMCLI_BAD;
    case FMCLI_SIZE_NEGATIVE:
        fmcli_usage_error(c, "%s must not be negative, got '%s'", flag, v);
        return FMCLI_BAD;
    case FMCLI_SIZE_TOO_LARGE:
        fmcli_usage_error(c, "%s: '%s' is too large (the most is %lld%s)", flag, v,
                          (long long)INT64_MAX, sizes ? " bytes" : "");
        return FMCLI_BAD;
    case FMCLI_SIZE_BAD_SUFFIX:
        fmcli_usage_error(c, "%s: unknown suffix in '%s' (use K, M or G: powers of 1024)", flag, v);
        return FMCLI_BAD;
    }
    if (sizes && x == 0) {
        fmcli_usage_error(c, "%s must be positive, got '%s'", flag, v);
        return FMCLI_BAD;
    }
    *out = x;
    return FMCLI_TAKEN;
}

static bool is_identifier(const char *s, size_t n) {
    if (n == 0 || !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '_'))
            return false;
    }
    return true;
}

static fmcli_parse_result positive(fmcli_common *c, const char *flag, const char *v, int64_t *out,
                                   bool *have) {
    int64_t x;
    if (!fmcli_parse_int(v, &x)) {
        fmcli_usage_error(c, "%s: '%s' is not an integer", flag, v);
        return FMCLI_BAD;
    }
    if (x <= 0) {
        fmcli_usage_error(c, "%s must be positive, got %s", flag, v);
        return FMCLI_BAD;
    }
    *out = x;
    if (have) *have = true;
    return FMCLI_TAKEN;
}

static fmcli_parse_result parse_define(fmcli_common *c, const char *v) {
    const char *eq = strchr(v, '=');
    if (!eq || !is_identifier(v, (size_t)(eq - v))) {
        fmcli_usage_error(c, "-D expects NAME=VALUE, got '%s'", v);
        return FMCLI_BAD;
    }
    int64_t x;
    if (!fmcli_parse_int(eq + 1, &x)) {
        fmcli_usage_error(c, "-D %.*s: '%s' is not an integer literal within 64 bits",
                          (int)(eq - v), v, eq + 1);
        return FMCLI_BAD;
    }
    fmcli_define *nd = realloc(c->defines, (c->num_defines + 1) * sizeof *nd);
    if (!nd) {
        fmcli_usage_error(c, "out of memory");
        return FMCLI_BAD;
    }
    c->defines = nd;
    size_t n = (size_t)(eq - v);
    char *name = malloc(n + 1);
    if (!name) {
        fmcli_usage_error(c, "out of memory");
        return FMCLI_BAD;
    }
    memcpy(name, v, n);
    name[n] = '\0';
    c->defines[c->num_defines].name = name;
    c->defines[c->num_defines].value = x;
    c->num_defines++;
    return FMCLI_TAKEN;
}

static fmcli_parse_result parse_list(fmcli_common *c, fmcli_input *in, const char *list) {
    int64_t n = *list ? 1 : 0;
    for (const char *p = list; *p; p++)
        n += *p == ',';
    in->values = malloc((size_t)(n ? n : 1) * sizeof *in->values);
    if (!in->values) {
        fmcli_usage_error(c, "out of memory");
        return FMCLI_BAD;
    }
    const char *p = list;
    for (int64_t k = 0; k < n; k++) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char buf[64];
        int64_t x;
        if (len == 0 || len >= sizeof buf) {
            fmcli_usage_error(c, "--input %s: element %lld ('%.*s') is not an integer", in->name,
                              (long long)k, (int)(len < 40 ? len : 40), p);
            return FMCLI_BAD;
        }
        memcpy(buf, p, len);
        buf[len] = '\0';
        if (!fmcli_parse_int(buf, &x)) {
            fmcli_usage_error(c, "--input %s: element %lld ('%s') is not an integer", in->name,
                              (long long)k, buf);
            return FMCLI_BAD;
        }
        if (x < INT32_MIN || x > INT32_MAX) {
            fmcli_usage_error(c, "--input %s: element %lld (%s) does not fit in int32", in->name,
                              (long long)k, buf);
            return FMCLI_BAD;
        }
        in->values[k] = (int32_t)x;
        p = end ? end + 1 : p + len;
    }
    in->count = n;
    return FMCLI_TAKEN;
}

static fmcli_parse_result parse_input(fmcli_common *c, const char *v) {
    const char *eq = strchr(v, '=');
    if (!eq || !is_identifier(v, (size_t)(eq - v))) {
        fmcli_usage_error(c, "--input expects NAME=v0,v1,... or NAME=@FILE.npy, got '%s'", v);
        return FMCLI_BAD;
    }
    size_t n = (size_t)(eq - v);
    for (size_t i = 0; i < c->num_inputs; i++)
        if (strlen(c->inputs[i].name) == n && !strncmp(c->inputs[i].name, v, n)) {
            fmcli_usage_error(c, "--input %.*s given twice", (int)n, v);
            return FMCLI_BAD;
        }
    fmcli_input *ni = realloc(c->inputs, (c->num_inputs + 1) * sizeof *ni);
    if (!ni) {
        fmcli_usage_error(c, "out of memory");
        return FMCLI_BAD;
    }
    c->inputs = ni;
    fmcli_input *in = &c->inputs[c->num_inputs];
    memset(in, 0, sizeof *in);
    in->name = malloc(n + 1);
    if (!in->name) {
        fmcli_usage_error(c, "out of memory");
        return FMCLI_BAD;
    }
    memcpy(in->name, v, n);
    in->name[n] = '\0';
    c->num_inputs++;
    if (eq[1] == '@') {
        if (!eq[2]) {
            fmcli_usage_error(c, "--input %s=@ needs a file name", in->name);
            return FMCLI_BAD;
        }
        in->npy_path = eq + 2;
        return FMCLI_TAKEN;
    }
    return parse_list(c, in, eq + 1);
}

fmcli_parse_result fmcli_parse_common(fmcli_common *c, int argc, char **argv, int *i) {
    const char *arg = argv[*i];
    const char *v;
    static const struct {
        const char *flag;
        size_t field; /* offset of the int64 in fmcli_common */
        size_t have;  /* offset of its flag, or SIZE_MAX */
    } sizes[] = {
        {"--q-len", offsetof(fmcli_common, q_len), offsetof(fmcli_common, have_q_len)},
        {"--kv-len", offsetof(fmcli_common, kv_len), offsetof(fmcli_common, have_kv_len)},
        {"--batch", offsetof(fmcli_common, batch), offsetof(fmcli_common, have_batch)},
        {"--heads", offsetof(fmcli_common, heads), offsetof(fmcli_common, have_heads)},
        {"--block-q", offsetof(fmcli_common, block_q), SIZE_MAX},
        {"--block-kv", offsetof(fmcli_common, block_kv), SIZE_MAX},
    };
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        if (!fmcli_is_flag(arg, sizes[k].flag)) continue;
        if (!(v = fmcli_flag_value(c, sizes[k].flag, argc, argv, i))) return FMCLI_BAD;
        char *base = (char *)c;
        return positive(c, sizes[k].flag, v, (int64_t *)(base + sizes[k].field),
                        sizes[k].have == SIZE_MAX ? NULL : (bool *)(base + sizes[k].have));
    }
    if (fmcli_is_flag(arg, "--block")) {
        if (!(v = fmcli_flag_value(c, "--block", argc, argv, i))) return FMCLI_BAD;
        fmcli_parse_result r = positive(c, "--block", v, &c->block_q, NULL);
        c->block_kv = c->block_q;
        return r;
    }
    if (fmcli_is_flag(arg, "--max-evaluations")) {
        if (!(v = fmcli_flag_value(c, "--max-evaluations", argc, argv, i))) return FMCLI_BAD;
        return parse_limit(c, "--max-evaluations", v, false, &c->max_evaluations);
    }
    if (fmcli_is_flag(arg, "--memory-budget")) {
        if (!(v = fmcli_flag_value(c, "--memory-budget", argc, argv, i))) return FMCLI_BAD;
        return parse_limit(c, "--memory-budget", v, true, &c->memory_budget);
    }
    if (fmcli_is_flag(arg, "--mask")) {
        if (!(v = fmcli_flag_value(c, "--mask", argc, argv, i))) return FMCLI_BAD;
        c->mask_name = v;
        return FMCLI_TAKEN;
    }
    if (fmcli_is_flag(arg, "--diagnostics")) {
        if (!(v = fmcli_flag_value(c, "--diagnostics", argc, argv, i))) return FMCLI_BAD;
        if (strcmp(v, "text") && strcmp(v, "json")) {
            fmcli_usage_error(c, "--diagnostics must be text or json, got '%s'", v);
            return FMCLI_BAD;
        }
        c->json_diags = !strcmp(v, "json");
        return FMCLI_TAKEN;
    }
    if (fmcli_is_flag(arg, "--input")) {
        if (!(v = fmcli_flag_value(c, "--input", argc, argv, i))) return FMCLI_BAD;
        return parse_input(c, v);
    }
    if (!strcmp(arg, "-D")) {
        if (*i + 1 >= argc) {
            fmcli_usage_error(c, "-D needs NAME=VALUE");
            return FMCLI_BAD;
        }
        *i += 2;
        return parse_define(c, argv[*i - 1]);
    }
    if (!strncmp(arg, "-D", 2)) {
        (*i)++;
        return parse_define(c, arg + 2);
    }
    return FMCLI_NOT_MINE;
}

int fmcli_require_build_args(fmcli_common *c) {
    if (!c->file) return fmcli_usage_error(c, "no mask file given");
    if (!c->have_q_len) return fmcli_usage_error(c, "--q-len is required");
    return 0;
}

fm_shape fmcli_shape(const fmcli_common *c) {
    fm_shape s = {c->batch, c->heads, c->q_len, c->have_kv_len ? c->kv_len : c->q_len};
    return s;
}

const char *fmcli_input_name(const char *path) {
    return path && strcmp(path, "-") == 0 ? "<stdin>" : path;
}

int fmcli_check_stdin_inputs(const fmcli_common *c, const char *const *flags,
                             const char *const *paths, size_t n) {
    char first[160] = "";
    for (size_t i = 0; i < n + c->num_inputs; i++) {
        char this[160];
        if (i < n) {
            if (!paths[i] || strcmp(paths[i], "-")) continue;
            snprintf(this, sizeof this, "%s", flags[i]);
        } else {
            const fmcli_input *in = &c->inputs[i - n];
            if (!in->npy_path || strcmp(in->npy_path, "-")) continue;
            snprintf(this, sizeof this, "--input %s=@-", in->name);
        }
        if (!first[0]) {
            snprintf(first, sizeof first, "%s", this);
            continue;
        }
        return fmcli_usage_error(c, "%s and %s both read standard input ('-'); only one input may be '-'",
                                 first, this);
    }
    return 0;
}
