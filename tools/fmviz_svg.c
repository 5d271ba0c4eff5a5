/* --svg: the same picture as --png, as vectors in position units (one
 * user unit = one position inside each panel), with the axes labelled in
 * positions, the tile grid drawn as hairlines and a legend. Horizontal
 * runs of one class become one rectangle, so files stay small. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/fmviz.h"

#define POS_MAX 256  /* per-position drawing up to this many positions a side */
#define CELL_MAX 128 /* tile mode: at most this many cells a side */
#define PANEL_PX 480.0
#define LEFT 70
#define TOP 56
#define GAP 40
#define PER_ROW 4
#define MAX_PANELS 16

static const char *const css_class[FMV_PX_COUNT] = {
    [FMV_PX_BG] = "bg",           [FMV_PX_GRID] = "g",  [FMV_PX_EMPTY] = "e",
    [FMV_PX_PARTIAL] = "p",       [FMV_PX_FULL] = "f",  [FMV_PX_TRUE_PARTIAL] = "t",
    [FMV_PX_FALSE_PARTIAL] = "n", [FMV_PX_WRONG] = "w",
};

typedef struct svg_panel {
    bool positions;
    double sx, sy; /* pixels per position */
    double pw, ph;
} svg_panel;

static void rect(FILE *f, int k, int64_t x, int64_t y, int64_t w, int64_t h) {
    fprintf(f,
            "<rect class=\"%s\" x=\"%" PRId64 "\" y=\"%" PRId64 "\" width=\"%" PRId64
            "\" height=\"%" PRId64 "\"/>\n",
            css_class[k], x, y, w, h);
}

static int64_t nice_step(int64_t need) {
    int64_t m = 1;
    for (;;) {
        if (m >= need) return m;
        if (2 * m >= need) return 2 * m;
        if (5 * m >= need) return 5 * m;
        m *= 10;
    }
}

static void label(FILE *f, bool horizontal, int64_t p, double scale, double x0, double y0) {
    if (horizontal)
        fprintf(f,
                "<text class=\"l\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%" PRId64
                "</text>\n",
                x0 + (double)p * scale, y0 - 4, p);
    else
        fprintf(f,
                "<text class=\"l\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%" PRId64 "</text>\n",
                x0 - 4, y0 + (double)p * scale + 4, p);
}

/* Tick labels at tile boundaries, far enough apart to be read. */
static void axis(FILE *f, bool horizontal, int64_t len, int64_t block, double scale, double x0,
                 double y0) {
    int64_t blocks_apart = (int64_t)(56.0 / (scale * (double)block)) + 1;
    int64_t step = nice_step(blocks_apart) * block;
    for (int64_t p = 0; p < len; p += step) {
        if (p > 0 && (double)(len - p) * scale < 40) break;
        label(f, horizontal, p, scale, x0, y0);
    }
    label(f, horizontal, len, scale, x0, y0);
}

static void grid_lines(FILE *f, const fm_blockmask_info *in, int64_t sq, int64_t skv) {
    fprintf(f, "<path class=\"gl\" d=\"");
    for (int64_t x = skv; x < in->shape.kv_len; x += skv)
        fprintf(f, "M%" PRId64 " 0V%" PRId64, x, in->shape.q_len);
    for (int64_t y = sq; y < in->shape.q_len; y += sq)
        fprintf(f, "M0 %" PRId64 "H%" PRId64, y, in->shape.kv_len);
    fprintf(f,
            "\"/>\n<rect class=\"border\" x=\"0\" y=\"0\" width=\"%" PRId64 "\" height=\"%" PRId64
            "\"/>\n",
            in->shape.kv_len, in->shape.q_len);
}

static bool body_positions(FILE *f, const fmviz *v, int64_t b, int64_t h) {
    const fm_blockmask_info *in = &v->info;
    uint8_t *tiles = malloc((size_t)in->num_kv_blocks);
    uint8_t *row = malloc((size_t)in->shape.kv_len);
    bool ok = tiles && row;
    for (int64_t qb = 0; ok && qb < in->num_q_blocks; qb++) {
        if (!(ok = fmv_tile_classes(v, b, h, qb, tiles))) break;
        for (int64_t q = qb * in->block_q; ok && q < qb * in->block_q + fmv_tile_rows(in, qb);
             q++) {
            if (!(ok = fmv_position_classes(v, b, h, q, tiles, row))) break;
            for (int64_t kv = 0; kv < in->shape.kv_len;) {
                int64_t end = kv + 1;
                while (end < in->shape.kv_len && row[end] == row[kv])
                    end++;
                if (row[kv] != FMV_PX_EMPTY) rect(f, row[kv], kv, q, end - kv, 1);
                kv = end;
            }
        }
    }
    free(tiles);
    free(row);
    if (ok) grid_lines(f, in, in->block_q, in->block_kv);
    return ok;
}

