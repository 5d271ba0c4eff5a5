/* State shared by the parts of lowering: instruction emission with sharing
 * (lower_emit.c), the expression machine (lower.c) and the guards lets are
 * lowered under (lower_reach.c). */
#ifndef FM_COMPILER_LOWER_INTERNAL_H
#define FM_COMPILER_LOWER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "compiler/ir.h"

#define GUARD_NONE (-1)
#define GUARD_FALSE (-2) /* the code is never evaluated */
#define GUARD_ERROR (-3) /* building the guard failed (out of memory, limits) */
/* Lowering limits. Each let is lowered once, under the OR of its uses'
 * guards (lower.c), so a program is linear in its file; the limits catch
 * the lets that fall back to one copy per guard (uses under conditions
 * that read lets not lowered yet), whose copies can double at each level
 * of a chain: small enough that such a file is refused in well under a
 * second and 64 MB. A program gets at least these, or more in proportion
 * to its source, so that a chain of ||, && or + as long as the file-size
 * limit allows (the language promises any length) lowers: a chain term is
 * at least three bytes and lowers to two or three operations. */
#define LOWER_MAX_INSNS (1u << 18)
#define LOWER_MAX_WORK (1u << 21)
#define LOWER_INSNS_PER_BYTE 1
#define LOWER_WORK_PER_BYTE 8
#define IMPLY_BUDGET 64
#define MEMO_SCAN 16
#define REACH_NEST_MAX 2
#define WIDEN_BUDGET 4096 /* AST nodes one widest_guard may visit */
#define WIDEN_FRAMES 256  /* and stack frames */


typedef struct memo_entry {
    int32_t guard, reg, next;
} memo_entry;

typedef struct frame {
    const fmd_expr *e;
    int32_t guard;
    uint32_t stage;
    size_t i;
    int32_t acc;
    int32_t tmp[FMD_MAX_RANK];
} frame;

/* The last guard widest_guard built for a let: reused while the uses it
 * covers keep asking (an OR of guards is implied by none of them). */
typedef struct widen_entry {
    const fmd_expr *e; /* the body root it was built for */
    int32_t at, guard; /* that frame's guard, and the result */
} widen_entry;

typedef struct lowerer {
    const fmd_program *ast;
    fmd_diags *diags;
    fmc_insn *insns;
    fmd_span (*argsp)[FMD_MAX_RANK];
    int32_t *chain; /* previous instruction with the same key (another guard) */
    size_t count, cap;
    int32_t *ht; /* open addressing: head instruction of each key */
    size_t htcap;
    memo_entry *memo;
    size_t nmemo, memocap;
    int32_t *memo_head[FMD_DECL_KIND_COUNT]; /* per decl kind, by decl->index */
    widen_entry *widen[FMD_DECL_KIND_COUNT];  /* per decl kind, by decl->index */
    const fmd_decl *junk; /* while building a reach guard: read as 0 (see lower.c) */
    bool junk_miss;       /* ... and it met a let not lowered yet */
    int32_t rsofar;       /* building a reach guard: where the uses so far are reached */
    bool rjunk;           /* ... and a condition was lowered with the let read as 0 */
    int nest;             /* conditions lowered ahead, one inside another */
    size_t nkind[FMD_DECL_KIND_COUNT];
    const fmd_decl **kind_decls[FMD_DECL_KIND_COUNT];
    frame *stack;
    size_t nstack, stackcap;
    size_t work;
    size_t max_insns, max_work; /* the limits for this program */
    bool oom, too_big, bad;
} lowerer;

/* Does guard g being true imply guard g0 is true? (bounded; false when unsure) */
bool fmc_lw_implies(const lowerer *L, int32_t g, int32_t g0);
/* Whether register r is a constant (its value in *v when v is not NULL). */
bool fmc_lw_is_const(const lowerer *L, int32_t r, int64_t *v);
/* Appends x, or returns an existing instruction with the same operation
 * whose guard the new one's implies; -1 when memory or limits run out. */
int32_t fmc_lw_emit_raw(lowerer *L, const fmc_insn *x, const fmd_span *argsp);
int32_t fmc_lw_emit_const(lowerer *L, fmd_type type, int64_t v, fmd_span span);
/* op(args) under guard, with literal folding and boolean simplification. */
int32_t fmc_lw_emit(lowerer *L, fmc_op op, fmd_type type, const int32_t *args, int nargs,
                    int64_t imm, int32_t guard, fmd_span span, const fmd_span *argsp);
int32_t fmc_lw_emit1(lowerer *L, fmc_op op, fmd_type t, int32_t a, int32_t guard, fmd_span span,
                     fmd_span as);
int32_t fmc_lw_emit2(lowerer *L, fmc_op op, fmd_type t, int32_t a, int32_t b, int32_t guard,
                     fmd_span span, fmd_span as, fmd_span bs);
/* The guard to lower let (or mask) d under when the top frame of the
 * expression machine asks for it under `guard` (lower_reach.c). */
int32_t fmc_lw_widest_guard(lowerer *L, const fmd_decl *d, int32_t guard);
/* Lowers e under guard on a stack of its own, the machine's frames kept. */
int32_t fmc_lw_lower_nested(lowerer *L, const fmd_expr *e, int32_t guard);
/* The guard of code evaluated where g holds and x is true: GUARD_FALSE when
 * it never is, GUARD_ERROR on failure. */
int32_t fmc_lw_make_guard(lowerer *L, int32_t g, int32_t x, fmd_span span);

#endif
