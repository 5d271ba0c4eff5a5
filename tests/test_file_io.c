/* Output files (runtime/interop/file_io.c) and every writer on top of it
 * (.npy, dense .npy, safetensors): a failed write leaves the previous file
 * byte for byte and no temporary behind; a symbolic link is followed and
 * kept; a FIFO is written directly and never removed; new files get the
 * umask's mode, replaced ones keep theirs. Write failures come from
 * RLIMIT_FSIZE in a forked child (SIGXFSZ ignored) or a FIFO whose reader
 * leaves early, never from a device node. */
#define _GNU_SOURCE /* SIGXFSZ, mkfifo, symlink */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "flexmask.h"
#include "runtime/interop/file_io.h"
#include "runtime/interop/npy.h"
#include "testutil.h"

/* A fresh folder for one test (removed, with what is left in it, by
 * clean_dir). */
static void make_dir(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", tu_temp_dir(), name);
    assert_int_equal(mkdir(buf, 0700), 0);
}

/* Names in dir starting with '.', other than . and .. (temporaries). */
static int hidden_files(const char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] == '.' && strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            print_message("left behind: %s/%s\n", dir, e->d_name);
            n++;
        }
    closedir(d);
    return n;
}

static void clean_dir(const char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    char path[1024];
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    assert_int_equal(rmdir(dir), 0);
}

static void put_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void assert_file_is(const char *path, const void *data, size_t n) {
    size_t len = 0;
    char *have = tu_read_file(path, &len);
    assert_non_null(have);
    assert_int_equal(len, n);
    assert_memory_equal(have, data, n);
    free(have);
}

/* A writer run in a child process under a file size limit. */
typedef enum { W_NPY, W_DENSE, W_SAFETENSORS } writer;

static fm_blockmask *small_blockmask(int64_t len) {
    static const char text[] = "mask m = kv <= q;\n";
    fm_program *p = NULL;
    fm_mask *m = NULL;
    fm_bindings *b = NULL;
    fm_blockmask *bm = NULL;
    fm_build_options o = {.struct_size = sizeof(fm_build_options), .block_q = 16, .block_kv = 16};
    fm_shape s = {1, 1, len, len};
    if (fm_compile_string("w.mask", text, strlen(text), NULL, &p) == FM_OK &&
        fm_mask_select(p, NULL, NULL, &m) == FM_OK && fm_bindings_create(m, &b) == FM_OK)
        fm_blockmask_build(m, b, s, &o, NULL, &bm);
    fm_bindings_free(b);
    fm_mask_free(m);
    fm_program_free(p);
    return bm;
}

/* Writes with w to path (data of about 1 MiB) and returns the status and
 * the first message (in msg). */
static fm_status write_with(writer w, const char *path, char *msg, size_t cap) {
    msg[0] = '\0';
    fm_status st;
    if (w == W_NPY) {
        static float data[1 << 18];
        int64_t shape[2] = {512, 512};
        fmd_diags d;
        fmd_diags_init(&d);
        st = fmr_npy_save(path, FMR_NPY_FLOAT32, 2, shape, data, &d);
        if (d.count) snprintf(msg, cap, "%s", d.items[0].message);
        fmd_diags_clear(&d);
        return st;
    }
    fm_blockmask *bm = small_blockmask(w == W_DENSE ? 1024 : 8192);
    if (!bm) return FM_ERR_INVALID_ARGUMENT;
    fm_diagnostics *d = fm_diagnostics_create();
    st = w == W_DENSE ? fm_blockmask_save_dense_npy(bm, path, d)
                      : fm_blockmask_save_safetensors(bm, path, d);
    char *text = fm_diagnostics_format(d, false);
    if (text) snprintf(msg, cap, "%s", text);
    fm_free(text);
    fm_diagnostics_free(d);
    fm_blockmask_free(bm);
    return st;
}

/* In a child limited to 64 KiB per file: the write must fail with
 * FM_ERR_IO and a "File too large" message. Exit 0 when it did. */
static void limited_write(writer w, const char *path) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {64 << 10, 64 << 10};
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(3);
        char msg[1024];
        fm_status st = write_with(w, path, msg, sizeof msg);
        if (st != FM_ERR_IO || !strstr(msg, "File too large")) {
            fprintf(stderr, "writer %d: %s: %s\n", (int)w, fm_status_string(st), msg);
            _exit(1);
        }
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static const char OLD[] = "the previous output, which a failed write must leave alone\n";

