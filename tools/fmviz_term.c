/* The terminal picture and the statistics. Queries go down, keys/values go
 * right, as in the attention matrix; both axes are labelled in blocks and
 * positions so a misplaced band is easy to spot. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/fmviz.h"

/* Indexed by cell (class | FMV_MIXED); two characters a cell keep tiles
 * about square in a terminal font. */
static const char *const glyph_utf8[8] = {
    "\xc2\xb7 ",             /* ·  empty */
    "\xe2\x96\x92\xe2\x96\x92", /* ▒▒ partial */
    "\xe2\x96\x88\xe2\x96\x88", /* ██ full */
    "",
    "\xe2\x97\xa6 ",             /* ◦  mostly empty */
    "\xe2\x96\x91\xe2\x96\x91", /* ░░ mostly partial */
    "\xe2\x96\x93\xe2\x96\x93", /* ▓▓ mostly full */
    "",
};
static const char *const glyph_ascii[8] = {". ", "++", "##", "", ": ", "**", "%%", ""};
/* Frame pieces: top-left, top-right, bottom-left, bottom-right, horizontal, vertical. */
static const char *const frame_utf8[6] = {"\xe2\x94\x8c", "\xe2\x94\x90", "\xe2\x94\x94",
                                          "\xe2\x94\x98", "\xe2\x94\x80", "\xe2\x94\x82"};
static const char *const frame_ascii[6] = {"+", "+", "+", "+", "-", "|"};
static const char *const colour[3] = {"\033[90m", "\033[33m", "\033[32m"};
#define RESET "\033[0m"

static int digits(int64_t x) {
    int n = 1;
    while (x >= 10) {
        x /= 10;
        n++;
    }
    return n;
}

const char *fmv_grouped(int64_t x, char buf[32]) {
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%" PRId64, x);
    int lead = tmp[0] == '-', j = 0;
    for (int i = 0; i < n; i++) {
        buf[j++] = tmp[i];
        int left = n - i - 1;
        if (i >= lead && left > 0 && left % 3 == 0) buf[j++] = ',';
    }
    buf[j] = '\0';
    return buf;
}

static const char *grouped_d(double x, char buf[32]) {
    if (x < 9e18) return fmv_grouped((int64_t)x, buf);
    snprintf(buf, 32, "%.4g", x);
    return buf;
}

/* A ruler line: the label of every step-th cell at its column, none
 * past the frame's right edge. */
static void ruler(const char *title, int indent, int64_t cols, int64_t step, int64_t unit) {
    size_t len = (size_t)(cols * 2) + 1;
    char *line = malloc(len + 1);
    if (!line) return;
    memset(line, ' ', len);
    line[len] = '\0';
    size_t used = 0;
    for (int64_t t = 0; t < cols; t += step) {
        char lab[32];
        int n = snprintf(lab, sizeof lab, "%" PRId64, t * unit);
        size_t at = (size_t)(t * 2);
        if (at + (size_t)n > len) break;
        memcpy(line + at, lab, (size_t)n);
        used = at + (size_t)n;
    }
    line[used] = '\0';
    printf("%*s%s\n", indent, title, line);
    free(line);
}

static int64_t tick_step(int label_len) {
    static const int64_t nice[] = {1, 2, 4, 5, 8, 10, 16, 20, 25, 32, 50, 64, 100};
    int64_t need = (label_len + 2) / 2;
    for (size_t i = 0; i < sizeof nice / sizeof nice[0]; i++)
        if (nice[i] >= need) return nice[i];
    return need;
}

static void slice_title(const fmviz *v, int64_t b, int64_t h) {
    const fm_blockmask_info *in = &v->info;
    char buf[200];
    int n = snprintf(buf, sizeof buf, "b=%" PRId64 " h=%" PRId64, b, h);
    if (in->broadcast_batch && in->shape.batch > 1 && in->broadcast_heads && in->shape.heads > 1)
        snprintf(buf + n, sizeof buf - (size_t)n,
                 "  (stands for all %" PRId64 " batches and all %" PRId64 " heads)",
                 in->shape.batch, in->shape.heads);
    else if (in->broadcast_batch && in->shape.batch > 1)
        snprintf(buf + n, sizeof buf - (size_t)n, "  (stands for all %" PRId64 " batches)",
                 in->shape.batch);
    else if (in->broadcast_heads && in->shape.heads > 1)
        snprintf(buf + n, sizeof buf - (size_t)n, "  (stands for all %" PRId64 " heads)",
                 in->shape.heads);
    fmv_print_wrapped(v, 2, buf);
}

