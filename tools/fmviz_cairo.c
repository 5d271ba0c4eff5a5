/* --png, --svg, --pdf: the picture drawn with cairo. A title (mask, shape,
 * blocks, tile counts), one labelled panel per shown slice with position
 * ticks (top, left) and block ticks (bottom, right), and a legend with
 * counts; the canvas is measured from its contents before anything is
 * drawn, so nothing is cut off.
 *
 * Small shapes are drawn one square per position, coloured by the mask's
 * value and its tile's class; larger ones one cell per tile or per group
 * of tiles (fmv_grid: the majority class, a paler shade when mixed).
 * Every coordinate is a whole pixel, and nothing is scaled, so a line is
 * as thin in the SVG (whatever renders it) as in the PNG. */
#define _POSIX_C_SOURCE 200809L
#include <cairo-ft.h>
#include <cairo-pdf.h>
#include <cairo-svg.h>
#include <cairo.h>
#include <errno.h>
#include <ft2build.h>
#include FT_FREETYPE_H
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flexmask_tools.h"
#include "tools/fmviz.h"

#define BODY_PX 512    /* the longer side of a panel's body, about */
#define POS_MAX 512    /* one square per position up to this many positions a side */
#define CELL_MAX 256   /* tile mode: at most this many cells a side */
#define MAX_SIDE 30000 /* below cairo's image limit of 32767 */
#define MARGIN 16.0
#define FONT "DejaVu Sans"
#define FONT_DIR "/usr/share/fonts/truetype/dejavu/"

typedef struct panel {
    int64_t b, h;
    fmv_grid grid; /* tile mode */
    uint8_t *px;   /* position mode: q_len x kv_len FMV_PX_* classes */
} panel;

typedef struct picture {
    const fmviz *v;
    bool positions;
    int64_t s;       /* pixels per position, or per cell */
    int64_t fq, fkv; /* tiles per cell */
    int64_t body_w, body_h;
    int64_t kv_step, q_step; /* tick steps, in blocks */
    double left, right, top, bottom; /* room around a body for labels */
    int per_row, drawn, rows;
    double cell_w, cell_h; /* a panel with its labels */
    double title_h, legend_h, w, h;
    panel *panels;
    int64_t count[FMV_PX_COUNT]; /* legend counts */
    char title[3][512];
} picture;

/* ---- text ---------------------------------------------------------------- */

/* DejaVu Sans read straight from its files (scripts/install-deps.sh
 * installs them): the same letters on every machine, and no fontconfig,
 * whose caches outlive the program (leak checkers count them). Where the
 * files are missing, cairo's own lookup of the family by name. */
static FT_Library ft_lib;
static cairo_font_face_t *faces[2];
static const cairo_user_data_key_t face_key;

static void done_face(void *face) {
    FT_Done_Face(face);
}

static void fonts_open(void) {
    static const char *const file[2] = {FONT_DIR "DejaVuSans.ttf", FONT_DIR "DejaVuSans-Bold.ttf"};
    if (FT_Init_FreeType(&ft_lib)) return;
    for (int i = 0; i < 2; i++) {
        FT_Face face;
        if (FT_New_Face(ft_lib, file[i], 0, &face)) continue;
        faces[i] = cairo_ft_font_face_create_for_ft_face(face, 0);
        if (cairo_font_face_set_user_data(faces[i], &face_key, face, done_face)) {
            cairo_font_face_destroy(faces[i]);
            faces[i] = NULL;
            FT_Done_Face(face);
        }
    }
}

static void fonts_close(void) {
    for (int i = 0; i < 2; i++) {
        if (faces[i]) cairo_font_face_destroy(faces[i]);
        faces[i] = NULL;
    }
    /* Scaled fonts cached by cairo hold the faces until this. */
    cairo_debug_reset_static_data();
    if (ft_lib) FT_Done_FreeType(ft_lib);
    ft_lib = NULL;
}

