/* Memory and disk cache for JIT output; see jit_cache.h for the rules. */
#define _POSIX_C_SOURCE 200809L
#include "runtime/cuda/jit_cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "runtime/cuda/cache_folder.h"

#define HEADER_BYTES 96
#define MAC_COVERS 56 /* header bytes under the MAC; the MAC itself is at 56..88 */
static const char MAGIC[8] = {'F', 'M', 'J', 'I', 'T', 'C', 0, 1};
#define SUFFIX ".fmjit"

typedef struct mem_entry {
    uint8_t key[32];
    uint8_t *data;
    size_t len;
    bool live; /* false once dropped; the bytes stay until the cache is freed */
} mem_entry;

typedef enum folder_state { FOLDER_UNOPENED, FOLDER_OPEN, FOLDER_REFUSED } folder_state;

struct fmr_jit_cache {
    pthread_mutex_t lock;
    char *dir;
    uint64_t max_bytes;
    mem_entry *entries;
    size_t count, cap;
    fmr_jit_cache_stats stats;
    /* The folder is opened and checked on the first lookup or store. */
    folder_state folder;
    int dfd;
    uint8_t secret[FMR_CACHE_SECRET_BYTES];
    fmr_cache_problem problem; /* why it was refused */
    bool reported;             /* the problem went to some caller's diagnostics */
};

fmr_jit_cache *fmr_jit_cache_create(const char *dir, uint64_t max_bytes) {
    fmr_jit_cache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    if (dir && *dir) {
        c->dir = strdup(dir);
        if (!c->dir) {
            free(c);
            return NULL;
        }
    }
    c->max_bytes = max_bytes ? max_bytes : FMR_JIT_CACHE_DEFAULT_MAX_BYTES;
    c->dfd = -1;
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

void fmr_jit_cache_free(fmr_jit_cache *c) {
    if (!c) return;
    for (size_t i = 0; i < c->count; i++) free(c->entries[i].data);
    free(c->entries);
    free(c->dir);
    if (c->dfd >= 0) close(c->dfd);
    free(c->problem.message);
    free(c->problem.hint);
    OPENSSL_cleanse(c->secret, sizeof c->secret);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static char *join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s", a, b);
    return s;
}

char *fmr_jit_cache_dir_from_env(void) {
    const char *d = getenv("FLEXMASK_CACHE_DIR");
    if (d) return *d ? strdup(d) : NULL; /* set but empty: the disk cache is off */
    const char *x = getenv("XDG_CACHE_HOME");
    if (x && *x) return join(x, "flexmask");
    const char *home = getenv("HOME");
    if (home && *home) return join(home, ".cache/flexmask");
    return NULL;
}

static fmr_jit_cache *default_cache;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void make_default(void) {
    char *dir = fmr_jit_cache_dir_from_env();
    uint64_t max = 0;
    const char *mb = getenv("FLEXMASK_CACHE_MAX_MB");
    if (mb && *mb) {
        char *end;
        unsigned long long v = strtoull(mb, &end, 10);
        if (*end == 0 && v > 0 && v < (1ull << 40)) max = (uint64_t)v << 20;
    }
    default_cache = fmr_jit_cache_create(dir, max);
    free(dir);
}

fmr_jit_cache *fmr_jit_cache_default(void) {
    pthread_once(&default_once, make_default);
    return default_cache;
}

const char *fmr_jit_cache_dir(const fmr_jit_cache *c) { return c ? c->dir : NULL; }

static void entry_name(const uint8_t key[32], char name[80]) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        name[2 * i] = digits[key[i] >> 4];
        name[2 * i + 1] = digits[key[i] & 15];
    }
    memcpy(name + 64, SUFFIX, sizeof SUFFIX);
}

char *fmr_jit_cache_entry_path(const fmr_jit_cache *c, const uint8_t key[32]) {
    if (!c || !c->dir) return NULL;
    char name[80];
    entry_name(key, name);
    return join(c->dir, name);
}

