/* The JIT: SHA-256, the compiled-code cache (hits, misses, corruption,
 * truncation, eviction, concurrent writers), NVRTC compiles of every
 * standard mask's kernel for sm_80 and sm_90 with zero spill bytes, and the
 * device API's choice of device. NVRTC and GPU tests skip with the reason
 * printed when this machine has neither. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "compiler/codegen_cuda.h"
#include "runtime/api/api_internal.h"
#include "runtime/cuda/jit.h"
#include "runtime/cuda/jit_cache.h"
#include "runtime/cuda/sha256.h"

#define FM_MASK_ENV_T fmc_cuda_mask_env
#include "kernels/fm_fwd_params.h"

static void hex_of(const void *data, size_t len, char out[65]) {
    uint8_t d[32];
    fmr_sha256(data, len, d);
    fmr_sha256_hex(d, out);
}

static void test_sha256_vectors(void **state) {
    (void)state;
    char h[65];
    hex_of("", 0, h);
    assert_string_equal(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    hex_of("abc", 3, h);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    hex_of(m, strlen(m), h);
    assert_string_equal(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* One million 'a' (FIPS 180-2's long vector), fed in uneven pieces. */
    static char a[1000];
    memset(a, 'a', sizeof a);
    fmr_sha256_ctx s;
    fmr_sha256_init(&s);
    size_t done = 0;
    for (size_t step = 1; done < 1000000; step = step % 997 + 1) {
        size_t n = step < 1000000 - done ? step : 1000000 - done;
        fmr_sha256_update(&s, a, n);
        done += n;
    }
    uint8_t d[32];
    fmr_sha256_final(&s, d);
    fmr_sha256_hex(d, h);
    assert_string_equal(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
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
    fmr_sha256(s, strlen(s), key);
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

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_cache_hit_miss),
        cmocka_unit_test(test_cache_corruption),
        cmocka_unit_test(test_cache_wrong_key),
        cmocka_unit_test(test_cache_eviction),
        cmocka_unit_test(test_cache_concurrent_processes),
        cmocka_unit_test(test_cache_concurrent_threads),
        cmocka_unit_test(test_cache_dir_from_env),
        cmocka_unit_test(test_nvrtc_every_standard_mask),
        cmocka_unit_test(test_nvrtc_variants_and_keys),
        cmocka_unit_test(test_nvrtc_error_carries_log),
        cmocka_unit_test(test_arch_clamp),
        cmocka_unit_test(test_fmc_ptx_cli),
        cmocka_unit_test(test_device_choice),
    };
    return TU_RUN(tests, argc, argv);
}