static void font(cairo_t *cr, double size, bool bold) {
    if (faces[bold])
        cairo_set_font_face(cr, faces[bold]);
    else
        cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL,
                               bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

static double text_width(cairo_t *cr, const char *s) {
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    return e.x_advance;
}

/* Draws s with its baseline at y; align 0 left, 0.5 centred, 1 right of x. */
static void text(cairo_t *cr, double x, double y, double align, const char *s) {
    cairo_move_to(cr, x - align * text_width(cr, s), y);
    cairo_show_text(cr, s);
}

/* The same, turned to read upwards, centred on (x, y). */
static void text_up(cairo_t *cr, double x, double y, const char *s) {
    cairo_save(cr);
    cairo_translate(cr, x, y);
    cairo_rotate(cr, -1.5707963267948966); /* a quarter turn */
    text(cr, 0, 0, 0.5, s);
    cairo_restore(cr);
}

static void rgb(cairo_t *cr, const uint8_t c[3]) {
    cairo_set_source_rgb(cr, c[0] / 255.0, c[1] / 255.0, c[2] / 255.0);
}

static void grey(cairo_t *cr, double g) {
    cairo_set_source_rgb(cr, g, g, g);
}

/* ---- layout -------------------------------------------------------------- */

static int64_t min64(int64_t a, int64_t b) {
    return a < b ? a : b;
}

/* The smallest step (base times a power of two, in blocks) whose ticks
 * are at least need pixels apart. */
static int64_t tick_step(double px_per_block, double need, int64_t base) {
    int64_t step = base;
    while ((double)step * px_per_block < need && step < ((int64_t)1 << 40))
        step *= 2;
    return step;
}

static double px_per_block(const picture *p, bool kv) {
    const fm_blockmask_info *in = &p->v->info;
    if (p->positions) return (double)(p->s * (kv ? in->block_kv : in->block_q));
    return (double)p->s / (double)(kv ? p->fkv : p->fq);
}

static void plan_scale(picture *p) {
    const fm_blockmask_info *in = &p->v->info;
    int64_t longest = in->shape.q_len > in->shape.kv_len ? in->shape.q_len : in->shape.kv_len;
    if (longest <= POS_MAX) {
        p->positions = true;
        p->s = BODY_PX / longest;
        if (p->s > 32) p->s = 32;
        p->fq = p->fkv = 1;
        p->body_w = in->shape.kv_len * p->s;
        p->body_h = in->shape.q_len * p->s;
        return;
    }
    fmv_grid g;
    /* A trial grid of the first slice settles the factors (they depend on
     * the shape only). */
    if (fmv_grid_build(p->v, 0, 0, CELL_MAX, CELL_MAX, true, &g)) {
        p->fq = g.fq;
        p->fkv = g.fkv;
        int64_t cmax = g.rows > g.cols ? g.rows : g.cols;
        p->s = BODY_PX / cmax;
        if (p->s < 2) p->s = 2;
        if (p->s > 32) p->s = 32;
        p->body_w = g.cols * p->s;
        p->body_h = g.rows * p->s;
        fmv_grid_free(&g);
    }
}

static void plan_layout(picture *p, cairo_t *cr) {
    const fmviz *v = p->v;
    const fm_blockmask_info *in = &v->info;
    char buf[64];
    font(cr, 11, false);
    snprintf(buf, sizeof buf, "%" PRId64, in->shape.kv_len);
    double kv_label = text_width(cr, buf);
    snprintf(buf, sizeof buf, "%" PRId64, in->shape.q_len);
    double q_label = text_width(cr, buf);
    snprintf(buf, sizeof buf, "%" PRId64, in->num_q_blocks);
    double qb_label = text_width(cr, buf);
    p->kv_step = tick_step(px_per_block(p, true), kv_label + 14, p->fkv);
    p->q_step = tick_step(px_per_block(p, false), 18, p->fq);
    /* Labels, tick marks (4 px) and the turned axis titles (13 px). */
    p->left = 16 + 6 + q_label + 6;
    p->right = 6 + qb_label + 6 + 16;
    p->top = 20 + 16 + 14 + 6;
    p->bottom = 6 + 14 + 16 + 14;
    font(cr, 12, true);
    double label = 0;
    for (int i = 0; i < p->drawn; i++) {
        snprintf(buf, sizeof buf, "b=%" PRId64 " h=%" PRId64 "  (all heads and batches)",
                 p->panels[i].b, p->panels[i].h);
        double w = text_width(cr, buf);
        if (w > label) label = w;
    }
    p->cell_w = p->left + (double)p->body_w + p->right;
    if (p->cell_w < label + 8) p->cell_w = label + 8;
    p->cell_h = p->top + (double)p->body_h + p->bottom;
}

/* Title lines; the caller has set panels, drawn and the scale. */
static void plan_title(picture *p) {
    const fmviz *v = p->v;
    const fm_blockmask_info *in = &v->info;
    snprintf(p->title[0], sizeof p->title[0],
             "mask %s: batch %" PRId64 ", heads %" PRId64 ", q_len %" PRId64 ", kv_len %" PRId64,
             fm_mask_name(v->s.mask), in->shape.batch, in->shape.heads, in->shape.q_len,
             in->shape.kv_len);
    char f[32], pa[32], e[32];
    snprintf(p->title[1], sizeof p->title[1],
             "blocks %" PRId64 " x %" PRId64 ": %" PRId64 " x %" PRId64
             " tiles; %s full, %s partial, %s empty over every batch and head",
             in->block_q, in->block_kv, in->num_q_blocks, in->num_kv_blocks,
             fmv_grouped(in->full_tiles, f), fmv_grouped(in->partial_tiles, pa),
             fmv_grouped(in->empty_tiles, e));
    int64_t total = v->stored_batch * v->stored_heads;
    char shown[128] = "";
    if (p->drawn < total)
        snprintf(shown, sizeof shown, "; the first %d of %" PRId64 " stored slices", p->drawn,
                 total);
    if (p->positions)
        snprintf(p->title[2], sizeof p->title[2], "one square per position (%" PRId64 " px)%s",
                 p->s, shown);
    else if (p->fq == 1)
        snprintf(p->title[2], sizeof p->title[2], "one square per tile (%" PRId64 " px)%s", p->s,
                 shown);
    else
        snprintf(p->title[2], sizeof p->title[2],
                 "downsampled: one square per %" PRId64 " x %" PRId64
                 " tiles, drawn as their most common class%s",
                 p->fq, p->fkv, shown);
}

/* ---- panel contents ------------------------------------------------------ */

static bool fill_panel(picture *p, panel *pn) {
    const fmviz *v = p->v;
    const fm_blockmask_info *in = &v->info;
    if (!p->positions) {
        if (!fmv_grid_build(v, pn->b, pn->h, CELL_MAX, CELL_MAX, true, &pn->grid)) return false;
        for (int64_t r = 0; r < in->num_q_blocks; r++) {
            const int32_t *fl, *pl;
            int64_t nf, np;
            if (fm_blockmask_row(v->s.blockmask, pn->b, pn->h, r, &fl, &nf, &pl, &np) != FM_OK)
                return false;
            p->count[FMV_PX_FULL] += nf;
            p->count[FMV_PX_PARTIAL] += np;
            p->count[FMV_PX_EMPTY] += in->num_kv_blocks - nf - np;
        }
        for (int64_t i = 0; i < pn->grid.rows * pn->grid.cols; i++)
            if (pn->grid.cell[i] & FMV_MIXED)
                p->count[FMV_PX_MIXED_EMPTY + FMV_CLASS(pn->grid.cell[i])]++;
        return true;
    }
    uint8_t *tiles = malloc((size_t)in->num_kv_blocks);
    pn->px = malloc((size_t)(in->shape.q_len * in->shape.kv_len));
    bool ok = tiles && pn->px;
    for (int64_t qb = 0; ok && qb < in->num_q_blocks; qb++) {
        ok = fmv_tile_classes(v, pn->b, pn->h, qb, tiles);
        for (int64_t k = 0; ok && k < in->num_kv_blocks; k++)
            if (tiles[k] != FMV_PARTIAL) p->count[tiles[k] == FMV_FULL ? FMV_PX_FULL : FMV_PX_EMPTY]++;
        int64_t q0 = qb * in->block_q;
        for (int64_t q = q0; ok && q < q0 + fmv_tile_rows(in, qb); q++)
            ok = fmv_position_classes(v, pn->b, pn->h, q, tiles, pn->px + q * in->shape.kv_len);
    }
    free(tiles);
    for (int64_t i = 0; ok && i < in->shape.q_len * in->shape.kv_len; i++)
        if (pn->px[i] != FMV_PX_FULL && pn->px[i] != FMV_PX_EMPTY) p->count[pn->px[i]]++;
    return ok;
}

/* Fills the cells of one colour as runs along each row, so a band is a
 * few rectangles in the SVG, not one per cell. */
static void draw_class(cairo_t *cr, const uint8_t *cells, int64_t rows, int64_t cols, uint8_t k,
                       double x0, double y0, double s) {
    bool any = false;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols;) {
            if (cells[r * cols + c] != k) {
                c++;
                continue;
            }
            int64_t e = c;
            while (e < cols && cells[r * cols + e] == k)
                e++;
            cairo_rectangle(cr, x0 + (double)c * s, y0 + (double)r * s, (double)(e - c) * s, s);
            any = true;
            c = e;
        }
    if (any) {
        rgb(cr, fmv_palette[k]);
        cairo_fill(cr);
    }
}

