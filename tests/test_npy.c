/* The .npy reader and writer: round trips, the exact bytes numpy writes,
 * every kind of malformed file (each refused with a message naming the file),
 * the conversions, streams (pipes, /dev/zero: read no further than the
 * header allows), escaped file text in messages, and a cross-check against
 * numpy itself when python3 has it. */
#define _POSIX_C_SOURCE 200809L /* pipe, write, close, open_memstream */
#include "testutil.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/interop/npy.h"

static bool has_message(const fmd_diags *d, const char *needle) {
    for (size_t i = 0; i < d->count; i++)
        if (strstr(d->items[i].message, needle)) return true;
    return false;
}

static void print_diags(const fmd_diags *d) {
    for (size_t i = 0; i < d->count; i++)
        print_message("  diag: %s\n", d->items[i].message);
}

/* Builds a version 1.0 file from a header dict and data bytes (no padding). */
static unsigned char *make_file(const char *dict, const void *data, size_t dlen, size_t *len) {
    size_t hl = strlen(dict);
    unsigned char *b = malloc(10 + hl + dlen + 1);
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (unsigned char)(hl & 0xFF);
    b[9] = (unsigned char)(hl >> 8);
    memcpy(b + 10, dict, hl);
    if (dlen) memcpy(b + 10 + hl, data, dlen);
    *len = 10 + hl + dlen;
    return b;
}

/* ---- writing and round trips --------------------------------------------- */

static void test_exact_bytes(void **state) {
    (void)state;
    float v[6] = {0, 1, 2, 3, 4, 5};
    int64_t shape[2] = {2, 3};
    void *img;
    size_t len;
    assert_int_equal(fmr_npy_save_memory(FMR_NPY_FLOAT32, 2, shape, v, &img, &len, NULL), FM_OK);
    /* What numpy 2.x writes for np.save(f, np.arange(6, dtype='<f4').reshape(2, 3)). */
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    assert_int_equal(len, 128 + 24);
    const unsigned char *b = img;
    assert_memory_equal(b, "\x93NUMPY\x01\x00\x76\x00", 10);
    assert_memory_equal(b + 10, dict, strlen(dict));
    for (size_t i = 10 + strlen(dict); i < 127; i++)
        assert_int_equal(b[i], ' ');
    assert_int_equal(b[127], '\n');
    assert_memory_equal(b + 128, v, sizeof v);
    free(img);
}

static void check_roundtrip(fmr_npy_dtype t, size_t rank, const int64_t *shape, tu_rng *rng) {
    size_t count = 1;
    for (size_t i = 0; i < rank; i++)
        count *= (size_t)shape[i];
    size_t item = fmr_npy_dtype_size(t);
    unsigned char *data = malloc(count * item + 1);
    for (size_t i = 0; i < count * item; i++)
        data[i] = (unsigned char)tu_rng_next(rng);
    if (t == FMR_NPY_BOOL)
        for (size_t i = 0; i < count; i++)
            data[i] &= 1;

    void *img;
    size_t len;
    assert_int_equal(fmr_npy_save_memory(t, rank, shape, data, &img, &len, NULL), FM_OK);
    assert_int_equal((len - count * item) % 64, 0);
    fmr_npy a;
    assert_int_equal(fmr_npy_load_memory("rt.npy", img, len, &a, NULL), FM_OK);
    assert_int_equal(a.dtype, t);
    assert_int_equal(a.rank, rank);
    assert_int_equal(a.count, count);
    assert_int_equal(a.nbytes, count * item);
    assert_non_null(a.data);
    for (size_t i = 0; i < rank; i++)
        assert_int_equal(a.shape[i], shape[i]);
    if (count) assert_memory_equal(a.data, data, count * item);
    fmr_npy_free(&a);

    char *path = tu_write_temp("rt_file.npy", "", 0);
    assert_int_equal(fmr_npy_save(path, t, rank, shape, data, NULL), FM_OK);
    size_t flen;
    char *back = tu_read_file(path, &flen);
    assert_int_equal(flen, len);
    assert_memory_equal(back, img, len); /* file and memory writers agree */
    assert_int_equal(fmr_npy_load(path, &a, NULL), FM_OK);
    assert_int_equal(a.count, count);
    if (count) assert_memory_equal(a.data, data, count * item);
    fmr_npy_free(&a);
    free(back);
    free(path);
    free(img);
    free(data);
}

static void test_roundtrip(void **state) {
    (void)state;
    tu_rng rng = {42};
    static const int64_t shapes[][4] = {{0}, {7}, {3, 5}, {2, 3, 4}, {0, 4}, {1, 1, 1, 9}};
    static const size_t ranks[] = {0, 1, 2, 3, 2, 4};
    for (int t = 0; t < FMR_NPY_DTYPE_COUNT; t++)
        for (size_t s = 0; s < sizeof ranks / sizeof ranks[0]; s++)
            check_roundtrip((fmr_npy_dtype)t, ranks[s], shapes[s], &rng);
    /* The largest rank, and a 19-digit first dimension (which uses up most
     * of the room numpy leaves for growth). */
    int64_t eight[8] = {1, 2, 1, 2, 1, 2, 1, 2};
    check_roundtrip(FMR_NPY_INT32, 8, eight, &rng);
    int64_t wide[2] = {INT64_MAX, 0};
    check_roundtrip(FMR_NPY_FLOAT32, 2, wide, &rng);
}

