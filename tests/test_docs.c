/* The documentation and the example masks compile.
 *
 * Every ```mask block of docs/language.md is a complete file that must parse
 * and check with no diagnostics; every ```mask-error block must be rejected
 * with a located error. Every .mask file under examples/masks must check clean,
 * start with a header comment and export at least one mask; the standard
 * masks the spec lists must all be there, each with its default (last) mask
 * named after the file. */
#define _POSIX_C_SOURCE 200809L /* opendir */
#include "testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsl/ast.h"
#include "flexmask.h"

typedef enum block_kind { BLOCK_MASK, BLOCK_MASK_ERROR } block_kind;

typedef struct doc_block {
    block_kind kind;
    int line; /* of the opening fence */
    char *text;
    size_t len;
} doc_block;

typedef struct compiled {
    fmd_diags diags;
    size_t masks;
    char last_mask[128];
} compiled;

/* Parses and checks text; the diagnostics and the masks it declares are
 * left in *c (the caller clears c->diags). */
static void compile_text(const char *name, const char *text, size_t len, compiled *c) {
    memset(c, 0, sizeof *c);
    fmd_diags_init(&c->diags);
    fmd_source *src = fmd_source_new(name, text, len);
    assert_non_null(src);
    fmd_program *p = fmd_parse(src, &c->diags);
    assert_non_null(p);
    bool ok = fmd_check(p, &c->diags);
    /* check's verdict and the diagnostics must agree. */
    if (ok) assert_int_equal(c->diags.errors, 0);
    for (size_t i = 0; i < p->count; i++) {
        if (p->decls[i]->kind != FMD_DECL_MASK) continue;
        c->masks++;
        snprintf(c->last_mask, sizeof c->last_mask, "%s", p->decls[i]->name);
    }
    fmd_program_free(p);
}

static void print_diags(const fmd_diags *d) {
    for (size_t i = 0; i < d->count; i++)
        print_message("  %s:%d:%d: %s\n", d->items[i].file ? d->items[i].file : "?",
                      d->items[i].line, d->items[i].col, d->items[i].message);
}

/* Splits markdown into fenced blocks whose info string is exactly `mask` or
 * `mask-error`; other fences (```text) are skipped. Fails on a fence that is
 * never closed. */
static size_t extract_blocks(const char *md, doc_block **out) {
    size_t n = 0, cap = 16;
    doc_block *blocks = malloc(cap * sizeof *blocks);
    assert_non_null(blocks);
    const char *p = md;
    int line = 1;
    bool in_block = false;
    int kind = -1; /* -1: a fence we skip */
    const char *body = NULL;
    int open_line = 0;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t ll = eol ? (size_t)(eol - p) : strlen(p);
        bool fence = ll >= 3 && memcmp(p, "```", 3) == 0;
        if (fence && !in_block) {
            const char *info = p + 3;
            size_t il = ll - 3;
            while (il && (info[il - 1] == ' ' || info[il - 1] == '\r'))
                il--;
            if (il == 4 && memcmp(info, "mask", 4) == 0)
                kind = BLOCK_MASK;
            else if (il == 10 && memcmp(info, "mask-error", 10) == 0)
                kind = BLOCK_MASK_ERROR;
            else
                kind = -1;
            in_block = true;
            open_line = line;
            body = eol ? eol + 1 : p + ll;
        } else if (fence && in_block) {
            if (kind >= 0) {
                if (n == cap) {
                    cap *= 2;
                    blocks = realloc(blocks, cap * sizeof *blocks);
                    assert_non_null(blocks);
                }
                size_t len = (size_t)(p - body);
                blocks[n].kind = (block_kind)kind;
                blocks[n].line = open_line;
                blocks[n].text = malloc(len + 1);
                assert_non_null(blocks[n].text);
                memcpy(blocks[n].text, body, len);
                blocks[n].text[len] = '\0';
                blocks[n].len = len;
                n++;
            }
            in_block = false;
        }
        if (!eol) break;
        p = eol + 1;
        line++;
    }
    if (in_block) {
        print_error("docs/language.md:%d: code fence never closed\n", open_line);
        fail();
    }
    *out = blocks;
    return n;
}

/* A block that starts with "# always true" states facts (the division
 * table): its mask must be true at every position of a shape. */
