/* safetensors export and import: the header parsed back and checked field
 * by field (the from_kv_blocks tensors, shapes, padding, metadata), round
 * trips to complete BlockMasks, and malformed or truncated files. Also the
 * strict JSON reader underneath. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flexmask.h"
#include "runtime/interop/json.h"
#include "testutil.h"

static const char *const DOC_MASK =
    "# documents, causal, within a window\n"
    "param window = 100;\n"
    "input doc[KV_LEN];\n"
    "mask document = kv <= q && doc[q] == doc[kv] && q - kv < window;\n";

static const char *const PER_HEAD_MASK =
    "param window = 7;\nlet causal = kv <= q;\n"
    "mask per_head = h % 2 == 0 ? causal && q - kv < window : causal;\n";

static const char *const PADDING_MASK = "input n[BATCH];\nmask pad = kv < n[b] && q < n[b];\n";

static fm_blockmask *build(const char *text, fm_shape s, int64_t bq, int64_t bkv,
                           const int32_t *doc, const int32_t *lens) {
    fm_diagnostics *d = fm_diagnostics_create();
    fm_program *p = NULL;
    fm_mask *m = NULL;
    fm_bindings *b = NULL;
    fm_blockmask *bm = NULL;
    fm_build_options o = {.struct_size = sizeof(fm_build_options), .block_q = bq, .block_kv = bkv};
    fm_status st = fm_compile_string("st.mask", text, strlen(text), d, &p);
    if (st == FM_OK) st = fm_mask_select(p, NULL, d, &m);
    if (st == FM_OK) st = fm_bindings_create(m, &b);
    if (st == FM_OK && doc) {
        int64_t n = s.kv_len;
        st = fm_bindings_set_input(b, "doc", doc, 1, &n, FM_COPY, d);
        if (st == FM_OK) st = fm_bindings_set_param(b, "window", 9, d);
    }
    if (st == FM_OK && lens) {
        int64_t n = s.batch;
        st = fm_bindings_set_input(b, "n", lens, 1, &n, FM_COPY, d);
    }
    if (st == FM_OK) st = fm_blockmask_build(m, b, s, &o, d, &bm);
    if (st != FM_OK) tu_fail_with(st, d, "build");
    assert_int_equal(st, FM_OK);
    fm_bindings_free(b);
    fm_mask_free(m);
    fm_program_free(p);
    fm_diagnostics_free(d);
    return bm;
}

static fm_blockmask *doc_mask(fm_shape s) {
    int32_t doc[64];
    for (int i = 0; i < 64; i++)
        doc[i] = i < 13 ? 0 : i < 40 ? 1 : 2;
    return build(DOC_MASK, s, 4, 8, doc, NULL);
}

/* Saves bm and returns the file's bytes. */
static unsigned char *save(const fm_blockmask *bm, const char *name, size_t *len, char **path) {
    char *p = tu_write_temp(name, "", 0);
    fm_diagnostics *d = fm_diagnostics_create();
    fm_status st = fm_blockmask_save_safetensors(bm, p, d);
    if (st != FM_OK) tu_fail_with(st, d, p);
    assert_int_equal(st, FM_OK);
    fm_diagnostics_free(d);
    unsigned char *bytes = (unsigned char *)tu_read_file(p, len);
    assert_non_null(bytes);
    if (path)
        *path = p;
    else
        free(p);
    return bytes;
}

static int32_t rd32(const unsigned char *p) {
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                     (uint32_t)p[3] << 24);
}

/* Checks one tensor entry of the header: I32, the given shape; returns a
 * pointer to its bytes and checks that it starts where the last ended. */
static const unsigned char *tensor(const fmr_json *root, const char *name, size_t rank,
                                   const int64_t *shape, const unsigned char *data,
                                   uint64_t *cursor) {
    const fmr_json *t = fmr_json_get(root, name);
    if (!t) fprintf(stderr, "no tensor %s\n", name);
    assert_non_null(t);
    const fmr_json *dt = fmr_json_get(t, "dtype"), *sh = fmr_json_get(t, "shape"),
                   *off = fmr_json_get(t, "data_offsets");
    assert_non_null(dt);
    assert_string_equal(dt->str, "I32");
    assert_int_equal(sh->kind, FMR_JSON_ARRAY);
    assert_int_equal(sh->count, rank);
    int64_t count = 1;
    for (size_t k = 0; k < rank; k++) {
        assert_int_equal(sh->items[k].kind, FMR_JSON_INT);
        assert_int_equal(sh->items[k].integer, shape[k]);
        count *= shape[k];
    }
    assert_int_equal(off->count, 2);
    assert_int_equal(off->items[0].integer, (int64_t)*cursor);
    assert_int_equal(off->items[1].integer - off->items[0].integer, count * 4);
    *cursor = (uint64_t)off->items[1].integer;
    return data + off->items[0].integer;
}

