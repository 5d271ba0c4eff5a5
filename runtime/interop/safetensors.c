/* BlockMasks as safetensors files, laid out as the arguments of PyTorch's
 * BlockMask.from_kv_blocks, and read back into complete BlockMasks.
 *
 * The format: an 8-byte little-endian header length N, N bytes of JSON
 * ({"NAME": {"dtype", "shape", "data_offsets": [begin, end]}, ...,
 * "__metadata__": {string: string}}), then the tensor bytes, offsets
 * relative to the end of the header. Tensors are written back to back
 * with no gaps, as the reference implementation requires, and the header
 * is padded with spaces so the data starts 8-byte aligned.
 *
 * Reading trusts nothing: every length, offset, dtype and shape is checked
 * against the bytes there are before anything is read, and the tile lists
 * must equal those of the mask rebuilt from the stored source. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* open_memstream */
#endif
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runtime/api/api_internal.h"
#include "runtime/interop/file_io.h"
#include "runtime/interop/json.h"

/* The reference implementation refuses headers above 100 MB. */
#define FMR_ST_MAX_HEADER ((uint64_t)100000000)
#define FMR_ST_MAX_FILE ((uint64_t)1 << 36)
#define FMR_ST_MAX_LIST_BYTES ((int64_t)1 << 34)


/* ---- writing ---- */

typedef struct st_tensor {
    char name[160];
    size_t rank;
    int64_t dims[4];
    const int32_t *data;
    const uint8_t *bytes; /* instead of data: a byte input, written widened to int32 */
    int64_t count;
} st_tensor;

static bool valid_utf8(const unsigned char *s, size_t n) {
    for (size_t i = 0, l; i < n; i += l)
        if (!(l = fmd_utf8_len(s + i, n - i))) return false;
    return true;
}

static void put_meta(FILE *f, bool *first, const char *key, const char *value, size_t vlen) {
    fputs(*first ? "" : ",", f);
    *first = false;
    fmd_json_string_n(f, key, strlen(key));
    fputc(':', f);
    fmd_json_string_n(f, value, vlen);
}

static void put_meta_int(FILE *f, bool *first, const char *key, int64_t v) {
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%lld", (long long)v);
    put_meta(f, first, key, buf, (size_t)n);
}

/* The header JSON for the tensors (in order, back to back) and metadata. */
static char *make_header(const fm_blockmask *m, const st_tensor *t, size_t nt, size_t *len) {
    const fmc_blockmask *bm = m->bm;
    const fmc_program *p = m->shared->program;
    char *buf = NULL;
    size_t blen = 0;
    FILE *f = open_memstream(&buf, &blen);
    if (!f) return NULL;
    fputs("{\"__metadata__\":{", f);
    bool first = true;
    put_meta(f, &first, "format", "pt", 2);
    put_meta(f, &first, "flexmask_version", FM_VERSION, strlen(FM_VERSION));
    put_meta_int(f, &first, "Q_BLOCK_SIZE", bm->block_q);
    put_meta_int(f, &first, "KV_BLOCK_SIZE", bm->block_kv);
    put_meta_int(f, &first, "Q_LEN", bm->q_len);
    put_meta_int(f, &first, "KV_LEN", bm->kv_len);
    put_meta_int(f, &first, "BATCH", bm->batch);
    put_meta_int(f, &first, "HEADS", bm->heads);
    /* The build is deterministic: a reader rebuilding from the stored
     * source needs exactly this many point evaluations, and bounds its
     * rebuild by it, so a crafted file cannot ask for unbounded work. */
    put_meta_int(f, &first, "evaluations", bm->stats.evaluations);
    put_meta(f, &first, "mask_name", p->mask_name, strlen(p->mask_name));
    put_meta(f, &first, "mask_source_name", p->source->name, strlen(p->source->name));
    put_meta(f, &first, "mask_source", p->source->text, p->source->len);
    for (size_t i = 0; i < p->nparams; i++) {
        char key[160];
        snprintf(key, sizeof key, "param.%s", p->params[i].name);
        put_meta_int(f, &first, key, m->params[i]);
    }
    fputc('}', f);
    uint64_t off = 0;
    for (size_t i = 0; i < nt; i++) {
        fputc(',', f);
        fmd_json_string_n(f, t[i].name, strlen(t[i].name));
        fputs(":{\"dtype\":\"I32\",\"shape\":[", f);
        for (size_t k = 0; k < t[i].rank; k++)
            fprintf(f, "%s%lld", k ? "," : "", (long long)t[i].dims[k]);
        uint64_t end = off + (uint64_t)t[i].count * 4;
        fprintf(f, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                (unsigned long long)end);
        off = end;
    }
    fputc('}', f);
    /* Spaces up to a multiple of 8 (with the 8-byte length in front). */
    long pos = ftell(f);
    while (pos >= 0 && pos % 8 != 0) {
        fputc(' ', f);
        pos++;
    }
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    *len = blen;
    return buf;
}

