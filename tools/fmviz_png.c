/* --png: each stored slice is a panel. Small shapes are drawn one pixel
 * (or a few) per position, coloured by the mask's value and its tile's
 * class; larger ones one cell per tile (or per group of tiles). A one-pixel
 * grid line separates tiles (cells) in both modes, so the tile grid stays
 * visible without hiding any position. */
#include <inttypes.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/fmviz.h"

#define MAX_SIDE 4096 /* largest image side in pixels */
#define POS_MAX 1024  /* per-position drawing up to this many positions a side */
#define CELL_MAX 400  /* tile mode: at most this many cells a side */
#define MARGIN 8
#define GAP 12
#define MAX_PANELS 64

typedef struct canvas {
    int w, h;
    uint8_t *px; /* classes */
} canvas;

typedef struct geometry {
    bool positions;
    int64_t s;                   /* pixels per position (position mode) */
    int64_t c;                   /* pixels per cell (tile mode) */
    int64_t fq, fkv, rows, cols; /* tile mode grid */
    int pw, ph;                  /* panel size */
} geometry;

static int64_t pos_offset(int64_t p, int64_t block, int64_t s) {
    return 1 + (p / block) * (block * s + 1) + (p % block) * s;
}

static void plan(const fmviz *v, geometry *g) {
    const fm_blockmask_info *in = &v->info;
    memset(g, 0, sizeof *g);
    int64_t longest = in->shape.q_len > in->shape.kv_len ? in->shape.q_len : in->shape.kv_len;
    if (longest <= POS_MAX) {
        g->positions = true;
        g->s = 512 / longest;
        if (g->s < 1) g->s = 1;
        if (g->s > 32) g->s = 32;
        g->pw = (int)(pos_offset(in->shape.kv_len - 1, in->block_kv, g->s) + g->s + 1);
        g->ph = (int)(pos_offset(in->shape.q_len - 1, in->block_q, g->s) + g->s + 1);
        return;
    }
    int64_t nmax = in->num_q_blocks > in->num_kv_blocks ? in->num_q_blocks : in->num_kv_blocks;
    g->fq = g->fkv = (nmax + CELL_MAX - 1) / CELL_MAX;
    g->rows = (in->num_q_blocks + g->fq - 1) / g->fq;
    g->cols = (in->num_kv_blocks + g->fkv - 1) / g->fkv;
    int64_t cmax = g->rows > g->cols ? g->rows : g->cols;
    g->c = 800 / cmax;
    if (g->c < 2) g->c = 2;
    if (g->c > 24) g->c = 24;
    g->pw = (int)(1 + g->cols * (g->c + 1));
    g->ph = (int)(1 + g->rows * (g->c + 1));
}

static void fill(canvas *cv, int x, int y, int w, int h, uint8_t k) {
    for (int r = y; r < y + h; r++)
        memset(cv->px + (size_t)r * (size_t)cv->w + (size_t)x, k, (size_t)w);
}

static bool draw_positions(const fmviz *v, const geometry *g, canvas *cv, int x0, int y0, int64_t b,
                           int64_t h) {
    const fm_blockmask_info *in = &v->info;
    uint8_t *tiles = malloc((size_t)in->num_kv_blocks);
    uint8_t *row = malloc((size_t)in->shape.kv_len);
    bool ok = tiles && row;
    for (int64_t qb = 0; ok && qb < in->num_q_blocks; qb++) {
        if (!(ok = fmv_tile_classes(v, b, h, qb, tiles))) break;
        for (int64_t q = qb * in->block_q; ok && q < qb * in->block_q + fmv_tile_rows(in, qb);
             q++) {
            if (!(ok = fmv_position_classes(v, b, h, q, tiles, row))) break;
            int y = y0 + (int)pos_offset(q, in->block_q, g->s);
            for (int64_t kv = 0; kv < in->shape.kv_len; kv++)
                fill(cv, x0 + (int)pos_offset(kv, in->block_kv, g->s), y, (int)g->s, (int)g->s,
                     row[kv]);
        }
    }
    free(tiles);
    free(row);
    return ok;
}

static bool draw_tiles(const fmviz *v, const geometry *g, canvas *cv, int x0, int y0, int64_t b,
                       int64_t h) {
    static const uint8_t px[3] = {FMV_PX_EMPTY, FMV_PX_PARTIAL, FMV_PX_FULL};
    fmv_grid grid;
    /* The same limits as plan(), hence the same factors and cell counts. */
    if (!fmv_grid_build(v, b, h, CELL_MAX, CELL_MAX, true, &grid)) return false;
    for (int64_t r = 0; r < grid.rows; r++)
        for (int64_t c = 0; c < grid.cols; c++)
            fill(cv, x0 + (int)(1 + c * (g->c + 1)), y0 + (int)(1 + r * (g->c + 1)), (int)g->c,
                 (int)g->c, px[grid.cell[r * grid.cols + c]]);
    fmv_grid_free(&grid);
    return true;
}