static const char *meta(const fmr_json *root, const char *key) {
    const fmr_json *m = fmr_json_get(fmr_json_get(root, "__metadata__"), key);
    if (!m) fprintf(stderr, "no metadata %s\n", key);
    assert_non_null(m);
    assert_int_equal(m->kind, FMR_JSON_STRING);
    return m->str;
}

/* The header of a saved BlockMask, field by field, against the BlockMask. */
static void check_file(const unsigned char *bytes, size_t len, const fm_blockmask *bm,
                       int64_t want_b, int64_t want_h, const char *source, const char *input_name,
                       size_t input_rank, const int64_t *input_shape) {
    fm_blockmask_info info;
    assert_int_equal(fm_blockmask_get_info(bm, &info), FM_OK);
    assert_true(len >= 8);
    uint64_t hlen = 0;
    for (int k = 0; k < 8; k++)
        hlen |= (uint64_t)bytes[k] << (8 * k);
    assert_true(hlen <= len - 8);
    assert_int_equal((8 + hlen) % 8, 0); /* the data is 8-byte aligned */
    fmr_json_doc doc;
    char err[200];
    bool ok = fmr_json_parse((const char *)bytes + 8, hlen, &doc, err, sizeof err, NULL);
    if (!ok) fprintf(stderr, "header: %s\n", err);
    assert_true(ok);
    const fmr_json *root = doc.root;
    assert_int_equal(root->kind, FMR_JSON_OBJECT);
    const unsigned char *data = bytes + 8 + hlen;
    uint64_t cursor = 0;
    int64_t nqb = info.num_q_blocks, nkvb = info.num_kv_blocks;
    int64_t s3[3] = {want_b, want_h, nqb}, s4[4] = {want_b, want_h, nqb, nkvb};
    const unsigned char *num[2], *idx[2];
    num[0] = tensor(root, "kv_num_blocks", 3, s3, data, &cursor);
    idx[0] = tensor(root, "kv_indices", 4, s4, data, &cursor);
    num[1] = tensor(root, "full_kv_num_blocks", 3, s3, data, &cursor);
    idx[1] = tensor(root, "full_kv_indices", 4, s4, data, &cursor);
    if (input_name) {
        char key[64];
        snprintf(key, sizeof key, "input.%s", input_name);
        const unsigned char *in = tensor(root, key, input_rank, input_shape, data, &cursor);
        (void)in;
    }
    assert_int_equal(cursor, len - 8 - hlen); /* the tensors cover the data exactly */
    /* Every row: the counts, the lists, then the padding (every other block,
     * ascending), so each row is a permutation of 0 .. nkvb-1. */
    for (int64_t b = 0; b < want_b; b++)
        for (int64_t h = 0; h < want_h; h++)
            for (int64_t i = 0; i < nqb; i++) {
                const int32_t *lists[2];
                int64_t counts[2];
                assert_int_equal(
                    fm_blockmask_row(bm, b, h, i, &lists[1], &counts[1], &lists[0], &counts[0]),
                    FM_OK);
                int64_t row = (b * want_h + h) * nqb + i;
                for (int w = 0; w < 2; w++) {
                    assert_int_equal(rd32(num[w] + 4 * row), counts[w]);
                    int32_t prev = -1;
                    for (int64_t k = 0; k < nkvb; k++) {
                        int32_t v = rd32(idx[w] + 4 * (row * nkvb + k));
                        if (k < counts[w]) {
                            assert_int_equal(v, lists[w][k]);
                        } else {
                            if (k == counts[w]) prev = -1;
                            assert_true(v > prev && v < nkvb);
                            for (int64_t j = 0; j < counts[w]; j++)
                                assert_true(v != lists[w][j]);
                        }
                        prev = v;
                    }
                }
            }
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)info.block_q);
    assert_string_equal(meta(root, "Q_BLOCK_SIZE"), buf);
    snprintf(buf, sizeof buf, "%lld", (long long)info.block_kv);
    assert_string_equal(meta(root, "KV_BLOCK_SIZE"), buf);
    snprintf(buf, sizeof buf, "%lld", (long long)info.shape.q_len);
    assert_string_equal(meta(root, "Q_LEN"), buf);
    snprintf(buf, sizeof buf, "%lld", (long long)info.shape.kv_len);
    assert_string_equal(meta(root, "KV_LEN"), buf);
    snprintf(buf, sizeof buf, "%lld", (long long)info.shape.batch);
    assert_string_equal(meta(root, "BATCH"), buf);
    snprintf(buf, sizeof buf, "%lld", (long long)info.shape.heads);
    assert_string_equal(meta(root, "HEADS"), buf);
    assert_string_equal(meta(root, "format"), "pt");
    if (source) assert_string_equal(meta(root, "mask_source"), source);
    fmr_json_free(&doc);
}

