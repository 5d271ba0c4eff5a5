/* Helpers shared by the CMocka test programs. */
#ifndef FM_TESTS_TESTUTIL_H
#define FM_TESTS_TESTUTIL_H

#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* Reads a whole file (NUL-terminated copy); NULL on error. Caller frees. */
char *tu_read_file(const char *path, size_t *len);
/* Writes len bytes to a new file under the test's temporary folder and
 * returns its path (static buffer per call site is not shared: caller frees). */
char *tu_write_temp(const char *name, const void *data, size_t len);
/* The per-run temporary folder (created on first use, under $TMPDIR). */
const char *tu_temp_dir(void);
/* Runs a shell command line; captures stdout and stderr (caller frees,
 * either may be NULL to discard). Returns the exit status, or -1. */
int tu_run(const char *cmdline, char **out, char **err);
/* Runs the group with a name filter taken from argv[1] (a glob such as
 * "*malformed*"), the libssh way. */
int tu_run_group(const char *group, const struct CMUnitTest *tests, size_t count, int argc,
                 char **argv);
#define TU_RUN(tests, argc, argv) tu_run_group(__FILE__, tests, sizeof(tests) / sizeof(tests[0]), argc, argv)

/* True in the ASan + UBSan run (FM_TEST_SCALE=sanitizer), where property
 * tests run fewer cases. */
bool tu_sanitizer_run(void);
/* normal cases, or about a quarter of them in the sanitizer run. */
int tu_cases(int normal);
/* True when FM_TEST_SCALE=full asks for the slow cases that the normal run
 * leaves out. */
bool tu_full_run(void);

struct fm_diagnostics;
/* Prints what failed, its status and every diagnostic to stderr. */
void tu_fail_with(int status, struct fm_diagnostics *d, const char *what);
/* Whether the rendered diagnostics contain what (printing them if not). */
bool tu_diags_mention(struct fm_diagnostics *d, const char *what);

/* A small deterministic PRNG (splitmix64) for property tests. */
typedef struct tu_rng {
    uint64_t s;
} tu_rng;
uint64_t tu_rng_next(tu_rng *r);
/* Uniform in [lo, hi] (inclusive). */
int64_t tu_rng_range(tu_rng *r, int64_t lo, int64_t hi);

#endif
