/* The abstract syntax tree of a mask file.
 *
 * Every node carries its byte span. Binary operators of one precedence
 * level are stored as one CHAIN node with n operands and n-1 operators, so
 * `a || b || ... ` with 100,000 terms is one node with an array, and no pass
 * recurses once per operand: passes recurse only on real nesting, which the
 * parser caps at FMD_MAX_NESTING levels. All memory is in the program's arena. */
#ifndef FM_DSL_AST_H
#define FM_DSL_AST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dsl/arena.h"
#include "dsl/diag.h"

#define FMD_MAX_NESTING 1000
#define FMD_MAX_RANK 4
/* Most declarations one file may hold: past this a file is generated garbage
 * or an attack, and a 16 MiB file of them would take over 500 MB to check. */
#define FMD_MAX_DECLS 100000

/* Expression node kinds: X(NAME, description). */
#define FMD_EXPR_KINDS(X)                                                                          \
    X(INT, "integer literal")                                                                      \
    X(BOOL, "boolean literal")                                                                     \
    X(NAME, "name")                                                                                \
    X(UNARY, "unary operation")                                                                    \
    X(CHAIN, "binary operation")                                                                   \
    X(COND, "conditional expression")                                                              \
    X(CALL, "call")                                                                                \
    X(INDEX, "array read")

typedef enum fmd_expr_kind {
#define X(name, desc) FMD_EXPR_##name,
    FMD_EXPR_KINDS(X)
#undef X
        FMD_EXPR_KIND_COUNT
} fmd_expr_kind;

/* Binary operators: X(NAME, spelling, precedence class). */
#define FMD_BINOPS(X)                                                                              \
    X(OR, "||", OR)                                                                                \
    X(AND, "&&", AND)                                                                              \
    X(EQ, "==", EQ)                                                                                \
    X(NE, "!=", EQ)                                                                                \
    X(LT, "<", REL)                                                                                \
    X(LE, "<=", REL)                                                                               \
    X(GT, ">", REL)                                                                                \
    X(GE, ">=", REL)                                                                               \
    X(ADD, "+", ADD)                                                                               \
    X(SUB, "-", ADD)                                                                               \
    X(MUL, "*", MUL)                                                                               \
    X(DIV, "/", MUL)                                                                               \
    X(MOD, "%", MUL)

typedef enum fmd_binop {
#define X(name, spelling, cls) FMD_OP_##name,
    FMD_BINOPS(X)
#undef X
        FMD_BINOP_COUNT
} fmd_binop;

/* Precedence classes, loosest first (the spec's levels 2 to 7). A REL chain
 * always has exactly two operands: comparisons do not chain. */
typedef enum fmd_prec { FMD_PREC_OR, FMD_PREC_AND, FMD_PREC_EQ, FMD_PREC_REL, FMD_PREC_ADD, FMD_PREC_MUL } fmd_prec;

typedef enum fmd_unop { FMD_UNOP_NEG, FMD_UNOP_NOT } fmd_unop;

typedef enum fmd_builtin_fn { FMD_FN_MIN, FMD_FN_MAX, FMD_FN_ABS } fmd_builtin_fn;

/* Names that are always in scope: X(NAME, spelling). */
#define FMD_BUILTIN_VARS(X)                                                                        \
    X(B, "b")                                                                                      \
    X(H, "h")                                                                                      \
    X(Q, "q")                                                                                      \
    X(KV, "kv")                                                                                    \
    X(Q_LEN, "Q_LEN")                                                                              \
    X(KV_LEN, "KV_LEN")                                                                            \
    X(BATCH, "BATCH")                                                                              \
    X(HEADS, "HEADS")

typedef enum fmd_builtin_var {
#define X(name, spelling) FMD_VAR_##name,
    FMD_BUILTIN_VARS(X)
#undef X
        FMD_VAR_COUNT
} fmd_builtin_var;

typedef enum fmd_type { FMD_TYPE_UNKNOWN, FMD_TYPE_INT, FMD_TYPE_BOOL, FMD_TYPE_ERROR } fmd_type;

/* Declaration kinds: X(NAME, keyword). */
#define FMD_DECL_KINDS(X)                                                                          \
    X(PARAM, "param")                                                                              \
    X(INPUT, "input")                                                                              \
    X(LET, "let")                                                                                  \
    X(MASK, "mask")

typedef enum fmd_decl_kind {
#define X(name, kw) FMD_DECL_##name,
    FMD_DECL_KINDS(X)
#undef X
        FMD_DECL_KIND_COUNT
} fmd_decl_kind;

typedef struct fmd_decl fmd_decl;
typedef struct fmd_expr fmd_expr;

/* What a NAME refers to (filled by the checker). */
typedef enum fmd_ref_kind { FMD_REF_UNRESOLVED, FMD_REF_BUILTIN, FMD_REF_DECL } fmd_ref_kind;