static fm_blockmask *load(const unsigned char *bytes, size_t len, fm_status want,
                          const char *mention) {
    fm_diagnostics *d = fm_diagnostics_create();
    fm_blockmask *bm = NULL;
    fm_status st = fm_blockmask_load_safetensors_memory("t.safetensors", bytes, len, d, &bm);
    if (st != want) tu_fail_with(st, d, "load");
    assert_int_equal(st, want);
    if (mention) assert_true(tu_diags_mention(d, mention));
    if (st != FM_OK) assert_true(fm_diagnostics_count(d) > 0);
    fm_diagnostics_free(d);
    return bm;
}

/* Equal shapes, tiles, and the mask at every point. */
static void assert_same_blockmask(const fm_blockmask *x, const fm_blockmask *y) {
    fm_blockmask_info a, b;
    fm_blockmask_get_info(x, &a);
    fm_blockmask_get_info(y, &b);
    assert_memory_equal(&a.shape, &b.shape, sizeof a.shape);
    assert_int_equal(a.block_q, b.block_q);
    assert_int_equal(a.block_kv, b.block_kv);
    assert_int_equal(a.broadcast_batch, b.broadcast_batch);
    assert_int_equal(a.broadcast_heads, b.broadcast_heads);
    assert_int_equal(a.full_tiles, b.full_tiles);
    assert_int_equal(a.partial_tiles, b.partial_tiles);
    if (a.true_positions >= 0 && b.true_positions >= 0) /* -1: not counted */
        assert_int_equal(a.true_positions, b.true_positions);
    for (int64_t bb = 0; bb < a.shape.batch; bb++)
        for (int64_t h = 0; h < a.shape.heads; h++)
            for (int64_t q = 0; q < a.shape.q_len; q++)
                for (int64_t kv = 0; kv < a.shape.kv_len; kv++) {
                    bool u, v;
                    assert_int_equal(fm_blockmask_eval(x, bb, h, q, kv, &u), FM_OK);
                    assert_int_equal(fm_blockmask_eval(y, bb, h, q, kv, &v), FM_OK);
                    assert_int_equal(u, v);
                }
}

static void test_header_fields_broadcast(void **state) {
    fm_shape s = {2, 3, 50, 60};
    fm_blockmask *bm = doc_mask(s);
    size_t len;
    unsigned char *bytes = save(bm, "doc.safetensors", &len, NULL);
    check_file(bytes, len, bm, 1, 1, DOC_MASK, "doc", 1, (int64_t[]){60});
    fmr_json_doc doc;
    uint64_t hlen = 0;
    for (int k = 0; k < 8; k++)
        hlen |= (uint64_t)bytes[k] << (8 * k);
    assert_true(fmr_json_parse((const char *)bytes + 8, hlen, &doc, NULL, 0, NULL));
    assert_string_equal(meta(doc.root, "param.window"), "9");
    assert_string_equal(meta(doc.root, "mask_name"), "document");
    assert_string_equal(meta(doc.root, "mask_source_name"), "st.mask");
    fmr_json_free(&doc);
    fm_blockmask *back = load(bytes, len, FM_OK, NULL);
    assert_same_blockmask(bm, back);
    fm_blockmask_free(back);
    free(bytes);
    fm_blockmask_free(bm);
}