static void test_save_errors(void **state) {
    (void)state;
    fmd_diags d;
    fmd_diags_init(&d);
    int32_t v[2] = {1, 2};
    int64_t shape[1] = {2};
    const char *path = "/nonexistent-dir-for-flexmask/x.npy";
    assert_int_equal(fmr_npy_save(path, FMR_NPY_INT32, 1, shape, v, &d), FM_ERR_IO);
    assert_true(has_message(&d, "/nonexistent-dir-for-flexmask/x.npy: cannot open for writing"));
    fmd_diags_clear(&d);
    int64_t neg[1] = {-1};
    void *img = NULL;
    size_t len;
    assert_int_equal(fmr_npy_save_memory(FMR_NPY_INT32, 1, neg, v, &img, &len, &d),
                     FM_ERR_INVALID_ARGUMENT);
    assert_true(has_message(&d, "negative dimension -1"));
    int64_t huge[2] = {INT64_MAX, 2};
    assert_int_equal(fmr_npy_save_memory(FMR_NPY_INT32, 2, huge, v, &img, &len, &d), FM_ERR_LIMIT);
    assert_int_equal(fmr_npy_save_memory(FMR_NPY_INT32, 9, huge, v, &img, &len, &d),
                     FM_ERR_INVALID_ARGUMENT);
    assert_int_equal(fmr_npy_save_memory(FMR_NPY_INT32, 1, shape, NULL, &img, &len, &d),
                     FM_ERR_INVALID_ARGUMENT);
    assert_null(img);
    fmd_diags_clear(&d);
}

/* ---- reading what others write -------------------------------------------- */

static void test_accepted_variants(void **state) {
    (void)state;
    int32_t v[3] = {7, -8, 9};
    static const char *dicts[] = {
        "{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }",
        "{\"descr\": \"<i4\", \"fortran_order\": False, \"shape\": (3,)}",
        "{'shape': (3L,), 'fortran_order': False, 'descr': '<i4'}   \n",
        "{ 'descr' : '<i4' ,\t'fortran_order' : False , 'shape' : ( 3 , ) , }",
        "{'descr':'<i4','fortran_order':False,'shape':(+3,)}",
    };
    for (size_t i = 0; i < sizeof dicts / sizeof dicts[0]; i++) {
        size_t len;
        unsigned char *b = make_file(dicts[i], v, sizeof v, &len);
        fmr_npy a;
        fmd_diags d;
        fmd_diags_init(&d);
        fm_status st = fmr_npy_load_memory("v.npy", b, len, &a, &d);
        if (st) print_diags(&d);
        assert_int_equal(st, FM_OK);
        assert_int_equal(a.dtype, FMR_NPY_INT32);
        assert_int_equal(a.rank, 1);
        assert_memory_equal(a.data, v, sizeof v);
        fmr_npy_free(&a);
        fmd_diags_clear(&d);
        free(b);
    }
    /* Versions 2.0 and 3.0: a four-byte header length. */
    for (int major = 2; major <= 3; major++) {
        const char *dict = "{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }\n";
        size_t hl = strlen(dict);
        unsigned char b[256];
        memcpy(b, "\x93NUMPY", 6);
        b[6] = (unsigned char)major;
        b[7] = 0;
        b[8] = (unsigned char)hl;
        b[9] = b[10] = b[11] = 0;
        memcpy(b + 12, dict, hl);
        memcpy(b + 12 + hl, v, sizeof v);
        fmr_npy a;
        assert_int_equal(fmr_npy_load_memory("v2.npy", b, 12 + hl + sizeof v, &a, NULL), FM_OK);
        assert_memory_equal(a.data, v, sizeof v);
        fmr_npy_free(&a);
    }
    /* One-byte types take any byte-order mark. */
    size_t len;
    unsigned char one[2] = {1, 0};
    unsigned char *b =
        make_file("{'descr': '<b1', 'fortran_order': False, 'shape': (2,)}", one, 2, &len);
    fmr_npy a;
    assert_int_equal(fmr_npy_load_memory("b.npy", b, len, &a, NULL), FM_OK);
    assert_int_equal(a.dtype, FMR_NPY_BOOL);
    fmr_npy_free(&a);
    free(b);
}

/* ---- malformed files ------------------------------------------------------- */

typedef struct bad_case {
    const char *dict;
    size_t data_bytes; /* zero bytes appended after the header */
    fm_status status;
    const char *message; /* a substring of the expected message */
} bad_case;

static const bad_case BAD[] = {
    {"", 0, FM_ERR_FORMAT, "it ends where '{' (the header is a Python dict) was expected"},
    {"[1, 2]", 0, FM_ERR_FORMAT,
     "at byte 10: expected '{' (the header is a Python dict), found '['"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'extra': 1}", 12, FM_ERR_FORMAT,
     "unexpected key 'extra'"},
    {"{'descr': '<f4', 'fortran_order': False}", 0, FM_ERR_FORMAT, "key 'shape' is missing"},
    {"{'fortran_order': False, 'shape': (3,)}", 0, FM_ERR_FORMAT, "key 'descr' is missing"},
    {"{'descr': '<f4', 'shape': (3,)}", 0, FM_ERR_FORMAT, "key 'fortran_order' is missing"},
    {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (3,)}", 12, FM_ERR_FORMAT,
     "key 'descr' appears twice"},
    {"{'descr': '<f4, 'fortran_order': False, 'shape': (3,)}", 12, FM_ERR_FORMAT,
     "expected ',' or '}', found 'f'"},
    {"{'descr' '<f4', 'fortran_order': False, 'shape': (3,)}", 12, FM_ERR_FORMAT,
     "at byte 19: expected ':' after a key, found '''"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (3,)", 12, FM_ERR_FORMAT,
     "it ends where ',' or '}' was expected"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (3,)} x", 12, FM_ERR_FORMAT,
     "expected only padding after the header dict, found 'x'"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (3,)}\0", 12, FM_ERR_FORMAT,
     "found byte 0x00"},
    {"{'descr': '<f\\x34', 'fortran_order': False, 'shape': (3,)}", 12, FM_ERR_FORMAT,
     "escape sequences"},
    {"{'descr': '<f4' 'fortran_order': False, 'shape': (3,)}", 12, FM_ERR_FORMAT,
     "expected ',' or '}', found '''"},
    {"{'descr': '<f4', 'fortran_order': 0, 'shape': (3,)}", 12, FM_ERR_FORMAT,
     "expected True or False for 'fortran_order', found '0'"},
    {"{'descr': '<f4', 'fortran_order': Falsey, 'shape': (3,)}", 12, FM_ERR_FORMAT,
     "expected True or False"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (3)}", 12, FM_ERR_FORMAT, "not a tuple"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': [3]}", 12, FM_ERR_FORMAT,
     "expected a tuple '(' for the shape, found '['"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (3, x)}", 12, FM_ERR_FORMAT,
     "expected an integer dimension, found 'x'"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (3 4,)}", 12, FM_ERR_FORMAT,
     "expected ',' or ')' in the shape, found '4'"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (-3,)}", 0, FM_ERR_FORMAT,
     "at byte 61: negative dimension -3"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}", 0, FM_ERR_FORMAT,
     "dimension does not fit in 64 bits"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (9223372036854775808,)}", 0, FM_ERR_FORMAT,
     "dimension does not fit in 64 bits"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 1099511627776)}", 0,
     FM_ERR_LIMIT, "more than 1099511627776 bytes"},
    {"{'descr': '<f8', 'fortran_order': False, 'shape': (9223372036854775807, 3)}", 0, FM_ERR_LIMIT,
     "more than 1099511627776 bytes"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1)}", 4, FM_ERR_LIMIT,
     "more than 8 dimensions"},
    {"{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2)}", 16, FM_ERR_UNSUPPORTED,
     "Fortran-order (column-major) arrays are not supported"},
    {"{'descr': '>f4', 'fortran_order': False, 'shape': (3,)}", 12, FM_ERR_UNSUPPORTED,
     "big-endian data ('>f4') is not supported"},
    {"{'descr': '>i8', 'fortran_order': False, 'shape': (3,)}", 24, FM_ERR_UNSUPPORTED,
     "a.astype('<i8')"},
    {"{'descr': '<c8', 'fortran_order': False, 'shape': (3,)}", 24, FM_ERR_UNSUPPORTED,
     "dtype '<c8' is not supported"},
    {"{'descr': '|O', 'fortran_order': False, 'shape': (3,)}", 24, FM_ERR_UNSUPPORTED,
     "dtype '|O' is not supported"},
    {"{'descr': '|i4', 'fortran_order': False, 'shape': (3,)}", 12, FM_ERR_FORMAT,
     "dtype '|i4' has no explicit byte order"},
    {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,)}", 12, FM_ERR_UNSUPPORTED,
     "structured dtypes are not supported"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (4,)}", 12, FM_ERR_FORMAT,
     "truncated: shape (4,) of float32 needs 16 bytes of data, the file holds 12"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2)}", 20, FM_ERR_FORMAT,
     "4 unexpected bytes after the data (shape (2, 2) of float32 needs 16 bytes)"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': ()}", 0, FM_ERR_FORMAT,
     "shape () of float32 needs 4 bytes"},
};