static void draw_body(const picture *p, cairo_t *cr, const panel *pn, double x0, double y0) {
    const fm_blockmask_info *in = &p->v->info;
    double s = (double)p->s;
    rgb(cr, fmv_palette[FMV_PX_EMPTY]);
    cairo_rectangle(cr, x0, y0, (double)p->body_w, (double)p->body_h);
    cairo_fill(cr);
    if (p->positions) {
        for (uint8_t k = 0; k < FMV_PX_COUNT; k++)
            if (k != FMV_PX_EMPTY)
                draw_class(cr, pn->px, in->shape.q_len, in->shape.kv_len, k, x0, y0, s);
    } else {
        /* Cell values (class | FMV_MIXED) map onto the palette's order. */
        int64_t n = pn->grid.rows * pn->grid.cols;
        uint8_t *c = malloc((size_t)n);
        if (!c) return;
        for (int64_t i = 0; i < n; i++)
            c[i] = (uint8_t)((pn->grid.cell[i] & FMV_MIXED ? FMV_PX_MIXED_EMPTY : 0) +
                             FMV_CLASS(pn->grid.cell[i]));
        for (uint8_t k = 0; k <= FMV_PX_MIXED_FULL; k++)
            if (k != FMV_PX_EMPTY) draw_class(cr, c, pn->grid.rows, pn->grid.cols, k, x0, y0, s);
        free(c);
    }
    /* The tile grid, where tiles (or cells) are wide enough to show it. */
    double gq = px_per_block(p, false) * (double)p->fq, gkv = px_per_block(p, true) * (double)p->fkv;
    cairo_set_line_width(cr, 1);
    if (gq >= 6 && gkv >= 6) {
        grey(cr, p->positions ? 0.45 : 1.0);
        for (double x = x0 + gkv; x < x0 + (double)p->body_w - 0.5; x += gkv) {
            cairo_move_to(cr, floor(x) + 0.5, y0);
            cairo_line_to(cr, floor(x) + 0.5, y0 + (double)p->body_h);
        }
        for (double y = y0 + gq; y < y0 + (double)p->body_h - 0.5; y += gq) {
            cairo_move_to(cr, x0, floor(y) + 0.5);
            cairo_line_to(cr, x0 + (double)p->body_w, floor(y) + 0.5);
        }
        cairo_stroke(cr);
    }
    grey(cr, 0.25);
    cairo_rectangle(cr, x0 - 0.5, y0 - 0.5, (double)p->body_w + 1, (double)p->body_h + 1);
    cairo_stroke(cr);
}