static void test_header_fields_per_head_and_batch(void **state) {
    fm_shape s = {1, 4, 33, 29};
    fm_blockmask *bm = build(PER_HEAD_MASK, s, 8, 4, NULL, NULL);
    size_t len;
    unsigned char *bytes = save(bm, "per_head.safetensors", &len, NULL);
    check_file(bytes, len, bm, 1, 4, PER_HEAD_MASK, NULL, 0, NULL);
    fm_blockmask *back = load(bytes, len, FM_OK, NULL);
    assert_same_blockmask(bm, back);
    fm_blockmask_free(back);
    free(bytes);
    fm_blockmask_free(bm);

    int32_t lens[3] = {17, 0, 40};
    fm_shape s2 = {3, 2, 40, 40};
    bm = build(PADDING_MASK, s2, 16, 16, NULL, lens);
    bytes = save(bm, "padding.safetensors", &len, NULL);
    check_file(bytes, len, bm, 3, 1, PADDING_MASK, "n", 1, (int64_t[]){3});
    back = load(bytes, len, FM_OK, NULL);
    assert_same_blockmask(bm, back);
    fm_blockmask_free(back);
    free(bytes);
    fm_blockmask_free(bm);
}

static void test_round_trip_file_and_attention(void **state) {
    fm_shape s = {1, 2, 64, 64};
    fm_blockmask *bm = doc_mask(s);
    char *path = NULL;
    size_t len;
    unsigned char *bytes = save(bm, "rt.safetensors", &len, &path);
    fm_diagnostics *d = fm_diagnostics_create();
    fm_blockmask *back = NULL;
    fm_status st = fm_blockmask_load_safetensors(path, d, &back);
    if (st != FM_OK) tu_fail_with(st, d, path);
    assert_int_equal(st, FM_OK);
    assert_same_blockmask(bm, back);
    /* Attention over the loaded BlockMask is the original's, bit for bit. */
    enum { D = 16 };
    size_t n = (size_t)(2 * 64 * D);
    float *q = malloc(n * 4), *k = malloc(n * 4), *v = malloc(n * 4), *o1 = malloc(n * 4),
          *o2 = malloc(n * 4);
    tu_rng rng = {11};
    for (size_t i = 0; i < n; i++) {
        q[i] = (float)tu_rng_range(&rng, -999, 999) / 333.0f;
        k[i] = (float)tu_rng_range(&rng, -999, 999) / 333.0f;
        v[i] = (float)tu_rng_range(&rng, -999, 999) / 333.0f;
    }
    fm_attention_args a = {.struct_size = sizeof(fm_attention_args)};
    a.q = fm_tensor_contiguous(q, FM_FLOAT32, 1, 2, 64, D);
    a.k = fm_tensor_contiguous(k, FM_FLOAT32, 1, 2, 64, D);
    a.v = fm_tensor_contiguous(v, FM_FLOAT32, 1, 2, 64, D);
    a.mask = bm;
    a.out = fm_tensor_contiguous(o1, FM_FLOAT32, 1, 2, 64, D);
    assert_int_equal(fm_attention_cpu(&a, NULL), FM_OK);
    a.mask = back;
    a.out = fm_tensor_contiguous(o2, FM_FLOAT32, 1, 2, 64, D);
    assert_int_equal(fm_attention_cpu(&a, NULL), FM_OK);
    assert_memory_equal(o1, o2, n * 4);
    /* The loaded BlockMask saves to the same bytes. */
    size_t len2;
    unsigned char *bytes2 = save(back, "rt2.safetensors", &len2, NULL);
    assert_int_equal(len, len2);
    assert_memory_equal(bytes, bytes2, len);
    free(bytes2);
    free(q);
    free(k);
    free(v);
    free(o1);
    free(o2);
    /* A missing file and a directory are I/O errors. */
    fm_diagnostics_clear(d);
    assert_int_equal(fm_blockmask_load_safetensors("/nonexistent/x.safetensors", d, &back),
                     FM_ERR_IO);
    assert_int_equal(fm_blockmask_load_safetensors(tu_temp_dir(), d, &back), FM_ERR_IO);
    fm_diagnostics_free(d);
    fm_blockmask_free(back);
    fm_blockmask_free(bm);
    free(bytes);
    free(path);
}

static void test_dense_import_round_trip(void **state) {
    /* An imported dense mask saves and loads like any other. */
    uint8_t m[3 * 20 * 24];
    tu_rng rng = {8};
    for (size_t i = 0; i < sizeof m; i++)
        m[i] = (uint8_t)(tu_rng_range(&rng, 0, 3) != 0);
    int64_t dims[3] = {3, 20, 24};
    fm_shape s = {2, 3, 20, 24};
    fm_build_options o = {.struct_size = sizeof(fm_build_options), .block_q = 8, .block_kv = 8};
    fm_blockmask *bm = NULL;
    assert_int_equal(fm_blockmask_from_dense(m, FM_DENSE_BOOL, 3, dims, &s, &o, NULL, &bm), FM_OK);
    size_t len;
    unsigned char *bytes = save(bm, "dense.safetensors", &len, NULL);
    check_file(bytes, len, bm, 1, 3, NULL, "keep", 3, dims);
    fm_blockmask *back = load(bytes, len, FM_OK, NULL);
    assert_same_blockmask(bm, back);
    fm_blockmask_free(back);
    free(bytes);
    fm_blockmask_free(bm);
}