static bool write_file(const char *path, const canvas *cv, const char *description, char *err,
                       size_t err_size) {
    bool removable = fmv_removable(path);
    FILE *f = fopen(path, "wb");
    if (!f) {
        snprintf(err, err_size, "cannot open %s for writing", path);
        return false;
    }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    uint8_t *rgb = malloc((size_t)cv->w * 3);
    bool ok = png && info && rgb;
    if (ok && setjmp(png_jmpbuf(png))) {
        ok = false;
    } else if (ok) {
        png_init_io(png, f);
        png_set_IHDR(png, info, (png_uint_32)cv->w, (png_uint_32)cv->h, 8, PNG_COLOR_TYPE_RGB,
                     PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
        png_text text[2];
        memset(text, 0, sizeof text);
        text[0].compression = PNG_TEXT_COMPRESSION_NONE;
        text[0].key = (png_charp) "Software";
        text[0].text = (png_charp) "fmviz (flexmask)";
        text[1].compression = PNG_TEXT_COMPRESSION_NONE;
        text[1].key = (png_charp) "Description";
        text[1].text = (png_charp)description;
        png_set_text(png, info, text, 2);
        png_write_info(png, info);
        for (int y = 0; y < cv->h; y++) {
            const uint8_t *src = cv->px + (size_t)y * (size_t)cv->w;
            for (int x = 0; x < cv->w; x++)
                memcpy(rgb + 3 * x, fmv_palette[src[x]], 3);
            png_write_row(png, rgb);
        }
        png_write_end(png, info);
    }
    png_destroy_write_struct(&png, &info);
    free(rgb);
    if (fclose(f) != 0) ok = false;
    if (!ok) {
        snprintf(err, err_size, "writing %s failed", path);
        if (removable) remove(path);
    }
    return ok;
}

int fmviz_write_png(const fmviz *v, const char *path) {
    const fm_blockmask_info *in = &v->info;
    geometry g;
    plan(v, &g);
    int64_t n = v->stored_batch * v->stored_heads;
    int per_row = (MAX_SIDE - 2 * MARGIN + GAP) / (g.pw + GAP);
    if (per_row < 1) per_row = 1;
    if (per_row > 8) per_row = 8;
    int rows_fit = (MAX_SIDE - 2 * MARGIN + GAP) / (g.ph + GAP);
    if (rows_fit < 1) rows_fit = 1;
    int64_t drawn = n;
    if (drawn > (int64_t)per_row * rows_fit) drawn = (int64_t)per_row * rows_fit;
    if (drawn > MAX_PANELS) drawn = MAX_PANELS;
    if (per_row > drawn) per_row = (int)drawn;
    int prow = (int)((drawn + per_row - 1) / per_row);
    canvas cv = {2 * MARGIN + per_row * g.pw + (per_row - 1) * GAP,
                 2 * MARGIN + prow * g.ph + (prow - 1) * GAP, NULL};
    cv.px = malloc((size_t)cv.w * (size_t)cv.h);
    if (!cv.px)
        return fmcli_input_error(&v->c, NULL, "out of memory for a %dx%d image", cv.w, cv.h);
    memset(cv.px, FMV_PX_BG, (size_t)cv.w * (size_t)cv.h);
    bool ok = true;
    for (int64_t i = 0; i < drawn && ok; i++) {
        int x0 = MARGIN + (int)(i % per_row) * (g.pw + GAP);
        int y0 = MARGIN + (int)(i / per_row) * (g.ph + GAP);
        fill(&cv, x0, y0, g.pw, g.ph, FMV_PX_GRID);
        int64_t b = i / v->stored_heads, h = i % v->stored_heads;
        ok = g.positions ? draw_positions(v, &g, &cv, x0, y0, b, h)
                         : draw_tiles(v, &g, &cv, x0, y0, b, h);
    }
    if (!ok) {
        free(cv.px);
        fmcli_error(&v->c, NULL, "the BlockMask could not be read or evaluated (a bug)");
        return 4;
    }
    char desc[512], err[600];
    snprintf(desc, sizeof desc,
             "mask %s, batch %" PRId64 ", heads %" PRId64 ", q_len %" PRId64 ", kv_len %" PRId64
             ", blocks %" PRId64 "x%" PRId64 "; panels in b, h order",
             fm_mask_name(v->s.mask), in->shape.batch, in->shape.heads, in->shape.q_len,
             in->shape.kv_len, in->block_q, in->block_kv);
    ok = write_file(path, &cv, desc, err, sizeof err);
    free(cv.px);
    if (!ok) return fmcli_input_error(&v->c, NULL, "%s", err);
    printf("wrote %s: %dx%d pixels, %" PRId64 " panel%s (b, h order, %d per row), ", path, cv.w,
           cv.h, drawn, drawn == 1 ? "" : "s", per_row);
    if (g.positions)
        printf("%" PRId64 " pixel%s per position\n", g.s, g.s == 1 ? "" : "s");
    else if (g.fq == 1)
        printf("one %" PRId64 "-pixel cell per tile\n", g.c);
    else
        printf("one cell per %" PRId64 " x %" PRId64 " tiles (downsampled)\n", g.fq, g.fkv);
    if (drawn < n)
        printf("note: %" PRId64 " of %" PRId64 " slices drawn; the image would be too large\n",
               drawn, n);
    return 0;
}
