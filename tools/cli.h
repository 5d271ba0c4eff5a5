/* The flags shared by every subcommand that builds a BlockMask (the CLI
 * contract's "common flags"), and the path from those flags to a built
 * BlockMask with every diagnostic printed.
 *
 * A subcommand walks its argv, offering each argument to
 * fmcli_parse_common first and handling what that does not take. Exit
 * statuses follow the contract: 0 ok, 1 the mask/param/input is wrong,
 * 2 bad usage, 3 a check found a mismatch. */
#ifndef FM_TOOLS_CLI_H
#define FM_TOOLS_CLI_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flexmask.h"

enum { FMCLI_OK = 0, FMCLI_EXIT_INPUT = 1, FMCLI_EXIT_USAGE = 2, FMCLI_EXIT_MISMATCH = 3 };

typedef struct fmcli_define {
    char *name; /* owned */
    int64_t value;
} fmcli_define;

typedef struct fmcli_input {
    char *name;
    const char *npy_path; /* NULL for a list */
    int32_t *values;      /* the list form */
    int64_t count;
} fmcli_input;

typedef struct fmcli_common {
    const char *prog; /* "fmc blockmask", "fmviz": prefixes usage messages */
    const char *file; /* the positional mask file (set by the subcommand) */
    const char *mask_name;
    int64_t q_len, kv_len, batch, heads, block_q, block_kv;
    int64_t max_evaluations; /* 0: no bound */
    int64_t memory_budget;   /* bytes; 0: the library's default */
    bool have_q_len, have_kv_len, have_batch, have_heads;
    fmcli_define *defines;
    size_t num_defines;
    fmcli_input *inputs;
    size_t num_inputs;
    bool json_diags;
} fmcli_common;

/* Sets the defaults; also looks ahead in argv for `--diagnostics json` so
 * that usage errors met before it are printed in the chosen form. */
void fmcli_init(fmcli_common *c, const char *prog, int argc, char **argv);
void fmcli_free(fmcli_common *c);

typedef enum fmcli_parse_result {
    FMCLI_TAKEN,    /* argv[*i] (and maybe its value) consumed; *i advanced past them */
    FMCLI_NOT_MINE, /* not a common flag; *i unchanged */
    FMCLI_BAD       /* a usage error was printed; exit with FMCLI_EXIT_USAGE */
} fmcli_parse_result;

fmcli_parse_result fmcli_parse_common(fmcli_common *c, int argc, char **argv, int *i);

/* The value of flag argv[*i]: either "--flag=VALUE" or the next argument.
 * Returns NULL (after printing a usage error) when it is missing. Advances
 * *i past what it consumed. flag is the flag's name without any "=...". */
const char *fmcli_flag_value(fmcli_common *c, const char *flag, int argc, char **argv, int *i);
/* Whether argv[*i] is `flag` or `flag=...`. */
bool fmcli_is_flag(const char *arg, const char *flag);

/* Integer literal as in the mask language (digits, '_' between digits),
 * optionally preceded by '-', within int64. */
bool fmcli_parse_int(const char *s, int64_t *out);

typedef enum fmcli_size_result {
    FMCLI_SIZE_OK,
    FMCLI_SIZE_NOT_A_NUMBER,
    FMCLI_SIZE_NEGATIVE,
    FMCLI_SIZE_TOO_LARGE,
    FMCLI_SIZE_BAD_SUFFIX
} fmcli_size_result;
/* A byte count: an integer literal (as fmcli_parse_int) optionally followed
 * by K, M or G (powers of 1024), within int64. */
fmcli_size_result fmcli_parse_size(const char *s, int64_t *out);

/* Every error a tool prints that has no place in a mask file reads
 * "error: PROG: MESSAGE" (then a hint line, if any); one with a place
 * reads "FILE:LINE:COL: error: MESSAGE" as the CLI contract fixes. */

/* Prints such an error in the chosen diagnostics form. */
void fmcli_error(const fmcli_common *c, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prints a usage error (with a pointer to --help) in the chosen
 * diagnostics form. Returns FMCLI_EXIT_USAGE. */
int fmcli_usage_error(const fmcli_common *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prints the usage error for an unknown flag arg, with a did-you-mean hint
 * when one of the flags the subcommand takes is close: its own (own[0..n))
 * and, with common, the common flags (else only --diagnostics and --help).
 * Returns FMCLI_EXIT_USAGE. */
int fmcli_unknown_flag(const fmcli_common *c, const char *arg, bool common,
                       const char *const *own, size_t n);
/* Prints an error about the mask, a param or an input (no source
 * location). Returns FMCLI_EXIT_INPUT. */
int fmcli_input_error(const fmcli_common *c, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prints every message of diags to stderr in the chosen form. */
void fmcli_print_diags(const fmcli_common *c, const fm_diagnostics *diags);

/* Flushes stdout. When that or any earlier write to it failed (a full
 * disk, a closed pipe, a file size limit), prints "cannot write to standard
 * output: REASON" and returns FMCLI_EXIT_INPUT if rc was 0; else returns
 * rc. Every tool ends through it, --help and --version included. */
int fmcli_stdout_status(const fmcli_common *c, int rc);

/* fm_compile_file, except that path "-" compiles standard input (named
 * "<stdin>" in messages). */
fm_status fmcli_compile(const char *path, fm_diagnostics *diags, fm_program **out);

/* Checks what a BlockMask build needs: a mask file and --q-len. Prints a
 * usage error and returns FMCLI_EXIT_USAGE when missing, else 0. */
int fmcli_require_build_args(fmcli_common *c);
/* The shape the flags describe (kv_len defaults to q_len). */
fm_shape fmcli_shape(const fmcli_common *c);

/* What the flags produce, in order of creation; fmcli_session_free frees it. */
typedef struct fmcli_session {
    fm_diagnostics *diags;
    fm_program *program;
    fm_mask *mask;
    fm_bindings *bindings;
    fm_blockmask *blockmask;
} fmcli_session;

/* Compiles c->file, selects the mask, creates bindings, applies the -D
 * values and binds the inputs (copied). Prints every diagnostic; returns
 * the exit status (0 on success). */
int fmcli_prepare(const fmcli_common *c, fmcli_session *s);
/* Builds s->blockmask for shape (after fmcli_prepare). Prints every
 * diagnostic; returns the exit status. */
int fmcli_build_blockmask(const fmcli_common *c, fmcli_session *s, fm_shape shape);
/* fmcli_prepare, then fmcli_build_blockmask with fmcli_shape(c). */
int fmcli_build(const fmcli_common *c, fmcli_session *s);
void fmcli_session_free(fmcli_session *s);

/* Where the docs and example masks are installed: PREFIX/share/flexmask
 * beside this program's bin/ when that exists (an install moved to another
 * prefix), else the configured install prefix's. */
const char *fmcli_share_dir(void);

/* An input path as messages show it: "<stdin>" for "-". */
const char *fmcli_input_name(const char *path);

/* At most one input may be "-" (standard input): n paths named by their
 * flags, plus every --input NAME=@- of c. Returns 0, or prints a usage
 * error naming the two and returns its exit status. */
int fmcli_check_stdin_inputs(const fmcli_common *c, const char *const *flags,
                             const char *const *paths, size_t n);

/* Text for a subcommand's --help: the common flags, one per line. */
extern const char fmcli_common_help[];
/* The same for a subcommand that takes the shape from its arrays (fmc
 * attend), where the shape flags are optional. */
extern const char fmcli_common_help_shape_from_arrays[];

#endif
