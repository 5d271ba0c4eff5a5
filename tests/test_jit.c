/* The JIT: the compiled-code cache (hits, misses, corruption, truncation,
 * eviction, concurrent writers, and a folder it does not trust: shared
 * folders, planted entries, FIFOs and links at entry names, the secret,
 * stale temporaries), the one loader of optional libraries, NVRTC
 * compiles of every standard mask's kernel for sm_80 and sm_90 with zero
 * spill bytes, and the device API's choice of device. NVRTC and GPU tests
 * skip with the reason printed when this machine has neither. */
#define _POSIX_C_SOURCE 200809L
#define _XOPEN_SOURCE 700 /* nftw */
#include "testutil.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "compiler/codegen_cuda.h"
#include "runtime/api/api_internal.h"
#include "runtime/cuda/cache_folder.h"
#include "runtime/cuda/dynlib.h"
#include "runtime/cuda/jit.h"
#include "runtime/cuda/jit_cache.h"

#define FM_MASK_ENV_T fmc_cuda_mask_env
#include "kernels/fm_fwd_params.h"

static void sha256_of(const void *data, size_t len, uint8_t out[32]) {
    assert_int_equal(EVP_Digest(data, len, out, NULL, EVP_sha256(), NULL), 1);
}

static char *fresh_dir(const char *name) {
    static int n;
    char *path = malloc(1024);
    assert_non_null(path);
    snprintf(path, 1024, "%s/%s-%d", tu_temp_dir(), name, n++);
    return path; /* the cache creates it on its first write */
}

static void key_of(int i, uint8_t key[32]) {
    char s[32];
    snprintf(s, sizeof s, "key %d", i);
    sha256_of(s, strlen(s), key);
}

static void payload_of(int i, char *buf, size_t *len) {
    *len = (size_t)snprintf(buf, 256, "payload %d: %0*d", i, 40 + i % 50, i);
}

static void test_cache_hit_miss(void **state) {
    (void)state;
    char *dir = fresh_dir("cache");
    fmr_jit_cache *c = fmr_jit_cache_create(dir, 0);
    assert_non_null(c);
    uint8_t k1[32], k2[32];
    key_of(1, k1);
    key_of(2, k2);
    const uint8_t *data;
    size_t len;
    assert_int_equal(fmr_jit_cache_get(c, k1, &data, &len), FMR_CACHE_MISS);
    assert_true(fmr_jit_cache_put(c, k1, "hello", 5));
    assert_int_equal(fmr_jit_cache_get(c, k1, &data, &len), FMR_CACHE_MEMORY);
    assert_int_equal(len, 5);
    assert_memory_equal(data, "hello", 5);
    assert_int_equal(fmr_jit_cache_get(c, k2, &data, &len), FMR_CACHE_MISS);
    fmr_jit_cache_stats st = fmr_jit_cache_get_stats(c);
    assert_int_equal(st.memory_hits, 1);
    assert_int_equal(st.misses, 2);
    assert_int_equal(st.writes, 1);
    fmr_jit_cache_free(c);

    /* Another cache (another process, say) over the same folder. */
    c = fmr_jit_cache_create(dir, 0);
    assert_int_equal(fmr_jit_cache_get(c, k1, &data, &len), FMR_CACHE_DISK);
    assert_memory_equal(data, "hello", 5);
    assert_int_equal(fmr_jit_cache_get(c, k1, &data, &len), FMR_CACHE_MEMORY);
    fmr_jit_cache_drop_memory(c);
    assert_int_equal(fmr_jit_cache_get(c, k1, &data, &len), FMR_CACHE_DISK);
    fmr_jit_cache_free(c);

    /* Memory only: nothing reaches a folder. */
    c = fmr_jit_cache_create(NULL, 0);
    assert_null(fmr_jit_cache_dir(c));
    assert_true(fmr_jit_cache_put(c, k2, "x", 1));
    assert_int_equal(fmr_jit_cache_get(c, k2, &data, &len), FMR_CACHE_MEMORY);
    fmr_jit_cache_drop_memory(c);
    assert_int_equal(fmr_jit_cache_get(c, k2, &data, &len), FMR_CACHE_MISS);
    fmr_jit_cache_free(c);
    free(dir);
}

static void rewrite(const char *path, void (*edit)(uint8_t *buf, size_t *len)) {
    size_t len;
    char *buf = tu_read_file(path, &len);
    assert_non_null(buf);
    edit((uint8_t *)buf, &len);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    fclose(f);
    free(buf);
}

static void flip_last(uint8_t *b, size_t *len) { b[*len - 1] ^= 0x40; }
static void flip_header(uint8_t *b, size_t *len) { (void)len; b[60] ^= 1; }
static void drop_last(uint8_t *b, size_t *len) { (void)b; *len -= 1; }
static void cut_header(uint8_t *b, size_t *len) { (void)b; *len = 40; }
static void to_empty(uint8_t *b, size_t *len) { (void)b; *len = 0; }
static void add_byte(uint8_t *b, size_t *len) { (void)b; (*len)++; } /* reads the NUL after */

/* Each kind of damage is detected, the entry is removed and the next put
 * repairs it. */
static void test_cache_corruption(void **state) {
    (void)state;
    void (*edits[])(uint8_t *, size_t *) = {flip_last, flip_header, drop_last, cut_header, to_empty, add_byte};
    for (size_t e = 0; e < sizeof edits / sizeof edits[0]; e++) {
        char *dir = fresh_dir("corrupt");
        fmr_jit_cache *c = fmr_jit_cache_create(dir, 0);
        uint8_t k[32];
        key_of(7, k);
        const char payload[] = "a compiled kernel would be here, 0123456789";
        assert_true(fmr_jit_cache_put(c, k, payload, sizeof payload));
        char *path = fmr_jit_cache_entry_path(c, k);
        assert_non_null(path);
        fmr_jit_cache_free(c);
        rewrite(path, edits[e]);

        c = fmr_jit_cache_create(dir, 0);
        const uint8_t *data;
        size_t len;
        assert_int_equal(fmr_jit_cache_get(c, k, &data, &len), FMR_CACHE_MISS);
        assert_int_equal(fmr_jit_cache_get_stats(c).corrupt, 1);
        struct stat st;
        assert_int_not_equal(stat(path, &st), 0); /* removed, never loaded */
        assert_true(fmr_jit_cache_put(c, k, payload, sizeof payload));
        fmr_jit_cache_free(c);
        c = fmr_jit_cache_create(dir, 0);
        assert_int_equal(fmr_jit_cache_get(c, k, &data, &len), FMR_CACHE_DISK);
        assert_memory_equal(data, payload, sizeof payload);
        fmr_jit_cache_free(c);
        free(path);
        free(dir);
    }
}