/* The folder's descriptor, opening and checking it on first use; -1 when
 * the cache is memory only or the folder was refused. */
static int folder(fmr_jit_cache *c) {
    if (!c->dir) return -1;
    pthread_mutex_lock(&c->lock);
    if (c->folder == FOLDER_UNOPENED)
        c->folder = fmr_cache_folder_open(c->dir, &c->dfd, c->secret, &c->problem) ? FOLDER_OPEN
                                                                                  : FOLDER_REFUSED;
    int fd = c->dfd;
    pthread_mutex_unlock(&c->lock);
    return fd;
}

void fmr_jit_cache_report(fmr_jit_cache *c, fmd_diags *diags) {
    if (!c || !diags) return;
    pthread_mutex_lock(&c->lock);
    if (c->folder == FOLDER_REFUSED && !c->reported) {
        c->reported = true;
        fmd_diag_add(diags, FMD_WARNING, NULL, (fmd_span){0, 0}, c->problem.hint, "%s",
                     c->problem.message ? c->problem.message
                                        : "the JIT cache folder could not be checked (out of "
                                          "memory); compiled kernels are kept in memory only");
    }
    pthread_mutex_unlock(&c->lock);
}

/* HMAC-SHA256 under the folder's secret over the header's first 56 bytes
 * (magic, format, header size, key, length) and the payload. */
static EVP_MAC *hmac;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;
static void hmac_fetch(void) { hmac = EVP_MAC_fetch(NULL, "HMAC", NULL); }

static bool entry_mac(const uint8_t *secret, const uint8_t *hdr, const void *payload, size_t len,
                      uint8_t out[32]) {
    pthread_once(&hmac_once, hmac_fetch);
    if (!hmac) return false;
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(hmac);
    size_t n = 0;
    bool ok = ctx && EVP_MAC_init(ctx, secret, FMR_CACHE_SECRET_BYTES, params) &&
              EVP_MAC_update(ctx, hdr, MAC_COVERS) && EVP_MAC_update(ctx, payload, len) &&
              EVP_MAC_final(ctx, out, &n, 32) && n == 32;
    EVP_MAC_CTX_free(ctx);
    return ok;
}

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_u32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = v << 8 | p[i];
    return v;
}
static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static mem_entry *mem_find(fmr_jit_cache *c, const uint8_t key[32]) {
    for (size_t i = c->count; i-- > 0;)
        if (c->entries[i].live && !memcmp(c->entries[i].key, key, 32)) return &c->entries[i];
    return NULL;
}

/* Adds an entry that takes ownership of data; lock held. */
static mem_entry *mem_add(fmr_jit_cache *c, const uint8_t key[32], uint8_t *data, size_t len) {
    if (c->count == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 16;
        mem_entry *e = realloc(c->entries, cap * sizeof *e);
        if (!e) return NULL;
        c->entries = e;
        c->cap = cap;
    }
    mem_entry *e = &c->entries[c->count++];
    memcpy(e->key, key, 32);
    e->data = data;
    e->len = len;
    e->live = true;
    return e;
}

typedef enum disk_result { DISK_NONE, DISK_OK, DISK_BAD } disk_result;

/* Reads and checks the entry called name; DISK_OK hands back a malloc'd
 * payload. O_NOFOLLOW and O_NONBLOCK: a symbolic link is refused, and a
 * FIFO or device opens at once and is then refused for not being a
 * regular file, instead of blocking the lookup. */