static void test_failed_write_keeps_previous_file(void **state) {
    (void)state;
    char dir[1024], path[1100];
    make_dir(dir, sizeof dir, "keep");
    static const char *const names[] = {"out.npy", "dense.npy", "out.safetensors"};
    for (writer w = W_NPY; w <= W_SAFETENSORS; w++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[w]);
        put_file(path, OLD, sizeof OLD - 1);
        limited_write(w, path);
        assert_file_is(path, OLD, sizeof OLD - 1);
        assert_int_equal(hidden_files(dir), 0);
        /* A name that did not exist stays absent. */
        char fresh[1200];
        snprintf(fresh, sizeof fresh, "%s/new-%s", dir, names[w]);
        limited_write(w, fresh);
        assert_int_equal(access(fresh, F_OK), -1);
        assert_int_equal(hidden_files(dir), 0);
        /* Without the limit the same write replaces the file. */
        char msg[512];
        assert_int_equal(write_with(w, path, msg, sizeof msg), FM_OK);
        size_t len = 0;
        char *now = tu_read_file(path, &len);
        assert_true(len > 4096 && memcmp(now, OLD, 16) != 0);
        free(now);
    }
    assert_int_equal(hidden_files(dir), 0);
    clean_dir(dir);
}

static void test_symlink_followed_and_kept(void **state) {
    (void)state;
    char dir[1024], real[1100], link[1100], dangling[1100], target[1100];
    make_dir(dir, sizeof dir, "links");
    snprintf(real, sizeof real, "%s/real.npy", dir);
    snprintf(link, sizeof link, "%s/link.npy", dir);
    put_file(real, OLD, sizeof OLD - 1);
    assert_int_equal(symlink("real.npy", link), 0); /* relative: resolved from dir */
    int32_t v[3] = {7, 8, 9};
    int64_t shape[1] = {3};
    assert_int_equal(fmr_npy_save(link, FMR_NPY_INT32, 1, shape, v, NULL), FM_OK);
    struct stat st;
    assert_int_equal(lstat(link, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    fmr_npy a;
    assert_int_equal(fmr_npy_load(real, &a, NULL), FM_OK);
    assert_memory_equal(a.data, v, sizeof v);
    fmr_npy_free(&a);
    /* A failed write through the link leaves the file it points to. */
    size_t len;
    char *before = tu_read_file(real, &len);
    limited_write(W_NPY, link);
    assert_file_is(real, before, len);
    free(before);
    assert_int_equal(lstat(link, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    /* A dangling link creates the file it names. */
    snprintf(dangling, sizeof dangling, "%s/dangling.npy", dir);
    snprintf(target, sizeof target, "%s/created.npy", dir);
    assert_int_equal(symlink(target, dangling), 0); /* absolute */
    assert_int_equal(fmr_npy_save(dangling, FMR_NPY_INT32, 1, shape, v, NULL), FM_OK);
    assert_int_equal(lstat(dangling, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_int_equal(fmr_npy_load(target, &a, NULL), FM_OK);
    fmr_npy_free(&a);
    assert_int_equal(hidden_files(dir), 0);
    clean_dir(dir);
}

/* Reads the FIFO at path in a child: everything (exit 0 when exactly want
 * bytes came), or only its first 10 bytes before closing it. */
static pid_t fifo_reader(const char *path, size_t want, bool all) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid != 0) return pid;
    int fd = open(path, O_RDONLY);
    if (fd < 0) _exit(2);
    char buf[1 << 16];
    size_t got = 0;
    for (ssize_t n; (n = read(fd, buf, all ? sizeof buf : 10)) > 0;) {
        got += (size_t)n;
        if (!all) break;
    }
    close(fd);
    _exit(!all || got == want ? 0 : 1);
}

static int wait_exit(pid_t pid) {
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void test_fifo_written_directly(void **state) {
    (void)state;
    char dir[1024], fifo[1100];
    make_dir(dir, sizeof dir, "fifo");
    snprintf(fifo, sizeof fifo, "%s/out.npy", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    static float data[1 << 18]; /* 1 MiB: more than a pipe holds */
    int64_t shape[1] = {1 << 18};
    pid_t pid = fifo_reader(fifo, 128 + sizeof data, true);
    assert_int_equal(fmr_npy_save(fifo, FMR_NPY_FLOAT32, 1, shape, data, NULL), FM_OK);
    assert_int_equal(wait_exit(pid), 0);
    struct stat st;
    assert_int_equal(lstat(fifo, &st), 0);
    assert_true(S_ISFIFO(st.st_mode));
    /* The reader leaves after 10 bytes: the write fails (EPIPE), and the
     * FIFO, which is not ours to remove, stays. */
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);
    pid = fifo_reader(fifo, 0, false);
    fmd_diags d;
    fmd_diags_init(&d);
    assert_int_equal(fmr_npy_save(fifo, FMR_NPY_FLOAT32, 1, shape, data, &d), FM_ERR_IO);
    signal(SIGPIPE, old);
    assert_int_equal(wait_exit(pid), 0);
    assert_true(d.count == 1 && strstr(d.items[0].message, "write error: Broken pipe"));
    fmd_diags_clear(&d);
    assert_int_equal(lstat(fifo, &st), 0);
    assert_true(S_ISFIFO(st.st_mode));
    assert_int_equal(hidden_files(dir), 0);
    clean_dir(dir);
}

static void test_modes_and_refusals(void **state) {
    (void)state;
    char dir[1024], path[1100];
    make_dir(dir, sizeof dir, "modes");
    snprintf(path, sizeof path, "%s/new.npy", dir);
    int32_t v[1] = {1};
    int64_t shape[1] = {1};
    /* A new file: 0666 less the umask, like any file created. */
    mode_t old = umask(027);
    fm_status st = fmr_npy_save(path, FMR_NPY_INT32, 1, shape, v, NULL);
    umask(old);
    assert_int_equal(st, FM_OK);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0640);
    /* A replaced file keeps its mode. */
    assert_int_equal(chmod(path, 0604), 0);
    assert_int_equal(fmr_npy_save(path, FMR_NPY_INT32, 1, shape, v, NULL), FM_OK);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0604);
    /* A file we may not write is refused, not replaced (root may). */
    if (geteuid() != 0) {
        assert_int_equal(chmod(path, 0444), 0);
        fmd_diags d0;
        fmd_diags_init(&d0);
        assert_int_equal(fmr_npy_save(path, FMR_NPY_INT32, 1, shape, v, &d0), FM_ERR_IO);
        assert_true(d0.count == 1 && strstr(d0.items[0].message, "Permission denied"));
        fmd_diags_clear(&d0);
        assert_int_equal(chmod(path, 0604), 0);
    }
    /* A folder is refused and left alone. */
    fmd_diags d;
    fmd_diags_init(&d);
    assert_int_equal(fmr_npy_save(dir, FMR_NPY_INT32, 1, shape, v, &d), FM_ERR_IO);
    assert_true(d.count == 1 && strstr(d.items[0].message, ": cannot open for writing: Is a "
                                                           "directory"));
    fmd_diags_clear(&d);
    assert_int_equal(stat(dir, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    /* The API by hand: abort leaves nothing, commit after a write error
     * fails, and a long name still gets a temporary. */
    fmr_out o;
    assert_true(fmr_out_open(&o, path));
    assert_true(fmr_out_write(&o, "partial", 7));
    fmr_out_abort(&o);
    assert_int_equal(hidden_files(dir), 0);
    assert_int_equal(stat(path, &sb), 0);
    assert_true(sb.st_size > 7);
    char longname[1400];
    snprintf(longname, sizeof longname, "%s/%0250d", dir, 7);
    static const char hello[] = "hello\n";
    assert_true(fmr_out_open(&o, longname));
    assert_true(fmr_out_write(&o, hello, sizeof hello - 1));
    assert_true(fmr_out_commit(&o));
    assert_file_is(longname, hello, sizeof hello - 1);
    assert_false(fmr_out_open(&o, "/nonexistent-flexmask-dir/x.npy"));
    assert_string_equal(o.error, "cannot open for writing: No such file or directory");
    assert_int_equal(hidden_files(dir), 0);
    clean_dir(dir);
}

static bool write_hello(FILE *f, void *ctx) {
    return fputs((const char *)ctx, f) >= 0;
}

static bool give_up(FILE *f, void *ctx) {
    (void)ctx;
    fputs("half", f);
    return false;
}

static void test_write_file_callback(void **state) {
    (void)state;
    char dir[1024], path[1100], err[400];
    make_dir(dir, sizeof dir, "callback");
    snprintf(path, sizeof path, "%s/pic.svg", dir);
    assert_true(fmr_write_file(path, write_hello, "<svg/>\n", err, sizeof err));
    assert_string_equal(err, "");
    assert_file_is(path, "<svg/>\n", 7);
    /* A callback that gives up leaves the previous file and no message of
     * its own (the caller knows why it stopped). */
    assert_false(fmr_write_file(path, give_up, NULL, err, sizeof err));
    assert_string_equal(err, "");
    assert_file_is(path, "<svg/>\n", 7);
    assert_int_equal(hidden_files(dir), 0);
    clean_dir(dir);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failed_write_keeps_previous_file),
        cmocka_unit_test(test_symlink_followed_and_kept),
        cmocka_unit_test(test_fifo_written_directly),
        cmocka_unit_test(test_modes_and_refusals),
        cmocka_unit_test(test_write_file_callback),
    };
    return TU_RUN(tests, argc, argv);
}