/* Every prefix of a valid file is refused cleanly (ASan checks the reads). */
static void test_truncated_everywhere(void **state) {
    fm_shape s = {1, 1, 20, 20};
    fm_blockmask *bm = doc_mask(s);
    size_t len;
    unsigned char *bytes = save(bm, "trunc.safetensors", &len, NULL);
    for (size_t cut = 0; cut < len; cut++) {
        /* A private copy of exactly cut bytes, so reading past it is caught. */
        unsigned char *copy = malloc(cut ? cut : 1);
        memcpy(copy, bytes, cut);
        fm_blockmask *bm2 = load(copy, cut, FM_ERR_FORMAT, NULL);
        assert_null(bm2);
        free(copy);
    }
    fm_blockmask *ok = load(bytes, len, FM_OK, NULL);
    fm_blockmask_free(ok);
    /* One byte too many is as wrong as one too few. */
    unsigned char *longer = malloc(len + 1);
    memcpy(longer, bytes, len);
    longer[len] = 0;
    load(longer, len + 1, FM_ERR_FORMAT, "cover");
    free(longer);
    free(bytes);
    fm_blockmask_free(bm);
}

/* Replaces the first occurrence of from (same length as to) in the header. */
static unsigned char *patched(const unsigned char *bytes, size_t len, const char *from,
                              const char *to) {
    unsigned char *c = malloc(len);
    memcpy(c, bytes, len);
    size_t n = strlen(from);
    assert_int_equal(n, strlen(to));
    for (size_t i = 8; i + n <= len; i++) {
        if (!memcmp(c + i, from, n)) {
            memcpy(c + i, to, n);
            return c;
        }
    }
    fprintf(stderr, "no '%s' in the file\n", from);
    fail();
    return c;
}