static bool always_true(const char *name, const char *text, size_t len) {
    fm_diagnostics *d = fm_diagnostics_create();
    fm_program *prog = NULL;
    fm_mask *mask = NULL;
    fm_blockmask *bm = NULL;
    fm_shape shape = {1, 1, 37, 45};
    fm_build_options opts = {.struct_size = sizeof(fm_build_options), .block_q = 16, .block_kv = 16};
    fm_status st = fm_compile_string(name, text, len, d, &prog);
    if (!st) st = fm_mask_select(prog, NULL, d, &mask);
    if (!st) st = fm_blockmask_build(mask, NULL, shape, &opts, d, &bm);
    fm_blockmask_info info = {0};
    if (!st) st = fm_blockmask_get_info(bm, &info);
    bool ok =
        st == FM_OK && info.true_positions == shape.q_len * shape.kv_len && info.empty_tiles == 0;
    if (!ok) {
        char *msg = fm_diagnostics_format(d, false);
        print_error("%s: not true everywhere (%s, %lld true positions)\n%s", name,
                    fm_status_string(st), (long long)info.true_positions, msg ? msg : "");
        fm_free(msg);
    }
    fm_blockmask_free(bm);
    fm_mask_free(mask);
    fm_program_free(prog);
    fm_diagnostics_free(d);
    return ok;
}

static void test_language_md(void **state) {
    (void)state;
    size_t len;
    char *md = tu_read_file(FM_SOURCE_DIR "/docs/language.md", &len);
    assert_non_null(md);
    doc_block *blocks;
    size_t n = extract_blocks(md, &blocks);
    size_t good = 0, bad = 0, facts = 0, failures = 0;
    for (size_t i = 0; i < n; i++) {
        char name[64];
        snprintf(name, sizeof name, "language.md@%d", blocks[i].line);
        compiled c;
        compile_text(name, blocks[i].text, blocks[i].len, &c);
        if (blocks[i].kind == BLOCK_MASK) {
            good++;
            if (c.diags.count != 0 || c.masks == 0) {
                print_error("docs/language.md:%d: a ```mask example does not compile cleanly:\n",
                            blocks[i].line);
                print_diags(&c.diags);
                failures++;
            } else if (strncmp(blocks[i].text, "# always true\n", 14) == 0) {
                facts++;
                if (!always_true(name, blocks[i].text, blocks[i].len)) failures++;
            }
        } else {
            bad++;
            /* Rejected, and with a location in the example itself. */
            int lines = 1;
            for (size_t k = 0; k + 1 < blocks[i].len; k++)
                lines += blocks[i].text[k] == '\n';
            bool located = c.diags.errors > 0 && c.diags.items[0].file &&
                           c.diags.items[0].line >= 1 && c.diags.items[0].line <= lines;
            if (!located) {
                print_error("docs/language.md:%d: a ```mask-error example is %s\n", blocks[i].line,
                            c.diags.errors ? "rejected without a location" : "accepted");
                print_diags(&c.diags);
                failures++;
            }
        }
        fmd_diags_clear(&c.diags);
        free(blocks[i].text);
    }
    free(blocks);
    free(md);
    print_message("docs/language.md: %zu mask examples, %zu error examples\n", good, bad);
    /* Guards against an extractor that silently finds nothing. */
    assert_true(good >= 25);
    assert_true(bad >= 15);
    assert_true(facts >= 1);
    assert_int_equal(failures, 0);
}

/* The standard masks of the spec, plus the set-padding scenario. */
static const char *const STANDARD[] = {
    "full",        "causal",         "causal_bottom_right", "sliding_window",  "sliding_with_sinks",
    "prefix_lm",   "chunked_causal", "dilated_sliding",     "document",        "batched_prefill",
    "tree",        "padding",        "decoder_self",        "cross_attention", "per_head",
    "set_padding",
};