/* count, indices of one stored row: the listed blocks ascending, then
 * every other block ascending (what create_block_mask's stable argsort
 * gives; from_kv_blocks reads only the first count). */
static void fill_row(const fmc_bm_lists *l, int64_t r, int64_t nkvb, int32_t *num, int32_t *idx,
                     uint8_t *mark) {
    int64_t a = l->off[r], e = l->off[r + 1], k = 0;
    memset(mark, 0, (size_t)nkvb);
    for (int64_t i = a; i < e; i++) {
        idx[k++] = l->idx[i];
        mark[l->idx[i]] = 1;
    }
    *num = (int32_t)(e - a);
    for (int64_t j = 0; j < nkvb; j++)
        if (!mark[j]) idx[k++] = (int32_t)j;
}

/* Writes n int32 little-endian: v's, or u8's widened (files hold every
 * input as int32, whatever its width in memory). */
static bool write_le32(fmr_out *o, const int32_t *v, const uint8_t *u8, int64_t n) {
    unsigned char buf[4096];
    int64_t i = 0;
    while (i < n) {
        size_t k = 0;
        for (; k + 4 <= sizeof buf && i < n; i++, k += 4) {
            uint32_t x = v ? (uint32_t)v[i] : u8[i];
            buf[k] = (unsigned char)x;
            buf[k + 1] = (unsigned char)(x >> 8);
            buf[k + 2] = (unsigned char)(x >> 16);
            buf[k + 3] = (unsigned char)(x >> 24);
        }
        if (!fmr_out_write(o, buf, k)) return false;
    }
    return true;
}