static void draw_axes(const picture *p, cairo_t *cr, double x0, double y0) {
    const fm_blockmask_info *in = &p->v->info;
    double bw = (double)p->body_w, bh = (double)p->body_h;
    char buf[32];
    font(cr, 11, false);
    cairo_set_line_width(cr, 1);
    double ppb = px_per_block(p, true);
    for (int64_t k = 0; k < in->num_kv_blocks; k += p->kv_step) {
        double x = floor(x0 + (double)k * ppb) + 0.5;
        grey(cr, 0.25);
        cairo_move_to(cr, x, y0 - 5);
        cairo_line_to(cr, x, y0 - 1);
        cairo_move_to(cr, x, y0 + bh + 1);
        cairo_line_to(cr, x, y0 + bh + 5);
        cairo_stroke(cr);
        grey(cr, 0.1);
        snprintf(buf, sizeof buf, "%" PRId64, k * in->block_kv);
        text(cr, x, y0 - 8, 0.5, buf);
        grey(cr, 0.4);
        snprintf(buf, sizeof buf, "%" PRId64, k);
        text(cr, x, y0 + bh + 16, 0.5, buf);
    }
    ppb = px_per_block(p, false);
    for (int64_t k = 0; k < in->num_q_blocks; k += p->q_step) {
        double y = floor(y0 + (double)k * ppb) + 0.5;
        grey(cr, 0.25);
        cairo_move_to(cr, x0 - 5, y);
        cairo_line_to(cr, x0 - 1, y);
        cairo_move_to(cr, x0 + bw + 1, y);
        cairo_line_to(cr, x0 + bw + 5, y);
        cairo_stroke(cr);
        grey(cr, 0.1);
        snprintf(buf, sizeof buf, "%" PRId64, k * in->block_q);
        text(cr, x0 - 8, y + 4, 1, buf);
        grey(cr, 0.4);
        snprintf(buf, sizeof buf, "%" PRId64, k);
        text(cr, x0 + bw + 8, y + 4, 0, buf);
    }
    grey(cr, 0.1);
    text(cr, x0 + bw / 2, y0 - 24, 0.5, "kv position \xe2\x86\x92");
    text_up(cr, x0 - p->left + 12, y0 + bh / 2, "q position");
    grey(cr, 0.4);
    text(cr, x0 + bw / 2, y0 + bh + 31, 0.5, "kv block");
    text_up(cr, x0 + bw + p->right - 5, y0 + bh / 2, "q block");
}