static bool body_tiles(FILE *f, const fmviz *v, int64_t b, int64_t h) {
    static const uint8_t px[3] = {FMV_PX_EMPTY, FMV_PX_PARTIAL, FMV_PX_FULL};
    const fm_blockmask_info *in = &v->info;
    fmv_grid g;
    if (!fmv_grid_build(v, b, h, CELL_MAX, CELL_MAX, true, &g)) return false;
    int64_t cq = g.fq * in->block_q, ckv = g.fkv * in->block_kv; /* a cell, in positions */
    for (int64_t r = 0; r < g.rows; r++) {
        int64_t y = r * cq, y1 = y + cq > in->shape.q_len ? in->shape.q_len : y + cq;
        for (int64_t c = 0; c < g.cols;) {
            int k = g.cell[r * g.cols + c];
            int64_t end = c + 1;
            while (end < g.cols && g.cell[r * g.cols + end] == k)
                end++;
            int64_t x = c * ckv, x1 = end * ckv > in->shape.kv_len ? in->shape.kv_len : end * ckv;
            if (k != FMV_EMPTY) rect(f, px[k], x, y, x1 - x, y1 - y);
            c = end;
        }
    }
    fmv_grid_free(&g);
    grid_lines(f, in, cq, ckv);
    return true;
}

static void legend(FILE *f, bool positions, double y) {
    static const struct {
        int k;
        const char *what;
    } pos_items[] = {{FMV_PX_FULL, "full tile (true)"},
                     {FMV_PX_TRUE_PARTIAL, "partial tile: true"},
                     {FMV_PX_FALSE_PARTIAL, "partial tile: false"},
                     {FMV_PX_EMPTY, "empty tile"},
                     {FMV_PX_WRONG, "contradicts its tile"}},
      tile_items[] = {{FMV_PX_FULL, "full"}, {FMV_PX_PARTIAL, "partial"}, {FMV_PX_EMPTY, "empty"}};
    size_t n = positions ? 5 : 3;
    double x = LEFT;
    for (size_t i = 0; i < n; i++) {
        int k = positions ? pos_items[i].k : tile_items[i].k;
        const char *what = positions ? pos_items[i].what : tile_items[i].what;
        fprintf(f, "<rect class=\"%s sw\" x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"12\"/>\n",
                css_class[k], x, y - 10);
        fprintf(f, "<text class=\"l\" x=\"%.1f\" y=\"%.1f\">%s</text>\n", x + 16, y, what);
        x += 32 + 7.0 * (double)strlen(what);
    }
}