FM_API fm_status fm_blockmask_save_safetensors(const fm_blockmask *blockmask, const char *path,
                                               fm_diagnostics *diags) {
    if (!blockmask || !path) return FM_ERR_INVALID_ARGUMENT;
    const fmc_blockmask *bm = blockmask->bm;
    const fmc_program *p = blockmask->shared->program;
    if (!valid_utf8((const unsigned char *)p->source->text, p->source->len)) {
        fmr_error(diags,
            "%s: the mask source is not valid UTF-8, which a safetensors header (JSON) cannot "
            "hold",
            p->source->name);
        return FM_ERR_UNSUPPORTED;
    }
    int64_t rows = bm->stored_batch * bm->stored_heads * bm->nqb;
    if (rows > FMR_ST_MAX_LIST_BYTES / 4 / bm->nkvb) {
        fmr_error(diags, "%s: the kv_indices tensors would pass the limit of 2^34 bytes", path);
        return FM_ERR_LIMIT;
    }
    size_t nt = 4 + p->ninputs;
    st_tensor *t = calloc(nt, sizeof *t);
    int32_t *num[2] = {malloc((size_t)rows * 4), malloc((size_t)rows * 4)};
    int32_t *idx[2] = {malloc((size_t)(rows * bm->nkvb) * 4),
                       malloc((size_t)(rows * bm->nkvb) * 4)};
    uint8_t *mark = malloc((size_t)bm->nkvb);
    char *header = NULL;
    fm_status st = FM_OK;
    if (!t || !num[0] || !num[1] || !idx[0] || !idx[1] || !mark) {
        st = FM_ERR_NO_MEMORY;
        goto done;
    }
    const fmc_bm_lists *lists[2] = {&bm->partial, &bm->full};
    static const char *const names[2][2] = {{"kv_num_blocks", "kv_indices"},
                                            {"full_kv_num_blocks", "full_kv_indices"}};
    for (int w = 0; w < 2; w++) {
        for (int64_t r = 0; r < rows; r++)
            fill_row(lists[w], r, bm->nkvb, &num[w][r], &idx[w][r * bm->nkvb], mark);
        st_tensor *tn = &t[2 * w], *ti = &t[2 * w + 1];
        snprintf(tn->name, sizeof tn->name, "%s", names[w][0]);
        snprintf(ti->name, sizeof ti->name, "%s", names[w][1]);
        tn->rank = 3;
        ti->rank = 4;
        tn->dims[0] = ti->dims[0] = bm->stored_batch;
        tn->dims[1] = ti->dims[1] = bm->stored_heads;
        tn->dims[2] = ti->dims[2] = bm->nqb;
        ti->dims[3] = bm->nkvb;
        tn->data = num[w];
        tn->count = rows;
        ti->data = idx[w];
        ti->count = rows * bm->nkvb;
    }
    for (size_t i = 0; i < p->ninputs; i++) {
        st_tensor *x = &t[4 + i];
        snprintf(x->name, sizeof x->name, "input.%s", p->inputs[i].name);
        x->rank = p->inputs[i].rank;
        x->count = 1;
        for (size_t k = 0; k < x->rank; k++) {
            x->dims[k] = blockmask->input_dims[i][k];
            x->count *= x->dims[k];
        }
        if (fmc_input_is_bytes(&p->inputs[i])) x->bytes = blockmask->byte_inputs[i];
        else x->data = blockmask->inputs[i];
    }
    size_t hlen = 0;
    header = make_header(blockmask, t, nt, &hlen);
    if (!header) {
        st = FM_ERR_NO_MEMORY;
        goto done;
    }
    /* Through a temporary: a failed write leaves an existing file as it was. */
    fmr_out o;
    if (!fmr_out_open(&o, path)) {
        fmr_error(diags, "%s: %s", path, o.error);
        st = FM_ERR_IO;
        goto done;
    }
    unsigned char lenbuf[8];
    for (int k = 0; k < 8; k++)
        lenbuf[k] = (unsigned char)((uint64_t)hlen >> (8 * k));
    bool ok = fmr_out_write(&o, lenbuf, 8) && fmr_out_write(&o, header, hlen);
    for (size_t i = 0; i < nt && ok; i++)
        ok = write_le32(&o, t[i].data, t[i].bytes, t[i].count);
    if (!ok)
        fmr_out_abort(&o);
    else
        ok = fmr_out_commit(&o);
    if (!ok) {
        fmr_error(diags, "%s: %s", path, o.error);
        st = FM_ERR_IO;
    }
done:
    free(header);
    free(t);
    free(num[0]);
    free(num[1]);
    free(idx[0]);
    free(idx[1]);
    free(mark);
    return st;
}

/* ---- reading ---- */

typedef struct st_reader {
    const char *name;
    const unsigned char *data; /* the tensor bytes */
    uint64_t data_len;
    fm_diagnostics *diags;
    const fmr_json *root, *meta;
} st_reader;

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static bool parse_int(const char *s, size_t len, int64_t *out) {
    size_t i = 0;
    bool neg = false;
    if (i < len && s[i] == '-') neg = true, i++;
    if (i == len) return false;
    uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (limit - d) / 10) return false;
        v = v * 10 + d;
    }
    *out = neg ? (v == limit ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    return true;
}

/* Names and values from the header, shown in messages: escaped (a crafted
 * file must not drive the terminal) and cut to max bytes. */
#define SHOWN_BUF(max) (4 * (max) + 1)
#define SHOWN(buf, str, max) (fmd_escape(buf, sizeof buf, str, strnlen(str, max)), buf)

/* A name from the header that reaches another module's messages (a mask,
 * param or input name, the source's file name): one whose bytes need
 * escaping (or that holds a NUL) is passed escaped. Such a name is never an
 * identifier, so it matches nothing either way; the message then shows it
 * safely. *tmp (freed by the caller) holds the copy. */
static const char *plain_name(const char *str, size_t len, char **tmp) {
    *tmp = NULL;
    if (!fmd_needs_escape(str, len)) return str;
    *tmp = malloc(4 * len + 1);
    if (!*tmp) return "?";
    fmd_escape(*tmp, 4 * len + 1, str, len);
    return *tmp;
}

/* The string metadata value of key, or NULL with a message. */
static const fmr_json *meta_string(st_reader *r, const char *key) {
    const fmr_json *v = fmr_json_get(r->meta, key);
    if (!v) fmr_error(r->diags, "%s: the metadata has no \"%s\"", r->name, key);
    return v;
}