/* Width of the row labels left of the frame. */
static int label_width(const fm_blockmask_info *in, int *bw, int *pw) {
    *bw = digits(in->num_q_blocks);
    *pw = digits(in->shape.q_len);
    if (*bw < 7) *bw = 7; /* "q block" */
    if (*pw < 5) *pw = 5; /* "q pos" */
    return *bw + *pw + 4;
}

static void draw_grid(const fmviz *v, const fmv_grid *g) {
    const fm_blockmask_info *in = &v->info;
    const char *const *glyph = v->ascii ? glyph_ascii : glyph_utf8;
    const char *const *fr = v->ascii ? frame_ascii : frame_utf8;
    int bw, pw;
    int indent = label_width(in, &bw, &pw);
    int lab = digits((g->cols - 1) * g->fkv * in->block_kv);
    int64_t step = tick_step(lab);
    ruler("kv block ", indent, g->cols, step, g->fkv);
    ruler("kv pos ", indent, g->cols, step, g->fkv * in->block_kv);
    printf("%*s %*s  %s", bw, "q block", pw, "q pos", fr[0]);
    for (int64_t c = 0; c < g->cols * 2; c++)
        fputs(fr[4], stdout);
    puts(fr[1]);
    for (int64_t r = 0; r < g->rows; r++) {
        printf("%*" PRId64 " %*" PRId64 "  %s", bw, r * g->fq, pw, r * g->fq * in->block_q, fr[5]);
        int last = -1;
        for (int64_t c = 0; c < g->cols; c++) {
            int k = g->cell[r * g->cols + c];
            if (v->color && FMV_CLASS(k) != last) fputs(colour[FMV_CLASS(k)], stdout);
            last = FMV_CLASS(k);
            fputs(glyph[k], stdout);
        }
        if (v->color) fputs(RESET, stdout);
        puts(fr[5]);
    }
    printf("%*s%s", indent - 1, "", fr[2]);
    for (int64_t c = 0; c < g->cols * 2; c++)
        fputs(fr[4], stdout);
    puts(fr[3]);
}