/* An entry copied under another key's name is refused (the key is inside). */
static void test_cache_wrong_key(void **state) {
    (void)state;
    char *dir = fresh_dir("wrongkey");
    fmr_jit_cache *c = fmr_jit_cache_create(dir, 0);
    uint8_t k1[32], k2[32];
    key_of(1, k1);
    key_of(2, k2);
    assert_true(fmr_jit_cache_put(c, k1, "one", 3));
    char *p1 = fmr_jit_cache_entry_path(c, k1), *p2 = fmr_jit_cache_entry_path(c, k2);
    assert_int_equal(rename(p1, p2), 0);
    fmr_jit_cache_drop_memory(c);
    const uint8_t *data;
    size_t len;
    assert_int_equal(fmr_jit_cache_get(c, k2, &data, &len), FMR_CACHE_MISS);
    assert_int_equal(fmr_jit_cache_get_stats(c).corrupt, 1);
    fmr_jit_cache_free(c);
    free(p1);
    free(p2);
    free(dir);
}

static size_t count_files(const char *dir, const char *suffix) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name), s = strlen(suffix);
        if (de->d_name[0] == '.' && !strcmp(suffix, ".tmp")) n += !strncmp(de->d_name, ".tmp", 4);
        else if (l > s && !strcmp(de->d_name + l - s, suffix)) n++;
    }
    closedir(d);
    return n;
}

/* Past the cap the least recently used entries go. */
static void test_cache_eviction(void **state) {
    (void)state;
    char *dir = fresh_dir("evict");
    /* Each entry is 96 header bytes + 1000 payload bytes; room for 3. */
    fmr_jit_cache *c = fmr_jit_cache_create(dir, 3 * 1096 + 100);
    static char blob[1000];
    uint8_t k[6][32];
    for (int i = 0; i < 6; i++) key_of(100 + i, k[i]);
    for (int i = 0; i < 3; i++) {
        blob[0] = (char)i;
        assert_true(fmr_jit_cache_put(c, k[i], blob, sizeof blob));
        /* Distinct, ordered modification times. */
        char *p = fmr_jit_cache_entry_path(c, k[i]);
        struct timespec ts[2] = {{1000000 + i * 10, 0}, {1000000 + i * 10, 0}};
        assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
        free(p);
    }
    /* A disk hit refreshes entry 0, so entry 1 is now the oldest. */
    fmr_jit_cache_drop_memory(c);
    const uint8_t *data;
    size_t len;
    assert_int_equal(fmr_jit_cache_get(c, k[0], &data, &len), FMR_CACHE_DISK);
    assert_true(fmr_jit_cache_put(c, k[3], blob, sizeof blob));
    assert_int_equal(count_files(dir, ".fmjit"), 3);
    fmr_jit_cache_drop_memory(c);
    assert_int_equal(fmr_jit_cache_get(c, k[1], &data, &len), FMR_CACHE_MISS);
    assert_int_equal(fmr_jit_cache_get(c, k[0], &data, &len), FMR_CACHE_DISK);
    assert_int_equal(fmr_jit_cache_get(c, k[2], &data, &len), FMR_CACHE_DISK);
    assert_int_equal(fmr_jit_cache_get(c, k[3], &data, &len), FMR_CACHE_DISK);
    assert_true(fmr_jit_cache_get_stats(c).evictions >= 1);
    fmr_jit_cache_free(c);
    free(dir);
}

enum { WRITERS = 4, KEYS = 24 };

/* Every writer stores the same keys with the same contents, in a different
 * order, and reads as it goes: each read must be whole or a miss. */
static int writer(const char *dir, int id) {
    fmr_jit_cache *c = fmr_jit_cache_create(dir, 0);
    if (!c) return 1;
    int bad = 0;
    for (int j = 0; j < KEYS * 3; j++) {
        int i = (j * (2 * id + 1) + id) % KEYS;
        uint8_t k[32];
        key_of(i, k);
        char buf[256];
        size_t len;
        payload_of(i, buf, &len);
        if (j % 3 == 0) fmr_jit_cache_drop_memory(c);
        const uint8_t *data;
        size_t n;
        if (fmr_jit_cache_get(c, k, &data, &n) != FMR_CACHE_MISS) {
            if (n != len || memcmp(data, buf, len)) bad++;
        } else if (!fmr_jit_cache_put(c, k, buf, len)) {
            bad++;
        }
    }
    if (fmr_jit_cache_get_stats(c).corrupt) bad++;
    fmr_jit_cache_free(c);
    return bad;
}

static void check_all_entries(const char *dir) {
    fmr_jit_cache *c = fmr_jit_cache_create(dir, 0);
    for (int i = 0; i < KEYS; i++) {
        uint8_t k[32];
        key_of(i, k);
        char buf[256];
        size_t len;
        payload_of(i, buf, &len);
        const uint8_t *data;
        size_t n;
        assert_int_equal(fmr_jit_cache_get(c, k, &data, &n), FMR_CACHE_DISK);
        assert_int_equal(n, len);
        assert_memory_equal(data, buf, len);
    }
    assert_int_equal(fmr_jit_cache_get_stats(c).corrupt, 0);
    fmr_jit_cache_free(c);
    assert_int_equal(count_files(dir, ".tmp"), 0); /* no temporary left behind */
    assert_int_equal(count_files(dir, ".fmjit"), KEYS);
}