static void test_malformed(void **state) {
    fm_shape s = {1, 1, 20, 20};
    fm_blockmask *bm = doc_mask(s);
    size_t len;
    unsigned char *bytes = save(bm, "bad.safetensors", &len, NULL);
    unsigned char *c = malloc(len);

    /* Header lengths: absurd, past the end, and not JSON. */
    memcpy(c, bytes, len);
    memset(c, 0xff, 8);
    load(c, len, FM_ERR_FORMAT, "header length");
    memcpy(c, bytes, len);
    c[0] = (unsigned char)(len - 7);
    c[1] = (unsigned char)((len - 7) >> 8);
    c[2] = c[3] = c[4] = c[5] = c[6] = c[7] = 0;
    load(c, len, FM_ERR_FORMAT, "truncated");
    memcpy(c, bytes, len);
    c[8] = '[';
    load(c, len, FM_ERR_FORMAT, "'{'");

    struct {
        const char *from, *to, *mention;
    } edits[] = {
        {"\"I32\"", "\"F32\"", "dtype F32"},
        {"\"I32\"", "\"I3\"\"", "JSON"},
        {"\"Q_LEN\":\"20\"", "\"Q_LEN\":\"21\"", "kv_num_blocks"}, /* 6 query blocks, not 5 */
        {"\"Q_LEN\":\"20\"", "\"Q_LEN\":\"2x\"", "not an integer"},
        {"\"Q_LEN\":\"20\"", "\"Q_LEN\":\"-1\"", "not an integer in [1,"},
        {"\"Q_BLOCK_SIZE\":\"4\"", "\"Q_BLOCK_SIZE\":4  ", "every metadata value is a string"},
        {"\"BATCH\":", "\"BATCX\":", "no \"BATCH\""},
        {"\"mask_name\":\"document\"", "\"mask_name\":\"documenx\"", "cannot be rebuilt"},
        {"\"param.window\":\"9\"", "\"param.window\":\"1\"", "does not match"},
        {"kv <= q", "kv >= q", "does not match"},
        {"kv <= q", "kv <= ?", "cannot be rebuilt"},
        {"\"data_offsets\":[0,", "\"data_offsets\":[4,", "gap"},
        {"\"data_offsets\":[0,20]", "\"data_offsets\":[0,99]", "overlaps"},
        {"\"data_offsets\":[0,20]", "\"data_offsets\":[0,-1]", "no valid data_offsets"},
        {"\"shape\":[1,1,5]", "\"shape\":[1,2,5]", "shape needs"},
        {"\"shape\":[1,1,5]", "\"shape\":[9,1,5]", "shape needs"},
        {"\"shape\":[1,1,5]", "\"shape\":[1,1.5]", "rank"},
        {"\"__metadata__\"", "\"__metadatx__\"", "__metadata__"},
        {"\"kv_indices\"", "\"kv_indicex\"", "no tensor \"kv_indices\""},
        {"\"full_kv_indices\":{\"dtype\"", "\"full_kv_indices\":{\"dtypx\"", "needs \"dtype\""},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        unsigned char *e = patched(bytes, len, edits[i].from, edits[i].to);
        fm_status want = FM_ERR_FORMAT;
        fm_diagnostics *d = fm_diagnostics_create();
        fm_blockmask *x = NULL;
        fm_status st = fm_blockmask_load_safetensors_memory("t.safetensors", e, len, d, &x);
        if (st != want || !tu_diags_mention(d, edits[i].mention))
            fprintf(stderr, "edit %zu: %s -> %s gave %s\n", i, edits[i].from, edits[i].to,
                    fm_status_string(st));
        assert_int_equal(st, want);
        assert_true(tu_diags_mention(d, edits[i].mention));
        assert_null(x);
        fm_diagnostics_free(d);
        free(e);
    }

    /* Tampered list data: a stored partial count, then a stored index. */
    uint64_t hlen = 0;
    for (int k = 0; k < 8; k++)
        hlen |= (uint64_t)bytes[k] << (8 * k);
    memcpy(c, bytes, len);
    c[8 + hlen] = 99; /* kv_num_blocks[0][0][0] = 99 > num_kv_blocks */
    load(c, len, FM_ERR_FORMAT, "must be in [0, 3]");
    memcpy(c, bytes, len);
    /* kv_num_blocks is 5 int32s; kv_indices starts after them. The first
     * query block has one partial tile (block 0); make it claim block 1. */
    c[8 + hlen + 20] ^= 1;
    load(c, len, FM_ERR_FORMAT, "does not match");

    /* Every single-byte change of the header region: never a crash. */
    size_t limit = (size_t)(8 + hlen);
    int step = tu_sanitizer_run() ? 3 : 1;
    for (size_t i = 0; i < limit; i += (size_t)step) {
        static const unsigned char vals[] = {0, '"', '{', '}', '[', ']', ',', ':', '9', 0xff, ' '};
        for (size_t v = 0; v < sizeof vals; v++) {
            memcpy(c, bytes, len);
            if (c[i] == vals[v]) continue;
            c[i] = vals[v];
            fm_blockmask *x = NULL;
            fm_status st = fm_blockmask_load_safetensors_memory("f", c, len, NULL, &x);
            assert_true(st == FM_OK || st == FM_ERR_FORMAT);
            assert_true((st == FM_OK) == (x != NULL));
            fm_blockmask_free(x);
        }
    }
    /* And of the data: lists, padding and input values. */
    for (size_t i = limit; i < len; i += (size_t)step) {
        memcpy(c, bytes, len);
        c[i] ^= 0x5a;
        fm_blockmask *x = NULL;
        fm_status st = fm_blockmask_load_safetensors_memory("f", c, len, NULL, &x);
        assert_true(st == FM_OK || st == FM_ERR_FORMAT);
        fm_blockmask_free(x);
    }
    free(c);
    free(bytes);
    fm_blockmask_free(bm);
}

/* The file with the first occurrence of from in its header replaced by to
 * (any length: the header length is rewritten, the data follows as is). */
static unsigned char *rewritten(const unsigned char *bytes, size_t len, const char *from,
                                const char *to, size_t *out_len) {
    uint64_t hlen = 0;
    for (int k = 0; k < 8; k++)
        hlen |= (uint64_t)bytes[k] << (8 * k);
    const char *h = (const char *)bytes + 8;
    size_t nf = strlen(from), nt = strlen(to), at = 0;
    while (at + nf <= hlen && memcmp(h + at, from, nf) != 0)
        at++;
    assert_true(at + nf <= hlen);
    *out_len = len - nf + nt;
    unsigned char *c = malloc(*out_len);
    uint64_t nh = hlen - nf + nt;
    for (int k = 0; k < 8; k++)
        c[k] = (unsigned char)(nh >> (8 * k));
    memcpy(c + 8, h, at);
    memcpy(c + 8 + at, to, nt);
    memcpy(c + 8 + at + nt, h + at + nf, len - 8 - at - nf);
    return c;
}