static disk_result disk_read(int dfd, const char *name, const uint8_t *secret,
                             const uint8_t key[32], uint8_t **data, size_t *len) {
    int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) return errno == ELOOP ? DISK_BAD : DISK_NONE;
    struct stat st;
    uint8_t hdr[HEADER_BYTES];
    disk_result r = DISK_BAD;
    uint8_t *payload = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < HEADER_BYTES ||
        !fmr_read_all(fd, hdr, HEADER_BYTES))
        goto out;
    if (memcmp(hdr, MAGIC, 8) || get_u32(hdr + 8) != FMR_JIT_CACHE_FORMAT ||
        get_u32(hdr + 12) != HEADER_BYTES || memcmp(hdr + 16, key, 32))
        goto out;
    uint64_t n = get_u64(hdr + 48);
    /* The length must account for the file exactly: a truncated or
       extended file is rejected before any hashing. */
    if (n != (uint64_t)st.st_size - HEADER_BYTES || n > SIZE_MAX) goto out;
    payload = malloc(n ? (size_t)n : 1);
    if (!payload || !fmr_read_all(fd, payload, (size_t)n)) goto out;
    uint8_t mac[32];
    if (!entry_mac(secret, hdr, payload, (size_t)n, mac) || CRYPTO_memcmp(mac, hdr + 56, 32))
        goto out;
    futimens(fd, NULL); /* recently used, for eviction */
    *data = payload;
    *len = (size_t)n;
    payload = NULL;
    r = DISK_OK;
out:
    free(payload);
    close(fd);
    return r;
}

fmr_cache_hit fmr_jit_cache_get(fmr_jit_cache *c, const uint8_t key[32], const uint8_t **data,
                                size_t *len) {
    pthread_mutex_lock(&c->lock);
    mem_entry *e = mem_find(c, key);
    if (e) {
        c->stats.memory_hits++;
        *data = e->data;
        *len = e->len;
        pthread_mutex_unlock(&c->lock);
        return FMR_CACHE_MEMORY;
    }
    pthread_mutex_unlock(&c->lock);

    int dfd = folder(c);
    char name[80];
    entry_name(key, name);
    uint8_t *payload = NULL;
    size_t n = 0;
    disk_result dr = dfd >= 0 ? disk_read(dfd, name, c->secret, key, &payload, &n) : DISK_NONE;
    if (dr == DISK_BAD) unlinkat(dfd, name, 0); /* never loaded; the caller rebuilds it */

    pthread_mutex_lock(&c->lock);
    fmr_cache_hit hit = FMR_CACHE_MISS;
    if (dr == DISK_OK) {
        /* Another thread may have added it meanwhile: keep one copy. */
        e = mem_find(c, key);
        if (e) {
            free(payload);
        } else {
            e = mem_add(c, key, payload, n);
            if (!e) free(payload);
        }
        if (e) {
            c->stats.disk_hits++;
            *data = e->data;
            *len = e->len;
            hit = FMR_CACHE_DISK;
        }
    }
    if (hit == FMR_CACHE_MISS) {
        if (dr == DISK_BAD) c->stats.corrupt++;
        c->stats.misses++;
    }
    pthread_mutex_unlock(&c->lock);
    return hit;
}

typedef struct file_info {
    char *name;
    off_t size;
    struct timespec mtime;
} file_info;

static int by_mtime(const void *a, const void *b) {
    const file_info *x = a, *y = b;
    if (x->mtime.tv_sec != y->mtime.tv_sec) return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
    if (x->mtime.tv_nsec != y->mtime.tv_nsec) return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
    return strcmp(x->name, y->name);
}

static bool is_stale_tmp(const char *name, const struct stat *st, time_t now) {
    return !strncmp(name, FMR_CACHE_TMP_PREFIX, strlen(FMR_CACHE_TMP_PREFIX)) &&
           S_ISREG(st->st_mode) && st->st_mtim.tv_sec < now - FMR_CACHE_STALE_TMP_SECONDS;
}

/* Removes temporary files older than FMR_CACHE_STALE_TMP_SECONDS (their
 * writers were killed: a live one renames its file within moments), then
 * the least recently used entries until the folder is under the cap.
 * Another process may remove the same files at once: a failed unlink is
 * not an error. Counts what this call removed. */