static void test_cache_concurrent_processes(void **state) {
    (void)state;
    char *dir = fresh_dir("procs");
    pid_t pids[WRITERS];
    for (int w = 0; w < WRITERS; w++) {
        pids[w] = fork();
        assert_true(pids[w] >= 0);
        if (pids[w] == 0) _exit(writer(dir, w) ? 1 : 0);
    }
    for (int w = 0; w < WRITERS; w++) {
        int status;
        assert_int_equal(waitpid(pids[w], &status, 0), pids[w]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    check_all_entries(dir);
    free(dir);
}

typedef struct thread_arg {
    fmr_jit_cache *cache;
    int id, bad;
} thread_arg;

static void *thread_main(void *p) {
    thread_arg *a = p;
    for (int j = 0; j < KEYS * 3; j++) {
        int i = (j * (2 * a->id + 1) + a->id) % KEYS;
        uint8_t k[32];
        key_of(i, k);
        char buf[256];
        size_t len;
        payload_of(i, buf, &len);
        const uint8_t *data;
        size_t n;
        if (fmr_jit_cache_get(a->cache, k, &data, &n) != FMR_CACHE_MISS) {
            if (n != len || memcmp(data, buf, len)) a->bad++;
        } else if (!fmr_jit_cache_put(a->cache, k, buf, len)) {
            a->bad++;
        }
        if (j % 5 == 0) fmr_jit_cache_drop_memory(a->cache);
    }
    return NULL;
}

static void test_cache_concurrent_threads(void **state) {
    (void)state;
    char *dir = fresh_dir("threads");
    fmr_jit_cache *c = fmr_jit_cache_create(dir, 0);
    pthread_t t[WRITERS];
    thread_arg args[WRITERS];
    for (int w = 0; w < WRITERS; w++) {
        args[w] = (thread_arg){c, w, 0};
        assert_int_equal(pthread_create(&t[w], NULL, thread_main, &args[w]), 0);
    }
    for (int w = 0; w < WRITERS; w++) {
        pthread_join(t[w], NULL);
        assert_int_equal(args[w].bad, 0);
    }
    assert_int_equal(fmr_jit_cache_get_stats(c).corrupt, 0);
    fmr_jit_cache_free(c);
    check_all_entries(dir);
    free(dir);
}

static void test_cache_dir_from_env(void **state) {
    (void)state;
    char *saved_dir = getenv("FLEXMASK_CACHE_DIR") ? strdup(getenv("FLEXMASK_CACHE_DIR")) : NULL;
    char *saved_xdg = getenv("XDG_CACHE_HOME") ? strdup(getenv("XDG_CACHE_HOME")) : NULL;
    char *saved_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    setenv("FLEXMASK_CACHE_DIR", "/some/where", 1);
    char *d = fmr_jit_cache_dir_from_env();
    assert_string_equal(d, "/some/where");
    free(d);
    setenv("FLEXMASK_CACHE_DIR", "", 1); /* empty: off */
    assert_null(fmr_jit_cache_dir_from_env());
    unsetenv("FLEXMASK_CACHE_DIR");
    setenv("XDG_CACHE_HOME", "/xdg", 1);
    d = fmr_jit_cache_dir_from_env();
    assert_string_equal(d, "/xdg/flexmask");
    free(d);
    unsetenv("XDG_CACHE_HOME");
    setenv("HOME", "/home/u", 1);
    d = fmr_jit_cache_dir_from_env();
    assert_string_equal(d, "/home/u/.cache/flexmask");
    free(d);
    if (saved_dir) setenv("FLEXMASK_CACHE_DIR", saved_dir, 1);
    if (saved_xdg) setenv("XDG_CACHE_HOME", saved_xdg, 1);
    if (saved_home) setenv("HOME", saved_home, 1);
    else unsetenv("HOME");
    free(saved_dir);
    free(saved_xdg);
    free(saved_home);
}

/* ---- a folder the cache does not trust ---------------------------------- */

static unsigned mode_of(const char *path) {
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    return (unsigned)(st.st_mode & 07777);
}

static char *path_in(const char *dir, const char *name) {
    char *p = malloc(strlen(dir) + strlen(name) + 2);
    assert_non_null(p);
    sprintf(p, "%s/%s", dir, name);
    return p;
}

static void write_bytes(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static bool exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

/* The folder, its missing parents and the entries are the user's alone. */
static void test_cache_folder_created_private(void **state) {
    (void)state;
    char *top = fresh_dir("private");
    char *dir = path_in(top, "a/b");
    fmr_jit_cache *c = fmr_jit_cache_create(dir, 0);
    uint8_t k[32];
    key_of(1, k);
    assert_true(fmr_jit_cache_put(c, k, "x", 1));
    assert_int_equal(mode_of(top), 0700);
    assert_int_equal(mode_of(dir), 0700);
    char *entry = fmr_jit_cache_entry_path(c, k);
    assert_int_equal(mode_of(entry), 0600);
    fmr_jit_cache_free(c);
    free(entry);
    free(dir);
    free(top);
}

/* A refused folder: nothing is read from it or written to it, the memory
 * cache still works, and the reason is reported once, as a warning. */
static void expect_refused(const char *dir, const char *message, const char *hint) {
    fmr_jit_cache *c = fmr_jit_cache_create(dir, 0);
    uint8_t k[32];
    key_of(3, k);
    const uint8_t *data;
    size_t len;
    assert_int_equal(fmr_jit_cache_get(c, k, &data, &len), FMR_CACHE_MISS);
    assert_false(fmr_jit_cache_put(c, k, "abc", 3));
    assert_int_equal(fmr_jit_cache_get(c, k, &data, &len), FMR_CACHE_MEMORY);
    assert_int_equal(fmr_jit_cache_get_stats(c).writes, 0);
    fmd_diags dg;
    fmd_diags_init(&dg);
    fmr_jit_cache_report(c, &dg);
    assert_int_equal(dg.count, 1);
    assert_int_equal(dg.items[0].severity, FMD_WARNING);
    assert_string_equal(dg.items[0].message, message);
    assert_non_null(dg.items[0].hint);
    assert_string_equal(dg.items[0].hint, hint);
    fmr_jit_cache_report(c, &dg); /* once: not at every lookup */
    assert_int_equal(fmr_jit_cache_get(c, k, &data, &len), FMR_CACHE_MEMORY);
    fmr_jit_cache_report(c, &dg);
    assert_int_equal(dg.count, 1);
    fmd_diags_clear(&dg);
    fmr_jit_cache_free(c);
}

static const char ELSEWHERE[] = "set FLEXMASK_CACHE_DIR to a folder of your own, or to the empty "
                                "string to turn the disk cache off";

static void test_cache_refuses_shared_folder(void **state) {
    (void)state;
    char msg[2048], hint[2048];
    /* Writable by others (the sticky bit does not help: they could still
       plant entries under names not yet taken). */
    char *dir = fresh_dir("shared");
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(chmod(dir, 01777), 0);
    snprintf(msg, sizeof msg,
             "the JIT cache folder '%s' can be written by other users (mode 777); compiled "
             "kernels are kept in memory only", dir);
    snprintf(hint, sizeof hint,
             "run chmod go-w '%s', or set FLEXMASK_CACHE_DIR to a folder of your own", dir);
    expect_refused(dir, msg, hint);
    assert_int_equal(count_files(dir, ".fmjit"), 0);
    char *secret = path_in(dir, FMR_CACHE_SECRET_FILE);
    assert_false(exists(secret));
    free(secret);
    /* Group-writable is refused too. */
    assert_int_equal(chmod(dir, 0770), 0);
    snprintf(msg, sizeof msg,
             "the JIT cache folder '%s' can be written by other users (mode 770); compiled "
             "kernels are kept in memory only", dir);
    expect_refused(dir, msg, hint);
    free(dir);

    /* Another user's folder. */
    const char *theirs = "/";
    char *made = NULL;
    unsigned owner = 0;
    if (geteuid() == 0) {
        made = fresh_dir("theirs");
        assert_int_equal(mkdir(made, 0700), 0);
        assert_int_equal(chown(made, 65534, 65534), 0);
        theirs = made;
        owner = 65534;
    }
    snprintf(msg, sizeof msg,
             "the JIT cache folder '%s' belongs to another user (uid %u); compiled kernels are "
             "kept in memory only", theirs, owner);
    expect_refused(theirs, msg, ELSEWHERE);
    if (made) assert_int_equal(count_files(made, ".fmjit"), 0);
    free(made);

    /* Not a folder at all. */
    char *file = fresh_dir("file");
    write_bytes(file, "x", 1);
    snprintf(msg, sizeof msg,
             "the JIT cache folder '%s' could not be opened: Not a directory; compiled kernels "
             "are kept in memory only", file);
    expect_refused(file, msg, ELSEWHERE);
    free(file);
}

/* A FIFO at an entry's name used to block every lookup of that key. */
static void test_cache_fifo_entry(void **state) {
    (void)state;
    char *dir = fresh_dir("fifo");
    fmr_jit_cache *c = fmr_jit_cache_create(dir, 0);
    uint8_t k[32], other[32];
    key_of(5, k);
    key_of(6, other);
    assert_true(fmr_jit_cache_put(c, other, "y", 1)); /* creates the folder */
    char *path = fmr_jit_cache_entry_path(c, k);
    assert_int_equal(mkfifo(path, 0600), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(10); /* a blocked open ends the child with SIGALRM */
        const uint8_t *data;
        size_t len;
        bool ok = fmr_jit_cache_get(c, k, &data, &len) == FMR_CACHE_MISS &&
                  fmr_jit_cache_get_stats(c).corrupt == 1;
        _exit(ok ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status)) fail_msg("the lookup hung on a FIFO (signal %d)", WTERMSIG(status));
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_false(exists(path)); /* removed: the next put can write the entry */
    assert_true(fmr_jit_cache_put(c, k, "z", 1));
    fmr_jit_cache_drop_memory(c);
    const uint8_t *data;
    size_t len;
    assert_int_equal(fmr_jit_cache_get(c, k, &data, &len), FMR_CACHE_DISK);
    fmr_jit_cache_free(c);
    free(path);
    free(dir);
}

/* A symbolic link at an entry's name is not followed, even to a valid entry. */
static void test_cache_symlink_entry(void **state) {
    (void)state;
    char *dir = fresh_dir("symlink");
    fmr_jit_cache *c = fmr_jit_cache_create(dir, 0);
    uint8_t k[32];
    key_of(8, k);
    assert_true(fmr_jit_cache_put(c, k, "linked", 6));
    char *path = fmr_jit_cache_entry_path(c, k);
    char *real = path_in(dir, "real-entry");
    assert_int_equal(rename(path, real), 0);
    assert_int_equal(symlink(real, path), 0);
    fmr_jit_cache_drop_memory(c);
    const uint8_t *data;
    size_t len;
    assert_int_equal(fmr_jit_cache_get(c, k, &data, &len), FMR_CACHE_MISS);
    assert_int_equal(fmr_jit_cache_get_stats(c).corrupt, 1);
    assert_false(exists(path));
    assert_true(exists(real)); /* the link went, not what it pointed at */
    fmr_jit_cache_free(c);
    free(real);
    free(path);
    free(dir);
}

/* Whoever does not hold the folder's secret cannot make an entry that
 * verifies: neither one whose checksum is plain SHA-256 nor a valid entry
 * of another cache folder. */
static void test_cache_planted_entry(void **state) {
    (void)state;
    char *dir = fresh_dir("planted");
    fmr_jit_cache *c = fmr_jit_cache_create(dir, 0);
    uint8_t k[32], other[32];
    key_of(9, k);
    key_of(10, other);
    assert_true(fmr_jit_cache_put(c, other, "mine", 4)); /* the folder and its secret */
    char *path = fmr_jit_cache_entry_path(c, k);

    /* Every field right, the checksum computable by anyone. */
    static const char evil[] = "an attacker's CUBIN";
    uint8_t file[96 + sizeof evil] = {'F', 'M', 'J', 'I', 'T', 'C', 0, 1};
    uint32_t fmt = FMR_JIT_CACHE_FORMAT, hdr = 96;
    uint64_t n = sizeof evil;
    for (int i = 0; i < 4; i++) file[8 + i] = (uint8_t)(fmt >> (8 * i));
    for (int i = 0; i < 4; i++) file[12 + i] = (uint8_t)(hdr >> (8 * i));
    memcpy(file + 16, k, 32);
    for (int i = 0; i < 8; i++) file[48 + i] = (uint8_t)(n >> (8 * i));
    memcpy(file + 96, evil, sizeof evil);
    const uint8_t *data;
    size_t len;
    for (int variant = 0; variant < 2; variant++) {
        if (variant == 0) sha256_of(evil, sizeof evil, file + 56); /* the payload's */
        else sha256_of(file, sizeof file, file + 56);              /* header's and payload's */
        write_bytes(path, file, sizeof file);
        fmr_jit_cache_drop_memory(c);
        assert_int_equal(fmr_jit_cache_get(c, k, &data, &len), FMR_CACHE_MISS);
        assert_false(exists(path));
    }

    /* A valid entry, copied from a folder with another secret. */
    char *dir2 = fresh_dir("planted-elsewhere");
    fmr_jit_cache *c2 = fmr_jit_cache_create(dir2, 0);
    assert_true(fmr_jit_cache_put(c2, k, evil, sizeof evil));
    char *path2 = fmr_jit_cache_entry_path(c2, k);
    size_t blen;
    char *bytes = tu_read_file(path2, &blen);
    assert_non_null(bytes);
    write_bytes(path, bytes, blen);
    free(bytes);
    assert_int_equal(fmr_jit_cache_get(c, k, &data, &len), FMR_CACHE_MISS);
    assert_int_equal(fmr_jit_cache_get_stats(c).corrupt, 3);
    assert_false(exists(path));
    /* Its own folder still takes it. */
    fmr_jit_cache_drop_memory(c2);
    assert_int_equal(fmr_jit_cache_get(c2, k, &data, &len), FMR_CACHE_DISK);
    fmr_jit_cache_free(c2);
    fmr_jit_cache_free(c);
    free(path2);
    free(path);
    free(dir2);
    free(dir);
}

static void secret_refused(const char *dir, const char *why) {
    char msg[2048];
    snprintf(msg, sizeof msg,
             "the JIT cache secret '%s/" FMR_CACHE_SECRET_FILE "' %s; compiled kernels are kept "
             "in memory only", dir, why);
    expect_refused(dir, msg,
                   "delete it and a new one is made (entries it signed are then compiled again)");
}

/* The secret: 32 random bytes, a regular file of the user's, mode 0600,
 * and refused (with the folder) when it is anything else. */
static void test_cache_secret_file(void **state) {
    (void)state;
    char *dir = fresh_dir("secret"), *dir2 = fresh_dir("secret");
    uint8_t k[32];
    key_of(11, k);
    fmr_jit_cache *c = fmr_jit_cache_create(dir, 0);
    fmr_jit_cache *c2 = fmr_jit_cache_create(dir2, 0);
    assert_true(fmr_jit_cache_put(c, k, "s", 1));
    assert_true(fmr_jit_cache_put(c2, k, "s", 1));
    fmr_jit_cache_free(c);
    fmr_jit_cache_free(c2);
    char *secret = path_in(dir, FMR_CACHE_SECRET_FILE);
    char *secret2 = path_in(dir2, FMR_CACHE_SECRET_FILE);
    struct stat st;
    assert_int_equal(lstat(secret, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(st.st_uid, geteuid());
    assert_int_equal(st.st_size, FMR_CACHE_SECRET_BYTES);
    size_t n1, n2;
    char *s1 = tu_read_file(secret, &n1), *s2 = tu_read_file(secret2, &n2);
    assert_int_equal(n1, 32);
    assert_int_equal(n2, 32);
    assert_memory_not_equal(s1, s2, 32); /* random, not derived from anything */

    assert_int_equal(chmod(secret, 0640), 0);
    secret_refused(dir, "can be read or written by other users (mode 640)");
    assert_int_equal(chmod(secret, 0600), 0);
    if (geteuid() == 0) {
        assert_int_equal(chown(secret, 65534, 65534), 0);
        secret_refused(dir, "belongs to another user (uid 65534)");
        assert_int_equal(chown(secret, 0, 0), 0);
    }
    /* A link to a file that would pass every other check. */
    char *elsewhere = path_in(dir, "copy-of-secret");
    assert_int_equal(rename(secret, elsewhere), 0);
    assert_int_equal(symlink(elsewhere, secret), 0);
    secret_refused(dir, "is a symbolic link");
    assert_int_equal(unlink(secret), 0);
    assert_int_equal(mkfifo(secret, 0600), 0); /* and no hang */
    secret_refused(dir, "is not a regular file");
    assert_int_equal(unlink(secret), 0);
    write_bytes(secret, s1, 5);
    assert_int_equal(chmod(secret, 0600), 0);
    secret_refused(dir, "holds 5 bytes, not 32");
    /* Put back, the old entry verifies again. */
    assert_int_equal(rename(elsewhere, secret), 0);
    c = fmr_jit_cache_create(dir, 0);
    const uint8_t *data;
    size_t len;
    assert_int_equal(fmr_jit_cache_get(c, k, &data, &len), FMR_CACHE_DISK);
    fmr_jit_cache_free(c);
    free(s1);
    free(s2);
    free(elsewhere);
    free(secret);
    free(secret2);
    free(dir);
    free(dir2);
}

/* Processes that find no secret and make one at the same moment end up
 * with the same one: every entry any of them wrote verifies for a fresh
 * cache, and one secret file is left, with no temporaries. */
static void test_cache_secret_race(void **state) {
    (void)state;
    enum { ROUNDS = 6, PROCS = 6 };
    for (int round = 0; round < ROUNDS; round++) {
        char *dir = fresh_dir("race");
        assert_int_equal(mkdir(dir, 0700), 0); /* so that all go for the secret at once */
        int go[2];
        assert_int_equal(pipe(go), 0);
        pid_t pids[PROCS];
        for (int p = 0; p < PROCS; p++) {
            pids[p] = fork();
            assert_true(pids[p] >= 0);
            if (pids[p] == 0) {
                close(go[1]);
                char b;
                while (read(go[0], &b, 1) < 0 && errno == EINTR) {
                }
                fmr_jit_cache *c = fmr_jit_cache_create(dir, 0);
                uint8_t k[32];
                key_of(1000 + p, k);
                char buf[256];
                size_t len;
                payload_of(p, buf, &len);
                _exit(c && fmr_jit_cache_put(c, k, buf, len) ? 0 : 1);
            }
        }
        close(go[0]);
        close(go[1]); /* every child's read returns now */
        for (int p = 0; p < PROCS; p++) {
            int status;
            assert_int_equal(waitpid(pids[p], &status, 0), pids[p]);
            assert_true(WIFEXITED(status));
            assert_int_equal(WEXITSTATUS(status), 0);
        }
        fmr_jit_cache *c = fmr_jit_cache_create(dir, 0);
        for (int p = 0; p < PROCS; p++) {
            uint8_t k[32];
            key_of(1000 + p, k);
            const uint8_t *data;
            size_t n;
            assert_int_equal(fmr_jit_cache_get(c, k, &data, &n), FMR_CACHE_DISK);
        }
        assert_int_equal(fmr_jit_cache_get_stats(c).corrupt, 0);
        fmr_jit_cache_free(c);
        assert_int_equal(count_files(dir, ".tmp"), 0);
        assert_int_equal(count_files(dir, FMR_CACHE_SECRET_FILE), 0); /* the name, not a suffix */
        char *secret = path_in(dir, FMR_CACHE_SECRET_FILE);
        assert_int_equal(mode_of(secret), 0600);
        free(secret);
        free(dir);
    }
}

/* Temporaries of writers killed mid-write are removed once they are an
 * hour old; a live writer's fresh one is left alone. */
static void test_cache_stale_temporaries(void **state) {
    (void)state;
    char *dir = fresh_dir("stale");
    fmr_jit_cache *c = fmr_jit_cache_create(dir, 0);
    uint8_t k[32];
    key_of(20, k);
    assert_true(fmr_jit_cache_put(c, k, "a", 1));
    char *old_entry = path_in(dir, FMR_CACHE_TMP_PREFIX "4242-7");
    char *old_secret = path_in(dir, FMR_CACHE_TMP_PREFIX "secret-4242-8");
    char *fresh = path_in(dir, FMR_CACHE_TMP_PREFIX "4243-0");
    char *just_fresh = path_in(dir, FMR_CACHE_TMP_PREFIX "4243-1");
    write_bytes(old_entry, "half an entry", 13);
    write_bytes(old_secret, "half", 4);
    write_bytes(fresh, "being written", 13);
    write_bytes(just_fresh, "being written", 13);
    time_t now = time(NULL);
    struct timespec old[2] = {{now - FMR_CACHE_STALE_TMP_SECONDS - 60, 0},
                              {now - FMR_CACHE_STALE_TMP_SECONDS - 60, 0}};
    struct timespec recent[2] = {{now - FMR_CACHE_STALE_TMP_SECONDS + 300, 0},
                                 {now - FMR_CACHE_STALE_TMP_SECONDS + 300, 0}};
    assert_int_equal(utimensat(AT_FDCWD, old_entry, old, 0), 0);
    assert_int_equal(utimensat(AT_FDCWD, old_secret, old, 0), 0);
    assert_int_equal(utimensat(AT_FDCWD, just_fresh, recent, 0), 0);
    key_of(21, k);
    assert_true(fmr_jit_cache_put(c, k, "b", 1)); /* each write tidies up */
    assert_false(exists(old_entry));
    assert_false(exists(old_secret));
    assert_true(exists(fresh));
    assert_true(exists(just_fresh));
    assert_int_equal(fmr_jit_cache_get_stats(c).stale_temps, 2);
    assert_int_equal(fmr_jit_cache_get_stats(c).evictions, 0);
    assert_int_equal(unlink(fresh), 0);
    assert_int_equal(unlink(just_fresh), 0);
    fmr_jit_cache_free(c);
    free(old_entry);
    free(old_secret);
    free(fresh);
    free(just_fresh);
    free(dir);
}

/* ---- optional libraries -------------------------------------------------- */

typedef struct libm_table {
    double (*cos)(double);
    double (*sqrt)(double);
} libm_table;

/* The one rule both NVRTC and the driver load by: the variable's file
 * alone when it is set, else the first soname that loads; a symbol may
 * have an older name; a missing one leaves the table untouched. */
static void test_dynlib_one_rule(void **state) {
    (void)state;
    static const char *const sonames[] = {"libflexmask-no-such.so.1", "libm.so.6"};
    static const char *const none[] = {"libflexmask-no-such.so.1", "libflexmask-no-such.so"};
    const fmr_dynlib_sym syms[] = {{"cos", NULL, offsetof(libm_table, cos)},
                                   {"flexmask_no_such_sqrt", "sqrt", offsetof(libm_table, sqrt)}};
    const fmr_dynlib_sym missing[] = {{"cos", NULL, offsetof(libm_table, cos)},
                                      {"flexmask_no_such_symbol", NULL, offsetof(libm_table, sqrt)}};
    fmr_dynlib_spec spec = {"FM_TEST_DYNLIB", sonames, 2, syms, 2};
    libm_table t = {0};
    void *h;
    char err[512];
    unsetenv("FM_TEST_DYNLIB");
    assert_int_equal(fmr_dynlib_load(&spec, &t, &h, err, sizeof err), FMR_DYNLIB_OK);
    assert_non_null(h);
    assert_true(t.cos(0.0) == 1.0);
    assert_true(t.sqrt(9.0) == 3.0);
    dlclose(h);

    setenv("FM_TEST_DYNLIB", "", 1); /* empty: as if unset */
    memset(&t, 0, sizeof t);
    assert_int_equal(fmr_dynlib_load(&spec, &t, &h, err, sizeof err), FMR_DYNLIB_OK);
    dlclose(h);

    /* Set: that file and nothing else, though libm.so.6 would load. */
    setenv("FM_TEST_DYNLIB", "/nonexistent/libm-elsewhere.so", 1);
    memset(&t, 0, sizeof t);
    assert_int_equal(fmr_dynlib_load(&spec, &t, &h, err, sizeof err), FMR_DYNLIB_NOT_FOUND);
    assert_null(h);
    assert_null(t.cos);
    assert_non_null(strstr(err, "FM_TEST_DYNLIB=/nonexistent/libm-elsewhere.so: "));
    setenv("FM_TEST_DYNLIB", "libm.so.6", 1);
    assert_int_equal(fmr_dynlib_load(&spec, &t, &h, err, sizeof err), FMR_DYNLIB_OK);
    dlclose(h);
    unsetenv("FM_TEST_DYNLIB");

    /* Nothing loads: the first soname's error is the one reported. */
    spec.sonames = none;
    memset(&t, 0, sizeof t);
    assert_int_equal(fmr_dynlib_load(&spec, &t, &h, err, sizeof err), FMR_DYNLIB_NOT_FOUND);
    assert_non_null(strstr(err, "libflexmask-no-such.so.1"));

    spec.sonames = sonames;
    spec.syms = missing;
    assert_int_equal(fmr_dynlib_load(&spec, &t, &h, err, sizeof err), FMR_DYNLIB_MISSING_SYMBOL);
    assert_string_equal(err, "flexmask_no_such_symbol");
    assert_null(h);
    assert_null(t.cos); /* not a pointer into a library that was closed again */
}

/* FLEXMASK_NVRTC_LIBRARY names the file to load instead of the defaults:
 * a wrong one is an error that names it, not a silent fallback. */
static void test_nvrtc_library_override(void **state) {
    (void)state;
    char cmd[2048], *err = NULL;
    snprintf(cmd, sizeof cmd,
             "FLEXMASK_NVRTC_LIBRARY=/nonexistent/libnvrtc.so '%s' ptx "
             "'%s/examples/masks/causal.mask' --arch sm_80", FM_FMC_PATH, FM_SOURCE_DIR);
    int rc = tu_run(cmd, NULL, &err);
    assert_int_equal(rc, 1);
#ifdef FM_HAVE_CUDA
    assert_non_null(strstr(err, "FLEXMASK_NVRTC_LIBRARY=/nonexistent/libnvrtc.so: "));
#else
    printf("# built without CUDA: only the exit status is checked\n");
#endif
    free(err);
}

/* ---- NVRTC -------------------------------------------------------------- */

static bool need_nvrtc(void) {
    char why[512];
    if (fmr_nvrtc_available(why, sizeof why)) return true;
    printf("# SKIPPED (no NVRTC): %s\n", why);
    return false;
}

/* A cache kept in the build folder, so reruns skip the slow compiles; the
 * first run of a build (and every change to the kernel) compiles for real. */
static fmr_jit_cache *test_cache(void) {
    static fmr_jit_cache *c;
    if (!c) c = fmr_jit_cache_create(FM_BINARY_DIR "/jit-test-cache", 0);
    return c;
}

static char *mask_text(const char *file, size_t *len) {
    char path[1024];
    snprintf(path, sizeof path, "%s/examples/masks/%s", FM_SOURCE_DIR, file);
    fm_program *prog;
    fm_mask *mask;
    if (fm_compile_file(path, NULL, &prog) != FM_OK) fail_msg("%s does not compile", path);
    assert_int_equal(fm_mask_select(prog, NULL, NULL, &mask), FM_OK);
    char *text = fmc_codegen_cuda(mask->shared->program, len, NULL);
    assert_non_null(text);
    fm_mask_free(mask);
    fm_program_free(prog);
    return text;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct arch_job {
    int arch;
    char **files;
    size_t n;
    char **texts;
    size_t *lens;
    char error[2048]; /* the first failure, reported by the main thread */
} arch_job;

/* Checks one binary without cmocka's asserts (this runs on a worker
 * thread); returns false with a message on the first problem. */
static bool binary_ok(const fmr_jit_binary *b, char *err, size_t n) {
    fmr_kernel_resources r[4];
    int k = fmr_cubin_resources(b->cubin, b->cubin_len, r, 4);
    int64_t ss = -1, sl = -1;
    if (k != 1 || strcmp(r[0].name, FMR_FWD_KERNEL_NAME))
        snprintf(err, n, "expected one kernel %s in the CUBIN, found %d", FMR_FWD_KERNEL_NAME, k);
    else if (!fmr_log_spills(b->log, FMR_FWD_KERNEL_NAME, &ss, &sl))
        snprintf(err, n, "ptxas's report is missing from the log");
    else if (ss || sl || r[0].frame_bytes)
        snprintf(err, n, "%lld bytes spill stores, %lld spill loads, %lld stack frame",
                 (long long)ss, (long long)sl, (long long)r[0].frame_bytes);
    else if (r[0].registers <= 0 || r[0].registers > 255 || r[0].max_threads != FM_FWD_THREADS)
        snprintf(err, n, "registers %d, max threads %lld", r[0].registers, (long long)r[0].max_threads);
    else if (r[0].param_bytes != (int64_t)sizeof(fm_fwd_params))
        snprintf(err, n, "kernel params are %lld bytes, the host struct %zu",
                 (long long)r[0].param_bytes, sizeof(fm_fwd_params));
    else
        return true;
    return false;
}

static void *arch_main(void *p) {
    arch_job *j = p;
    for (size_t i = 0; i < j->n && !j->error[0]; i++) {
        fmr_kernel_config cfg = {.head_dim = 128, .bf16 = true, .arch = j->arch};
        fmr_jit_binary b;
        fmd_diags dg;
        fmd_diags_init(&dg);
        fm_status st = fmr_jit_compile(test_cache(), j->texts[i], j->lens[i], &cfg, true, &b, &dg);
        char why[1024] = "";
        if (st != FM_OK)
            snprintf(why, sizeof why, "%s: %s", fm_status_string(st), dg.count ? dg.items[0].message : "");
        else if (b.arch != j->arch)
            snprintf(why, sizeof why, "built for sm_%d", b.arch);
        else
            binary_ok(&b, why, sizeof why);
        if (why[0]) snprintf(j->error, sizeof j->error, "%s for sm_%d: %s", j->files[i], j->arch, why);
        fmd_diags_clear(&dg);
    }
    return NULL;
}

/* sm_80 and sm_90 compile on two threads at once: NVRTC and the cache are
 * thread-safe, and the 2-core CI machine does both in the time of one. */
static void test_nvrtc_every_standard_mask(void **state) {
    (void)state;
    if (!need_nvrtc()) skip();
    DIR *d = opendir(FM_SOURCE_DIR "/examples/masks");
    assert_non_null(d);
    char *files[64], *texts[64];
    size_t lens[64], n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 64) {
        size_t l = strlen(de->d_name);
        if (l > 5 && !strcmp(de->d_name + l - 5, ".mask")) files[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(files, n, sizeof *files, cmp_str);
    assert_true(n >= 10);
    /* Under the sanitizers NVRTC's own work (not instrumented, and the
       same as in the plain run that checks every mask) is cut to a few
       masks to keep the run short. */
    if (tu_sanitizer_run()) {
        for (size_t i = 4; i < n; i++) free(files[i]);
        n = 4;
    }
    (void)test_cache(); /* created before the threads start */
    for (size_t i = 0; i < n; i++) texts[i] = mask_text(files[i], &lens[i]);
    arch_job jobs[2] = {{.arch = 80, .files = files, .n = n, .texts = texts, .lens = lens},
                        {.arch = 90, .files = files, .n = n, .texts = texts, .lens = lens}};
    pthread_t t[2];
    for (int k = 0; k < 2; k++) assert_int_equal(pthread_create(&t[k], NULL, arch_main, &jobs[k]), 0);
    for (int k = 0; k < 2; k++) pthread_join(t[k], NULL);
    for (int k = 0; k < 2; k++)
        if (jobs[k].error[0]) fail_msg("%s", jobs[k].error);
    printf("# %zu masks compiled for sm_80 and sm_90: no spills, no stack frame\n", n);
    for (size_t i = 0; i < n; i++) free(texts[i]), free(files[i]);
}

/* The other variants (fp16, head dim 64, 32-bit mask arithmetic) compile
 * too, and every option is part of the key. */
static void test_nvrtc_variants_and_keys(void **state) {
    (void)state;
    if (!need_nvrtc()) skip();
    size_t len;
    char *text = mask_text("document.mask", &len);
    fmr_kernel_config cfgs[] = {
        {.head_dim = 128, .bf16 = true, .arch = 90},
        {.head_dim = 64, .bf16 = false, .int32 = true, .arch = 90},
        {.head_dim = 128, .bf16 = false, .arch = 90},
    };
    uint8_t keys[3][32];
    for (int i = 0; i < 3; i++) {
        fmr_jit_binary b;
        assert_int_equal(fmr_jit_compile(test_cache(), text, len, &cfgs[i], false, &b, NULL), FM_OK);
        char why[512];
        if (!binary_ok(&b, why, sizeof why)) fail_msg("document variant %d: %s", i, why);
        memcpy(keys[i], b.key, 32);
        /* Asked again: from memory. */
        assert_int_equal(fmr_jit_compile(test_cache(), text, len, &cfgs[i], false, &b, NULL), FM_OK);
        assert_int_equal(b.hit, FMR_CACHE_MEMORY);
        assert_memory_equal(b.key, keys[i], 32);
    }
    assert_memory_not_equal(keys[0], keys[1], 32);
    assert_memory_not_equal(keys[0], keys[2], 32);
    assert_memory_not_equal(keys[1], keys[2], 32);
    /* A different mask text is a different key. */
    fmr_jit_binary b;
    size_t len2;
    char *text2 = mask_text("causal.mask", &len2);
    assert_int_equal(fmr_jit_compile(test_cache(), text2, len2, &cfgs[0], false, &b, NULL), FM_OK);
    assert_memory_not_equal(b.key, keys[0], 32);
    free(text2);
    free(text);

    /* Head dims other than 64 and 128 are refused with a clear message. */
    fmr_kernel_config bad = {.head_dim = 96, .bf16 = true, .arch = 90};
    fmd_diags dg;
    fmd_diags_init(&dg);
    assert_int_equal(fmr_jit_compile(test_cache(), "x", 1, &bad, false, &b, &dg), FM_ERR_UNSUPPORTED);
    assert_non_null(strstr(dg.items[0].message, "head dims 64 and 128"));
    fmd_diags_clear(&dg);
}

static void test_nvrtc_error_carries_log(void **state) {
    (void)state;
    if (!need_nvrtc()) skip();
    const char *broken = "this is not CUDA;\n";
    fmr_kernel_config cfg = {.head_dim = 64, .bf16 = true, .arch = 90};
    fmr_jit_cache *c = fmr_jit_cache_create(NULL, 0);
    fmd_diags dg;
    fmd_diags_init(&dg);
    fmr_jit_binary b;
    assert_int_equal(fmr_jit_compile(c, broken, strlen(broken), &cfg, false, &b, &dg), FM_ERR_CUDA);
    assert_true(dg.count >= 1);
    assert_non_null(strstr(dg.items[0].message, "NVRTC failed"));
    assert_non_null(strstr(dg.items[0].message, "error"));
    assert_null(strstr(dg.items[0].message, "    1| this is not CUDA"));
    assert_non_null(dg.items[0].hint); /* says how to see the source */
    fmd_diags_clear(&dg);
    assert_int_equal(fmr_jit_compile(c, broken, strlen(broken), &cfg, true, &b, &dg), FM_ERR_CUDA);
    assert_non_null(strstr(dg.items[0].message, "    1| this is not CUDA;"));
    fmd_diags_clear(&dg);
    fmr_jit_cache_free(c);
}

/* A caller that passes no diagnostics (bench/jit.c does) still gets a
 * status, never a crash, on every failure path after NVRTC loads. */
static void test_compile_errors_without_diags(void **state) {
    (void)state;
    if (!need_nvrtc()) skip();
    const char *broken = "this is not CUDA;\n";
    fmr_jit_cache *c = fmr_jit_cache_create(NULL, 0);
    fmr_jit_binary b;
    fmr_kernel_config bad_dim = {.head_dim = 96, .bf16 = true, .arch = 90};
    assert_int_equal(fmr_jit_compile(c, broken, strlen(broken), &bad_dim, false, &b, NULL),
                     FM_ERR_UNSUPPORTED);
    fmr_kernel_config old_arch = {.head_dim = 64, .bf16 = true, .arch = 70};
    assert_int_equal(fmr_jit_compile(c, broken, strlen(broken), &old_arch, false, &b, NULL),
                     FM_ERR_UNSUPPORTED);
    fmr_kernel_config ok = {.head_dim = 64, .bf16 = true, .arch = 90};
    assert_int_equal(fmr_jit_compile(c, broken, strlen(broken), &ok, false, &b, NULL), FM_ERR_CUDA);
    fmr_jit_cache_free(c);
}

static void test_arch_clamp(void **state) {
    (void)state;
    if (!need_nvrtc()) skip();
    int top = fmr_jit_clamp_arch(10000);
    assert_true(top >= 90);
    assert_int_equal(fmr_jit_clamp_arch(90), 90);
    assert_int_equal(fmr_jit_clamp_arch(89), 89);
    /* A device newer than this NVRTC knows gets the newest it supports. */
    assert_int_equal(fmr_jit_clamp_arch(top + 1), top);
    char *saved = getenv("FLEXMASK_CUDA_ARCH") ? strdup(getenv("FLEXMASK_CUDA_ARCH")) : NULL;
    setenv("FLEXMASK_CUDA_ARCH", "sm_80", 1);
    assert_int_equal(fmr_jit_default_arch(), 80);
    unsetenv("FLEXMASK_CUDA_ARCH");
    assert_int_equal(fmr_jit_default_arch(), 90);
    if (saved) setenv("FLEXMASK_CUDA_ARCH", saved, 1);
    free(saved);
}

/* ---- fmc ptx ---------------------------------------------------------------- */

static void test_fmc_ptx_cli(void **state) {
    (void)state;
    char cmd[2048], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof cmd, "'%s' ptx '%s/examples/masks/sliding_window.mask' --arch sm_80", FM_FMC_PATH,
             FM_SOURCE_DIR);
    int rc = tu_run(cmd, &out, &err);
    char why[512];
    if (!fmr_nvrtc_available(why, sizeof why)) {
        /* Without NVRTC (or without CUDA support) it says so and exits 1. */
        assert_int_equal(rc, 1);
        assert_true(strlen(err) > 0);
        printf("# SKIPPED the PTX checks (no NVRTC): %s\n", why);
        free(out), free(err);
        skip();
    }
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, ".target sm_80"));
    assert_non_null(strstr(out, ".entry fm_flash_fwd"));
    const char *res = strstr(out, "// kernel fm_flash_fwd: registers ");
    assert_non_null(res);
    assert_non_null(strstr(res, "stack frame 0 bytes, spill stores 0 bytes, spill loads 0 bytes"));
    free(out), free(err);
    out = err = NULL;
    /* Bad usage is exit 2; an architecture the kernel cannot use is 1. */
    snprintf(cmd, sizeof cmd, "'%s' ptx '%s/examples/masks/causal.mask' --arch nonsense", FM_FMC_PATH, FM_SOURCE_DIR);
    assert_int_equal(tu_run(cmd, NULL, NULL), 2);
    snprintf(cmd, sizeof cmd, "'%s' ptx '%s/examples/masks/causal.mask' --arch sm_70", FM_FMC_PATH, FM_SOURCE_DIR);
    assert_int_equal(tu_run(cmd, NULL, &err), 1);
    assert_non_null(strstr(err, "sm_80 or newer"));
    free(err);
}

/* The refusal reaches the user through the diagnostics, once: fmc ptx
 * succeeds, and says why it kept the kernel in memory only. */
static void test_fmc_ptx_cache_refused(void **state) {
    (void)state;
    if (!need_nvrtc()) skip();
    char *dir = fresh_dir("fmc-shared");
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(chmod(dir, 0777), 0);
    char cmd[2048], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof cmd, "FLEXMASK_CACHE_DIR='%s' '%s' ptx '%s/examples/masks/causal.mask' --arch sm_80",
             dir, FM_FMC_PATH, FM_SOURCE_DIR);
    assert_int_equal(tu_run(cmd, &out, &err), 0);
    char want[4096];
    snprintf(want, sizeof want,
             "warning: fmc ptx: the JIT cache folder '%s' can be written by other users (mode "
             "777); compiled kernels are kept in memory only\n"
             "hint: run chmod go-w '%s', or set FLEXMASK_CACHE_DIR to a folder of your own\n",
             dir, dir);
    assert_string_equal(err, want);
    assert_non_null(strstr(out, ".entry fm_flash_fwd"));
    assert_int_equal(count_files(dir, ".fmjit"), 0);
    free(out), free(err);
    free(dir);
}

/* ---- device API (GPU or not) --------------------------------------------- */

static void test_device_choice(void **state) {
    (void)state;
    fm_device *dev = NULL;
    assert_int_equal(fm_device_open(FM_DEVICE_AUTO, NULL, &dev), FM_OK);
    assert_non_null(fm_device_name(dev));
    assert_true(strlen(fm_device_reason(dev)) > 0);
    printf("# auto device: %s (%s)\n", fm_device_name(dev), fm_device_reason(dev));
    char why[512] = "";
    bool cuda = fm_cuda_available(why, sizeof why);
    assert_int_equal(fm_device_get_kind(dev), cuda ? FM_DEVICE_CUDA : FM_DEVICE_CPU);
    fm_device_free(dev);

    fm_diagnostics *dg = fm_diagnostics_create();
    fm_status st = fm_device_open(FM_DEVICE_CUDA, dg, &dev);
    if (cuda) {
        assert_int_equal(st, FM_OK);
        fm_device_free(dev);
    } else {
        /* Asking for CUDA without one is an error that says why. */
        assert_int_equal(st, FM_ERR_UNSUPPORTED);
        fm_diagnostic m;
        assert_int_equal(fm_diagnostics_get(dg, 0, &m), FM_OK);
        assert_non_null(strstr(m.message, "unavailable"));
        assert_true(strlen(why) > 0);
        assert_non_null(strstr(m.message, why));
    }
    fm_diagnostics_free(dg);
    assert_int_equal(fm_device_open(FM_DEVICE_CPU, NULL, &dev), FM_OK);
    assert_int_equal(fm_device_get_kind(dev), FM_DEVICE_CPU);
    fm_device_free(dev);
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cache_hit_miss),
        cmocka_unit_test(test_cache_corruption),
        cmocka_unit_test(test_cache_wrong_key),
        cmocka_unit_test(test_cache_eviction),
        cmocka_unit_test(test_cache_concurrent_processes),
        cmocka_unit_test(test_cache_concurrent_threads),
        cmocka_unit_test(test_cache_dir_from_env),
        cmocka_unit_test(test_cache_folder_created_private),
        cmocka_unit_test(test_cache_refuses_shared_folder),
        cmocka_unit_test(test_cache_fifo_entry),
        cmocka_unit_test(test_cache_symlink_entry),
        cmocka_unit_test(test_cache_planted_entry),
        cmocka_unit_test(test_cache_secret_file),
        cmocka_unit_test(test_cache_secret_race),
        cmocka_unit_test(test_cache_stale_temporaries),
        cmocka_unit_test(test_dynlib_one_rule),
        cmocka_unit_test(test_nvrtc_library_override),
        cmocka_unit_test(test_nvrtc_every_standard_mask),
        cmocka_unit_test(test_nvrtc_variants_and_keys),
        cmocka_unit_test(test_nvrtc_error_carries_log),
        cmocka_unit_test(test_compile_errors_without_diags),
        cmocka_unit_test(test_arch_clamp),
        cmocka_unit_test(test_fmc_ptx_cli),
        cmocka_unit_test(test_fmc_ptx_cache_refused),
        cmocka_unit_test(test_device_choice),
    };
    int rc = TU_RUN(tests, argc, argv);
    /* The cache folders made here (some of them chmod'ed or chown'ed). */
    nftw(tu_temp_dir(), remove_one, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}
