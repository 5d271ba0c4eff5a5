/* Opening and checking the JIT cache folder; see cache_folder.h. */
#define _POSIX_C_SOURCE 200809L
#include "runtime/cuda/cache_folder.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static char *strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *strf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s) {
        va_start(ap, fmt);
        vsnprintf(s, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    return s;
}

static const char OFF[] = "; compiled kernels are kept in memory only";

static bool refuse_folder(fmr_cache_problem *p, const char *dir, const char *why,
                          const char *hint) {
    p->message = strf("the JIT cache folder '%s' %s%s", dir, why, OFF);
    p->hint = hint ? strf("%s", hint) : NULL;
    return false;
}

static bool refuse_secret(fmr_cache_problem *p, const char *dir, const char *why) {
    p->message = strf("the JIT cache secret '%s/" FMR_CACHE_SECRET_FILE "' %s%s", dir, why, OFF);
    p->hint = strf("delete it and a new one is made (entries it signed are then compiled again)");
    return false;
}

/* Creates the missing folders of dir, private ones: an entry or a secret
 * in a folder others can enter and list is still theirs to see. */
static int mkdir_p(const char *dir) {
    char *p = strdup(dir);
    if (!p) return ENOMEM;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0700) != 0 && errno != EEXIST) {
            int e = errno;
            free(p);
            return e;
        }
        *s = '/';
    }
    int e = (mkdir(p, 0700) == 0 || errno == EEXIST) ? 0 : errno;
    free(p);
    return e;
}