static bool meta_int(st_reader *r, const char *key, int64_t lo, int64_t hi, int64_t *out) {
    const fmr_json *v = meta_string(r, key);
    if (!v) return false;
    if (!parse_int(v->str, v->len, out) || *out < lo || *out > hi) {
        char shown[SHOWN_BUF(40)];
        fmr_error(r->diags, "%s: metadata \"%s\" is \"%s\", not an integer in [%lld, %lld]", r->name,
            key, SHOWN(shown, v->str, 40), (long long)lo, (long long)hi);
        return false;
    }
    return true;
}

/* An int32 tensor: checks dtype, rank, that its offsets lie in the data
 * and agree with its shape. want[k] < 0 takes any size (written to dims). */
static bool get_tensor(st_reader *r, const char *name, const fmr_json *t, size_t rank,
                       int64_t *dims, const unsigned char **bytes) {
    char key[SHOWN_BUF(64)];
    SHOWN(key, name, 64);
    if (!t) {
        fmr_error(r->diags, "%s: there is no tensor \"%s\"", r->name, key);
        return false;
    }
    if (t->kind != FMR_JSON_OBJECT) {
        fmr_error(r->diags, "%s: tensor \"%s\" is %s, not an object", r->name, key,
            fmr_json_kind_name(t->kind));
        return false;
    }
    const fmr_json *dt = fmr_json_get(t, "dtype"), *sh = fmr_json_get(t, "shape"),
                   *off = fmr_json_get(t, "data_offsets");
    if (!dt || dt->kind != FMR_JSON_STRING || !sh || sh->kind != FMR_JSON_ARRAY || !off ||
        off->kind != FMR_JSON_ARRAY) {
        fmr_error(r->diags,
            "%s: tensor \"%s\" needs \"dtype\" (a string), \"shape\" and \"data_offsets\" "
            "(arrays)",
            r->name, key);
        return false;
    }
    if (strcmp(dt->str, "I32") != 0) {
        char shown[SHOWN_BUF(16)];
        fmr_error(r->diags, "%s: tensor \"%s\" has dtype %s; flexmask writes and reads I32 (int32)",
            r->name, key, SHOWN(shown, dt->str, 16));
        return false;
    }
    if (sh->count != rank) {
        fmr_error(r->diags, "%s: tensor \"%s\" has rank %zu; expected %zu", r->name, key, sh->count,
            rank);
        return false;
    }
    uint64_t count = 1;
    for (size_t k = 0; k < rank; k++) {
        const fmr_json *d = &sh->items[k];
        if (d->kind != FMR_JSON_INT || d->integer < 0 || (dims[k] >= 0 && d->integer != dims[k])) {
            if (d->kind == FMR_JSON_INT && d->integer >= 0)
                fmr_error(r->diags, "%s: tensor \"%s\" has size %lld in dimension %zu; expected %lld",
                    r->name, key, (long long)d->integer, k, (long long)dims[k]);
            else
                fmr_error(r->diags, "%s: tensor \"%s\": shape entry %zu is not a size", r->name, key, k);
            return false;
        }
        dims[k] = d->integer;
        if (d->integer && count > r->data_len / (uint64_t)d->integer)
            count = UINT64_MAX;
        else
            count *= (uint64_t)d->integer;
    }
    if (off->count != 2 || off->items[0].kind != FMR_JSON_INT ||
        off->items[1].kind != FMR_JSON_INT || off->items[0].integer < 0 ||
        off->items[1].integer < off->items[0].integer) {
        fmr_error(r->diags,
            "%s: tensor \"%s\": data_offsets must be two integers [begin, end], begin <= end",
            r->name, key);
        return false;
    }
    uint64_t b = (uint64_t)off->items[0].integer, e = (uint64_t)off->items[1].integer;
    if (e > r->data_len) {
        fmr_error(r->diags,
            "%s: tensor \"%s\" ends at data byte %llu but the file holds %llu bytes of data "
            "(truncated?)",
            r->name, key, (unsigned long long)e, (unsigned long long)r->data_len);
        return false;
    }
    if (count == UINT64_MAX || e - b != count * 4) {
        fmr_error(r->diags, "%s: tensor \"%s\" holds %llu bytes but its shape needs %s", r->name, key,
            (unsigned long long)(e - b),
            count == UINT64_MAX ? "more than the file" : "4 per element");
        return false;
    }
    *bytes = r->data + b;
    return true;
}