static void panel_label(const picture *p, cairo_t *cr, const panel *pn, double x, double y) {
    const fm_blockmask_info *in = &p->v->info;
    char buf[160];
    int n = snprintf(buf, sizeof buf, "b=%" PRId64 " h=%" PRId64, pn->b, pn->h);
    bool bb = in->broadcast_batch && in->shape.batch > 1, bh = in->broadcast_heads && in->shape.heads > 1;
    if (bb || bh)
        snprintf(buf + n, sizeof buf - (size_t)n, "  (all %s)",
                 bb && bh ? "batches and heads" : bb ? "batches" : "heads");
    font(cr, 12, true);
    grey(cr, 0.1);
    text(cr, x, y, 0, buf);
}

/* ---- legend -------------------------------------------------------------- */

typedef struct legend_item {
    int k;
    const char *what;
    const char *unit;
} legend_item;

static int legend_items(const picture *p, legend_item *out) {
    static const legend_item tiles[] = {
        {FMV_PX_FULL, "full tile: computed, the mask is not evaluated", "tiles"},
        {FMV_PX_PARTIAL, "partial tile: the mask is evaluated inside", "tiles"},
        {FMV_PX_EMPTY, "empty tile: skipped", "tiles"},
        {FMV_PX_MIXED_FULL, "mixed square, mostly full tiles", "squares"},
        {FMV_PX_MIXED_PARTIAL, "mixed square, mostly partial tiles", "squares"},
        {FMV_PX_MIXED_EMPTY, "mixed square, mostly empty tiles", "squares"},
    };
    static const legend_item positions[] = {
        {FMV_PX_FULL, "full tile: every position true", "tiles"},
        {FMV_PX_TRUE_PARTIAL, "true position of a partial tile", "positions"},
        {FMV_PX_FALSE_PARTIAL, "false position of a partial tile", "positions"},
        {FMV_PX_EMPTY, "empty tile: every position false", "tiles"},
        {FMV_PX_WRONG, "position that contradicts its tile (a bug)", "positions"},
    };
    const legend_item *src = p->positions ? positions : tiles;
    int n = p->positions ? 5 : 6, m = 0;
    for (int i = 0; i < n; i++) {
        bool optional = src[i].k >= FMV_PX_MIXED_EMPTY && src[i].k != FMV_PX_TRUE_PARTIAL &&
                        src[i].k != FMV_PX_FALSE_PARTIAL;
        if (!optional || p->count[src[i].k]) out[m++] = src[i];
    }
    return m;
}