static void test_bad_headers(void **state) {
    (void)state;
    static const unsigned char zeros[64];
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        const bad_case *c = &BAD[i];
        /* The NUL case needs its length from the literal, not strlen. */
        size_t hl = strlen(c->dict) + (strstr(c->message, "0x00") ? 1 : 0);
        unsigned char *b = malloc(10 + hl + c->data_bytes);
        memcpy(b, "\x93NUMPY\x01\x00", 8);
        b[8] = (unsigned char)hl;
        b[9] = 0;
        memcpy(b + 10, c->dict, hl);
        memcpy(b + 10 + hl, zeros, c->data_bytes);
        fmd_diags d;
        fmd_diags_init(&d);
        fmr_npy a;
        fm_status st = fmr_npy_load_memory("bad.npy", b, 10 + hl + c->data_bytes, &a, &d);
        if (st != c->status || d.errors != 1 || !has_message(&d, c->message) ||
            strncmp(d.items[0].message, "bad.npy: ", 9) != 0) {
            print_error("case %zu (%s): status %d, want %d; expected message '%s'\n", i, c->dict,
                        (int)st, (int)c->status, c->message);
            print_diags(&d);
            fail();
        }
        assert_null(a.data);
        fmd_diags_clear(&d);
        free(b);
    }
}