static bool check_tensor_set(st_reader *r) {
    /* Tensors back to back, covering the data exactly, as the reference
     * implementation requires: anything else is a corrupted file. */
    size_t n = 0;
    for (size_t i = 0; i < r->root->count; i++)
        n += strcmp(r->root->keys[i], "__metadata__") != 0;
    uint64_t *ranges = calloc(n ? 2 * n : 1, sizeof *ranges);
    if (!ranges) return false;
    size_t k = 0;
    bool ok = true;
    for (size_t i = 0; i < r->root->count && ok; i++) {
        if (!strcmp(r->root->keys[i], "__metadata__")) continue;
        const fmr_json *off = fmr_json_get(&r->root->items[i], "data_offsets");
        if (!off || off->kind != FMR_JSON_ARRAY || off->count != 2 ||
            off->items[0].kind != FMR_JSON_INT || off->items[1].kind != FMR_JSON_INT ||
            off->items[0].integer < 0 || off->items[1].integer < off->items[0].integer) {
            char shown[SHOWN_BUF(64)];
            fmr_error(r->diags, "%s: tensor \"%s\" has no valid data_offsets", r->name,
                SHOWN(shown, r->root->keys[i], 64));
            ok = false;
            break;
        }
        ranges[2 * k] = (uint64_t)off->items[0].integer;
        ranges[2 * k + 1] = (uint64_t)off->items[1].integer;
        k++;
    }
    /* Insertion sort by begin: a handful of tensors. */
    for (size_t i = 1; ok && i < k; i++) {
        uint64_t b = ranges[2 * i], e = ranges[2 * i + 1];
        size_t j = i;
        for (; j > 0 && ranges[2 * (j - 1)] > b; j--) {
            ranges[2 * j] = ranges[2 * (j - 1)];
            ranges[2 * j + 1] = ranges[2 * (j - 1) + 1];
        }
        ranges[2 * j] = b;
        ranges[2 * j + 1] = e;
    }
    uint64_t at = 0;
    for (size_t i = 0; ok && i < k; i++) {
        if (ranges[2 * i] != at) {
            fmr_error(r->diags, "%s: the tensor data %s at byte %llu (tensors must lie back to back)",
                r->name, ranges[2 * i] > at ? "has a gap" : "overlaps", (unsigned long long)at);
            ok = false;
        }
        at = ranges[2 * i + 1];
    }
    if (ok && at != r->data_len) {
        fmr_error(r->diags, "%s: the tensors cover %llu bytes of data but the file holds %llu", r->name,
            (unsigned long long)at, (unsigned long long)r->data_len);
        ok = false;
    }
    free(ranges);
    return ok;
}

typedef struct st_lists {
    int64_t b, h; /* stored batch, heads: 1 or the whole */
    const unsigned char *num[2], *idx[2];
} st_lists;

/* Reads and checks the four from_kv_blocks tensors. */
static bool read_lists(st_reader *r, fm_shape s, int64_t nqb, int64_t nkvb, st_lists *l) {
    static const char *const names[2][2] = {{"kv_num_blocks", "kv_indices"},
                                            {"full_kv_num_blocks", "full_kv_indices"}};
    for (int w = 0; w < 2; w++) {
        int64_t dn[3] = {-1, -1, nqb};
        if (!get_tensor(r, names[w][0], fmr_json_get(r->root, names[w][0]), 3, dn, &l->num[w]))
            return false;
        if ((dn[0] != 1 && dn[0] != s.batch) || (dn[1] != 1 && dn[1] != s.heads)) {
            fmr_error(r->diags,
                "%s: tensor \"%s\" is [%lld, %lld, %lld]; its first two sizes must be 1 or "
                "BATCH=%lld, HEADS=%lld",
                r->name, names[w][0], (long long)dn[0], (long long)dn[1], (long long)dn[2],
                (long long)s.batch, (long long)s.heads);
            return false;
        }
        if (w == 1 && (dn[0] != l->b || dn[1] != l->h)) {
            fmr_error(r->diags,
                "%s: full_kv_num_blocks and kv_num_blocks differ in their first two sizes",
                r->name);
            return false;
        }
        l->b = dn[0];
        l->h = dn[1];
        int64_t di[4] = {l->b, l->h, nqb, nkvb};
        if (!get_tensor(r, names[w][1], fmr_json_get(r->root, names[w][1]), 4, di, &l->idx[w]))
            return false;
        for (int64_t row = 0; row < l->b * l->h * nqb; row++) {
            int32_t n = (int32_t)le32(l->num[w] + 4 * row);
            if (n < 0 || n > nkvb) {
                fmr_error(r->diags, "%s: %s holds %d at row %lld; it must be in [0, %lld]", r->name,
                    names[w][0], n, (long long)row, (long long)nkvb);
                return false;
            }
        }
    }
    return true;
}