static void legend_line(const picture *p, const legend_item *it, char *buf, size_t cap) {
    char n[32];
    int one = p->count[it->k] == 1; /* "1 tile", not "1 tiles" */
    snprintf(buf, cap, "%s: %s %.*s", it->what, fmv_grouped(p->count[it->k], n),
             (int)strlen(it->unit) - one, it->unit);
}

/* ---- the whole picture --------------------------------------------------- */

static double legend_width(const picture *p, cairo_t *cr) {
    legend_item items[8];
    int n = legend_items(p, items);
    char buf[200];
    double w = 0;
    font(cr, 12, false);
    for (int i = 0; i < n; i++) {
        legend_line(p, &items[i], buf, sizeof buf);
        double t = 22 + text_width(cr, buf);
        if (t > w) w = t;
    }
    if (!p->positions && p->fq > 1) {
        double t = text_width(cr, "a square stands for a group of tiles: the class most of them have;");
        if (t > w) w = t;
    }
    return w;
}

static void draw(const picture *p, cairo_t *cr) {
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    double y = MARGIN + 16;
    font(cr, 16, true);
    grey(cr, 0.05);
    text(cr, MARGIN, y, 0, p->title[0]);
    font(cr, 12, false);
    grey(cr, 0.2);
    text(cr, MARGIN, y + 20, 0, p->title[1]);
    text(cr, MARGIN, y + 37, 0, p->title[2]);
    for (int i = 0; i < p->drawn; i++) {
        double cx = MARGIN + (double)(i % p->per_row) * (p->cell_w + MARGIN);
        double cy = MARGIN + p->title_h + (double)(i / p->per_row) * p->cell_h;
        double x0 = floor(cx + p->left), y0 = floor(cy + p->top);
        panel_label(p, cr, &p->panels[i], cx, cy + 14);
        draw_body(p, cr, &p->panels[i], x0, y0);
        draw_axes(p, cr, x0, y0);
    }
    legend_item items[8];
    int n = legend_items(p, items);
    char buf[200];
    y = MARGIN + p->title_h + (double)p->rows * p->cell_h + 8;
    font(cr, 12, false);
    for (int i = 0; i < n; i++, y += 18) {
        rgb(cr, fmv_palette[items[i].k]);
        cairo_rectangle(cr, MARGIN + 0.5, y + 0.5, 12, 12);
        cairo_fill_preserve(cr);
        grey(cr, 0.3);
        cairo_set_line_width(cr, 1);
        cairo_stroke(cr);
        grey(cr, 0.1);
        legend_line(p, &items[i], buf, sizeof buf);
        text(cr, MARGIN + 22, y + 11, 0, buf);
    }
    if (!p->positions && p->fq > 1) {
        grey(cr, 0.3);
        text(cr, MARGIN, y + 11, 0, "a square stands for a group of tiles: the class most of them have;");
        text(cr, MARGIN, y + 29, 0, "a paler shade when they are not all of one class");
    }
}