/* Checks one example file; returns the number of problems found. */
static int check_example(const char *dir, const char *file, const char *want_default) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    size_t len;
    char *text = tu_read_file(path, &len);
    if (!text) {
        print_error("%s: missing\n", path);
        return 1;
    }
    int problems = 0;
    if (text[0] != '#') {
        print_error("%s: does not start with a header comment\n", path);
        problems++;
    } else {
        /* A header says something: at least two comment lines. */
        const char *nl = strchr(text, '\n');
        if (!nl || nl[1] != '#') {
            print_error("%s: the header comment is a single line\n", path);
            problems++;
        }
    }
    compiled c;
    compile_text(path, text, len, &c);
    if (c.diags.count != 0) {
        print_error("%s: does not check cleanly:\n", path);
        print_diags(&c.diags);
        problems++;
    }
    if (c.masks == 0) {
        print_error("%s: declares no mask\n", path);
        problems++;
    }
    if (want_default && strcmp(c.last_mask, want_default) != 0) {
        print_error("%s: the last mask is '%s', expected '%s'\n", path, c.last_mask, want_default);
        problems++;
    }
    fmd_diags_clear(&c.diags);
    free(text);
    return problems;
}

static void test_standard_examples(void **state) {
    (void)state;
    int problems = 0;
    for (size_t i = 0; i < sizeof STANDARD / sizeof STANDARD[0]; i++) {
        char file[128];
        snprintf(file, sizeof file, "%s.mask", STANDARD[i]);
        problems += check_example(FM_SOURCE_DIR "/examples/masks", file, STANDARD[i]);
    }
    assert_int_equal(problems, 0);
}

/* Any other .mask file someone adds meets the same bar. */
static void test_every_example(void **state) {
    (void)state;
    DIR *d = opendir(FM_SOURCE_DIR "/examples/masks");
    assert_non_null(d);
    int problems = 0, files = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".mask") != 0) continue;
        files++;
        problems += check_example(FM_SOURCE_DIR "/examples/masks", e->d_name, NULL);
    }
    closedir(d);
    assert_true(files >= (int)(sizeof STANDARD / sizeof STANDARD[0]));
    assert_int_equal(problems, 0);
}

/* ---- what the standard masks mean ----------------------------------------
 *
 * Each standard mask is built through the public API for a small shape with
 * clipped edge tiles, and compared at every point, and tile by tile, with a
 * reference written here in plain C from the mask's description (not from
 * its text). */

#define SEM_MAX_INPUTS 4
#define SEM_MAX_PARAMS 3

typedef struct sem_input {
    const char *name;
    size_t rank;
    int64_t dims[2];
    int32_t data[256];
} sem_input;

typedef struct sem_ctx {
    fm_shape shape;
    int64_t p[SEM_MAX_PARAMS]; /* the case's params, in its order */
    sem_input in[SEM_MAX_INPUTS];
    size_t n_in;
    /* Reference data the predicates use (not given to the mask). */
    int32_t parent[64];
    int64_t qo_len[4], kv_len[4], n_req;
} sem_ctx;

typedef bool (*sem_ref)(const sem_ctx *c, int64_t b, int64_t h, int64_t q, int64_t kv);

typedef struct sem_case {
    const char *file;
    fm_shape shape;
    const char *params[SEM_MAX_PARAMS];
    int64_t values[SEM_MAX_PARAMS];
    void (*setup)(sem_ctx *c);
    sem_ref ref;
    bool reads_b, reads_h;
} sem_case;

static sem_input *add_input(sem_ctx *c, const char *name, int64_t d0, int64_t d1) {
    sem_input *in = &c->in[c->n_in++];
    in->name = name;
    in->rank = d1 ? 2 : 1;
    in->dims[0] = d0;
    in->dims[1] = d1;
    assert_true(d0 * (d1 ? d1 : 1) <= 256);
    return in;
}