/* Compares every row of the rebuilt BlockMask with the stored lists. */
static bool lists_match(st_reader *r, const fm_blockmask *m, int64_t nqb, int64_t nkvb,
                        const st_lists *l) {
    const fmc_blockmask *bm = m->bm;
    static const char *const which[2] = {"kv_indices", "full_kv_indices"};
    for (int64_t b = 0; b < bm->batch; b++) {
        for (int64_t h = 0; h < bm->heads; h++) {
            int64_t sb = l->b == 1 ? 0 : b, sh = l->h == 1 ? 0 : h;
            for (int64_t qb = 0; qb < nqb; qb++) {
                int64_t row = (sb * l->h + sh) * nqb + qb;
                int64_t rr = fmc_bm_row(bm, b, h, qb);
                const fmc_bm_lists *have[2] = {&bm->partial, &bm->full};
                for (int w = 0; w < 2; w++) {
                    int64_t n = (int32_t)le32(l->num[w] + 4 * row);
                    int64_t a = have[w]->off[rr], e = have[w]->off[rr + 1];
                    bool same = n == e - a;
                    for (int64_t k = 0; same && k < n; k++)
                        same =
                            (int32_t)le32(l->idx[w] + 4 * (row * nkvb + k)) == have[w]->idx[a + k];
                    if (!same) {
                        fmr_error(r->diags,
                            "%s: %s of batch %lld, head %lld, query block %lld does not match the "
                            "mask rebuilt from the stored source; the file was changed or written "
                            "by a different mask",
                            r->name, which[w], (long long)b, (long long)h, (long long)qb);
                        return false;
                    }
                }
            }
        }
    }
    return true;
}

