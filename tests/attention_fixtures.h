/* Fixtures for the attention tests: masks as hand-lowered IR programs,
 * BlockMasks built by brute force (every point evaluated), and tensors in
 * several memory layouts. Independent of the compiler's parser, lowering
 * and tile analysis, so attention can be tested on its own. */
#ifndef FM_TESTS_ATTENTION_FIXTURES_H
#define FM_TESTS_ATTENTION_FIXTURES_H

#include <stdint.h>

#include "compiler/blockmask.h"
#include "compiler/ir.h"
#include "flexmask.h"
#include "testutil.h"

/* A program under construction: at most 48 instructions. */
typedef struct pb {
    fmc_insn ins[48];
    int n;
} pb;

/* The masks, each with its source form. */
enum {
    AF_M_CAUSAL,   /* kv <= q */
    AF_M_SLIDING,  /* kv <= q && q - kv < window (param) */
    AF_M_DOCUMENT, /* qdoc[q] == kvdoc[kv] (two inputs) */
    AF_M_SPARSE_Q, /* q % 3 != 0 && kv <= q: every third row is empty */
    AF_M_PER_HEAD, /* h % 2 == 0 ? kv <= q : kv + 4 >= q */
    AF_M_SCATTER,  /* (7q + 13kv + b) % 5 < 2: reads b, mostly partial tiles */
    AF_M_FULL,     /* true */
    AF_M_NONE,     /* false: every row empty */
    AF_M_STRICT,   /* kv < q: row 0 empty */
    AF_M_PADDING,  /* kv < 50: keys past 50 are padding */
    AF_M_COUNT
};

extern const char *const af_mask_names[AF_M_COUNT];

/* A mask with its program, params, inputs and environment, all in place. */
typedef struct af_mask {
    fmc_program prog;
    fmc_input_info inputs[2];
    fmc_param_info params[1];
    int64_t param_values[1];
    const int32_t *input_ptrs[2];
    int64_t input_dims[2][FMD_MAX_RANK];
    int32_t *docs[2];
    fmc_env env;
    pb b;
} af_mask;

/* Builds mask `kind` for the shape (params and document ids drawn from
 * rng). The af_mask must not move afterwards: its env points into it. */
void af_make_mask(af_mask *t, int kind, int64_t B, int64_t H, int64_t Q, int64_t KV, tu_rng *rng);
void af_free_mask(af_mask *t);

/* The exact BlockMask of t by evaluating every point (stored once for every
 * batch/head the program does not read). */
fmc_blockmask *af_build_bm(const af_mask *t, int64_t bq, int64_t bkv);
void af_free_bm(fmc_blockmask *m);
/* Positions inside partial tiles over every (b, h): what attention must
 * evaluate, no more and no less. */
int64_t af_partial_positions(const fmc_blockmask *m);

/* Memory layouts of a [B, H, S, D] tensor. */
enum { AF_L_BHSD, AF_L_BSHD, AF_L_PADDED, AF_L_DSTRIDE2, AF_L_COUNT };

/* A zero-filled [d0, d1, d2, d3] tensor in a layout (free data with free). */
fm_tensor af_make_tensor(fm_dtype dt, int layout, int64_t d0, int64_t d1, int64_t d2, int64_t d3);
/* Uniform values in [-amp, amp], rounded to the tensor's dtype. */
void af_fill_random(fm_tensor *t, tu_rng *rng, double amp);

#endif