static bool r_full(const sem_ctx *c, int64_t b, int64_t h, int64_t q, int64_t kv) {
    return true;
}
static bool r_causal(const sem_ctx *c, int64_t b, int64_t h, int64_t q, int64_t kv) {
    return kv <= q;
}
static bool r_bottom_right(const sem_ctx *c, int64_t b, int64_t h, int64_t q, int64_t kv) {
    /* Query q is absolute position q + (KV_LEN - Q_LEN). */
    return kv <= q + (c->shape.kv_len - c->shape.q_len);
}
static bool r_sliding(const sem_ctx *c, int64_t b, int64_t h, int64_t q, int64_t kv) {
    return kv <= q && kv > q - c->p[0];
}
static bool r_sinks(const sem_ctx *c, int64_t b, int64_t h, int64_t q, int64_t kv) {
    return kv <= q && (kv > q - c->p[0] || kv < c->p[1]);
}
static bool r_prefix(const sem_ctx *c, int64_t b, int64_t h, int64_t q, int64_t kv) {
    /* The prefix attends within itself both ways; the rest is causal. */
    return q < c->p[0] ? kv < c->p[0] : kv <= q;
}
static bool r_chunked(const sem_ctx *c, int64_t b, int64_t h, int64_t q, int64_t kv) {
    int64_t start = q - q % c->p[0]; /* first position of q's chunk */
    return kv <= q && kv >= start;
}
static bool r_dilated(const sem_ctx *c, int64_t b, int64_t h, int64_t q, int64_t kv) {
    for (int64_t k = q; k > q - c->p[0] && k >= 0; k -= c->p[1])
        if (k == kv) return true;
    return false;
}
static bool r_document(const sem_ctx *c, int64_t b, int64_t h, int64_t q, int64_t kv) {
    return kv <= q && c->in[0].data[q] == c->in[0].data[kv];
}
static bool r_prefill(const sem_ctx *c, int64_t b, int64_t h, int64_t q, int64_t kv) {
    /* Find each token's request by walking the lengths. */
    int64_t rq = 0, j = q, rk = 0, i = kv;
    while (j >= c->qo_len[rq])
        j -= c->qo_len[rq++];
    while (i >= c->kv_len[rk])
        i -= c->kv_len[rk++];
    return rq == rk && i <= c->kv_len[rq] - c->qo_len[rq] + j;
}
static bool r_tree(const sem_ctx *c, int64_t b, int64_t h, int64_t q, int64_t kv) {
    int64_t prefix = c->p[0];
    if (kv < prefix) return true;
    for (int64_t n = q; n >= 0; n = c->parent[n])
        if (n == kv - prefix) return true;
    return false;
}
static bool r_padding(const sem_ctx *c, int64_t b, int64_t h, int64_t q, int64_t kv) {
    return kv < c->in[0].data[b];
}
static bool r_decoder(const sem_ctx *c, int64_t b, int64_t h, int64_t q, int64_t kv) {
    int64_t n = c->in[0].data[b];
    return q < n && kv < n && kv <= q;
}
static bool r_cross(const sem_ctx *c, int64_t b, int64_t h, int64_t q, int64_t kv) {
    return kv < c->in[0].data[b];
}
static bool r_per_head(const sem_ctx *c, int64_t b, int64_t h, int64_t q, int64_t kv) {
    return kv <= q && (h % 2 == 1 || q - kv < c->p[0]);
}
static bool r_set(const sem_ctx *c, int64_t b, int64_t h, int64_t q, int64_t kv) {
    const int32_t *s = c->in[0].data;
    return s[q] >= 0 && s[kv] >= 0 && s[q] == s[kv];
}

static void s_document(sem_ctx *c) {
    sem_input *d = add_input(c, "doc", c->shape.kv_len, 0);
    int32_t id = 0;
    for (int64_t i = 0; i < c->shape.kv_len; i++) {
        if (i == 5 || i == 6 || i == 30 || i == 31 || i == 50)
            id++; /* lengths 5, 1, 24, 1, 19, ... */
        d->data[i] = id;
    }
}

static void s_prefill(sem_ctx *c) {
    /* The example: qo_len = [3, 5, 1], kv_len = [10, 5, 7]. */
    static const int64_t qo[3] = {3, 5, 1}, kvl[3] = {10, 5, 7};
    c->n_req = 3;
    memcpy(c->qo_len, qo, sizeof qo);
    memcpy(c->kv_len, kvl, sizeof kvl);
    sem_input *qr = add_input(c, "q_req", 9, 0), *qp = add_input(c, "q_pos", 9, 0);
    sem_input *kr = add_input(c, "kv_req", 22, 0), *kp = add_input(c, "kv_pos", 22, 0);
    int64_t qi = 0, ki = 0;
    for (int32_t r = 0; r < 3; r++) {
        for (int64_t j = 0; j < qo[r]; j++, qi++) {
            qr->data[qi] = r;
            qp->data[qi] = (int32_t)(kvl[r] - qo[r] + j);
        }
        for (int64_t j = 0; j < kvl[r]; j++, ki++) {
            kr->data[ki] = r;
            kp->data[ki] = (int32_t)j;
        }
    }
}

