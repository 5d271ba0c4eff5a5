/* The structs behind the public handles. Only runtime/ sees them. */
#ifndef FM_RUNTIME_API_INTERNAL_H
#define FM_RUNTIME_API_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "compiler/blockmask.h"
#include "compiler/ir.h"
#include "dsl/ast.h"
#include "dsl/diag.h"
#include "flexmask.h"
#include "runtime/cpu/tile_bits.h"

struct fm_diagnostics {
    fmd_diags d;
};

struct fm_program {
    fmd_program *ast;
    const char **mask_names; /* into the AST's arena */
    size_t nmasks;
};

/* A lowered program shared by a mask and every BlockMask built from it, so
 * either may be freed first. */
typedef struct fmr_shared_program {
    fmc_program *program;
    atomic_int refs;
} fmr_shared_program;

struct fm_mask {
    fmr_shared_program *shared;
};

typedef struct fmr_input_binding {
    bool bound;
    const int32_t *data; /* borrowed, or == owned */
    int32_t *owned;
    const uint8_t *bytes; /* a byte input's array (borrowed; see fmr_bindings_set_bytes) */
    size_t rank;
    int64_t dims[FMD_MAX_RANK];
} fmr_input_binding;

struct fm_bindings {
    const fm_mask *mask;
    int64_t *params;
    bool *param_set;
    fmr_input_binding *inputs;
};

struct fm_blockmask {
    fmc_blockmask *bm;
    fmr_shared_program *shared;
    int64_t *params;
    const int32_t **inputs;
    int32_t **owned_inputs; /* copies of FM_COPY arrays (NULL for borrowed) */
    const uint8_t **byte_inputs; /* byte inputs' arrays by slot (NULL for int32 ones) */
    uint8_t **owned_bytes;       /* byte arrays the BlockMask frees (a dense import's) */
    int64_t (*input_dims)[FMD_MAX_RANK];
    pthread_mutex_t lock; /* guards the lazy count of true positions and tile bits */
    fmr_tile_bits tile_bits; /* partial tiles evaluated once, on the first attention */
    bool tile_bits_tried;
};

/* Binds input `name`, which must be a byte input (fmc_input_info.elem_bytes
 * 1: only masks the runtime writes have them), to a borrowed uint8 array.
 * The int32 fm_bindings_set_input refuses such an input, and this refuses
 * an int32 one. */
fm_status fmr_bindings_set_bytes(fm_bindings *bindings, const char *name, const uint8_t *data,
                                 size_t rank, const int64_t *dims, fm_diagnostics *diags);

fmr_shared_program *fmr_shared_retain(fmr_shared_program *s);
void fmr_shared_release(fmr_shared_program *s);
/* Appends an error with no source location to diags (NULL: dropped). */
/* Copies a caller's options/args struct (first field struct_size) into dst,
 * a zero-filled struct of this library's size: fields an older caller's
 * header lacked stay 0, their default. false, with a message naming what,
 * when struct_size is 0 or larger than dst_size. */
bool fmr_versioned_copy(void *dst, size_t dst_size, const void *src, const char *what,
                        fmd_diags *d);
void fmr_error(fm_diagnostics *diags, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The diags to write into: the caller's, or a scratch one. */
fmd_diags *fmr_diags_of(fm_diagnostics *diags, fmd_diags *scratch);
void fmr_diags_done(fm_diagnostics *diags, fmd_diags *scratch);

#endif
