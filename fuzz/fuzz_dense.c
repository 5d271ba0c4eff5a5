/* Fuzz target: dense masks imported as BlockMasks, checked exactly.
 *
 * The bytes describe a small dense mask (rank 2 to 4; up to 64 x 64 per
 * slice, or 3 x 20,000 in long-row mode; batch and heads up to 4, size-1
 * dims broadcasting or not), boolean or additive, its slices drawn from
 * patterns that give full, empty and partial tiles (all 0, all 1, causal,
 * band, rectangles, random bits, a copy of another slice) plus a few
 * flipped points; then block sizes and the shape to build for. The import
 * must succeed (or, when the bytes plant a value that is not 0/1 or
 * 0/-inf, or ask for a shape the array does not fit, fail with
 * FM_ERR_INVALID_ARGUMENT), and then, against brute force over the array:
 *   - every tile's class (row and column lists, ascending), the tile
 *     counts, the broadcast flags and the count of true positions;
 *   - fm_blockmask_eval at every point; fm_blockmask_to_dense;
 *   - sometimes: the same array through a .npy file (bool / uint8, or
 *     float16 / float32 / float64 additive) and fm_blockmask_from_npy;
 *     a safetensors round trip; CPU attention against a naive reference
 *     on head dims 1..4 (float32, grouped kv heads sometimes).
 * FM_FUZZ_VERBOSE=1 prints what the bytes decoded to. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flexmask.h"
#include "runtime/interop/npy.h"
#include "fuzz/fuzz_util.h"

static uint64_t g_rng;

static uint32_t rnd(void) {
    g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(g_rng >> 33);
}

static bool verbose(void) {
    static int v = -1;
    if (v < 0) v = getenv("FM_FUZZ_VERBOSE") != NULL;
    return v;
}

static void fail(const char *what, fm_diagnostics *d) {
    fprintf(stderr, "fuzz_dense: %s\n", what);
    if (d) {
        char *t = fm_diagnostics_format(d, false);
        if (t && *t) fprintf(stderr, "%s", t);
        fm_free(t);
    }
    __builtin_trap();
}

/* 24 bits from the bytes, for positions in long rows. */
static int64_t take24(void) {
    unsigned x = take() << 16;
    x |= take() << 8;
    return (int64_t)(x | take());
}

/* One [q_len, kv_len] slice of 0/1 bytes from a pattern; offsets and
 * widths scale with the row, so long rows get long runs. */
static void fill_slice(uint8_t *s, int64_t ql, int64_t kl, const uint8_t *copy) {
    int64_t scale = kl > 64 ? kl / 64 : 1;
    unsigned kind = take() % 8;
    int64_t a0 = take(), w = (1 + take() % 40) * scale;
    int64_t a = (a0 % 80 - 16) * scale, period = (1 + (a0 & 15)) * scale;
    unsigned density = take();
    for (int64_t q = 0; q < ql; q++)
        for (int64_t kv = 0; kv < kl; kv++) {
            uint8_t v;
            switch (kind) {
            case 0: v = 0; break;
            case 1: v = 1; break;
            case 2: v = kv <= q + a; break;
            case 3: v = llabs(q + a - kv) < w; break;
            case 4: v = (q / w + kv / period) % 2 == 0; break; /* rectangles */
            case 5: v = (rnd() & 255) < density; break;
            case 6: v = copy ? copy[q * kl + kv] : 1; break;
            default: v = (kv >= a && kv < a + w) || q == kv; break;
            }
            s[q * kl + kv] = v;
        }
    for (unsigned flips = take() % 4; flips; flips--) {
        int64_t i = take24() % (ql * kl);
        s[i] ^= 1;
    }
}

/* Brute force: the class of tile (qb, kb) of slice s: 0 empty, 1 partial,
 * 2 full. A tile clipped by Q_LEN or KV_LEN is never full (the language
 * spec's BlockMask semantics: the kernel must still mask its edge). */
static int tile_class(const uint8_t *s, int64_t ql, int64_t kl, int64_t bq, int64_t bk, int64_t qb,
                      int64_t kb) {
    int64_t n = 0, t = 0;
    for (int64_t q = qb * bq; q < ql && q < (qb + 1) * bq; q++)
        for (int64_t kv = kb * bk; kv < kl && kv < (kb + 1) * bk; kv++) {
            n++;
            t += s[q * kl + kv];
        }
    return t == 0 ? 0 : t == n && n == bq * bk ? 2 : 1;
}