int fmviz_write_svg(const fmviz *v, const char *path) {
    const fm_blockmask_info *in = &v->info;
    int64_t longest = in->shape.q_len > in->shape.kv_len ? in->shape.q_len : in->shape.kv_len;
    svg_panel p;
    p.positions = longest <= POS_MAX;
    p.sx = p.sy = PANEL_PX / (double)longest;
    p.pw = p.sx * (double)in->shape.kv_len;
    p.ph = p.sy * (double)in->shape.q_len;
    /* A very thin shape still gets a visible panel. */
    if (p.pw < 24) {
        p.pw = 24;
        p.sx = 24.0 / (double)in->shape.kv_len;
    }
    if (p.ph < 24) {
        p.ph = 24;
        p.sy = 24.0 / (double)in->shape.q_len;
    }
    int64_t n = v->stored_batch * v->stored_heads;
    int64_t drawn = n > MAX_PANELS ? MAX_PANELS : n;
    int per_row = drawn < PER_ROW ? (int)drawn : PER_ROW;
    int rows = (int)((drawn + per_row - 1) / per_row);
    double cw = p.pw + GAP + LEFT - 20, ch = p.ph + TOP + GAP / 2;
    double w = LEFT + per_row * cw, h = 30 + rows * ch + 30;
    bool removable = fmv_removable(path);
    FILE *f = fopen(path, "w");
    if (!f) return fmcli_input_error(&v->c, NULL, "cannot open %s for writing", path);
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
            "viewBox=\"0 0 %.0f %.0f\">\n",
            w, h, w, h);
    fprintf(f, "<style>\n"
               "text{font-family:monospace;font-size:12px;fill:#222}\n"
               ".l{font-size:11px}\n"
               "rect{shape-rendering:crispEdges}\n");
    for (int k = 0; k < FMV_PX_COUNT; k++)
        fprintf(f, ".%s{fill:#%02x%02x%02x}\n", css_class[k], fmv_palette[k][0], fmv_palette[k][1],
                fmv_palette[k][2]);
    fprintf(f, ".gl{fill:none;stroke:#787878;stroke-width:0.6;vector-effect:non-scaling-stroke}\n"
               ".border{fill:none;stroke:#444;stroke-width:1;vector-effect:non-scaling-stroke}\n"
               ".sw{stroke:#444;stroke-width:0.5}\n"
               "</style>\n");
    fprintf(f, "<rect class=\"bg\" x=\"0\" y=\"0\" width=\"100%%\" height=\"100%%\"/>\n");
    fprintf(f, "<text x=\"%d\" y=\"20\">mask ", LEFT);
    /* A mask name is an identifier, but escape anyway: the file is XML. */
    for (const char *s = fm_mask_name(v->s.mask); *s; s++) {
        if (*s == '<')
            fputs("&lt;", f);
        else if (*s == '&')
            fputs("&amp;", f);
        else
            fputc(*s, f);
    }
    fprintf(f,
            ": q_len %" PRId64 ", kv_len %" PRId64 ", tiles %" PRId64 " x %" PRId64 " (%" PRId64
            " x %" PRId64 " blocks)%s</text>\n",
            in->shape.q_len, in->shape.kv_len, in->block_q, in->block_kv, in->num_q_blocks,
            in->num_kv_blocks, drawn < n ? "; first slices only" : "");
    bool ok = true;
    for (int64_t i = 0; i < drawn && ok; i++) {
        int64_t b = i / v->stored_heads, hh = i % v->stored_heads;
        double x0 = LEFT + (double)(i % per_row) * cw, y0 = 30 + (double)(i / per_row) * ch + TOP;
        fprintf(f,
                "<text x=\"%.1f\" y=\"%.1f\">b=%" PRId64 " h=%" PRId64
                "%s   kv \xe2\x86\x92</text>\n",
                x0, y0 - 26, b, hh,
                in->broadcast_batch && in->broadcast_heads ? " (all b, h)"
                : in->broadcast_batch                      ? " (all b)"
                : in->broadcast_heads                      ? " (all h)"
                                                           : "");
        fprintf(
            f,
            "<text class=\"l\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">q \xe2\x86\x93</text>\n",
            x0 - 4, y0 - 12);
        axis(f, true, in->shape.kv_len, in->block_kv, p.sx, x0, y0);
        axis(f, false, in->shape.q_len, in->block_q, p.sy, x0, y0);
        fprintf(f,
                "<svg x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" viewBox=\"0 0 %" PRId64
                " %" PRId64 "\" preserveAspectRatio=\"none\">\n",
                x0, y0, p.pw, p.ph, in->shape.kv_len, in->shape.q_len);
        rect(f, FMV_PX_EMPTY, 0, 0, in->shape.kv_len, in->shape.q_len);
        ok = p.positions ? body_positions(f, v, b, hh) : body_tiles(f, v, b, hh);
        fprintf(f, "</svg>\n");
    }
    legend(f, p.positions, h - 14);
    fprintf(f, "</svg>\n");
    bool werr = ferror(f) != 0;
    if (fclose(f) != 0) werr = true;
    if (!ok) {
        if (removable) remove(path);
        fmcli_error(&v->c, NULL, "the BlockMask could not be read or evaluated (a bug)");
        return 4;
    }
    if (werr) {
        if (removable) remove(path);
        return fmcli_input_error(&v->c, NULL, "writing %s failed", path);
    }
    printf("wrote %s: %" PRId64 " panel%s, %s\n", path, drawn, drawn == 1 ? "" : "s",
           p.positions ? "one square per position" : "one square per tile or group of tiles");
    if (drawn < n) printf("note: %" PRId64 " of %" PRId64 " slices drawn\n", drawn, n);
    return 0;
}
