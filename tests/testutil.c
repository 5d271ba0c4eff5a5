#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include "flexmask.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

char *tu_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (n < cap) break;
        cap *= 2;
        char *nb = realloc(buf, cap + 1);
        if (!nb) {
            free(buf);
            buf = NULL;
        } else {
            buf = nb;
        }
    }
    fclose(f);
    if (!buf) return NULL;
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

const char *tu_temp_dir(void) {
    static char dir[512];
    if (dir[0]) return dir;
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    snprintf(dir, sizeof dir, "%s/fmtest.XXXXXX", base);
    if (!mkdtemp(dir)) {
        snprintf(dir, sizeof dir, "%s", base);
    }
    return dir;
}

char *tu_write_temp(const char *name, const void *data, size_t len) {
    size_t n = strlen(tu_temp_dir()) + strlen(name) + 2;
    char *path = malloc(n);
    if (!path) return NULL;
    snprintf(path, n, "%s/%s", tu_temp_dir(), name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(path);
        return NULL;
    }
    if (len && fwrite(data, 1, len, f) != len) {
        fclose(f);
        free(path);
        return NULL;
    }
    fclose(f);
    return path;
}

static char *slurp_fd(int fd) {
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) return NULL;
    for (;;) {
        if (n == cap) {
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    return buf;
}

int tu_run(const char *cmdline, char **out, char **err) {
    char errpath[600];
    snprintf(errpath, sizeof errpath, "%s/stderr.%ld", tu_temp_dir(), (long)getpid());
    size_t n = strlen(cmdline) + strlen(errpath) + 16;
    char *full = malloc(n);
    if (!full) return -1;
    snprintf(full, n, "(%s) 2>'%s'", cmdline, errpath);
    FILE *p = popen(full, "r");
    free(full);
    if (!p) return -1;
    char *o = slurp_fd(fileno(p));
    int st = pclose(p);
    if (out) *out = o;
    else free(o);
    if (err) *err = tu_read_file(errpath, NULL);
    unlink(errpath);
    if (st == -1) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int tu_run_group(const char *group, const struct CMUnitTest *tests, size_t count, int argc,
                 char **argv) {
    if (argc > 1) cmocka_set_test_filter(argv[1]);
    const char *slash = strrchr(group, '/');
    return _cmocka_run_group_tests(slash ? slash + 1 : group, tests, count, NULL, NULL);
}

uint64_t tu_rng_next(tu_rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

int64_t tu_rng_range(tu_rng *r, int64_t lo, int64_t hi) {
    uint64_t span = (uint64_t)hi - (uint64_t)lo + 1;
    if (span == 0) return (int64_t)tu_rng_next(r);
    return (int64_t)((uint64_t)lo + tu_rng_next(r) % span);
}

bool tu_sanitizer_run(void) {
    const char *s = getenv("FM_TEST_SCALE");
    return s && !strcmp(s, "sanitizer");
}

int tu_cases(int normal) {
    return tu_sanitizer_run() ? normal / 4 + 1 : normal;
}

bool tu_full_run(void) {
    const char *s = getenv("FM_TEST_SCALE");
    return s && !strcmp(s, "full");
}

void tu_fail_with(int status, struct fm_diagnostics *d, const char *what) {
    char *text = fm_diagnostics_format(d, false);
    fprintf(stderr, "%s: %s\n%s", what, fm_status_string((fm_status)status), text ? text : "");
    fm_free(text);
}

bool tu_diags_mention(struct fm_diagnostics *d, const char *what) {
    char *text = fm_diagnostics_format(d, false);
    bool found = text && strstr(text, what);
    if (!found) fprintf(stderr, "diagnostics lack \"%s\":\n%s\n", what, text ? text : "(none)");
    fm_free(text);
    return found;
}