/* Compiles the stored source and binds the stored params and inputs. */
static fm_status rebuild(st_reader *r, fm_shape s, int64_t bq, int64_t bkv, int64_t evaluations,
                         fm_blockmask **out) {
    const fmr_json *src = meta_string(r, "mask_source"), *mname = meta_string(r, "mask_name");
    const fmr_json *sname = fmr_json_get(r->meta, "mask_source_name");
    if (!src || !mname) return FM_ERR_FORMAT;
    fm_program *prog = NULL;
    fm_mask *mask = NULL;
    fm_bindings *bind = NULL;
    char *tmp;
    const char *shown_name = sname ? plain_name(sname->str, sname->len, &tmp) : r->name;
    fm_status st = fm_compile_string(shown_name, src->str, src->len, r->diags, &prog);
    if (sname) free(tmp);
    if (st == FM_OK) {
        st = fm_mask_select(prog, plain_name(mname->str, mname->len, &tmp), r->diags, &mask);
        free(tmp);
    }
    if (st == FM_OK) st = fm_bindings_create(mask, &bind);
    for (size_t i = 0; st == FM_OK && i < r->meta->count; i++) {
        const char *key = r->meta->keys[i];
        if (strncmp(key, "param.", 6) != 0) continue;
        int64_t v;
        const fmr_json *val = &r->meta->items[i];
        if (!parse_int(val->str, val->len, &v)) {
            char k[SHOWN_BUF(64)], shown[SHOWN_BUF(40)];
            fmr_error(r->diags, "%s: metadata \"%s\" is \"%s\", not an integer", r->name,
                SHOWN(k, key, 64), SHOWN(shown, val->str, 40));
            st = FM_ERR_FORMAT;
        } else {
            st = fm_bindings_set_param(
                bind, plain_name(key + 6, r->meta->key_lens[i] - 6, &tmp), v, r->diags);
            free(tmp);
        }
    }
    for (size_t i = 0; st == FM_OK && i < r->root->count; i++) {
        const char *key = r->root->keys[i];
        if (strncmp(key, "input.", 6) != 0) continue;
        const fmr_json *t = &r->root->items[i];
        const fmr_json *sh = fmr_json_get(t, "shape");
        size_t rank = sh && sh->kind == FMR_JSON_ARRAY ? sh->count : 0;
        if (rank < 1 || rank > FMD_MAX_RANK) {
            char shown[SHOWN_BUF(64)];
            fmr_error(r->diags, "%s: tensor \"%s\" must have rank 1 to %d", r->name,
                SHOWN(shown, key, 64), FMD_MAX_RANK);
            st = FM_ERR_FORMAT;
            break;
        }
        int64_t dims[FMD_MAX_RANK] = {-1, -1, -1, -1};
        const unsigned char *bytes;
        if (!get_tensor(r, key, t, rank, dims, &bytes)) {
            st = FM_ERR_FORMAT;
            break;
        }
        int64_t count = 1;
        for (size_t k = 0; k < rank; k++)
            count *= dims[k]; /* bounded by the data length */
        int32_t *vals = malloc(count ? (size_t)count * 4 : 4);
        if (!vals) {
            st = FM_ERR_NO_MEMORY;
            break;
        }
        for (int64_t k = 0; k < count; k++)
            vals[k] = (int32_t)le32(bytes + 4 * k);
        st = fm_bindings_set_input(bind, plain_name(key + 6, r->root->key_lens[i] - 6, &tmp), vals,
                                   rank, dims, FM_COPY, r->diags);
        free(tmp);
        free(vals);
    }
    /* A bound of 0 would mean none: an honest file that needed no
     * evaluations gets a bound of 1, which its rebuild never reaches. */
    fm_build_options opts = {.struct_size = sizeof(fm_build_options), .block_q = bq, .block_kv = bkv,
                             .max_evaluations = evaluations > 0 ? evaluations : 1};
    if (st == FM_OK) st = fm_blockmask_build(mask, bind, s, &opts, r->diags, out);
    if (st != FM_OK && st != FM_ERR_NO_MEMORY) {
        fmr_error(r->diags, "%s: the mask stored in the file cannot be rebuilt (%s)", r->name,
            fm_status_string(st));
        st = FM_ERR_FORMAT;
    }
    fm_bindings_free(bind);
    fm_mask_free(mask);
    fm_program_free(prog);
    return st;
}