/* Whether the row lists and the column lists of (b, h) both give every
 * tile the class in want (a tile in both lists, or a list out of order or
 * out of range, never matches). */
static bool lists_match(const fm_blockmask *m, int64_t b, int64_t h, int64_t nqb, int64_t nkb,
                        const int8_t *want) {
    int8_t *got = malloc((size_t)(nqb * nkb));
    memset(got, 0, (size_t)(nqb * nkb));
    bool ok = true;
    for (int64_t qb = 0; qb < nqb && ok; qb++) {
        const int32_t *f, *p;
        int64_t nf, np;
        if (fm_blockmask_row(m, b, h, qb, &f, &nf, &p, &np) != FM_OK) ok = false;
        for (int64_t k = 0; ok && k < nf; k++) {
            ok = f[k] >= 0 && f[k] < nkb && (k == 0 || f[k] > f[k - 1]);
            if (ok) got[qb * nkb + f[k]] += 2;
        }
        for (int64_t k = 0; ok && k < np; k++) {
            ok = p[k] >= 0 && p[k] < nkb && (k == 0 || p[k] > p[k - 1]);
            if (ok) got[qb * nkb + p[k]] += 1;
        }
    }
    for (int64_t i = 0; ok && i < nqb * nkb; i++)
        ok = got[i] == want[i];
    /* Columns: the same classes, transposed. */
    memset(got, 0, (size_t)(nqb * nkb));
    for (int64_t kb = 0; kb < nkb && ok; kb++) {
        const int32_t *f, *p;
        int64_t nf, np;
        if (fm_blockmask_column(m, b, h, kb, &f, &nf, &p, &np) != FM_OK) ok = false;
        for (int64_t k = 0; ok && k < nf; k++) {
            ok = f[k] >= 0 && f[k] < nqb && (k == 0 || f[k] > f[k - 1]);
            if (ok) got[f[k] * nkb + kb] += 2;
        }
        for (int64_t k = 0; ok && k < np; k++) {
            ok = p[k] >= 0 && p[k] < nqb && (k == 0 || p[k] > p[k - 1]);
            if (ok) got[p[k] * nkb + kb] += 1;
        }
    }
    for (int64_t i = 0; ok && i < nqb * nkb; i++)
        ok = got[i] == want[i];
    free(got);
    return ok;
}

/* float16 bits of the values a plant or an additive mask uses. */
/* The slice, the brute-force classes and the row lists, on a failure. */
static void dump(const fm_blockmask *m, int64_t b, int64_t h, const uint8_t *sl, int64_t ql,
                 int64_t kl, int64_t nqb, const int8_t *cls) {
    int64_t nkb = 0;
    fm_blockmask_info info;
    fm_blockmask_get_info(m, &info);
    nkb = info.num_kv_blocks;
    for (int64_t q = 0; q < ql && q < 64; q++) {
        for (int64_t kv = 0; kv < kl; kv++)
            fputc(sl[q * kl + kv] ? '#' : '.', stderr);
        fputc('\n', stderr);
    }
    for (int64_t qb = 0; qb < nqb; qb++) {
        const int32_t *f, *p;
        int64_t nf, np;
        fm_blockmask_row(m, b, h, qb, &f, &nf, &p, &np);
        fprintf(stderr, "row %lld want", (long long)qb);
        for (int64_t kb = 0; kb < nkb; kb++)
            fprintf(stderr, " %d", cls[qb * nkb + kb]);
        fprintf(stderr, "; full");
        for (int64_t k = 0; k < nf; k++)
            fprintf(stderr, " %d", f[k]);
        fprintf(stderr, "; partial");
        for (int64_t k = 0; k < np; k++)
            fprintf(stderr, " %d", p[k]);
        fputc('\n', stderr);
    }
}

static uint16_t half_of(float x) {
    if (isnan(x)) return 0x7e00;
    if (isinf(x)) return x < 0 ? 0xfc00 : 0x7c00;
    if (x == 1.0f) return 0x3c00;
    if (x == -3.0f) return 0xc200;
    return signbit(x) ? 0x8000 : 0;
}

/* Writes the array as a .npy file of dtype t and imports it with
 * fm_blockmask_from_npy. */