/* A forest of 40 tokens after a prefix of 9: Euler-tour tables by an
 * explicit-stack depth-first walk (preorder number, largest preorder number
 * in the subtree). */
static void s_tree(sem_ctx *c) {
    int64_t n = c->shape.q_len;
    tu_rng rng = {2024};
    for (int64_t i = 0; i < n; i++)
        c->parent[i] = i == 0 || i == 17 ? -1 : (int32_t)tu_rng_range(&rng, 0, i - 1);
    sem_input *en = add_input(c, "enter", n, 0), *lv = add_input(c, "leave", n, 0);
    int32_t stack[64], counter = 0;
    for (int32_t root = 0; root < n; root++) {
        if (c->parent[root] != -1) continue;
        int sp = 0;
        stack[sp++] = root;
        while (sp) {
            int32_t v = stack[--sp];
            en->data[v] = counter++;
            for (int32_t ch = (int32_t)n - 1; ch > v; ch--) /* children, pushed in reverse */
                if (c->parent[ch] == v) stack[sp++] = ch;
        }
    }
    for (int32_t v = 0; v < n; v++)
        lv->data[v] = en->data[v];
    for (int32_t v = (int32_t)n - 1; v >= 0; v--) /* parents have smaller indices */
        if (c->parent[v] >= 0 && lv->data[v] > lv->data[c->parent[v]])
            lv->data[c->parent[v]] = lv->data[v];
}

static void s_lengths(sem_ctx *c, const char *name) {
    static const int32_t len[3] = {37, 0, 64};
    sem_input *in = add_input(c, name, c->shape.batch, 0);
    for (int64_t b = 0; b < c->shape.batch; b++)
        in->data[b] = len[b % 3];
}
static void s_padding(sem_ctx *c) {
    s_lengths(c, "kv_len_of");
}
static void s_decoder(sem_ctx *c) {
    s_lengths(c, "tgt_len");
}
static void s_cross(sem_ctx *c) {
    s_lengths(c, "src_len");
}

static void s_set(sem_ctx *c) {
    sem_input *s = add_input(c, "set_id", c->shape.kv_len, 0);
    for (int64_t i = 0; i < c->shape.kv_len; i++)
        s->data[i] = i < 20 ? 0 : i < 23 ? -1 : i < 50 ? 1 : i < 51 ? 2 : -1;
}

static const sem_case SEM[] = {
    {"full", {2, 2, 70, 70}, {0}, {0}, NULL, r_full, false, false},
    {"causal", {1, 1, 70, 70}, {0}, {0}, NULL, r_causal, false, false},
    {"causal_bottom_right", {1, 2, 30, 70}, {0}, {0}, NULL, r_bottom_right, false, false},
    {"sliding_window", {1, 1, 70, 70}, {"window"}, {10}, NULL, r_sliding, false, false},
    {"sliding_with_sinks",
     {1, 1, 70, 70},
     {"window", "sinks"},
     {9, 3},
     NULL,
     r_sinks,
     false,
     false},
    {"prefix_lm", {1, 1, 70, 70}, {"prefix"}, {21}, NULL, r_prefix, false, false},
    {"chunked_causal", {1, 1, 70, 70}, {"chunk"}, {12}, NULL, r_chunked, false, false},
    {"dilated_sliding",
     {1, 1, 70, 70},
     {"window", "dilation"},
     {30, 4},
     NULL,
     r_dilated,
     false,
     false},
    {"document", {1, 1, 70, 70}, {0}, {0}, s_document, r_document, false, false},
    {"batched_prefill", {1, 1, 9, 22}, {0}, {0}, s_prefill, r_prefill, false, false},
    {"tree", {1, 1, 40, 49}, {"prefix"}, {9}, s_tree, r_tree, false, false},
    {"padding", {3, 2, 50, 70}, {0}, {0}, s_padding, r_padding, true, false},
    {"decoder_self", {3, 1, 70, 70}, {0}, {0}, s_decoder, r_decoder, true, false},
    {"cross_attention", {3, 1, 30, 70}, {0}, {0}, s_cross, r_cross, true, false},
    {"per_head", {1, 4, 70, 70}, {"window"}, {12}, NULL, r_per_head, false, true},
    {"set_padding", {1, 1, 70, 70}, {0}, {0}, s_set, r_set, false, false},
};

