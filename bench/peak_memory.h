/* Peak memory of one call, for the benchmarks: the call runs in a forked
 * child, whose freed heap is handed back and whose resident-set high-water
 * mark is reset to its current size (/proc/self/clear_refs); the result is
 * how far the mark rises during the call. Linux only (-1 elsewhere). */
#ifndef FM_BENCH_PEAK_MEMORY_H
#define FM_BENCH_PEAK_MEMORY_H

#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* VmHWM or VmRSS of this process from /proc (KiB), -1 when unavailable. */
static inline long bench_proc_status_kib(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    size_t n = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, n)) v = atol(line + n);
    fclose(f);
    return v;
}

/* KiB the resident set rises while call(ctx) runs; -1 when it fails (returns
 * false) or /proc cannot tell. */
static inline long bench_peak_kib(bool (*call)(void *ctx), void *ctx) {
    int fd[2];
    if (pipe(fd)) return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return -1;
    }
    if (pid == 0) {
        close(fd[0]);
        malloc_trim(0);
        FILE *cr = fopen("/proc/self/clear_refs", "w");
        long before = -1;
        if (cr) {
            fputs("5", cr);
            fclose(cr);
            before = bench_proc_status_kib("VmRSS:");
        }
        bool ok = call(ctx);
        long after = bench_proc_status_kib("VmHWM:");
        long delta = ok && before >= 0 && after >= 0 ? after - before : -1;
        if (write(fd[1], &delta, sizeof delta) != sizeof delta) _exit(1);
        _exit(0);
    }
    close(fd[1]);
    long delta = -1;
    if (read(fd[0], &delta, sizeof delta) != sizeof delta) delta = -1;
    close(fd[0]);
    waitpid(pid, NULL, 0);
    return delta;
}

#endif