static void test_bad_preamble(void **state) {
    (void)state;
    struct {
        const char *bytes;
        size_t len;
        fm_status status;
        const char *message;
    } cases[] = {
        {"\x93NUMPZ\x01\x00\x00\x00", 10, FM_ERR_FORMAT, "not a NumPy .npy file"},
        {"PK\x03\x04", 4, FM_ERR_FORMAT, "not a NumPy .npy file"},
        {"\x93NUMPY\x04\x00\x00\x00", 10, FM_ERR_UNSUPPORTED,
         "format version 4.0 is not supported"},
        {"\x93NUMPY\x01\x01\x00\x00", 10, FM_ERR_UNSUPPORTED, "format version 1.1"},
        {"\x93NUMPY\x02\x00\x00\x00\x00\x01", 12, FM_ERR_LIMIT, "the header claims 16777216 bytes"},
        {"\x93NUMPY\x03\x00\xff\xff\xff\xff", 12, FM_ERR_LIMIT,
         "the header claims 4294967295 bytes"},
        {"\x93NUMPY\x01\x00\xff\xff{}", 12, FM_ERR_FORMAT,
         "truncated: the header is 65535 bytes but only 2 follow"},
        {"", 0, FM_ERR_FORMAT, "truncated: 0 bytes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fmd_diags d;
        fmd_diags_init(&d);
        fmr_npy a;
        fm_status st = fmr_npy_load_memory("p.npy", cases[i].bytes, cases[i].len, &a, &d);
        if (st != cases[i].status || !has_message(&d, cases[i].message)) {
            print_error("preamble case %zu: status %d\n", i, (int)st);
            print_diags(&d);
            fail();
        }
        fmd_diags_clear(&d);
    }
}

/* Every proper prefix of a valid file is refused as truncated, from memory
 * and from a file (where the size check happens before allocation). */
static void test_truncated_everywhere(void **state) {
    (void)state;
    int64_t shape[2] = {3, 3};
    float v[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    void *img;
    size_t len;
    assert_int_equal(fmr_npy_save_memory(FMR_NPY_FLOAT32, 2, shape, v, &img, &len, NULL), FM_OK);
    for (size_t k = 0; k < len; k++) {
        /* A fresh allocation of exactly k bytes, so ASan sees any overread. */
        unsigned char *cut = malloc(k ? k : 1);
        memcpy(cut, img, k);
        fmd_diags d;
        fmd_diags_init(&d);
        fmr_npy a;
        fm_status st = fmr_npy_load_memory("cut.npy", cut, k, &a, &d);
        if (st != FM_ERR_FORMAT || !has_message(&d, "cut.npy: truncated")) {
            print_error("prefix of %zu bytes: status %d\n", k, (int)st);
            print_diags(&d);
            fail();
        }
        fmd_diags_clear(&d);
        char *path = tu_write_temp("cut.npy", cut, k);
        st = fmr_npy_load(path, &a, &d);
        if (st != FM_ERR_FORMAT || !has_message(&d, "truncated") ||
            strncmp(d.items[0].message, path, strlen(path)) != 0) {
            print_error("file prefix of %zu bytes: status %d\n", k, (int)st);
            print_diags(&d);
            fail();
        }
        fmd_diags_clear(&d);
        free(path);
        free(cut);
    }
    free(img);
}

/* Random byte flips never crash the reader, and what it accepts is
 * self-consistent. */
static void test_mutations(void **state) {
    (void)state;
    tu_rng rng = {7};
    int64_t shape[2] = {2, 5};
    int32_t v[10] = {0};
    void *img;
    size_t len;
    assert_int_equal(fmr_npy_save_memory(FMR_NPY_INT32, 2, shape, v, &img, &len, NULL), FM_OK);
    int rounds = tu_sanitizer_run() ? 2000 : 20000;
    unsigned char *m = malloc(len);
    for (int r = 0; r < rounds; r++) {
        memcpy(m, img, len);
        int flips = (int)tu_rng_range(&rng, 1, 4);
        for (int f = 0; f < flips; f++) {
            size_t at = (size_t)tu_rng_range(&rng, 0, (int64_t)len - 1);
            static const char pool[] = "{}()',: 0123456789-LTrueFalse<>|fib\n\0\xff";
            m[at] = tu_rng_range(&rng, 0, 1)
                        ? (unsigned char)pool[tu_rng_range(&rng, 0, sizeof pool - 1)]
                        : (unsigned char)tu_rng_next(&rng);
        }
        size_t mlen = (size_t)tu_rng_range(&rng, 0, (int64_t)len);
        fmd_diags d;
        fmd_diags_init(&d);
        fmr_npy a;
        fm_status st = fmr_npy_load_memory("m.npy", m, mlen, &a, &d);
        if (st == FM_OK) {
            assert_int_equal(d.count, 0);
            assert_int_equal(a.nbytes, a.count * fmr_npy_dtype_size(a.dtype));
            fmr_npy_free(&a);
        } else {
            assert_int_equal(d.errors, 1);
            assert_null(a.data);
        }
        fmd_diags_clear(&d);
    }
    free(m);
    free(img);
}

static void test_open_errors(void **state) {
    (void)state;
    fmd_diags d;
    fmd_diags_init(&d);
    fmr_npy a;
    assert_int_equal(fmr_npy_load("/nonexistent-flexmask.npy", &a, &d), FM_ERR_IO);
    assert_true(has_message(&d, "/nonexistent-flexmask.npy: cannot open: "));
    fmd_diags_clear(&d);
    assert_int_equal(fmr_npy_load(tu_temp_dir(), &a, &d), FM_ERR_IO);
    assert_true(has_message(&d, "is a directory"));
    fmd_diags_clear(&d);
    /* A pipe (no size known in advance) goes through the same checks. */
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    static const char img[] = "\x93NUMPY\x01\x00\x04\x00{}  ";
    assert_int_equal(write(fds[1], img, sizeof img - 1), (ssize_t)(sizeof img - 1));
    close(fds[1]);
    char path[64];
    snprintf(path, sizeof path, "/dev/fd/%d", fds[0]);
    assert_int_equal(fmr_npy_load(path, &a, &d), FM_ERR_FORMAT);
    assert_true(has_message(&d, "malformed header: key 'descr' is missing"));
    assert_true(has_message(&d, path));
    fmd_diags_clear(&d);
    close(fds[0]);
}

/* ---- conversions ---------------------------------------------------------- */

static void test_to_int32(void **state) {
    (void)state;
    int64_t v[6] = {0, -1, 2147483647, -2147483648LL, 5, 2147483648LL};
    int64_t shape[2] = {2, 3};
    void *img;
    size_t len;
    assert_int_equal(fmr_npy_save_memory(FMR_NPY_INT64, 2, shape, v, &img, &len, NULL), FM_OK);
    fmr_npy a;
    assert_int_equal(fmr_npy_load_memory("i.npy", img, len, &a, NULL), FM_OK);
    fmd_diags d;
    fmd_diags_init(&d);
    int32_t *r = NULL;
    assert_int_equal(fmr_npy_to_int32(&a, "i.npy", &r, &d), FM_ERR_BINDING);
    assert_true(
        has_message(&d, "i.npy: element [1, 2] is 2147483648, which does not fit in int32"));
    assert_null(r);
    fmd_diags_clear(&d);
    ((int64_t *)a.data)[5] = 6;
    assert_int_equal(fmr_npy_to_int32(&a, "i.npy", &r, &d), FM_OK);
    assert_int_equal(r[2], 2147483647);
    assert_int_equal(r[3], INT32_MIN);
    assert_int_equal(r[5], 6);
    free(r);
    fmr_npy_free(&a);
    free(img);

    unsigned char bv[3] = {1, 0, 1};
    int64_t s3[1] = {3};
    assert_int_equal(fmr_npy_save_memory(FMR_NPY_BOOL, 1, s3, bv, &img, &len, NULL), FM_OK);
    assert_int_equal(fmr_npy_load_memory("b.npy", img, len, &a, NULL), FM_OK);
    assert_int_equal(fmr_npy_to_int32(&a, "b.npy", &r, NULL), FM_OK);
    assert_int_equal(r[0], 1);
    assert_int_equal(r[1], 0);
    free(r);
    float *f = NULL;
    assert_int_equal(fmr_npy_to_float32(&a, "b.npy", &f, &d), FM_ERR_UNSUPPORTED);
    assert_true(has_message(&d, "b.npy: expected a floating-point array"));
    fmd_diags_clear(&d);
    fmr_npy_free(&a);
    free(img);

    float fv[2] = {1, 2};
    int64_t s2[1] = {2};
    assert_int_equal(fmr_npy_save_memory(FMR_NPY_FLOAT32, 1, s2, fv, &img, &len, NULL), FM_OK);
    assert_int_equal(fmr_npy_load_memory("f.npy", img, len, &a, NULL), FM_OK);
    assert_int_equal(fmr_npy_to_int32(&a, "f.npy", &r, &d), FM_ERR_UNSUPPORTED);
    assert_true(has_message(&d, "f.npy: expected an integer array (int32 or int64), got float32"));
    fmd_diags_clear(&d);
    fmr_npy_free(&a);
    free(img);
}

static void test_to_float32(void **state) {
    (void)state;
    uint16_t h[4] = {0x3C00, 0xC000, 0x7C00, 0x0001}; /* 1, -2, inf, 2^-24 */
    int64_t s4[1] = {4};
    void *img;
    size_t len;
    fmr_npy a;
    float *f;
    assert_int_equal(fmr_npy_save_memory(FMR_NPY_FLOAT16, 1, s4, h, &img, &len, NULL), FM_OK);
    assert_int_equal(fmr_npy_load_memory("h.npy", img, len, &a, NULL), FM_OK);
    assert_int_equal(fmr_npy_to_float32(&a, "h.npy", &f, NULL), FM_OK);
    assert_true(f[0] == 1.0f && f[1] == -2.0f && isinf(f[2]) && f[3] == 0x1p-24f);
    free(f);
    fmr_npy_free(&a);
    free(img);
    double dv[4] = {0.5, -1e300, 1e300, 0.1};
    assert_int_equal(fmr_npy_save_memory(FMR_NPY_FLOAT64, 1, s4, dv, &img, &len, NULL), FM_OK);
    assert_int_equal(fmr_npy_load_memory("d.npy", img, len, &a, NULL), FM_OK);
    assert_int_equal(fmr_npy_to_float32(&a, "d.npy", &f, NULL), FM_OK);
    assert_true(f[0] == 0.5f && isinf(f[1]) && f[1] < 0 && isinf(f[2]) && f[3] == 0.1f);
    free(f);
    fmr_npy_free(&a);
    free(img);
}

static void test_half(void **state) {
    (void)state;
    for (uint32_t i = 0; i < 65536; i++) {
        float f = fmr_half_to_float((uint16_t)i);
        uint16_t back = fmr_float_to_half(f);
        if (isnan(f)) {
            assert_true((back & 0x7C00) == 0x7C00 && (back & 0x3FF) != 0);
            assert_int_equal(back & 0x8000, i & 0x8000);
        } else {
            assert_int_equal(back, i);
        }
    }
    assert_true(fmr_half_to_float(0x3555) > 0.333f && fmr_half_to_float(0x3555) < 0.3334f);
    assert_int_equal(fmr_float_to_half(65504.0f), 0x7BFF);
    assert_int_equal(fmr_float_to_half(65519.99f), 0x7BFF);
    assert_int_equal(fmr_float_to_half(65520.0f), 0x7C00);
    assert_int_equal(fmr_float_to_half(-1e10f), 0xFC00);
    assert_int_equal(fmr_float_to_half(0x1p-25f), 0x0000);        /* tie to even: 0 */
    assert_int_equal(fmr_float_to_half(0x1.8p-24f), 0x0002);      /* tie 1.5 -> 2 */
    assert_int_equal(fmr_float_to_half(0x1.0p-25f * 1.0001f), 1); /* above the tie */
    assert_int_equal(fmr_float_to_half(1.0f + 0x1p-11f), 0x3C00); /* tie to even */
    assert_int_equal(fmr_float_to_half(1.0f + 0x3p-11f), 0x3C02); /* tie to even, upward */
    assert_int_equal(fmr_float_to_half(0x1.ffep-15f),
                     0x0400); /* rounds up to the smallest normal */
    assert_int_equal(fmr_float_to_half(-0.0f), 0x8000);
}

/* ---- numpy itself ---------------------------------------------------------- */

static void test_numpy_cross_check(void **state) {
    (void)state;
    if (tu_run("python3 -c 'import numpy' 2>/dev/null", NULL, NULL) != 0) {
        print_message("skipped: python3 with numpy is not available\n");
        skip();
    }
    const char *dir = tu_temp_dir();
    char path[1024];

    /* We write, numpy reads: the values, and the bytes np.save would write. */
    float f4[24];
    for (int i = 0; i < 24; i++)
        f4[i] = (float)i * 0.5f - 3.0f;
    int32_t i4[5];
    for (int i = 0; i < 5; i++)
        i4[i] = i * 100000 - 7;
    unsigned char b1[9];
    for (int i = 0; i < 9; i++)
        b1[i] = i % 3 == 0;
    uint16_t f2[7];
    for (int i = 0; i < 7; i++)
        f2[i] = fmr_float_to_half((float)i * 0.25f - 1.0f);
    float scalar = 3.5f;
    int64_t s_f4[3] = {2, 3, 4}, s_i4[1] = {5}, s_b1[2] = {3, 3}, s_f2[1] = {7}, s_z[2] = {0, 4};
    struct {
        const char *name;
        fmr_npy_dtype t;
        size_t rank;
        const int64_t *shape;
        const void *data;
    } ours[] = {
        {"o_f4", FMR_NPY_FLOAT32, 3, s_f4, f4},      {"o_i4", FMR_NPY_INT32, 1, s_i4, i4},
        {"o_b1", FMR_NPY_BOOL, 2, s_b1, b1},         {"o_f2", FMR_NPY_FLOAT16, 1, s_f2, f2},
        {"o_sc", FMR_NPY_FLOAT32, 0, NULL, &scalar}, {"o_z", FMR_NPY_INT32, 2, s_z, NULL},
    };
    for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++) {
        snprintf(path, sizeof path, "%s/%s.npy", dir, ours[i].name);
        assert_int_equal(
            fmr_npy_save(path, ours[i].t, ours[i].rank, ours[i].shape, ours[i].data, NULL), FM_OK);
    }
    static const char check_ours[] =
        "import io, sys, numpy as np\n"
        "d = sys.argv[1]\n"
        "want = {\n"
        " 'o_f4': (np.arange(24, dtype='<f4') * 0.5 - 3).reshape(2, 3, 4),\n"
        " 'o_i4': np.arange(5, dtype='<i4') * 100000 - 7,\n"
        " 'o_b1': (np.arange(9) % 3 == 0).reshape(3, 3),\n"
        " 'o_f2': (np.arange(7) * 0.25 - 1).astype('<f2'),\n"
        " 'o_sc': np.array(3.5, dtype='<f4'),\n"
        " 'o_z': np.zeros((0, 4), dtype='<i4'),\n"
        "}\n"
        "for k, w in want.items():\n"
        "    p = f'{d}/{k}.npy'\n"
        "    a = np.load(p)\n"
        "    assert a.dtype == w.dtype and a.shape == w.shape, (k, a.dtype, a.shape)\n"
        "    assert np.array_equal(a, w), (k, a, w)\n"
        "    b = io.BytesIO(); np.save(b, w)\n"
        "    assert open(p, 'rb').read() == b.getvalue(), k + ': bytes differ from np.save'\n"
        "print('ok')\n";
    char *script = tu_write_temp("check_ours.py", check_ours, strlen(check_ours));
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "python3 '%s' '%s'", script, dir);
    char *out = NULL, *err = NULL;
    int rc = tu_run(cmd, &out, &err);
    if (rc != 0) print_error("numpy rejected our files:\n%s%s", out ? out : "", err ? err : "");
    assert_int_equal(rc, 0);
    free(out);
    free(err);
    free(script);

    /* numpy writes, we read. */
    static const char write_theirs[] =
        "import sys, numpy as np\n"
        "from numpy.lib import format as fmt\n"
        "d = sys.argv[1]\n"
        "np.save(f'{d}/t_f4.npy', (np.arange(12, dtype='<f4') * 0.5).reshape(3, 4))\n"
        "np.save(f'{d}/t_i8.npy', np.array([[0, -5, 2**31 - 1], [-2**31, 7, 9]], dtype='<i8'))\n"
        "np.save(f'{d}/t_i4.npy', np.arange(6, dtype='<i4').reshape(1, 2, 3) - 3)\n"
        "np.save(f'{d}/t_b1.npy', np.array([True, False, True]))\n"
        "np.save(f'{d}/t_u1.npy', np.array([0, 200, 255], dtype='u1'))\n"
        "np.save(f'{d}/t_f2.npy', np.array([1.0, -0.5, 65504, 2**-24], dtype='<f2'))\n"
        "np.save(f'{d}/t_f8.npy', np.array([0.25, -1e300], dtype='<f8'))\n"
        "np.save(f'{d}/t_sc.npy', np.array(2.5, dtype='<f4'))\n"
        "np.save(f'{d}/t_z.npy', np.zeros((4, 0), dtype='<f4'))\n"
        "for v in [(2, 0), (3, 0)]:\n"
        "    with open(f'{d}/t_v{v[0]}.npy', 'wb') as f:\n"
        "        fmt.write_array(f, np.arange(4, dtype='<i4'), version=v)\n"
        "np.save(f'{d}/t_be.npy', np.arange(3, dtype='>f4'))\n"
        "np.save(f'{d}/t_fo.npy', np.asfortranarray(np.arange(6, dtype='<f4').reshape(2, 3)))\n"
        "np.save(f'{d}/t_c8.npy', np.zeros(2, dtype='<c8'))\n";
    script = tu_write_temp("write_theirs.py", write_theirs, strlen(write_theirs));
    snprintf(cmd, sizeof cmd, "python3 '%s' '%s'", script, dir);
    rc = tu_run(cmd, NULL, &err);
    if (rc != 0) print_error("numpy failed to write:\n%s", err ? err : "");
    assert_int_equal(rc, 0);
    free(err);
    free(script);

    fmr_npy a;
    fmd_diags d;
    fmd_diags_init(&d);
#define LOAD(name)                                                                                 \
    do {                                                                                           \
        snprintf(path, sizeof path, "%s/%s.npy", dir, name);                                       \
        fm_status st_ = fmr_npy_load(path, &a, &d);                                                \
        if (st_) print_diags(&d);                                                                  \
        assert_int_equal(st_, FM_OK);                                                              \
    } while (0)
    LOAD("t_f4");
    assert_int_equal(a.dtype, FMR_NPY_FLOAT32);
    assert_int_equal(a.rank, 2);
    assert_int_equal(a.shape[0], 3);
    assert_int_equal(a.shape[1], 4);
    for (int i = 0; i < 12; i++)
        assert_true(((float *)a.data)[i] == (float)i * 0.5f);
    fmr_npy_free(&a);
    LOAD("t_i8");
    int32_t *r;
    assert_int_equal(fmr_npy_to_int32(&a, path, &r, NULL), FM_OK);
    assert_int_equal(r[2], INT32_MAX);
    assert_int_equal(r[3], INT32_MIN);
    assert_int_equal(r[1], -5);
    free(r);
    fmr_npy_free(&a);
    LOAD("t_i4");
    assert_int_equal(a.rank, 3);
    for (int i = 0; i < 6; i++)
        assert_int_equal(((int32_t *)a.data)[i], i - 3);
    fmr_npy_free(&a);
    LOAD("t_b1");
    assert_int_equal(a.dtype, FMR_NPY_BOOL);
    assert_memory_equal(a.data, "\1\0\1", 3);
    fmr_npy_free(&a);
    LOAD("t_u1");
    assert_int_equal(a.dtype, FMR_NPY_UINT8);
    assert_memory_equal(a.data, "\0\310\377", 3);
    fmr_npy_free(&a);
    LOAD("t_f2");
    float *f;
    assert_int_equal(fmr_npy_to_float32(&a, path, &f, NULL), FM_OK);
    assert_true(f[0] == 1.0f && f[1] == -0.5f && f[2] == 65504.0f && f[3] == 0x1p-24f);
    free(f);
    fmr_npy_free(&a);
    LOAD("t_f8");
    assert_true(((double *)a.data)[0] == 0.25 && ((double *)a.data)[1] == -1e300);
    fmr_npy_free(&a);
    LOAD("t_sc");
    assert_int_equal(a.rank, 0);
    assert_int_equal(a.count, 1);
    assert_true(*(float *)a.data == 2.5f);
    fmr_npy_free(&a);
    LOAD("t_z");
    assert_int_equal(a.count, 0);
    assert_int_equal(a.shape[0], 4);
    assert_non_null(a.data);
    fmr_npy_free(&a);
    for (int v = 2; v <= 3; v++) {
        char name[8];
        snprintf(name, sizeof name, "t_v%d", v);
        LOAD(name);
        for (int i = 0; i < 4; i++)
            assert_int_equal(((int32_t *)a.data)[i], i);
        fmr_npy_free(&a);
    }
#undef LOAD
    struct {
        const char *name, *message;
    } refused[] = {{"t_be", "big-endian data ('>f4')"},
                   {"t_fo", "Fortran-order"},
                   {"t_c8", "dtype '<c8' is not supported"}};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s.npy", dir, refused[i].name);
        assert_int_equal(fmr_npy_load(path, &a, &d), FM_ERR_UNSUPPORTED);
        assert_true(has_message(&d, refused[i].message));
        assert_true(has_message(&d, path));
        fmd_diags_clear(&d);
    }
}