static void evict(int dfd, uint64_t max_bytes, uint64_t *entries, uint64_t *temps) {
    *entries = *temps = 0;
    int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0) close(fd);
        return;
    }
    file_info *files = NULL;
    size_t n = 0, cap = 0;
    uint64_t total = 0;
    time_t now = time(NULL);
    struct dirent *de;
    size_t slen = strlen(SUFFIX);
    while ((de = readdir(d))) {
        struct stat st;
        if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        if (is_stale_tmp(de->d_name, &st, now)) {
            if (unlinkat(dfd, de->d_name, 0) == 0) ++*temps;
            continue;
        }
        size_t len = strlen(de->d_name);
        if (len <= slen || strcmp(de->d_name + len - slen, SUFFIX) || !S_ISREG(st.st_mode)) continue;
        if (n == cap) {
            size_t nc = cap ? 2 * cap : 64;
            file_info *f = realloc(files, nc * sizeof *f);
            if (!f) break;
            files = f;
            cap = nc;
        }
        char *name = strdup(de->d_name);
        if (!name) break;
        files[n++] = (file_info){name, st.st_size, st.st_mtim};
        total += (uint64_t)st.st_size;
    }
    closedir(d);
    if (total > max_bytes) {
        qsort(files, n, sizeof *files, by_mtime);
        for (size_t i = 0; i < n && total > max_bytes; i++) {
            if (unlinkat(dfd, files[i].name, 0) == 0) ++*entries;
            total -= (uint64_t)files[i].size;
        }
    }
    for (size_t i = 0; i < n; i++) free(files[i].name);
    free(files);
}

static bool disk_write(int dfd, const uint8_t *secret, const uint8_t key[32], const void *data,
                       size_t len) {
    char name[80], tmp[64];
    entry_name(key, name);
    fmr_cache_tmp_name(tmp, sizeof tmp, "");
    uint8_t hdr[HEADER_BYTES] = {0};
    memcpy(hdr, MAGIC, 8);
    put_u32(hdr + 8, FMR_JIT_CACHE_FORMAT);
    put_u32(hdr + 12, HEADER_BYTES);
    memcpy(hdr + 16, key, 32);
    put_u64(hdr + 48, len);
    if (!entry_mac(secret, hdr, data, len, hdr + 56)) return false;
    int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return false;
    bool ok = fmr_write_all(fd, hdr, HEADER_BYTES) && fmr_write_all(fd, data, len);
    ok = (close(fd) == 0) && ok;
    /* rename is atomic within a folder: readers see the old entry (or
       none) or the whole new one, never a half-written file. */
    if (ok) ok = renameat(dfd, tmp, dfd, name) == 0;
    if (!ok) unlinkat(dfd, tmp, 0);
    return ok;
}

bool fmr_jit_cache_put(fmr_jit_cache *c, const uint8_t key[32], const void *data, size_t len) {
    uint8_t *copy = malloc(len ? len : 1);
    if (copy) memcpy(copy, data, len);
    pthread_mutex_lock(&c->lock);
    if (copy && !mem_find(c, key)) {
        if (!mem_add(c, key, copy, len)) free(copy);
    } else {
        free(copy);
    }
    pthread_mutex_unlock(&c->lock);
    if (!c->dir) return copy != NULL;
    int dfd = folder(c);
    if (dfd < 0) return false;
    bool ok = disk_write(dfd, c->secret, key, data, len);
    uint64_t entries = 0, temps = 0;
    if (ok) evict(dfd, c->max_bytes, &entries, &temps);
    pthread_mutex_lock(&c->lock);
    if (ok) c->stats.writes++;
    c->stats.evictions += entries;
    c->stats.stale_temps += temps;
    pthread_mutex_unlock(&c->lock);
    return ok;
}

void fmr_jit_cache_drop_memory(fmr_jit_cache *c) {
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->count; i++) c->entries[i].live = false;
    pthread_mutex_unlock(&c->lock);
}

fmr_jit_cache_stats fmr_jit_cache_get_stats(fmr_jit_cache *c) {
    pthread_mutex_lock(&c->lock);
    fmr_jit_cache_stats s = c->stats;
    pthread_mutex_unlock(&c->lock);
    return s;
}