/* ---- output -------------------------------------------------------------- */

typedef struct buffer {
    unsigned char *data;
    size_t len, cap;
    bool failed;
} buffer;

static cairo_status_t append(void *closure, const unsigned char *data, unsigned int n) {
    buffer *b = closure;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1 << 16;
        while (cap < b->len + n)
            cap *= 2;
        unsigned char *d = realloc(b->data, cap);
        if (!d) {
            b->failed = true;
            return CAIRO_STATUS_NO_MEMORY;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    return CAIRO_STATUS_SUCCESS;
}

typedef struct image_file {
    const buffer *b;
    int format;
    const char *title;
} image_file;

/* The SVG gets a <title> (cairo draws text as glyph outlines, so without
 * it the file would hold no words to search or read aloud). */
static bool write_image(FILE *f, void *ctx) {
    const image_file *im = ctx;
    const buffer *b = im->b;
    size_t head = 0;
    if (im->format == FMV_FORMAT_SVG) {
        const unsigned char *svg = (const unsigned char *)strstr((const char *)b->data, "<svg");
        const unsigned char *gt = svg ? (const unsigned char *)strchr((const char *)svg, '>') : NULL;
        if (gt) head = (size_t)(gt + 1 - b->data);
    }
    bool ok = fwrite(b->data, 1, head, f) == head;
    if (head) {
        fputs("\n<title>", f);
        for (const char *s = im->title; *s; s++)
            if (*s == '<')
                fputs("&lt;", f);
            else if (*s == '&')
                fputs("&amp;", f);
            else
                fputc(*s, f);
        fputs("</title>", f);
    }
    return ok && fwrite(b->data + head, 1, b->len - head, f) == b->len - head;
}

/* Through a temporary and a rename: a failed write keeps the old image. */
static bool write_file(const char *path, const buffer *b, int format, const char *title,
                       char *err, size_t errsz) {
    image_file im = {b, format, title};
    char why[320];
    if (fmt_write_file(path, write_image, &im, why, sizeof why)) return true;
    snprintf(err, errsz, "%s: %s", path, why[0] ? why : "cannot write the image");
    return false;
}

static void free_panels(picture *p, int n) {
    for (int i = 0; p->panels && i < n; i++) {
        fmv_grid_free(&p->panels[i].grid);
        free(p->panels[i].px);
    }
    free(p->panels);
}

int fmviz_write_image(const fmviz *v, const char *path, int format) {
    picture p;
    memset(&p, 0, sizeof p);
    p.v = v;
    plan_scale(&p);
    if (!p.s) return fmcli_input_error(&v->c, NULL, "out of memory");
    p.drawn = (int)fmv_panels(v);
    p.panels = calloc((size_t)p.drawn, sizeof *p.panels);
    if (!p.panels) return fmcli_input_error(&v->c, NULL, "out of memory");
    for (int i = 0; i < p.drawn; i++) {
        p.panels[i].b = i / v->stored_heads;
        p.panels[i].h = i % v->stored_heads;
    }
    fonts_open();
    cairo_surface_t *scratch = cairo_image_surface_create(CAIRO_FORMAT_RGB24, 1, 1);
    cairo_t *cr = cairo_create(scratch);
    plan_layout(&p, cr);
    p.per_row = (int)min64(p.drawn, (int64_t)(1400 / (p.cell_w + MARGIN)));
    if (p.per_row < 1) p.per_row = 1;
    int fit = p.per_row * (int)((MAX_SIDE - 400) / p.cell_h);
    if (fit < 1) fit = 1;
    int wanted = p.drawn;
    if (p.drawn > fit) p.drawn = fit;
    p.rows = (p.drawn + p.per_row - 1) / p.per_row;
    bool ok = true;
    for (int i = 0; i < p.drawn && ok; i++)
        ok = fill_panel(&p, &p.panels[i]);
    plan_title(&p);
    p.title_h = 72;
    double tw = 0;
    font(cr, 16, true);
    tw = text_width(cr, p.title[0]);
    font(cr, 12, false);
    for (int i = 1; i < 3; i++)
        if (text_width(cr, p.title[i]) > tw) tw = text_width(cr, p.title[i]);
    double lw = legend_width(&p, cr);
    legend_item items[8];
    p.legend_h = 8 + 18.0 * legend_items(&p, items) + (!p.positions && p.fq > 1 ? 40 : 0);
    cairo_destroy(cr);
    cairo_surface_destroy(scratch);
    double content = (double)p.per_row * p.cell_w + (double)(p.per_row - 1) * MARGIN;
    if (tw > content) content = tw;
    if (lw > content) content = lw;
    p.w = ceil(2 * MARGIN + content);
    p.h = ceil(MARGIN + p.title_h + (double)p.rows * p.cell_h + p.legend_h + MARGIN);
    if (!ok) {
        free_panels(&p, wanted);
        fonts_close();
        fmcli_error(&v->c, NULL, "the BlockMask could not be read or evaluated (a bug)");
        return 4;
    }
    buffer buf = {NULL, 0, 0, false};
    cairo_surface_t *surface =
        format == FMV_FORMAT_PNG ? cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)p.w, (int)p.h)
        : format == FMV_FORMAT_SVG ? cairo_svg_surface_create_for_stream(append, &buf, p.w, p.h)
                                   : cairo_pdf_surface_create_for_stream(append, &buf, p.w, p.h);
    if (format == FMV_FORMAT_PDF) {
        cairo_pdf_surface_set_metadata(surface, CAIRO_PDF_METADATA_TITLE, p.title[0]);
        cairo_pdf_surface_set_metadata(surface, CAIRO_PDF_METADATA_CREATOR, "fmviz (flexmask)");
    }
    cr = cairo_create(surface);
    draw(&p, cr);
    cairo_destroy(cr);
    if (format == FMV_FORMAT_PNG)
        cairo_surface_write_to_png_stream(surface, append, &buf);
    cairo_surface_finish(surface);
    cairo_status_t st = cairo_surface_status(surface);
    cairo_surface_destroy(surface);
    char err[1200];
    if (st != CAIRO_STATUS_SUCCESS || buf.failed || !buf.len) {
        snprintf(err, sizeof err, "drawing %s failed: %s", path,
                 buf.failed ? "out of memory" : cairo_status_to_string(st));
        ok = false;
    } else {
        ok = write_file(path, &buf, format, p.title[0], err, sizeof err);
    }
    free(buf.data);
    int drawn = p.drawn;
    free_panels(&p, wanted);
    fonts_close();
    if (!ok) return fmcli_input_error(&v->c, NULL, "%s", err);
    printf("wrote %s: %.0fx%.0f %s, %d panel%s (b, h order, %d per row), %s\n", path, p.w, p.h,
           format == FMV_FORMAT_PNG ? "pixels" : "points", drawn, drawn == 1 ? "" : "s", p.per_row,
           p.positions ? "one square per position"
           : p.fq == 1 ? "one square per tile"
                       : "one square per group of tiles (downsampled)");
    int64_t total = v->stored_batch * v->stored_heads;
    if (drawn < total)
        printf("note: %d of %" PRId64 " stored slices drawn%s\n", drawn, total,
               drawn < wanted ? " (the image would be too large)" : " (--heads-shown)");
    return 0;
}
