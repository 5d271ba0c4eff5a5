/* The mask inside every stored partial tile of a BlockMask, evaluated once
 * and kept as bits, so attention reads it instead of evaluating the
 * predicate again for every head, batch entry and call. A broadcast mask
 * (one stored slice for all heads) is the common case: a model with 32
 * heads and 32 layers would otherwise evaluate each partial tile a
 * thousand times per forward pass. */
#ifndef FM_RUNTIME_TILE_BITS_H
#define FM_RUNTIME_TILE_BITS_H

#include <stddef.h>
#include <stdint.h>

#include "compiler/blockmask.h"

/* Bits of stored partial tile t (its index into bm->partial.idx): row i of
 * the tile at bits + t * tile_words + i * row_words, bit j of that row
 * (word j / 64, bit j % 64) for key k0 + j. Rows and keys past the
 * sequence ends are 0. */
typedef struct fmr_tile_bits {
    uint64_t *bits; /* NULL: not kept (too large, or no partial tiles) */
    int64_t row_words, tile_words;
    size_t bytes;
} fmr_tile_bits;

/* Largest table kept; a BlockMask needing more evaluates per call. */
#define FMR_TILE_BITS_MAX_BYTES ((size_t)256 << 20)

/* Evaluates every stored partial tile of bm (OpenMP threads, nthreads <= 0:
 * OpenMP's default) into *out. Leaves out->bits NULL, and returns true,
 * when the table would pass FMR_TILE_BITS_MAX_BYTES or a point breaks a
 * safety rule (the per-call path then reports it); false when memory runs
 * out. */
bool fmr_tile_bits_build(const fmc_blockmask *bm, int nthreads, fmr_tile_bits *out);
void fmr_tile_bits_free(fmr_tile_bits *t);

/* Row i of tile t as bytes (0/1) in keep[0..n). */
static inline void fmr_tile_bits_row(const fmr_tile_bits *t, int64_t tile, int64_t i, int64_t n,
                                     uint8_t *keep) {
    const uint64_t *w = t->bits + tile * t->tile_words + i * t->row_words;
    for (int64_t j = 0; j < n; j++) keep[j] = (uint8_t)((w[j >> 6] >> (j & 63)) & 1u);
}

#endif