/* Names and values from the header reach messages escaped: an ESC or BEL
 * decoded from a JSON \u escape never reaches the terminal raw, whichever
 * module's message shows it (ours, the compiler's file name, the binding
 * errors' names). */
static void test_escaped_header_text(void **state) {
    (void)state;
    fm_shape s = {1, 1, 20, 20};
    fm_blockmask *bm = doc_mask(s);
    size_t len;
    unsigned char *bytes = save(bm, "esc.safetensors", &len, NULL);
    struct {
        const char *from, *to, *mention;
    } edits[] = {
        {"\"mask_name\":\"document\"", "\"mask_name\":\"\\u001b]0;owned\\u0007\"",
         "no mask named '\\x1b]0;owned\\x07'"},
        {"\"I32\"", "\"\\u001b[2J\"", "has dtype \\x1b[2J;"},
        {"\"Q_LEN\":\"20\"", "\"Q_LEN\":\"\\u009b2J\"", "is \"\\xc2\\x9b2J\", not an integer"},
        {"\"param.window\":\"9\"", "\"param.\\u001bw\":\"9\"", "\\x1bw"},
        {"\"param.window\":\"9\"", "\"param.window\":\"\\u001b\"", "\"param.window\" is \"\\x1b\""},
        {"\"input.doc\"", "\"input.\\u001b[2J\"", "\\x1b[2J"},
        {"\"kv_num_blocks\"", "\"\\u001b[2J\":5,\"kv_num_blocks\"", "tensor \"\\x1b[2J\" is"},
        {"\"mask_source_name\":\"st.mask\"", "\"mask_source_name\":\"\\u001b[2J.mask\"",
         "\\x1b[2J.mask:"},
        {"\"BATCH\"", "\"\\u001b\":\"1\",\"\\u001b\"",
         "duplicate object key near '\"\\u001b\"'"},
        /* Raw bytes where JSON forbids them: jansson's message quotes them. */
        {"\"BATCH\"", "\"\x1b[2J\xc2\x9b\"", "the header is not valid JSON"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        size_t n;
        unsigned char *e = rewritten(bytes, len, edits[i].from, edits[i].to, &n);
        /* The file-name case needs a compile error to show the name. */
        if (strstr(edits[i].to, ".mask")) {
            unsigned char *e2 = rewritten(e, n, "kv <= q", "kv <= ?", &n);
            free(e);
            e = e2;
        }
        fm_diagnostics *d = fm_diagnostics_create();
        fm_blockmask *x = NULL;
        assert_int_equal(fm_blockmask_load_safetensors_memory("t.safetensors", e, n, d, &x),
                         FM_ERR_FORMAT);
        char *text = fm_diagnostics_format(d, false);
        assert_non_null(text);
        if (!strstr(text, edits[i].mention))
            fprintf(stderr, "edit %zu: want '%s' in:\n%s\n", i, edits[i].mention, text);
        assert_non_null(strstr(text, edits[i].mention));
        for (const char *c = text; *c; c++)
            assert_true(*c == '\n' || ((unsigned char)*c >= 0x20 && *c != 0x7f));
        assert_null(strstr(text, "\xc2\x9b"));
        fm_free(text);
        fm_diagnostics_free(d);
        free(e);
    }
    free(bytes);
    fm_blockmask_free(bm);
}

/* ---- the JSON reader ---- */

static bool parses(const char *text, char *err, size_t errlen) {
    fmr_json_doc doc;
    bool ok = fmr_json_parse(text, strlen(text), &doc, err, errlen, NULL);
    fmr_json_free(&doc);
    return ok;
}

static void test_json_reader(void **state) {
    fmr_json_doc doc;
    const char *text = " {\"a\" : [1, -9223372036854775808, 9223372036854775807, 1.5, 1e3, "
                       "9007199254740993], \"s\": \"x\\n\\u00e9\\ud83d\\ude00\\\"\", "
                       "\"t\": true, \"f\": false, \"z\": null, \"o\": {}} ";
    char err[128];
    assert_true(fmr_json_parse(text, strlen(text), &doc, err, sizeof err, NULL));
    const fmr_json *a = fmr_json_get(doc.root, "a");
    assert_int_equal(a->count, 6);
    assert_int_equal(a->items[0].integer, 1);
    assert_true(a->items[1].kind == FMR_JSON_INT && a->items[1].integer == INT64_MIN);
    assert_true(a->items[2].kind == FMR_JSON_INT && a->items[2].integer == INT64_MAX);
    assert_int_equal(a->items[3].kind, FMR_JSON_NUMBER);
    assert_int_equal(a->items[4].kind, FMR_JSON_NUMBER);
    /* 2^53 + 1: a reader holding numbers as doubles would round it. */
    assert_true(a->items[5].kind == FMR_JSON_INT && a->items[5].integer == 9007199254740993LL);
    const fmr_json *s = fmr_json_get(doc.root, "s");
    assert_int_equal(s->len, 1 + 1 + 2 + 4 + 1);
    assert_memory_equal(s->str, "x\n\xc3\xa9\xf0\x9f\x98\x80\"", s->len);
    assert_true(fmr_json_get(doc.root, "t")->boolean);
    assert_int_equal(fmr_json_get(doc.root, "z")->kind, FMR_JSON_NULL);
    assert_int_equal(fmr_json_get(doc.root, "o")->kind, FMR_JSON_OBJECT);
    assert_null(fmr_json_get(doc.root, "missing"));
    fmr_json_free(&doc);

    const char *bad[] = {"",
                         "{",
                         "{\"a\":1,}",
                         "[1,]",
                         "{\"a\" 1}",
                         "[01]",
                         "[-]",
                         "[1.]",
                         "[1e]",
                         "\"abc",
                         "\"\\x\"",
                         "\"\\u12\"",
                         "\"\\ud800\"",
                         "\"\\udc00\"",
                         "\"\x01\"",
                         "\"\xff\"",
                         "\"\xc0\xaf\"",
                         "[tru]",
                         "{} {}",
                         "{\"a\":1,\"a\":2}",
                         "nul",
                         "[1 2]",
                         "{1:2}",
                         "\"\\",
                         "[18446744073709551616]",
                         "[-9223372036854775809]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (parses(bad[i], err, sizeof err)) {
            fprintf(stderr, "accepted: %s\n", bad[i]);
            fail();
        }
        assert_true(strncmp(err, "byte ", 5) == 0);
    }
    assert_true(parses("{\"a\":1,\"a\":2}", err, sizeof err) == false);
    assert_non_null(strstr(err, "duplicate"));
    /* An integer outside int64 is an error, never a rounded double. */
    assert_false(parses("{\"a\": 9223372036854775808}", err, sizeof err));
    assert_non_null(strstr(err, "too big"));
    /* Object members keep the file's order; a \u0000 keeps its length. */
    assert_true(fmr_json_parse("{\"z\":1,\"a\":2,\"m\":\"x\\u0000y\"}", 28, &doc, err, sizeof err,
                               NULL));
    assert_string_equal(doc.root->keys[0], "z");
    assert_string_equal(doc.root->keys[1], "a");
    assert_string_equal(doc.root->keys[2], "m");
    assert_int_equal(doc.root->items[2].len, 3);
    fmr_json_free(&doc);
    /* Nesting past the cap is an error, not a deep recursion. */
    char deep[400];
    memset(deep, '[', 200);
    memset(deep + 200, ']', 200);
    assert_false(fmr_json_parse(deep, sizeof deep, &doc, err, sizeof err, NULL));
    fmr_json_free(&doc);
    assert_non_null(strstr(err, "nested deeper"));
    memset(deep, '[', 60);
    memset(deep + 60, ']', 60);
    assert_true(fmr_json_parse(deep, 120, &doc, err, sizeof err, NULL));
    fmr_json_free(&doc);
    /* Embedded NUL bytes in the text are just bytes: outside a string they
     * are an error, not an end of text. */
    assert_false(fmr_json_parse("{}\0", 3, &doc, err, sizeof err, NULL));
    fmr_json_free(&doc);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_reader),
        cmocka_unit_test(test_header_fields_broadcast),
        cmocka_unit_test(test_header_fields_per_head_and_batch),
        cmocka_unit_test(test_round_trip_file_and_attention),
        cmocka_unit_test(test_dense_import_round_trip),
        cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_escaped_header_text),
    };
    return TU_RUN(tests, argc, argv);
}
