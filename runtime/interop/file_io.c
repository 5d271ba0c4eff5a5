/* Output files written through a temporary and a rename (file_io.h). */
#define _GNU_SOURCE /* AT_EACCESS; POSIX: lstat, readlink, fchown, fdopen */
#include "runtime/interop/file_io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_LINKS 40
/* Longest part of the target's name kept in the temporary's, so the
 * temporary's name stays under NAME_MAX (255). */
#define TMP_BASE_MAX 200

static bool fail(fmr_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool fail(fmr_out *o, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->error, sizeof o->error, fmt, ap);
    va_end(ap);
    return false;
}

static char *dup_range(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* Length of the folder part of p, slash included ("" -> 0, "a/b" -> 2). */
static size_t dir_len(const char *p) {
    const char *slash = strrchr(p, '/');
    return slash ? (size_t)(slash - p) + 1 : 0;
}

/* Follows symbolic links from path: *out is the first name that is not a
 * link (malloc'd), *st its lstat and *exists whether it exists. */
static bool resolve(fmr_out *o, const char *path, char **out, struct stat *st, bool *exists) {
    char *cur = dup_range(path, strlen(path));
    for (int hops = 0; cur; hops++) {
        if (lstat(cur, st) != 0) {
            if (errno != ENOENT) {
                int e = errno;
                free(cur);
                return fail(o, "cannot open for writing: %s", strerror(e));
            }
            *exists = false;
            *out = cur;
            return true;
        }
        if (!S_ISLNK(st->st_mode)) {
            *exists = true;
            *out = cur;
            return true;
        }
        if (hops == MAX_LINKS) {
            free(cur);
            return fail(o, "cannot open for writing: %s", strerror(ELOOP));
        }
        size_t cap = st->st_size > 0 ? (size_t)st->st_size + 1 : 4096;
        char *link = malloc(cap);
        ssize_t n = link ? readlink(cur, link, cap) : -1;
        if (n < 0 || (size_t)n >= cap) {
            int e = n < 0 && link ? errno : ENAMETOOLONG;
            free(link);
            free(cur);
            return fail(o, "cannot open for writing: %s", strerror(e));
        }
        /* A relative link is relative to the folder holding it. */
        size_t keep = link[0] == '/' ? 0 : dir_len(cur);
        char *next = malloc(keep + (size_t)n + 1);
        if (next) {
            memcpy(next, cur, keep);
            memcpy(next + keep, link, (size_t)n);
            next[keep + (size_t)n] = '\0';
        }
        free(link);
        free(cur);
        cur = next;
    }
    return fail(o, "out of memory");
}

/* A name for the temporary next to target: ".NAME.XXXXXX". */
static void tmp_name(char *buf, size_t cap, const char *target, unsigned try) {
    static atomic_uint counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ ((uint64_t)getpid() << 16) ^
                 (uint64_t)atomic_fetch_add(&counter, 1) * 0x9E3779B97F4A7C15u ^ try;
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9u;
    x ^= x >> 29;
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    char suffix[7];
    for (int i = 0; i < 6; i++, x /= 62)
        suffix[i] = alnum[x % 62];
    suffix[6] = '\0';
    size_t dl = dir_len(target);
    size_t bl = strlen(target + dl);
    snprintf(buf, cap, "%.*s.%.*s.%s", (int)dl, target,
             (int)(bl > TMP_BASE_MAX ? TMP_BASE_MAX : bl), target + dl, suffix);
}

static bool open_tmp(fmr_out *o, const struct stat *old, bool exists) {
    size_t cap = strlen(o->target) + 16;
    o->tmp = malloc(cap);
    if (!o->tmp) return fail(o, "out of memory");
    int fd = -1;
    for (unsigned try = 0; fd < 0 && try < 100; try++) {
        tmp_name(o->tmp, cap, o->target, try);
        /* open applies the umask (and a folder's default ACL) itself, as
         * for any new file; mkstemp would force 0600. */
        fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) {
        int e = errno;
        free(o->tmp);
        o->tmp = NULL;
        return fail(o, "cannot open for writing: %s", strerror(e));
    }
    if (exists) {
        /* Replacing a file keeps its owner (where allowed) and mode, as
         * writing it in place would. */
        struct stat now;
        if (fstat(fd, &now) == 0 && (now.st_uid != old->st_uid || now.st_gid != old->st_gid))
            (void)!fchown(fd, old->st_uid, old->st_gid);
        (void)!fchmod(fd, old->st_mode & 0777);
    }
    o->f = fdopen(fd, "wb");
    if (!o->f) {
        int e = errno;
        close(fd);
        unlink(o->tmp);
        free(o->tmp);
        o->tmp = NULL;
        return fail(o, "cannot open for writing: %s", strerror(e));
    }
    return true;
}

bool fmr_out_open(fmr_out *o, const char *path) {
    memset(o, 0, sizeof *o);
    if (!path || !*path) return fail(o, "cannot open for writing: %s", strerror(ENOENT));
    struct stat st;
    bool exists = false;
    if (!resolve(o, path, &o->target, &st, &exists)) return false;
    bool ok;
    if (exists && S_ISDIR(st.st_mode)) {
        ok = fail(o, "cannot open for writing: %s", strerror(EISDIR));
    } else if (exists && !S_ISREG(st.st_mode)) {
        /* A FIFO or a device cannot be replaced, and must never be
         * removed: write to it directly. */
        int fd = open(o->target, O_WRONLY | O_CLOEXEC | O_NOCTTY);
        o->f = fd >= 0 ? fdopen(fd, "wb") : NULL;
        if (!o->f) {
            int e = errno;
            if (fd >= 0) close(fd);
            ok = fail(o, "cannot open for writing: %s", strerror(e));
        } else {
            ok = true;
        }
    } else if (exists && faccessat(AT_FDCWD, o->target, W_OK, AT_EACCESS) != 0) {
        /* A file we may not write stays unwritten, as with an in-place
         * write: the rename alone would replace a read-only file. */
        ok = fail(o, "cannot open for writing: %s", strerror(errno));
    } else {
        ok = open_tmp(o, &st, exists);
    }
    if (!ok) {
        free(o->target);
        o->target = NULL;
    }
    return ok;
}

bool fmr_out_write(fmr_out *o, const void *data, size_t n) {
    if (n == 0 || fwrite(data, 1, n, o->f) == n) return true;
    return fail(o, "write error: %s", strerror(errno ? errno : EIO));
}

static void release(fmr_out *o) {
    free(o->target);
    free(o->tmp);
    o->target = o->tmp = NULL;
    o->f = NULL;
}

bool fmr_out_commit(fmr_out *o) {
    if (!o->f) return fail(o, "write error: %s", strerror(EBADF));
    errno = 0;
    int flushed = fflush(o->f);
    bool ok = flushed == 0 && !ferror(o->f);
    /* A write error seen earlier keeps its message; otherwise say why now. */
    if (!ok && strncmp(o->error, "write error", 11) != 0)
        fail(o, "write error: %s", strerror(errno ? errno : EIO));
    /* Without the sync, a crash after the rename could leave an empty file
     * where the old one was. */
    if (ok && o->tmp && fsync(fileno(o->f)) != 0) ok = fail(o, "write error: %s", strerror(errno));
    if (fclose(o->f) != 0 && ok) ok = fail(o, "write error: %s", strerror(errno));
    o->f = NULL;
    if (o->tmp) {
        if (ok && rename(o->tmp, o->target) != 0)
            ok = fail(o, "cannot replace the file: %s", strerror(errno));
        if (!ok) unlink(o->tmp);
    }
    if (ok) o->error[0] = '\0';
    release(o);
    return ok;
}

void fmr_out_abort(fmr_out *o) {
    if (o->f) fclose(o->f);
    if (o->tmp) unlink(o->tmp);
    release(o);
}

bool fmr_write_file(const char *path, bool (*write)(FILE *f, void *ctx), void *ctx, char *error,
                    size_t error_size) {
    fmr_out o;
    bool ok = fmr_out_open(&o, path);
    if (ok) {
        if (write(o.f, ctx)) {
            ok = fmr_out_commit(&o);
        } else {
            if (ferror(o.f)) fail(&o, "write error: %s", strerror(errno ? errno : EIO));
            fmr_out_abort(&o);
            ok = false;
        }
    }
    if (error && error_size) snprintf(error, error_size, "%s", o.error);
    return ok;
}