/* ASan reserves terabytes of address space: no RLIMIT_AS under it. */
#if defined(__SANITIZE_ADDRESS__)
#define TU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TU_ASAN 1
#endif
#endif
#ifndef TU_ASAN
#define TU_ASAN 0
#endif

/* ---- streams ---------------------------------------------------------------- */

/* Writes n bytes of img, then extra bytes of filler, into the pipe fds
 * from a child that exits 0 when it wrote everything, 1 when the reader
 * left first (EPIPE), and reports how much it wrote on report_fd (if not
 * -1). */
static pid_t feeder(const int fds[2], const void *img, size_t n, size_t extra, int report_fd) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid != 0) return pid;
    close(fds[0]); /* else the reader never leaves: EPIPE needs every read end closed */
    int fd = fds[1];
    signal(SIGPIPE, SIG_IGN);
    static unsigned char chunk[1 << 16];
    memset(chunk, 'x', sizeof chunk);
    uint64_t written = 0;
    const unsigned char *p = img;
    bool ok = true;
    while (ok && n) {
        ssize_t k = write(fd, p, n);
        ok = k > 0;
        if (ok) p += k, n -= (size_t)k, written += (uint64_t)k;
    }
    while (ok && extra) {
        ssize_t k = write(fd, chunk, extra < sizeof chunk ? extra : sizeof chunk);
        ok = k > 0;
        if (ok) extra -= (size_t)k, written += (uint64_t)k;
    }
    if (report_fd >= 0 && write(report_fd, &written, sizeof written) != sizeof written) _exit(2);
    _exit(ok ? 0 : 1);
}