/* A legend entry: the glyph (coloured) and its meaning. */
static size_t legend_entry(const fmviz *v, char *buf, size_t cap, int k, const char *what) {
    const char *g = (v->ascii ? glyph_ascii : glyph_utf8)[k];
    size_t glen = strlen(g);
    while (glen && g[glen - 1] == ' ')
        glen--;
    int n = snprintf(buf, cap, "%s%.*s%s=%s   ", v->color ? colour[FMV_CLASS(k)] : "", (int)glen,
                     g, v->color ? RESET : "", what);
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

void fmviz_print_picture(const fmviz *v) {
    const fm_blockmask_info *in = &v->info;
    char line[1024];
    snprintf(line, sizeof line,
             "mask %s: batch %" PRId64 ", heads %" PRId64 ", q_len %" PRId64 ", kv_len %" PRId64
             "; tiles of %" PRId64 " x %" PRId64 " positions: %" PRId64 " x %" PRId64,
             fm_mask_name(v->s.mask), in->shape.batch, in->shape.heads, in->shape.q_len,
             in->shape.kv_len, in->block_q, in->block_kv, in->num_q_blocks, in->num_kv_blocks);
    fmv_print_wrapped(v, 2, line);
    if (in->broadcast_batch || in->broadcast_heads) {
        snprintf(line, sizeof line, "broadcast: the mask reads %s, so one slice is stored for every %s",
                 in->broadcast_batch && in->broadcast_heads ? "neither b nor h"
                 : in->broadcast_batch                      ? "no b"
                                                            : "no h",
                 in->broadcast_batch && in->broadcast_heads ? "batch and head"
                 : in->broadcast_batch                      ? "batch"
                                                            : "head");
        fmv_print_wrapped(v, 2, line);
    }
    int bw, pw;
    int avail = (v->term_width - label_width(in, &bw, &pw) - 2) / 2;
    int64_t max_cols = v->max_cols ? v->max_cols : avail < 4 ? 4 : avail > 96 ? 96 : avail;
    bool first = true, downsampled = false;
    int64_t shown = fmv_panels(v), total = v->stored_batch * v->stored_heads;
    for (int64_t i = 0; i < shown; i++) {
        int64_t b = i / v->stored_heads, h = i % v->stored_heads;
        fmv_grid g;
        if (!fmv_grid_build(v, b, h, v->max_rows, max_cols, true, &g)) {
            fmcli_error(&v->c, NULL, "out of memory drawing slice b=%" PRId64 " h=%" PRId64, b, h);
            continue;
        }
        if (first) {
            if (g.fq == 1) {
                fmv_print_wrapped(v, 2, "one cell = one tile");
            } else {
                snprintf(line, sizeof line,
                         "downsampled %" PRId64 "x: one cell = %" PRId64 " x %" PRId64
                         " tiles (%" PRId64 " x %" PRId64
                         " positions), drawn as its most common class; a cell whose tiles "
                         "differ has its own shade",
                         g.fq, g.fq, g.fkv, g.fq * in->block_q, g.fkv * in->block_kv);
                fmv_print_wrapped(v, 2, line);
                downsampled = true;
            }
            first = false;
        }
        putchar('\n');
        slice_title(v, b, h);
        draw_grid(v, &g);
        fmv_grid_free(&g);
    }
    if (shown < total) {
        snprintf(line, sizeof line,
                 "... %" PRId64 " more slice%s not shown (--heads-shown %" PRId64
                 " shows the first %" PRId64 ")",
                 total - shown, total - shown == 1 ? "" : "s", shown, shown);
        putchar('\n');
        fmv_print_wrapped(v, 4, line);
    }
    static const char *const what[8] = {"empty (skipped)", "partial (mask evaluated inside)",
                                        "full (computed, mask not evaluated)", "",
                                        "mostly empty",     "mostly partial",
                                        "mostly full"};
    size_t n = (size_t)snprintf(line, sizeof line, "legend: ");
    for (int k = FMV_FULL; k >= FMV_EMPTY; k--)
        n += legend_entry(v, line + n, sizeof line - n, k, what[k]);
    if (downsampled)
        for (int k = FMV_FULL | FMV_MIXED; k >= (FMV_EMPTY | FMV_MIXED); k--)
            n += legend_entry(v, line + n, sizeof line - n, k, what[k]);
    putchar('\n');
    fmv_print_wrapped(v, 8, line);
    fmv_print_wrapped(v, 2, "queries go down, keys/values go right");
    putchar('\n');
}

static bool count_true(const fmviz *v, double *out) {
    int64_t n;
    if (fm_blockmask_count_true(v->s.blockmask, &n) != FM_OK) return false;
    *out = (double)n;
    return true;
}

bool fmviz_print_stats(const fmviz *v) {
    const fm_blockmask_info *in = &v->info;
    char a[32], b2[32], c2[32], d[32];
    int64_t tiles = in->full_tiles + in->partial_tiles + in->empty_tiles;
    char line[512];
    snprintf(line, sizeof line, "tiles (every batch and head): %s full, %s partial, %s empty of %s",
           fmv_grouped(in->full_tiles, a), fmv_grouped(in->partial_tiles, b2), fmv_grouped(in->empty_tiles, c2),
           fmv_grouped(tiles, d));
    fmv_print_wrapped(v, 2, line);
    /* Positions in the computed (non-empty) tiles of the stored slices,
     * scaled up by the slices each stands for. */
    double computed = 0;
    for (int64_t b = 0; b < v->stored_batch; b++)
        for (int64_t h = 0; h < v->stored_heads; h++)
            for (int64_t qb = 0; qb < in->num_q_blocks; qb++) {
                const int32_t *fl, *pl;
                int64_t nf, np;
                if (fm_blockmask_row(v->s.blockmask, b, h, qb, &fl, &nf, &pl, &np) != FM_OK)
                    return false;
                int64_t cols = 0;
                for (int64_t k = 0; k < nf; k++)
                    cols += fmv_tile_cols(in, fl[k]);
                for (int64_t k = 0; k < np; k++)
                    cols += fmv_tile_cols(in, pl[k]);
                computed += (double)cols * (double)fmv_tile_rows(in, qb);
            }
    double per_slice =
        (double)(in->shape.batch / v->stored_batch) * (double)(in->shape.heads / v->stored_heads);
    computed *= per_slice;
    double dense = (double)in->shape.batch * (double)in->shape.heads * (double)in->shape.q_len *
                   (double)in->shape.kv_len;
    char e[32], g[32];
    double truths;
    if (!count_true(v, &truths)) return false;
    snprintf(line, sizeof line, "true positions: %s of %s (%.2f%%)", grouped_d(truths, a),
             grouped_d(dense, e), 100.0 * truths / dense);
    fmv_print_wrapped(v, 2, line);
    snprintf(line, sizeof line,
           "attention work skipped against a dense run: %.2f%% (%s of %s positions lie in "
           "computed tiles; %.2f%% of the tiles are empty)",
           100.0 * (1.0 - computed / dense), grouped_d(computed, g), grouped_d(dense, e),
           tiles ? 100.0 * (double)in->empty_tiles / (double)tiles : 0.0);
    fmv_print_wrapped(v, 2, line);
    snprintf(line, sizeof line,
           "build: %s point evaluations; %s stored tiles proven by analysis, %s settled point by "
           "point",
           fmv_grouped(in->evaluations, a), fmv_grouped(in->tiles_by_analysis, b2),
           fmv_grouped(in->tiles_by_points, c2));
    fmv_print_wrapped(v, 2, line);
    return true;
}
