/* Memory and disk cache for JIT output; see jit_cache.h for the rules. */
#define _POSIX_C_SOURCE 200809L
#include "runtime/cuda/jit_cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "runtime/cuda/sha256.h"

#define HEADER_BYTES 96
static const char MAGIC[8] = {'F', 'M', 'J', 'I', 'T', 'C', 0, 1};
#define SUFFIX ".fmjit"

typedef struct mem_entry {
    uint8_t key[32];
    uint8_t *data;
    size_t len;
    bool live; /* false once dropped; the bytes stay until the cache is freed */
} mem_entry;

struct fmr_jit_cache {
    pthread_mutex_t lock;
    char *dir;
    uint64_t max_bytes;
    mem_entry *entries;
    size_t count, cap;
    fmr_jit_cache_stats stats;
};

static atomic_uint tmp_counter;

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
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

void fmr_jit_cache_free(fmr_jit_cache *c) {
    if (!c) return;
    for (size_t i = 0; i < c->count; i++) free(c->entries[i].data);
    free(c->entries);
    free(c->dir);
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

char *fmr_jit_cache_entry_path(const fmr_jit_cache *c, const uint8_t key[32]) {
    if (!c || !c->dir) return NULL;
    char hex[65], name[80];
    fmr_sha256_hex(key, hex);
    snprintf(name, sizeof name, "%s" SUFFIX, hex);
    return join(c->dir, name);
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

static bool read_all(int fd, uint8_t *buf, size_t len) {
    while (len) {
        ssize_t n = read(fd, buf, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

static bool write_all(int fd, const uint8_t *buf, size_t len) {
    while (len) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

typedef enum disk_result { DISK_NONE, DISK_OK, DISK_BAD } disk_result;

/* Reads and checks the entry at path; DISK_OK hands back a malloc'd payload. */
static disk_result disk_read(const char *path, const uint8_t key[32], uint8_t **data, size_t *len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return DISK_NONE;
    struct stat st;
    uint8_t hdr[HEADER_BYTES];
    disk_result r = DISK_BAD;
    uint8_t *payload = NULL;
    if (fstat(fd, &st) != 0 || st.st_size < HEADER_BYTES || !read_all(fd, hdr, HEADER_BYTES))
        goto out;
    if (memcmp(hdr, MAGIC, 8) || get_u32(hdr + 8) != FMR_JIT_CACHE_FORMAT ||
        get_u32(hdr + 12) != HEADER_BYTES || memcmp(hdr + 16, key, 32))
        goto out;
    uint64_t n = get_u64(hdr + 48);
    /* The length must account for the file exactly: a truncated or
       extended file is rejected before any hashing. */
    if (n != (uint64_t)st.st_size - HEADER_BYTES || n > SIZE_MAX) goto out;
    payload = malloc(n ? (size_t)n : 1);
    if (!payload || !read_all(fd, payload, (size_t)n)) goto out;
    uint8_t sum[32];
    fmr_sha256(payload, (size_t)n, sum);
    if (memcmp(sum, hdr + 56, 32)) goto out;
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

    char *path = fmr_jit_cache_entry_path(c, key);
    uint8_t *payload = NULL;
    size_t n = 0;
    disk_result dr = path ? disk_read(path, key, &payload, &n) : DISK_NONE;
    if (dr == DISK_BAD) unlink(path); /* never loaded; the caller rebuilds it */
    if (dr == DISK_OK) utimensat(AT_FDCWD, path, NULL, 0); /* recently used */
    free(path);

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

static int mkdir_p(const char *dir) {
    char *p = strdup(dir);
    if (!p) return -1;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            free(p);
            return -1;
        }
        *s = '/';
    }
    int r = (mkdir(p, 0755) == 0 || errno == EEXIST) ? 0 : -1;
    free(p);
    return r;
}

typedef struct file_info {
    char *path;
    off_t size;
    struct timespec mtime;
} file_info;

static int by_mtime(const void *a, const void *b) {
    const file_info *x = a, *y = b;
    if (x->mtime.tv_sec != y->mtime.tv_sec) return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
    if (x->mtime.tv_nsec != y->mtime.tv_nsec) return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
    return strcmp(x->path, y->path);
}

/* Removes the least recently used entries until the folder is under the
 * cap. Another process may remove the same files at once: a failed unlink
 * is not an error. Returns how many this call removed. */
static uint64_t evict(const char *dir, uint64_t max_bytes) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    file_info *files = NULL;
    size_t n = 0, cap = 0;
    uint64_t total = 0, removed = 0;
    struct dirent *de;
    size_t slen = strlen(SUFFIX);
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len <= slen || strcmp(de->d_name + len - slen, SUFFIX)) continue;
        char *path = join(dir, de->d_name);
        struct stat st;
        if (!path || stat(path, &st) != 0) {
            free(path);
            continue;
        }
        if (n == cap) {
            size_t nc = cap ? 2 * cap : 64;
            file_info *f = realloc(files, nc * sizeof *f);
            if (!f) {
                free(path);
                break;
            }
            files = f;
            cap = nc;
        }
        files[n++] = (file_info){path, st.st_size, st.st_mtim};
        total += (uint64_t)st.st_size;
    }
    closedir(d);
    if (total > max_bytes) {
        qsort(files, n, sizeof *files, by_mtime);
        for (size_t i = 0; i < n && total > max_bytes; i++) {
            if (unlink(files[i].path) == 0) removed++;
            total -= (uint64_t)files[i].size;
        }
    }
    for (size_t i = 0; i < n; i++) free(files[i].path);
    free(files);
    return removed;
}

static bool disk_write(fmr_jit_cache *c, const uint8_t key[32], const void *data, size_t len) {
    if (mkdir_p(c->dir) != 0) return false;
    char *path = fmr_jit_cache_entry_path(c, key);
    if (!path) return false;
    char tmpname[128];
    snprintf(tmpname, sizeof tmpname, ".tmp-%ld-%u-%ld", (long)getpid(),
             atomic_fetch_add(&tmp_counter, 1), (long)time(NULL));
    char *tmp = join(c->dir, tmpname);
    bool ok = false;
    int fd = tmp ? open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644) : -1;
    if (fd >= 0) {
        uint8_t hdr[HEADER_BYTES] = {0};
        memcpy(hdr, MAGIC, 8);
        put_u32(hdr + 8, FMR_JIT_CACHE_FORMAT);
        put_u32(hdr + 12, HEADER_BYTES);
        memcpy(hdr + 16, key, 32);
        put_u64(hdr + 48, len);
        fmr_sha256(data, len, hdr + 56);
        ok = write_all(fd, hdr, HEADER_BYTES) && write_all(fd, data, len);
        ok = (close(fd) == 0) && ok;
        /* rename is atomic within a folder: readers see the old entry (or
           none) or the whole new one, never a half-written file. */
        if (ok) ok = rename(tmp, path) == 0;
        if (!ok) unlink(tmp);
    }
    free(tmp);
    free(path);
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
    bool ok = disk_write(c, key, data, len);
    uint64_t removed = ok ? evict(c->dir, c->max_bytes) : 0;
    pthread_mutex_lock(&c->lock);
    if (ok) c->stats.writes++;
    c->stats.evictions += removed;
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