static int child_exit(pid_t pid) {
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* A stream that is not a .npy file costs its first bytes, not its length:
 * 64 MiB of "NOTNUMPY..." is refused, and the feeder is stopped by EPIPE
 * within a pipe buffer or two of the start. */
static void test_stream_refused_after_its_first_bytes(void **state) {
    (void)state;
    int fds[2], rep[2];
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(pipe(rep), 0);
    pid_t pid = feeder(fds, "NOTNUMPY", 8, (size_t)64 << 20, rep[1]);
    close(fds[1]);
    close(rep[1]);
    char path[64];
    snprintf(path, sizeof path, "/dev/fd/%d", fds[0]);
    fmd_diags d;
    fmd_diags_init(&d);
    fmr_npy a;
    assert_int_equal(fmr_npy_load(path, &a, &d), FM_ERR_FORMAT);
    assert_true(has_message(&d, "not a NumPy .npy file"));
    fmd_diags_clear(&d);
    close(fds[0]);
    uint64_t written = 0;
    assert_int_equal(read(rep[0], &written, sizeof written), (ssize_t)sizeof written);
    close(rep[0]);
    assert_int_equal(child_exit(pid), 1); /* stopped by the reader leaving */
    print_message("the feeder wrote %llu bytes before the reader left\n",
                  (unsigned long long)written);
    assert_true(written < ((uint64_t)2 << 20));
}

/* Through a pipe (bigger than a pipe holds, so the data arrives in pieces):
 * exactly the promised bytes load, one fewer or one more is refused. */
static void test_stream_exact_short_long(void **state) {
    (void)state;
    static float v[300000];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        v[i] = (float)i * 0.5f;
    int64_t shape[2] = {1000, 300};
    void *img;
    size_t len;
    assert_int_equal(fmr_npy_save_memory(FMR_NPY_FLOAT32, 2, shape, v, &img, &len, NULL), FM_OK);
    struct {
        size_t n, extra;
        fm_status want;
        const char *message;
    } cases[] = {
        {len, 0, FM_OK, NULL},
        {len - 1, 0, FM_ERR_FORMAT,
         "s.npy: truncated: shape (1000, 300) of float32 needs 1200000 bytes of data, the file "
         "holds 1199999"},
        {len, 1, FM_ERR_FORMAT,
         "s.npy: more bytes follow the data (shape (1000, 300) of float32 needs 1200000 bytes)"},
        {len, (size_t)8 << 20, FM_ERR_FORMAT, "more bytes follow the data"},
        {100, 0, FM_ERR_FORMAT, "s.npy: truncated: the header is 118 bytes but only 90 follow"},
        {9, 0, FM_ERR_FORMAT, "s.npy: truncated: 9 bytes, shorter than the .npy preamble"},
        {0, 0, FM_ERR_FORMAT, "s.npy: truncated: 0 bytes, shorter than the .npy preamble"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        pid_t pid = feeder(fds, img, cases[i].n, cases[i].extra, -1);
        close(fds[1]);
        FILE *f = fdopen(fds[0], "rb");
        assert_non_null(f);
        fmd_diags d;
        fmd_diags_init(&d);
        fmr_npy a;
        fm_status st = fmr_npy_load_stream("s.npy", f, &a, &d);
        fclose(f);
        int rc = child_exit(pid);
        if (st != cases[i].want || (cases[i].message && !has_message(&d, cases[i].message))) {
            print_error("stream case %zu: status %d, want %d\n", i, (int)st, (int)cases[i].want);
            print_diags(&d);
            fail();
        }
        if (st == FM_OK) {
            assert_int_equal(rc, 0);
            assert_int_equal(a.nbytes, sizeof v);
            assert_memory_equal(a.data, v, sizeof v);
            assert_int_equal(d.count, 0);
        } else {
            assert_null(a.data);
        }
        fmr_npy_free(&a);
        fmd_diags_clear(&d);
    }
    free(img);
}

/* Under a 512 MiB address-space limit: /dev/zero (read before, whole, up
 * to 1 TiB) is refused as not a .npy file, and a stream whose header
 * promises 128 GiB but that holds 100 bytes is refused as truncated, not
 * out of memory. ASan reserves terabytes of address space, so this runs
 * only in builds without it (the pipe test above covers those). */
static void test_stream_memory_bounded(void **state) {
    (void)state;
#if TU_ASAN
    print_message("skipped: an address-space limit cannot be set under AddressSanitizer\n");
    skip();
#else
    static const char dict[] = "{'descr': '|u1', 'fortran_order': False, 'shape': (137438953472,), }";
    size_t len;
    unsigned char *img = make_file(dict, "0123456789", 10, &len);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t feed = feeder(fds, img, len, 0, -1);
    close(fds[1]);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit rl = {(rlim_t)512 << 20, (rlim_t)512 << 20};
        if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(3);
        fmd_diags d;
        fmd_diags_init(&d);
        fmr_npy a;
        fm_status z = fmr_npy_load("/dev/zero", &a, &d);
        char path[64];
        snprintf(path, sizeof path, "/dev/fd/%d", fds[0]);
        fm_status p = fmr_npy_load(path, &a, &d);
        bool ok = z == FM_ERR_FORMAT && p == FM_ERR_FORMAT && d.count == 2 &&
                  strstr(d.items[0].message, "/dev/zero: not a NumPy .npy file") &&
                  strstr(d.items[1].message, "needs 137438953472 bytes of data, the file holds 10");
        if (!ok) {
            fprintf(stderr, "statuses %d %d\n", (int)z, (int)p);
            for (size_t i = 0; i < d.count; i++) fprintf(stderr, "  %s\n", d.items[i].message);
        }
        _exit(ok ? 0 : 1);
    }
    close(fds[0]);
    assert_int_equal(child_exit(pid), 0);
    child_exit(feed);
    free(img);
#endif
}

/* ---- text from the file in messages ------------------------------------------ */

static void test_escaped_messages(void **state) {
    (void)state;
    char buf[64];
    assert_int_equal(fmd_escape(buf, sizeof buf, "plain 'text' \xc3\xa9", 15), 15);
    assert_string_equal(buf, "plain 'text' \xc3\xa9"); /* valid UTF-8 stays */
    assert_false(fmd_needs_escape("plain \xc3\xa9", 8));
    fmd_escape(buf, sizeof buf, "a\x1b[2J\x07\x7f\tb", 9);
    assert_string_equal(buf, "a\\x1b[2J\\x07\\x7f\\x09b");
    fmd_escape(buf, sizeof buf, "\xff\xc3(\xc2\x9b\xe2\x82", 7); /* bad UTF-8, C1 CSI, cut */
    assert_string_equal(buf, "\\xff\\xc3(\\xc2\\x9b\\xe2\\x82");
    assert_true(fmd_needs_escape("\xc2\x9b", 2));
    assert_true(fmd_needs_escape("a\0b", 3));
    /* Cut at a whole unit: 7 bytes of room hold "ab" and one escape only. */
    assert_int_equal(fmd_escape(buf, 8, "ab\x1b\x1b", 4), 6);
    assert_string_equal(buf, "ab\\x1b");

    /* A header key that would retitle and clear the terminal, and a dtype
     * with a C1 control: shown escaped, whatever the renderer. */
    struct {
        const char *dict, *message;
    } cases[] = {
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,), '\x1b]0;owned\x07\x1b[2J': 1}",
         "unexpected key '\\x1b]0;owned\\x07\\x1b[2J'"},
        {"{'descr': '<\xc2\x9b" "31m\xff', 'fortran_order': False, 'shape': (1,), }",
         "dtype '<\\xc2\\x9b31m\\xff' is not supported"},
    };
    for (size_t i = 0; i < 2; i++) {
        size_t len;
        unsigned char *img = make_file(cases[i].dict, "\0\0\0\0", 4, &len);
        fmd_diags d;
        fmd_diags_init(&d);
        fmr_npy a;
        assert_int_not_equal(fmr_npy_load_memory("e.npy", img, len, &a, &d), FM_OK);
        if (!has_message(&d, cases[i].message)) print_diags(&d);
        assert_true(has_message(&d, cases[i].message));
        char *text = NULL;
        size_t tn = 0;
        FILE *out = open_memstream(&text, &tn);
        fmd_diags_render(&d, out, false);
        fclose(out);
        for (size_t k = 0; k < tn; k++)
            assert_true(text[k] == '\n' || ((unsigned char)text[k] >= 0x20 && text[k] != 0x7f &&
                                            (unsigned char)text[k] < 0x80));
        free(text);
        fmd_diags_clear(&d);
        free(img);
    }
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_bytes),          cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_save_errors),          cmocka_unit_test(test_accepted_variants),
        cmocka_unit_test(test_bad_headers),          cmocka_unit_test(test_bad_preamble),
        cmocka_unit_test(test_truncated_everywhere), cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_open_errors),          cmocka_unit_test(test_to_int32),
        cmocka_unit_test(test_to_float32),           cmocka_unit_test(test_half),
        cmocka_unit_test(test_numpy_cross_check),
        cmocka_unit_test(test_stream_refused_after_its_first_bytes),
        cmocka_unit_test(test_stream_exact_short_long),
        cmocka_unit_test(test_stream_memory_bounded),
        cmocka_unit_test(test_escaped_messages),
    };
    return TU_RUN(tests, argc, argv);
}
