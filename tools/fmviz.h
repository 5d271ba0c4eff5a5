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
    int term_width;                     /* columns every printed line fits in */
    int max_cols, max_rows;             /* terminal picture size in cells */
    int64_t heads_shown;                /* panels drawn: the first stored slices */
} fmviz;

/* Tile classes, ordered so that a summary of several tiles can be taken
 * from counts. */
enum { FMV_EMPTY = 0, FMV_PARTIAL = 1, FMV_FULL = 2 };

/* A downsampled cell whose tiles are not all of one class: its class is
 * the majority's, and this bit is set. */
#define FMV_MIXED 4
#define FMV_CLASS(cell) ((cell) & 3)

/* The cell of full, partial and empty tile counts: the majority class
 * (ties go to partial, then full, so a picture never understates work),
 * with FMV_MIXED when more than one class is present. */
uint8_t fmv_cell_class(int64_t full, int64_t partial, int64_t empty);

/* Slice (b, h) summarised into rows x cols cells; each cell covers fq x
 * fkv tiles (fewer at the edges) and holds fmv_cell_class of them. */
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

/* Colours of the images. */
enum {
    FMV_PX_EMPTY,         /* an empty tile or cell */
    FMV_PX_PARTIAL,       /* a partial cell (tile mode) */
    FMV_PX_FULL,          /* a full cell, or a true position of a full tile */
    FMV_PX_MIXED_EMPTY,   /* a downsampled cell, mostly empty tiles */
    FMV_PX_MIXED_PARTIAL, /* mostly partial tiles */
    FMV_PX_MIXED_FULL,    /* mostly full tiles */
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
/* Prints text (one paragraph, no newline) wrapped at spaces to
 * v->term_width columns; continuation lines are indented by indent. */
void fmv_print_wrapped(const fmviz *v, int indent, const char *text);
/* 1234567 -> "1,234,567" */
const char *fmv_grouped(int64_t x, char buf[32]);
/* The number of stored slices the pictures show (--heads-shown). */
int64_t fmv_panels(const fmviz *v);
/* --png, --svg, --pdf (cairo): 0 on success, 1 when the file cannot be
 * written or this build has no cairo (FM_CAIRO), 4 when the BlockMask
 * cannot be read (a bug). */
enum { FMV_FORMAT_PNG, FMV_FORMAT_SVG, FMV_FORMAT_PDF };
int fmviz_write_image(const fmviz *v, const char *path, int format);

#endif