static void print_api_diags(fm_diagnostics *d) {
    char *s = fm_diagnostics_format(d, false);
    if (s && *s) print_message("%s", s);
    fm_free(s);
}

/* Classifies every tile from the reference and compares with the BlockMask. */
static void check_tiles(const sem_case *k, const sem_ctx *c, const fm_blockmask *bm, int64_t bq,
                        int64_t bkv) {
    fm_shape s = k->shape;
    int64_t nq = (s.q_len + bq - 1) / bq, nk = (s.kv_len + bkv - 1) / bkv;
    for (int64_t b = 0; b < s.batch; b++)
        for (int64_t h = 0; h < s.heads; h++)
            for (int64_t i = 0; i < nq; i++) {
                const int32_t *full, *partial;
                int64_t nf, np;
                assert_int_equal(fm_blockmask_row(bm, b, h, i, &full, &nf, &partial, &np), FM_OK);
                for (int64_t j = 0; j < nk; j++) {
                    bool any = false, all = true;
                    bool clipped = (i + 1) * bq > s.q_len || (j + 1) * bkv > s.kv_len;
                    for (int64_t q = i * bq; q < (i + 1) * bq && q < s.q_len; q++)
                        for (int64_t kv = j * bkv; kv < (j + 1) * bkv && kv < s.kv_len; kv++) {
                            bool v = k->ref(c, b, h, q, kv);
                            any |= v;
                            all &= v;
                        }
                    char want = !any ? 'E' : all && !clipped ? 'F' : 'P', got = 'E';
                    for (int64_t x = 0; x < nf; x++)
                        if (full[x] == j) got = 'F';
                    for (int64_t x = 0; x < np; x++)
                        if (partial[x] == j) got = got == 'E' ? 'P' : '2';
                    if (got != want) {
                        print_error("%s: tile b=%lld h=%lld (%lld, %lld) is %c, expected %c\n",
                                    k->file, (long long)b, (long long)h, (long long)i, (long long)j,
                                    got, want);
                        fail();
                    }
                }
            }
}

static void run_semantic_case(const sem_case *k) {
    char path[1024];
    snprintf(path, sizeof path, FM_SOURCE_DIR "/examples/masks/%s.mask", k->file);
    sem_ctx c;
    memset(&c, 0, sizeof c);
    c.shape = k->shape;
    for (int i = 0; i < SEM_MAX_PARAMS; i++)
        c.p[i] = k->values[i];
    if (k->setup) k->setup(&c);

    fm_diagnostics *d = fm_diagnostics_create();
    fm_program *prog = NULL;
    fm_mask *mask = NULL;
    fm_bindings *bind = NULL;
    fm_blockmask *bm = NULL;
    fm_status st = fm_compile_file(path, d, &prog);
    if (!st) st = fm_mask_select(prog, NULL, d, &mask);
    if (!st) st = fm_bindings_create(mask, &bind);
    for (int i = 0; !st && i < SEM_MAX_PARAMS && k->params[i]; i++)
        st = fm_bindings_set_param(bind, k->params[i], k->values[i], d);
    for (size_t i = 0; !st && i < c.n_in; i++)
        st = fm_bindings_set_input(bind, c.in[i].name, c.in[i].data, c.in[i].rank, c.in[i].dims,
                                   FM_COPY, d);
    fm_build_options opts = {.struct_size = sizeof(fm_build_options), .block_q = 16, .block_kv = 8};
    if (!st) st = fm_blockmask_build(mask, bind, k->shape, &opts, d, &bm);
    if (st) {
        print_error("%s: %s\n", path, fm_status_string(st));
        print_api_diags(d);
        fail();
    }
    assert_string_equal(fm_mask_name(mask), k->file);
    assert_int_equal(fm_mask_reads_batch(mask), k->reads_b);
    assert_int_equal(fm_mask_reads_heads(mask), k->reads_h);

    fm_shape s = k->shape;
    for (int64_t b = 0; b < s.batch; b++)
        for (int64_t h = 0; h < s.heads; h++)
            for (int64_t q = 0; q < s.q_len; q++)
                for (int64_t kv = 0; kv < s.kv_len; kv++) {
                    bool v = false;
                    assert_int_equal(fm_blockmask_eval(bm, b, h, q, kv, &v), FM_OK);
                    if (v != k->ref(&c, b, h, q, kv)) {
                        print_error("%s: at b=%lld h=%lld q=%lld kv=%lld the mask is %d\n", k->file,
                                    (long long)b, (long long)h, (long long)q, (long long)kv, v);
                        fail();
                    }
                }
    check_tiles(k, &c, bm, opts.block_q, opts.block_kv);
    fm_blockmask_free(bm);
    fm_bindings_free(bind);
    fm_mask_free(mask);
    fm_program_free(prog);
    fm_diagnostics_free(d);
}