static fm_status via_npy(fmr_npy_dtype t, const uint8_t *bits, const float *add, size_t rank,
                         const int64_t *dims, int64_t count, const fm_shape *shape,
                         const fm_build_options *o, fm_diagnostics *d, fm_blockmask **out) {
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "/tmp/fuzz_dense_%d.npy", (int)getpid());
    void *buf = NULL;
    if (t == FMR_NPY_FLOAT16) {
        uint16_t *hv = malloc((size_t)count * 2);
        for (int64_t i = 0; i < count; i++)
            hv[i] = half_of(add[i]);
        buf = hv;
    } else if (t == FMR_NPY_FLOAT64) {
        double *dv = malloc((size_t)count * 8);
        for (int64_t i = 0; i < count; i++)
            dv[i] = add[i];
        buf = dv;
    }
    const void *src = buf ? buf : add ? (const void *)add : (const void *)bits;
    fmd_diags nd;
    fmd_diags_init(&nd);
    if (fmr_npy_save(path, t, rank, dims, src, &nd) != FM_OK) fail("npy save", NULL);
    fmd_diags_clear(&nd);
    free(buf);
    fm_status st = fm_blockmask_from_npy(path, shape, o, d, out);
    unlink(path);
    return st;
}

/* Saved as safetensors and loaded back: the same mask everywhere. */
static void safetensors_round_trip(const fm_blockmask *m, const uint8_t *dense, size_t count,
                                   fm_diagnostics *d) {
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "/tmp/fuzz_dense_%d.safetensors", (int)getpid());
    if (fm_blockmask_save_safetensors(m, path, d) != FM_OK) fail("safetensors save", d);
    size_t len = 0;
    unsigned char *img = read_file(path, &len);
    unlink(path);
    if (!img) fail("safetensors: cannot read back the file", NULL);
    fm_blockmask *back = NULL;
    if (fm_blockmask_load_safetensors_memory("dense.safetensors", img, len, d, &back) != FM_OK)
        fail("safetensors load", d);
    free(img);
    uint8_t *again = NULL;
    size_t n = 0;
    if (fm_blockmask_to_dense(back, &again, &n, d) != FM_OK || n != count ||
        memcmp(again, dense, n) != 0)
        fail("safetensors: the loaded mask differs", d);
    fm_free(again);
    fm_blockmask_info a, b;
    fm_blockmask_get_info(m, &a);
    fm_blockmask_get_info(back, &b);
    if (a.full_tiles != b.full_tiles || a.partial_tiles != b.partial_tiles ||
        a.broadcast_batch != b.broadcast_batch || a.broadcast_heads != b.broadcast_heads)
        fail("safetensors: the loaded tiles differ", NULL);
    fm_blockmask_free(back);
}

