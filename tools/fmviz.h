/* fmviz internals: the parts of the visualizer share one context (the
 * built BlockMask and its info) and one way to summarise a slice into a
 * grid of cells. */
#ifndef FM_TOOLS_FMVIZ_H
#define FM_TOOLS_FMVIZ_H

#include <stdbool.h>
#include <stdint.h>

#include "tools/cli.h"

typedef struct fmviz {
    fmcli_common c;
    fmcli_session s;
    fm_blockmask_info info;
    int64_t stored_batch, stored_heads; /* slices held: 1 where broadcast */
    bool color;                         /* ANSI colours in the terminal picture */
    bool ascii;                         /* plain ASCII glyphs and frame */
    int max_cols, max_rows;             /* terminal picture size in cells */
} fmviz;

/* Tile classes, ordered so that a summary of several tiles can be taken
 * from counts. */
enum { FMV_EMPTY = 0, FMV_PARTIAL = 1, FMV_FULL = 2 };

/* Slice (b, h) summarised into rows x cols cells; each cell covers fq x
 * fkv tiles (fewer at the edges) and is full when all its tiles are full,
 * empty when all are empty, partial otherwise. */
typedef struct fmv_grid {
    int64_t rows, cols, fq, fkv;
    uint8_t *cell; /* rows * cols, row-major */
} fmv_grid;

/* Factors chosen so the grid has at most max_rows x max_cols cells (the
 * same factor on both axes when same_factor, keeping the mask's shape).
 * false when out of memory. */
bool fmv_grid_build(const fmviz *v, int64_t b, int64_t h, int64_t max_rows, int64_t max_cols,
                    bool same_factor, fmv_grid *g);
void fmv_grid_free(fmv_grid *g);

/* Number of positions of tile row qb / tile column kvb after clipping. */
int64_t fmv_tile_rows(const fm_blockmask_info *in, int64_t qb);
int64_t fmv_tile_cols(const fm_blockmask_info *in, int64_t kvb);

/* Colours of the images: one class per pixel (or SVG rectangle). */
enum {
    FMV_PX_BG,
    FMV_PX_GRID,
    FMV_PX_EMPTY,         /* an empty tile or cell */
    FMV_PX_PARTIAL,       /* a partial cell (tile mode) */
    FMV_PX_FULL,          /* a full cell, or a true position of a full tile */
    FMV_PX_TRUE_PARTIAL,  /* a true position of a partial tile */
    FMV_PX_FALSE_PARTIAL, /* a false position of a partial tile */
    FMV_PX_WRONG,         /* a position that contradicts its tile's class */
    FMV_PX_COUNT
};
extern const uint8_t fmv_palette[FMV_PX_COUNT][3];

/* Class of every kv block of row qb of slice (b, h) (FMV_EMPTY etc.). */
bool fmv_tile_classes(const fmviz *v, int64_t b, int64_t h, int64_t qb, uint8_t *cls);
/* Pixel classes of the kv_len positions of query q, given the classes of
 * its row of tiles; evaluates the mask at each position. */
bool fmv_position_classes(const fmviz *v, int64_t b, int64_t h, int64_t q, const uint8_t *tile_cls,
                          uint8_t *out);

/* The terminal picture of every stored slice, and the statistics. */
void fmviz_print_picture(const fmviz *v);
/* Returns false when the BlockMask could not be read (a bug). */
bool fmviz_print_stats(const fmviz *v);
/* --check: 0 when every tile agrees, FMCLI_EXIT_MISMATCH otherwise. */
int fmviz_check(const fmviz *v);
/* Whether a failed write may remove path: a regular file or none, never
 * a device such as /dev/full. Ask before opening it. */
bool fmv_removable(const char *path);
/* --png, --svg: 0 on success, 1 when the file cannot be written. */
int fmviz_write_png(const fmviz *v, const char *path);
int fmviz_write_svg(const fmviz *v, const char *path);

#endif