struct fmd_expr {
    fmd_expr_kind kind;
    fmd_type type;     /* set by the checker */
    fmd_span span;     /* the whole expression, parentheses included if any */
    bool paren;        /* written inside parentheses (kept for messages only) */
    bool is_const;     /* the checker folded it: const_value holds its value */
    int64_t const_value; /* for int or bool (0/1) constants */
    union {
        struct {
            uint64_t magnitude; /* the literal's digits; may exceed INT64_MAX */
            bool overflow;      /* more than 64 bits of digits */
        } lit;                  /* INT */
        bool boolean;           /* BOOL */
        struct {
            const char *name;
            fmd_ref_kind ref;
            fmd_builtin_var var; /* when ref == FMD_REF_BUILTIN */
            fmd_decl *decl;      /* when ref == FMD_REF_DECL */
        } name; /* NAME */
        struct {
            fmd_unop op;
            fmd_expr *operand;
            fmd_span op_span;
        } unary; /* UNARY */
        struct {
            fmd_prec prec;
            size_t count;        /* operands; count >= 2 */
            fmd_expr **operands; /* count entries */
            fmd_binop *ops;      /* count - 1 entries: ops[i] joins operands[i], [i+1] */
            fmd_span *op_spans;  /* count - 1 entries */
            size_t cap;          /* parser bookkeeping */
        } chain; /* CHAIN */
        struct {
            fmd_expr *cond, *then_expr, *else_expr;
        } cond; /* COND */
        struct {
            const char *name;
            fmd_span name_span;
            fmd_builtin_fn fn; /* set by the checker when the name is a builtin */
            bool known;
            size_t count;
            fmd_expr **args;
        } call; /* CALL */
        struct {
            const char *name;
            fmd_span name_span;
            fmd_decl *decl; /* the input (checker) */
            size_t count;
            fmd_expr **indices;
        } index; /* INDEX */
    } u;
};

typedef enum fmd_dim_kind { FMD_DIM_LITERAL, FMD_DIM_PARAM, FMD_DIM_SHAPE } fmd_dim_kind;

typedef struct fmd_dim {
    fmd_dim_kind kind;
    fmd_span span;
    const char *name;      /* PARAM or SHAPE: the name as written */
    int64_t value;         /* LITERAL */
    fmd_decl *param;       /* PARAM (checker) */
    fmd_builtin_var shape; /* SHAPE: Q_LEN, KV_LEN, BATCH or HEADS */
} fmd_dim;

struct fmd_decl {
    fmd_decl_kind kind;
    fmd_span span;      /* the whole statement */
    const char *name;
    fmd_span name_span;
    fmd_type type;      /* PARAM: int; INPUT: int (element); LET: its expr; MASK: bool */
    size_t index;       /* position among the declarations of the same kind */
    bool has_default;   /* PARAM */
    int64_t default_value; /* PARAM */
    size_t rank;        /* INPUT */
    fmd_dim dims[FMD_MAX_RANK]; /* INPUT */
    fmd_expr *expr;     /* LET, MASK */
    bool checked;       /* checker bookkeeping */
};

typedef struct fmd_program {
    fmd_arena arena;
    fmd_source *source; /* owned */
    fmd_decl **decls;   /* in source order */
    size_t count, cap;
    /* Errors reported while parsing. A statement that failed to parse after
     * its name is kept with type FMD_TYPE_ERROR (and expr NULL for a let or
     * mask), so that later uses of the name raise no further errors. */
    size_t parse_errors;
} fmd_program;

/* Expression kind, declaration kind, operator, builtin names. */
const char *fmd_expr_kind_name(fmd_expr_kind k);
const char *fmd_decl_keyword(fmd_decl_kind k);
const char *fmd_binop_spelling(fmd_binop op);
fmd_prec fmd_binop_prec(fmd_binop op);
const char *fmd_builtin_var_name(fmd_builtin_var v);
const char *fmd_type_name(fmd_type t);
/* The declaration called name, or NULL. */
fmd_decl *fmd_program_find(const fmd_program *p, const char *name);

/* Parses src (taking ownership of it) into a new program. Returns NULL only
 * when out of memory; syntax errors go to diags and leave a partial program
 * holding every statement that parsed. */
fmd_program *fmd_parse(fmd_source *src, fmd_diags *diags);
void fmd_program_free(fmd_program *p);
/* Reads a mask file (at most FMD_MAX_SOURCE_BYTES) into a new source.
 * NULL with an error in diags when it cannot be read or is too large. */
typedef enum fmd_read_status { FMD_READ_OK, FMD_READ_IO, FMD_READ_TOO_BIG, FMD_READ_NO_MEMORY } fmd_read_status;
/* why (may be NULL) says what went wrong when the result is NULL. */
fmd_source *fmd_source_read_file(const char *path, fmd_diags *diags, fmd_read_status *why);
/* Orders d->items[from..] by position in their source (stable), so that
 * parse and check errors of one file read top to bottom. */
void fmd_diags_sort(fmd_diags *d, size_t from);

/* Name resolution, type checking and folding of literal arithmetic (spec's
 * floor division). Returns true when no error was found, here or while
 * parsing (p->parse_errors). Sets every expression's type, NAME references,
 * CALL builtins, INDEX and dimension declarations; a folded expression has
 * is_const (names never fold, even of constant lets: only literals do). For
 * `-9223372036854775808` the negation holds the value, not the literal. */
bool fmd_check(fmd_program *p, fmd_diags *diags);

/* The canonical text of a checked or unchecked program: the same names with
 * the same meaning; printing the result again gives the same text. Returns
 * a malloc'd string, NULL when out of memory. */
char *fmd_print(const fmd_program *p);

/* Spec floor division and remainder: fmd_floordiv, fmd_floormod. */
#include "dsl/arith.h"

#endif