bool fmr_read_all(int fd, uint8_t *buf, size_t len) {
    while (len) {
        ssize_t n = read(fd, buf, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

bool fmr_write_all(int fd, const uint8_t *buf, size_t len) {
    while (len) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

static atomic_uint tmp_counter;

void fmr_cache_tmp_name(char *buf, size_t n, const char *what) {
    snprintf(buf, n, FMR_CACHE_TMP_PREFIX "%s%ld-%u", what, (long)getpid(),
             atomic_fetch_add(&tmp_counter, 1));
}

typedef enum secret_state { SECRET_OK, SECRET_ABSENT, SECRET_REFUSED } secret_state;

/* Reads the secret, which must be the user's own regular file that no one
 * else can read or write, of exactly the secret's size. */
static secret_state read_secret(int dfd, const char *dir, uint8_t secret[FMR_CACHE_SECRET_BYTES],
                                fmr_cache_problem *p) {
    int fd = openat(dfd, FMR_CACHE_SECRET_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT) return SECRET_ABSENT;
        if (errno == ELOOP)
            refuse_secret(p, dir, "is a symbolic link");
        else
            refuse_secret(p, dir, strerror(errno));
        return SECRET_REFUSED;
    }
    struct stat st;
    char why[128];
    why[0] = 0;
    if (fstat(fd, &st) != 0)
        snprintf(why, sizeof why, "cannot be read: %s", strerror(errno));
    else if (!S_ISREG(st.st_mode))
        snprintf(why, sizeof why, "is not a regular file");
    else if (st.st_uid != geteuid())
        snprintf(why, sizeof why, "belongs to another user (uid %u)", (unsigned)st.st_uid);
    else if (st.st_mode & 077)
        snprintf(why, sizeof why, "can be read or written by other users (mode %03o)",
                 (unsigned)(st.st_mode & 0777));
    else if (st.st_size != FMR_CACHE_SECRET_BYTES)
        snprintf(why, sizeof why, "holds %lld bytes, not %d", (long long)st.st_size,
                 FMR_CACHE_SECRET_BYTES);
    else if (!fmr_read_all(fd, secret, FMR_CACHE_SECRET_BYTES))
        snprintf(why, sizeof why, "cannot be read");
    close(fd);
    if (!why[0]) return SECRET_OK;
    refuse_secret(p, dir, why);
    return SECRET_REFUSED;
}

static bool random_bytes(uint8_t *buf, size_t n) {
    while (n) {
        ssize_t got = getrandom(buf, n, 0);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return false;
        buf += got;
        n -= (size_t)got;
    }
    return true;
}

/* Writes a new secret to a temporary file and links it into place: link
 * never replaces an existing file, so of two processes racing here the
 * second one's link fails and it reads the first one's secret, and no
 * reader ever sees a secret half written. */
static secret_state create_secret(int dfd, const char *dir, uint8_t secret[FMR_CACHE_SECRET_BYTES],
                                  fmr_cache_problem *p) {
    uint8_t fresh[FMR_CACHE_SECRET_BYTES];
    if (!random_bytes(fresh, sizeof fresh)) {
        refuse_secret(p, dir, "could not be made: the system's random source failed");
        return SECRET_REFUSED;
    }
    char tmp[64];
    fmr_cache_tmp_name(tmp, sizeof tmp, "secret-");
    int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    bool ok = fd >= 0;
    int err = ok ? 0 : errno;
    if (ok) {
        /* fsync: a crash must not leave an empty secret behind the link. */
        ok = fmr_write_all(fd, fresh, sizeof fresh) && fsync(fd) == 0;
        if (!ok) err = errno;
        if (close(fd) != 0 && ok) ok = false, err = errno;
        if (ok && linkat(dfd, tmp, dfd, FMR_CACHE_SECRET_FILE, 0) != 0) ok = false, err = errno;
        unlinkat(dfd, tmp, 0);
    }
    if (ok) {
        memcpy(secret, fresh, sizeof fresh);
        return SECRET_OK;
    }
    if (err == EEXIST) return SECRET_ABSENT; /* another process won: read its secret */
    char why[160];
    snprintf(why, sizeof why, "could not be created: %s", strerror(err ? err : EIO));
    refuse_secret(p, dir, why);
    return SECRET_REFUSED;
}

bool fmr_cache_folder_open(const char *dir, int *fd_out, uint8_t secret[FMR_CACHE_SECRET_BYTES],
                           fmr_cache_problem *p) {
    static const char elsewhere[] =
        "set FLEXMASK_CACHE_DIR to a folder of your own, or to the empty string to turn the disk "
        "cache off";
    *fd_out = -1;
    p->message = p->hint = NULL;
    char why[160];
    int e = mkdir_p(dir);
    if (e) {
        snprintf(why, sizeof why, "could not be created: %s", strerror(e));
        return refuse_folder(p, dir, why, elsewhere);
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, sizeof why, "could not be opened: %s", strerror(errno));
        return refuse_folder(p, dir, why, elsewhere);
    }
    struct stat st;
    why[0] = 0;
    if (fstat(fd, &st) != 0) {
        snprintf(why, sizeof why, "could not be opened: %s", strerror(errno));
    } else if (st.st_uid != geteuid()) {
        snprintf(why, sizeof why, "belongs to another user (uid %u)", (unsigned)st.st_uid);
    } else if (st.st_mode & 022) {
        /* Whoever can write the folder can swap entries and the secret. */
        snprintf(why, sizeof why, "can be written by other users (mode %03o)",
                 (unsigned)(st.st_mode & 0777));
        close(fd);
        char *hint =
            strf("run chmod go-w '%s', or set FLEXMASK_CACHE_DIR to a folder of your own", dir);
        bool r = refuse_folder(p, dir, why, hint ? hint : elsewhere);
        free(hint);
        return r;
    }
    if (why[0]) {
        close(fd);
        return refuse_folder(p, dir, why, elsewhere);
    }
    secret_state s = SECRET_ABSENT;
    /* Absent twice in a row would take a process deleting the secret as
       fast as others create it; three rounds are plenty otherwise. */
    for (int round = 0; round < 3 && s == SECRET_ABSENT; round++) {
        s = read_secret(fd, dir, secret, p);
        if (s == SECRET_ABSENT) s = create_secret(fd, dir, secret, p);
    }
    if (s == SECRET_ABSENT) refuse_secret(p, dir, "keeps disappearing while it is being made");
    if (s != SECRET_OK) {
        close(fd);
        return false;
    }
    *fd_out = fd;
    return true;
}