FM_API fm_status fm_blockmask_load_safetensors_memory(const char *name, const void *data,
                                                      size_t len, fm_diagnostics *diags,
                                                      fm_blockmask **out) {
    if ((!data && len) || !out) return FM_ERR_INVALID_ARGUMENT;
    if (!name) name = "<memory>";
    const unsigned char *bytes = data;
    if (len < 8) {
        fmr_error(diags, "%s: truncated: %zu bytes, shorter than the 8-byte header length", name, len);
        return FM_ERR_FORMAT;
    }
    uint64_t hlen = 0;
    for (int k = 0; k < 8; k++)
        hlen |= (uint64_t)bytes[k] << (8 * k);
    if (hlen > FMR_ST_MAX_HEADER) {
        fmr_error(diags,
            "%s: the header length is %llu bytes, past the limit of %llu (not a safetensors file?)",
            name, (unsigned long long)hlen, (unsigned long long)FMR_ST_MAX_HEADER);
        return FM_ERR_FORMAT;
    }
    if (hlen > len - 8) {
        fmr_error(diags, "%s: truncated: the header length is %llu bytes but only %zu follow", name,
            (unsigned long long)hlen, len - 8);
        return FM_ERR_FORMAT;
    }
    if (hlen < 2 || bytes[8] != '{') {
        fmr_error(diags, "%s: the header does not start with '{' (not a safetensors file?)", name);
        return FM_ERR_FORMAT;
    }
    fmr_json_doc doc;
    char err[200];
    bool oom = false;
    if (!fmr_json_parse((const char *)bytes + 8, (size_t)hlen, &doc, err, sizeof err, &oom)) {
        fmr_json_free(&doc);
        if (oom) return FM_ERR_NO_MEMORY;
        fmr_error(diags, "%s: the header is not valid JSON: header %s", name, err);
        return FM_ERR_FORMAT;
    }
    st_reader r = {name, bytes + 8 + hlen, len - 8 - hlen, diags, doc.root, NULL};
    fm_status st = FM_ERR_FORMAT;
    fm_blockmask *m = NULL;
    if (r.root->kind != FMR_JSON_OBJECT) {
        fmr_error(diags, "%s: the header is %s, not an object", name, fmr_json_kind_name(r.root->kind));
        goto done;
    }
    r.meta = fmr_json_get(r.root, "__metadata__");
    if (!r.meta || r.meta->kind != FMR_JSON_OBJECT) {
        fmr_error(diags, "%s: the header has no \"__metadata__\" object; it was not written by flexmask",
            name);
        goto done;
    }
    for (size_t i = 0; i < r.meta->count; i++) {
        if (r.meta->items[i].kind != FMR_JSON_STRING) {
            char shown[SHOWN_BUF(64)];
            fmr_error(diags, "%s: metadata \"%s\" is %s; every metadata value is a string", name,
                SHOWN(shown, r.meta->keys[i], 64), fmr_json_kind_name(r.meta->items[i].kind));
            goto done;
        }
    }
    for (size_t i = 0; i < r.root->count; i++) {
        if (!strcmp(r.root->keys[i], "__metadata__")) continue;
        if (r.root->items[i].kind != FMR_JSON_OBJECT) {
            char shown[SHOWN_BUF(64)];
            fmr_error(diags, "%s: tensor \"%s\" is %s, not an object", name,
                SHOWN(shown, r.root->keys[i], 64), fmr_json_kind_name(r.root->items[i].kind));
            goto done;
        }
    }
    if (!check_tensor_set(&r)) goto done;
    const int64_t max_len = ((int64_t)1 << 31) - 1, max_bh = (int64_t)1 << 24;
    int64_t bq, bkv, evaluations;
    fm_shape s;
    if (!meta_int(&r, "Q_BLOCK_SIZE", 1, max_len, &bq) ||
        !meta_int(&r, "KV_BLOCK_SIZE", 1, max_len, &bkv) ||
        !meta_int(&r, "Q_LEN", 1, max_len, &s.q_len) ||
        !meta_int(&r, "KV_LEN", 1, max_len, &s.kv_len) ||
        !meta_int(&r, "BATCH", 1, max_bh, &s.batch) || !meta_int(&r, "HEADS", 1, max_bh, &s.heads) ||
        !meta_int(&r, "evaluations", 0, INT64_MAX, &evaluations))
        goto done;
    int64_t nqb = (s.q_len + bq - 1) / bq, nkvb = (s.kv_len + bkv - 1) / bkv;
    st_lists l = {0};
    if (!read_lists(&r, s, nqb, nkvb, &l)) goto done;
    st = rebuild(&r, s, bq, bkv, evaluations, &m);
    if (st != FM_OK) goto done;
    if (!lists_match(&r, m, nqb, nkvb, &l)) {
        st = FM_ERR_FORMAT;
        goto done;
    }
    *out = m;
    m = NULL;
done:
    fm_blockmask_free(m);
    fmr_json_free(&doc);
    return st;
}

FM_API fm_status fm_blockmask_load_safetensors(const char *path, fm_diagnostics *diags,
                                               fm_blockmask **out) {
    if (!path || !out) return FM_ERR_INVALID_ARGUMENT;
    FILE *f = fopen(path, "rb");
    struct stat sb;
    if (!f || fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fmr_error(diags, "cannot read '%s': %s", path, f ? "not a regular file" : strerror(errno));
        if (f) fclose(f);
        return FM_ERR_IO;
    }
    if ((uint64_t)sb.st_size > FMR_ST_MAX_FILE) {
        fmr_error(diags, "%s: %lld bytes is past the limit of 64 GiB", path, (long long)sb.st_size);
        fclose(f);
        return FM_ERR_LIMIT;
    }
    size_t len = (size_t)sb.st_size;
    unsigned char *buf = malloc(len ? len : 1);
    if (!buf) {
        fclose(f);
        return FM_ERR_NO_MEMORY;
    }
    size_t got = fread(buf, 1, len, f);
    bool err = ferror(f) != 0;
    fclose(f);
    if (err) {
        fmr_error(diags, "cannot read '%s': read error", path);
        free(buf);
        return FM_ERR_IO;
    }
    /* A file that shrank while being read is judged by what was read. */
    fm_status st = fm_blockmask_load_safetensors_memory(path, buf, got, diags, out);
    free(buf);
    return st;
}