/* Softmax attention at every query against the dense mask, in double. */
static void attention_check(const fm_blockmask *m, const uint8_t *dense, fm_shape s,
                            fm_diagnostics *d) {
    int64_t D = 1 + take() % 4, kvh = take() % 2 && s.heads > 1 ? 1 : s.heads;
    if (s.heads % 2 == 0 && take() % 3 == 0) kvh = s.heads / 2;
    int64_t nq = s.batch * s.heads * s.q_len * D, nk = s.batch * kvh * s.kv_len * D;
    float *q = malloc((size_t)nq * 4), *k = malloc((size_t)nk * 4), *v = malloc((size_t)nk * 4);
    float *o = malloc((size_t)nq * 4), *lse = malloc((size_t)(nq / D) * 4);
    for (int64_t i = 0; i < nq; i++)
        q[i] = (float)((int)(rnd() % 2001) - 1000) / 500.0f;
    for (int64_t i = 0; i < nk; i++)
        k[i] = (float)((int)(rnd() % 2001) - 1000) / 500.0f;
    for (int64_t i = 0; i < nk; i++)
        v[i] = (float)((int)(rnd() % 2001) - 1000) / 500.0f;
    fm_attention_args args = {.struct_size = sizeof(fm_attention_args), 
        .mask = m,
        .q = fm_tensor_contiguous(q, FM_FLOAT32, s.batch, s.heads, s.q_len, D),
        .k = fm_tensor_contiguous(k, FM_FLOAT32, s.batch, kvh, s.kv_len, D),
        .v = fm_tensor_contiguous(v, FM_FLOAT32, s.batch, kvh, s.kv_len, D),
        .out = fm_tensor_contiguous(o, FM_FLOAT32, s.batch, s.heads, s.q_len, D),
        .lse = lse,
        .num_threads = 1,
    };
    if (fm_attention_cpu(&args, d) != FM_OK) fail("attention failed", d);
    double scale = 1.0 / sqrt((double)D);
    for (int64_t b = 0; b < s.batch; b++)
        for (int64_t h = 0; h < s.heads; h++)
            for (int64_t i = 0; i < s.q_len; i++) {
                const uint8_t *row = dense + ((b * s.heads + h) * s.q_len + i) * s.kv_len;
                const float *qi = q + ((b * s.heads + h) * s.q_len + i) * D;
                int64_t hk = h / (s.heads / kvh);
                const float *kb = k + (b * kvh + hk) * s.kv_len * D;
                const float *vb = v + (b * kvh + hk) * s.kv_len * D;
                double mx = -INFINITY;
                for (int64_t j = 0; j < s.kv_len; j++) {
                    if (!row[j]) continue;
                    double x = 0;
                    for (int64_t c = 0; c < D; c++)
                        x += (double)qi[c] * kb[j * D + c];
                    if (x * scale > mx) mx = x * scale;
                }
                double sum = 0, acc[4] = {0};
                for (int64_t j = 0; j < s.kv_len; j++) {
                    if (!row[j]) continue;
                    double x = 0;
                    for (int64_t c = 0; c < D; c++)
                        x += (double)qi[c] * kb[j * D + c];
                    double e = exp(x * scale - mx);
                    sum += e;
                    for (int64_t c = 0; c < D; c++)
                        acc[c] += e * vb[j * D + c];
                }
                const float *oi = o + ((b * s.heads + h) * s.q_len + i) * D;
                float l = lse[(b * s.heads + h) * s.q_len + i];
                if (sum == 0) {
                    for (int64_t c = 0; c < D; c++)
                        if (oi[c] != 0) fail("attention: a row with no key is not zero", NULL);
                    if (!(isinf(l) && l < 0))
                        fail("attention: an empty row's lse is not -inf", NULL);
                    continue;
                }
                double want_lse = mx + log(sum);
                if (fabs(l - want_lse) > 1e-4 * (1 + fabs(want_lse)))
                    fail("attention: lse differs from the reference", NULL);
                for (int64_t c = 0; c < D; c++)
                    if (fabs(oi[c] - acc[c] / sum) > 1e-4 * (1 + fabs(acc[c] / sum))) {
                        fprintf(stderr, "b=%lld h=%lld q=%lld c=%lld: %g vs %g\n", (long long)b,
                                (long long)h, (long long)i, (long long)c, (double)oi[c],
                                acc[c] / sum);
                        fail("attention: output differs from the reference", NULL);
                    }
            }
    free(q);
    free(k);
    free(v);
    free(o);
    free(lse);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    g_p = data;
    g_n = size;
    unsigned flags = take(), more = take();
    g_rng = (uint64_t)more * 0x9e3779b97f4a7c15ull + 1;
    size_t rank = 2 + flags % 3;
    bool additive = flags & 4, reshape = flags & 8, attend = flags & 16, st_trip = flags & 32;
    bool plant = (flags & 64) && more % 4 == 0, npy = flags & 128;
    static const fmr_npy_dtype npy_bool[2] = {FMR_NPY_BOOL, FMR_NPY_UINT8};
    static const fmr_npy_dtype npy_add[3] = {FMR_NPY_FLOAT32, FMR_NPY_FLOAT16, FMR_NPY_FLOAT64};
    fmr_npy_dtype npy_t = additive ? npy_add[more / 16 % 3] : npy_bool[more / 16 % 2];
    bool bad_shape = reshape && more % 8 == 1;
    int64_t dims[4] = {0};
    /* Long rows (up to 20,000 keys, 1 to 3 queries) reach what short ones
     * cannot: a byte input's range tables keep blocks of 128 elements, a
     * sparse table over them for a one-row array, and superblocks of 32
     * blocks for a many-row one, which only a tile of 8,192 keys or more
     * queries. */
    bool long_rows = more & 8;
    for (size_t k = 0; k + 2 < rank; k++) {
        unsigned x = take();
        dims[k] = x % 3 == 0 ? 1 : 1 + x % (long_rows ? 2 : 4);
    }
    dims[rank - 2] = 1 + take() % (long_rows ? 3 : 64);
    dims[rank - 1] = long_rows ? 1 + take24() % 20000 : 1 + take() % 64;
    int64_t arr_b = rank == 4 ? dims[0] : 1, arr_h = rank >= 3 ? dims[rank - 3] : 1;
    int64_t ql = dims[rank - 2], kl = dims[rank - 1], slice = ql * kl;
    fm_shape want = {arr_b, arr_h, ql, kl}, ask = {0, 0, 0, 0};
    if (reshape) {
        /* A size-1 dim broadcasts to any size; 0 asks for the array's. */
        unsigned x = take(), y = take();
        ask.batch = arr_b == 1 ? x % 5 : x % 2 ? arr_b : 0;
        ask.heads = arr_h == 1 ? y % 5 : y % 2 ? arr_h : 0;
        if (ask.batch) want.batch = ask.batch;
        if (ask.heads) want.heads = ask.heads;
        if (take() % 2) ask.q_len = ql, ask.kv_len = kl;
        if (bad_shape) {
            /* Something the array does not fit. */
            switch (take() % 3) {
            case 0:
                ask.q_len = ql + 1 + take() % 3;
                ask.kv_len = kl;
                break;
            case 1: ask.kv_len = kl + 1; break;
            default:
                if (arr_b > 1)
                    ask.batch = arr_b + 1;
                else if (arr_h > 1)
                    ask.heads = arr_h + 1;
                else
                    ask.q_len = ql + 1;
                break;
            }
        }
    }
    int64_t count = arr_b * arr_h * slice;
    uint8_t *bits = malloc((size_t)count);
    for (int64_t sl = 0; sl < arr_b * arr_h; sl++)
        fill_slice(bits + sl * slice, ql, kl, sl ? bits + (sl - 1) * slice : NULL);
    float *add = NULL;
    if (additive) {
        add = malloc((size_t)count * 4);
        for (int64_t i = 0; i < count; i++)
            add[i] = bits[i] ? (rnd() % 4 ? 0.0f : -0.0f) : -INFINITY;
    }
    if (plant) {
        /* One value that is neither: the import must refuse it. */
        int64_t i = take24() % count;
        /* The last two round to -inf and 0 in float16: not planted there. */
        static const float bad_f[] = {1.0f, NAN, INFINITY, -3.0f, -1e38f, 1e-45f};
        bool half = npy && npy_t == FMR_NPY_FLOAT16;
        if (additive)
            add[i] = bad_f[take() % (half ? 4 : 6)];
        else
            bits[i] = (uint8_t)(2 + take() % 254);
    }
    fm_build_options o = {.struct_size = sizeof(fm_build_options), .block_q = 1 + take() % 64, .block_kv = 1 + take() % 64};
    if (long_rows) {
        /* Tiles of a few keys up to past the whole row. */
        o.block_q = 1 + o.block_q % 4;
        unsigned x = take();
        if (x % 4 == 1) o.block_kv = 1 + take24() % kl;
        if (x % 4 == 2) o.block_kv = kl;
        if (x % 4 == 3) o.block_kv = 1 + take24() % (2 * kl);
    }
    if (verbose())
        fprintf(stderr,
                "rank %zu dims [%lld %lld %lld %lld] %s%s%s %s%s%s block %lldx%lld ask "
                "{%lld %lld %lld %lld}\n",
                rank, (long long)dims[0], (long long)dims[1], (long long)dims[2],
                (long long)dims[3], additive ? "additive" : "bool", plant ? " planted" : "",
                bad_shape ? " bad-shape" : "", npy ? fmr_npy_dtype_name(npy_t) : "",
                attend ? " attend" : "", st_trip ? " safetensors" : "", (long long)o.block_q,
                (long long)o.block_kv, (long long)ask.batch, (long long)ask.heads,
                (long long)ask.q_len, (long long)ask.kv_len);

    fm_diagnostics *d = fm_diagnostics_create();
    fm_blockmask *m = NULL;
    const fm_shape *sp = reshape ? &ask : NULL;
    fm_status st = npy ? via_npy(npy_t, bits, add, rank, dims, count, sp, &o, d, &m)
                       : fm_blockmask_from_dense(additive ? (const void *)add : bits,
                                                 additive ? FM_DENSE_ADDITIVE : FM_DENSE_BOOL, rank,
                                                 dims, sp, &o, d, &m);
    if (plant || bad_shape) {
        if (st != FM_ERR_INVALID_ARGUMENT) fail("a bad array or shape was not refused", d);
        char *t = fm_diagnostics_format(d, false);
        if (!t || !*t) fail("a refused import gave no message", NULL);
        fm_free(t);
        goto done;
    }
    if (st != FM_OK) fail("import failed", d);

    fm_shape s = want;
    fm_blockmask_info info;
    if (fm_blockmask_get_info(m, &info) != FM_OK) fail("get_info", NULL);
    int64_t nqb = (ql + o.block_q - 1) / o.block_q, nkb = (kl + o.block_kv - 1) / o.block_kv;
    if (memcmp(&info.shape, &s, sizeof s) != 0 || info.block_q != o.block_q ||
        info.block_kv != o.block_kv || info.num_q_blocks != nqb || info.num_kv_blocks != nkb)
        fail("info: shape or blocks", NULL);
    if (info.broadcast_batch != (arr_b == 1) || info.broadcast_heads != (arr_h == 1))
        fail("info: broadcast flags", NULL);

    /* The array as the BlockMask should see it: [B, H, Q, KV], broadcast. */
    int64_t total = s.batch * s.heads * slice;
    uint8_t *dense = malloc((size_t)total);
    for (int64_t b = 0; b < s.batch; b++)
        for (int64_t h = 0; h < s.heads; h++)
            memcpy(dense + (b * s.heads + h) * slice,
                   bits + ((arr_b == 1 ? 0 : b) * arr_h + (arr_h == 1 ? 0 : h)) * slice,
                   (size_t)slice);

    int64_t full = 0, partial = 0, empty = 0, trues = 0;
    int8_t *cls = malloc((size_t)(nqb * nkb));
    for (int64_t b = 0; b < s.batch; b++)
        for (int64_t h = 0; h < s.heads; h++) {
            const uint8_t *sl = dense + (b * s.heads + h) * slice;
            for (int64_t qb = 0; qb < nqb; qb++)
                for (int64_t kb = 0; kb < nkb; kb++) {
                    int c = tile_class(sl, ql, kl, o.block_q, o.block_kv, qb, kb);
                    cls[qb * nkb + kb] = (int8_t)c;
                    full += c == 2, partial += c == 1, empty += c == 0;
                }
            if (!lists_match(m, b, h, nqb, nkb, cls)) {
                fprintf(stderr, "slice b=%lld h=%lld\n", (long long)b, (long long)h);
                if (verbose()) dump(m, b, h, sl, ql, kl, nqb, cls);
                fail("a tile's class differs from brute force", NULL);
            }
            for (int64_t q = 0; q < ql; q++)
                for (int64_t kv = 0; kv < kl; kv++) {
                    bool v = false;
                    if (fm_blockmask_eval(m, b, h, q, kv, &v) != FM_OK ||
                        v != (sl[q * kl + kv] != 0)) {
                        fprintf(stderr, "b=%lld h=%lld q=%lld kv=%lld\n", (long long)b,
                                (long long)h, (long long)q, (long long)kv);
                        fail("fm_blockmask_eval differs from the array", NULL);
                    }
                    trues += sl[q * kl + kv];
                }
        }
    free(cls);
    if (info.full_tiles != full || info.partial_tiles != partial || info.empty_tiles != empty)
        fail("info: tile counts", NULL);
    if (info.true_positions != -1 && info.true_positions != trues)
        fail("info: true_positions", NULL);
    int64_t counted = -1;
    if (fm_blockmask_count_true(m, &counted) != FM_OK || counted != trues)
        fail("fm_blockmask_count_true", NULL);

    uint8_t *back = NULL;
    size_t n = 0;
    if (fm_blockmask_to_dense(m, &back, &n, d) != FM_OK || n != (size_t)total ||
        memcmp(back, dense, n) != 0)
        fail("to_dense does not give the array back", d);
    fm_free(back);

    if (st_trip) safetensors_round_trip(m, dense, (size_t)total, d);
    if (attend) attention_check(m, dense, s, d);
    free(dense);
done:
    fm_blockmask_free(m);
    fm_diagnostics_free(d);
    free(bits);
    free(add);
    return 0;
}
