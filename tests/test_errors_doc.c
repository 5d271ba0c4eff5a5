/* docs/errors.md against the tools: every case of the page (files, a
 * command, the exit status and the exact stderr) is run again with the
 * fmc and fmviz of this build and must match byte for byte. Also checks
 * that the page has a case for every entry of the front end's malformed
 * table (tests/dsl_cases.h). Regenerate the page with
 * tools/gen-errors-doc.py after changing a message. */
#define _POSIX_C_SOURCE 200809L
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

typedef struct text {
    char *s;
    size_t n, cap;
} text;

static void put(text *t, const char *s, size_t n) {
    if (t->n + n + 1 > t->cap) {
        t->cap = (t->n + n + 1) * 2;
        t->s = realloc(t->s, t->cap);
        assert_non_null(t->s);
    }
    memcpy(t->s + t->n, s, n);
    t->n += n;
    t->s[t->n] = '\0';
}

#define MAX_FILES 4

typedef struct doc_case {
    char id[128];
    char *file_names[MAX_FILES];
    text files[MAX_FILES];
    int nfiles;
    text cmd;
    text expect;
    int status; /* -1: no status line seen */
} doc_case;

static char *bin_dir(void) {
    static char dir[600];
    if (dir[0]) return dir;
    snprintf(dir, sizeof dir, "%s/errdoc-bin", tu_temp_dir());
    mkdir(dir, 0700);
    char link[700];
    snprintf(link, sizeof link, "%s/fmc", dir);
    assert_int_equal(symlink(FM_FMC_PATH, link), 0);
    snprintf(link, sizeof link, "%s/fmviz", dir);
    assert_int_equal(symlink(FM_FMVIZ_PATH, link), 0);
    return dir;
}

static void write_file(const char *dir, const char *name, const text *t) {
    char path[900];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (t->n) assert_int_equal(fwrite(t->s, 1, t->n, f), t->n);
    assert_int_equal(fclose(f), 0);
}

/* Runs one case; returns whether it matched (a mismatch is printed). */
static bool run_case(const doc_case *c) {
    char dir[700];
    snprintf(dir, sizeof dir, "%s/errdoc-%s", tu_temp_dir(), c->id);
    mkdir(dir, 0700);
    for (int i = 0; i < c->nfiles; i++) write_file(dir, c->file_names[i], &c->files[i]);
    write_file(dir, ".cmd.sh", &c->cmd);
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "cd '%s' && PATH='%s':\"$PATH\" LC_ALL=C NO_COLOR=1 sh ./.cmd.sh >/dev/null",
             dir, bin_dir());
    char *err = NULL;
    int rc = tu_run(cmd, NULL, &err);
    const char *got = err ? err : "";
    bool ok = rc == c->status && strcmp(got, c->expect.s ? c->expect.s : "") == 0;
    if (!ok)
        fprintf(stderr, "docs/errors.md case '%s': exit status %d (page: %d)\n--- stderr\n%s--- page\n%s",
                c->id, rc, c->status, got, c->expect.s ? c->expect.s : "");
    free(err);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    tu_run(cmd, NULL, NULL);
    return ok;
}

static void case_free(doc_case *c) {
    for (int i = 0; i < c->nfiles; i++) {
        free(c->file_names[i]);
        free(c->files[i].s);
    }
    free(c->cmd.s);
    free(c->expect.s);
    memset(c, 0, sizeof *c);
    c->status = -1;
}

static char *read_doc(void) {
    char *doc = tu_read_file(FM_SOURCE_DIR "/docs/errors.md", NULL);
    assert_non_null(doc);
    return doc;
}

static void test_every_case_matches(void **state) {
    (void)state;
    char *doc = read_doc();
    doc_case c;
    memset(&c, 0, sizeof c);
    c.status = -1;
    int cases = 0, failed = 0;
    text *block = NULL;      /* where the next fenced block goes */
    bool in_block = false, have_case = false;
    for (char *line = doc; line && *line;) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (in_block) {
            if (len == 3 && !strncmp(line, "```", 3)) {
                in_block = false;
                block = NULL;
            } else if (block) {
                put(block, line, len);
                put(block, "\n", 1);
            }
        } else if (!strncmp(line, "```", 3)) {
            in_block = true;
        } else if (!strncmp(line, "### ", 4) || !strncmp(line, "## ", 3)) {
            if (have_case) {
                assert_true(c.status >= 0);
                cases++;
                failed += !run_case(&c);
                case_free(&c);
            }
            have_case = !strncmp(line, "### ", 4);
            if (have_case) snprintf(c.id, sizeof c.id, "%.*s", (int)(len - 4), line + 4);
        } else if (have_case && !strncmp(line, "File `", 6)) {
            const char *end = memchr(line + 6, '`', len - 6);
            assert_non_null(end);
            assert_true(c.nfiles < MAX_FILES);
            c.file_names[c.nfiles] = strndup(line + 6, (size_t)(end - line - 6));
            block = &c.files[c.nfiles++];
        } else if (have_case && len == 0) {
            /* blank lines separate the parts */
        } else if (have_case && !strncmp(line, "Exit status ", 12)) {
            c.status = atoi(line + 12);
            put(&c.expect, "", 0);
            if (strstr(line, "stderr:")) block = &c.expect;
        }
        /* The fence opened by "```sh" holds the command. */
        if (in_block && !block && !strncmp(line, "```sh", 5)) block = &c.cmd;
        line = nl ? nl + 1 : NULL;
    }
    if (have_case) {
        cases++;
        failed += !run_case(&c);
        case_free(&c);
    }
    free(doc);
    printf("docs/errors.md: %d cases, %d failed\n", cases, failed);
    assert_true(cases >= 100);
    assert_int_equal(failed, 0);
}

/* Every malformed file the front end's table knows has its case. */
static void test_covers_malformed_table(void **state) {
    (void)state;
    char *doc = read_doc();
    char *table = tu_read_file(FM_SOURCE_DIR "/tests/dsl_cases.h", NULL);
    assert_non_null(table);
    int n = 0;
    for (const char *p = table; (p = strstr(p, "BAD(\"")); p += 5) {
        const char *end = strchr(p + 5, '"');
        assert_non_null(end);
        char want[160];
        snprintf(want, sizeof want, "\n### %.*s\n", (int)(end - p - 5), p + 5);
        if (!strstr(doc, want))
            fail_msg("docs/errors.md has no case '%.*s' (run tools/gen-errors-doc.py)",
                     (int)(end - p - 5), p + 5);
        n++;
    }
    assert_true(n > 50);
    free(table);
    free(doc);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_case_matches),
        cmocka_unit_test(test_covers_malformed_table),
    };
    return TU_RUN(tests, argc, argv);
}