static void test_example_semantics(void **state) {
    (void)state;
    assert_int_equal(sizeof SEM / sizeof SEM[0], sizeof STANDARD / sizeof STANDARD[0]);
    for (size_t i = 0; i < sizeof SEM / sizeof SEM[0]; i++)
        run_semantic_case(&SEM[i]);
}

/* The tile counts docs/language.md quotes for sliding_window.mask. */
static void test_documented_counts(void **state) {
    (void)state;
    fm_diagnostics *d = fm_diagnostics_create();
    fm_program *prog = NULL;
    fm_mask *mask = NULL;
    fm_blockmask *bm = NULL;
    fm_status st = fm_compile_file(FM_SOURCE_DIR "/examples/masks/sliding_window.mask", d, &prog);
    if (!st) st = fm_mask_select(prog, NULL, d, &mask);
    fm_shape shape = {1, 1, 1000, 1000};
    if (!st) st = fm_blockmask_build(mask, NULL, shape, NULL, d, &bm);
    if (st) print_api_diags(d);
    assert_int_equal(st, FM_OK);
    fm_blockmask_info info;
    assert_int_equal(fm_blockmask_get_info(bm, &info), FM_OK);
    assert_int_equal(info.full_tiles, 6);
    assert_int_equal(info.partial_tiles, 15);
    assert_int_equal(info.empty_tiles, 43);
    fm_blockmask_free(bm);
    /* causal at 300 positions: 1 full, 5 partial, 3 empty. */
    fm_mask_free(mask);
    fm_program_free(prog);
    st = fm_compile_file(FM_SOURCE_DIR "/examples/masks/causal.mask", d, &prog);
    if (!st) st = fm_mask_select(prog, NULL, d, &mask);
    shape.q_len = shape.kv_len = 300;
    if (!st) st = fm_blockmask_build(mask, NULL, shape, NULL, d, &bm);
    assert_int_equal(st, FM_OK);
    assert_int_equal(fm_blockmask_get_info(bm, &info), FM_OK);
    assert_int_equal(info.full_tiles, 1);
    assert_int_equal(info.partial_tiles, 5);
    assert_int_equal(info.empty_tiles, 3);
    fm_blockmask_free(bm);
    fm_mask_free(mask);
    fm_program_free(prog);
    fm_diagnostics_free(d);
}

/* The extractor itself: fences with other info strings are skipped, an
 * unclosed fence is noticed by the line count, CRLF fences work. */
static void test_extractor(void **state) {
    (void)state;
    const char *md = "text\n```text\nnot mask\n```\n```mask\nmask a = true;\n```\n"
                     "```mask-error\nmask b = 1;\n```\r\n```mask \r\nmask c = false;\n```\n";
    doc_block *b;
    size_t n = extract_blocks(md, &b);
    assert_int_equal(n, 3);
    assert_int_equal(b[0].kind, BLOCK_MASK);
    assert_int_equal(b[0].line, 5);
    assert_string_equal(b[0].text, "mask a = true;\n");
    assert_int_equal(b[1].kind, BLOCK_MASK_ERROR);
    assert_string_equal(b[1].text, "mask b = 1;\n");
    assert_int_equal(b[2].kind, BLOCK_MASK);
    assert_string_equal(b[2].text, "mask c = false;\n");
    for (size_t i = 0; i < n; i++)
        free(b[i].text);
    free(b);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_extractor),         cmocka_unit_test(test_language_md),
        cmocka_unit_test(test_standard_examples), cmocka_unit_test(test_every_example),
        cmocka_unit_test(test_example_semantics), cmocka_unit_test(test_documented_counts),
    };
    return TU_RUN(tests, argc, argv);
}
