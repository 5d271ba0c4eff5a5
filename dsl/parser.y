/* The grammar of the mask language (version 1).
 *
 * Binary operators of one precedence level build one CHAIN node through
 * left-recursive rules, so a chain of any length costs no parser stack.
 * Everything that nests (parentheses, unary operators, ?:, calls, indices)
 * passes through `nest`, which counts the depth and stops at
 * FMD_MAX_NESTING with a located error before the stack can grow further.
 *
 * Error recovery: a statement that fails is kept as a "poisoned" declaration
 * (expr NULL, type FMD_TYPE_ERROR) when its name was read, so later uses of
 * the name do not cascade; the parser then skips to the next statement
 * keyword or ';'. A missing ';' before the next statement keeps the
 * statement.
 *
 * Every semantic value (nodes, lists, names) lives in the program's arena,
 * so values that error recovery discards need no %destructor. */
%code requires {
#include <stdbool.h>
#include <stdint.h>

#include "dsl/ast.h"
#include "dsl/parse_internal.h"

#ifndef YY_TYPEDEF_YY_SCANNER_T
#define YY_TYPEDEF_YY_SCANNER_T
typedef void *yyscan_t;
#endif

typedef struct fmd_lit {
    uint64_t magnitude;
    bool overflow;
} fmd_lit;
typedef struct fmd_int_value {
    int64_t value;
    bool ok;
} fmd_int_value;
typedef struct fmd_expr_list {
    fmd_expr **items;
    size_t count, cap;
} fmd_expr_list;
typedef struct fmd_dim_list {
    fmd_dim *items;
    size_t count, cap;
} fmd_dim_list;
}

%code {
#include <stdio.h>
#include <string.h>

int fmdyylex(FMDYYSTYPE *lval, fmd_span *lloc, yyscan_t scanner);

/* Spans: from the first symbol's start to the last one's end; an empty
 * rule sits at the end of what precedes it. */
#define YYLLOC_DEFAULT(Cur, Rhs, N)                                                                \
    do {                                                                                           \
        if (N) {                                                                                   \
            (Cur).start = YYRHSLOC(Rhs, 1).start;                                                  \
            (Cur).end = YYRHSLOC(Rhs, N).end;                                                      \
        } else {                                                                                   \
            (Cur).start = (Cur).end = YYRHSLOC(Rhs, 0).end;                                        \
        }                                                                                          \
    } while (0)

/* Room for FMD_MAX_NESTING levels, each holding a partial expression of
 * every precedence level; the depth check keeps the stack below this. */
#define YYMAXDEPTH 200000
#define YYINITDEPTH 512

static void fmdyyerror(fmd_span *loc, yyscan_t scanner, fmd_parse_ctx *ctx, const char *msg);

static fmd_expr *new_expr(fmd_parse_ctx *ctx, fmd_expr_kind kind, fmd_span span);
static fmd_expr *new_literal(fmd_parse_ctx *ctx, fmd_lit lit, fmd_span span);
static fmd_expr *new_unary(fmd_parse_ctx *ctx, fmd_unop op, fmd_span op_span, fmd_expr *operand,
                           fmd_span span);
static fmd_expr *chain_append(fmd_parse_ctx *ctx, fmd_expr *left, fmd_binop op, fmd_span op_span,
                              fmd_expr *right, fmd_prec prec);
static fmd_expr *comparison(fmd_parse_ctx *ctx, fmd_expr *left, fmd_binop op, fmd_span op_span,
                            fmd_expr *right, fmd_span span);
static fmd_expr *new_access(fmd_parse_ctx *ctx, fmd_expr_kind kind, const char *name,
                            fmd_span name_span, fmd_expr_list *args, fmd_span span);
static fmd_expr_list *list_add(fmd_parse_ctx *ctx, fmd_expr_list *l, fmd_expr *e);
static fmd_dim_list *dim_add(fmd_parse_ctx *ctx, fmd_dim_list *l, fmd_dim d);
static bool nest_enter(fmd_parse_ctx *ctx, fmd_span at);
static fmd_int_value int_value(fmd_parse_ctx *ctx, fmd_lit lit, bool negative, fmd_span span);
static fmd_decl *add_decl(fmd_parse_ctx *ctx, fmd_decl_kind kind, const char *name,
                          fmd_span name_span, fmd_span span);
static bool add_input(fmd_parse_ctx *ctx, const char *name, fmd_span name_span,
                      fmd_dim_list *dims, fmd_span span);
static bool add_poisoned(fmd_parse_ctx *ctx, fmd_decl_kind kind, const char *name,
                         fmd_span name_span, fmd_span span);

#define NN(x)                                                                                      \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            ctx->oom = true;                                                                       \
            YYABORT;                                                                               \
        }                                                                                          \
    } while (0)
}

%define api.pure full
%define api.prefix {fmdyy}
%define api.token.prefix {TOK_}
%define api.location.type {fmd_span}
%define parse.error custom
%locations
%expect 0
%lex-param {yyscan_t scanner}
%parse-param {yyscan_t scanner} {fmd_parse_ctx *ctx}

%union {
    fmd_expr *expr;
    const char *str;
    fmd_lit lit;
    fmd_binop op;
    fmd_int_value ival;
    fmd_expr_list *list;
    fmd_dim_list *dims;
    fmd_dim dim;
}

%token END 0 "end of file"
%token <str> IDENT "name"
%token <lit> INT "integer"
%token PARAM "'param'" INPUT "'input'" LET "'let'" MASK "'mask'" TRUE "'true'" FALSE "'false'"
%token OROR "'||'" ANDAND "'&&'" EQEQ "'=='" NE "'!='" LE "'<='" GE "'>='"

%type <expr> expr cond or_expr and_expr eq_expr rel_expr add_expr mul_expr unary primary
%type <op> mulop addop relop eqop
%type <str> decl_name
%type <ival> int_value
%type <list> opt_args args
%type <dims> dims
%type <dim> dim

%%

file: stmts ;

stmts: %empty
     | stmts stmt  { ctx->depth = 0; }
     | stmts error { ctx->depth = 0; }
     | stmts error ';' { ctx->depth = 0; yyerrok; }
     ;

stmt: param_kw decl_name ';' {
          NN(add_decl(ctx, FMD_DECL_PARAM, $2, @2, @$));
      }
    | param_kw decl_name '=' int_value ';' {
          fmd_decl *d = add_decl(ctx, FMD_DECL_PARAM, $2, @2, @$);
          NN(d);
          d->has_default = true;
          d->default_value = $4.value;
      }
    | param_kw decl_name '=' int_value error {
          if (ctx->missing_semi) {
              fmd_decl *d = add_decl(ctx, FMD_DECL_PARAM, $2, @2, @$);
              NN(d);
              d->has_default = true;
              d->default_value = $4.value;
          } else {
              NN(add_poisoned(ctx, FMD_DECL_PARAM, $2, @2, @$));
          }
      }
    | param_kw decl_name error {
          if (ctx->missing_semi) NN(add_decl(ctx, FMD_DECL_PARAM, $2, @2, @$));
          else NN(add_poisoned(ctx, FMD_DECL_PARAM, $2, @2, @$));
      }
    | input_kw decl_name '[' dims ']' ';' { NN(add_input(ctx, $2, @2, $4, @$)); }
    | input_kw decl_name '[' dims ']' error {
          if (ctx->missing_semi) NN(add_input(ctx, $2, @2, $4, @$));
          else NN(add_poisoned(ctx, FMD_DECL_INPUT, $2, @2, @$));
      }
    | input_kw decl_name error { NN(add_poisoned(ctx, FMD_DECL_INPUT, $2, @2, @$)); }
    | let_kw decl_name '=' expr ';' {
          fmd_decl *d = add_decl(ctx, FMD_DECL_LET, $2, @2, @$);
          NN(d);
          if (d->type != FMD_TYPE_ERROR) d->expr = $4;
      }
    | let_kw decl_name '=' expr error {
          if (!ctx->missing_semi) {
              NN(add_poisoned(ctx, FMD_DECL_LET, $2, @2, @$));
          } else {
              fmd_decl *d = add_decl(ctx, FMD_DECL_LET, $2, @2, @$);
              NN(d);
              if (d->type != FMD_TYPE_ERROR) d->expr = $4;
          }
      }
    | let_kw decl_name '=' error { NN(add_poisoned(ctx, FMD_DECL_LET, $2, @2, @$)); }
    | mask_kw decl_name '=' expr ';' {
          fmd_decl *d = add_decl(ctx, FMD_DECL_MASK, $2, @2, @$);
          NN(d);
          if (d->type != FMD_TYPE_ERROR) d->expr = $4;
      }
    | mask_kw decl_name '=' expr error {
          if (!ctx->missing_semi) {
              NN(add_poisoned(ctx, FMD_DECL_MASK, $2, @2, @$));
          } else {
              fmd_decl *d = add_decl(ctx, FMD_DECL_MASK, $2, @2, @$);
              NN(d);
              if (d->type != FMD_TYPE_ERROR) d->expr = $4;
          }
      }
    | mask_kw decl_name '=' error { NN(add_poisoned(ctx, FMD_DECL_MASK, $2, @2, @$)); }
    ;

/* A statement keyword ends error recovery at once, so an error right at
 * the start of the next statement is reported too. */
param_kw: PARAM { yyerrok; } ;
input_kw: INPUT { yyerrok; } ;
let_kw: LET { yyerrok; } ;
mask_kw: MASK { yyerrok; } ;

/* Keywords are accepted as names here so that the checker can say that
 * they are reserved, rather than a bare syntax error. */
decl_name: IDENT  { $$ = $1; }
         | PARAM  { $$ = "param"; }
         | INPUT  { $$ = "input"; }
         | LET    { $$ = "let"; }
         | MASK   { $$ = "mask"; }
         | TRUE   { $$ = "true"; }
         | FALSE  { $$ = "false"; }
         ;

int_value: INT      { $$ = int_value(ctx, $1, false, @$); }
         | '-' INT  { $$ = int_value(ctx, $2, true, @$); }
         ;

dims: dim           { $$ = dim_add(ctx, NULL, $1); NN($$); }
    | dims ',' dim  { $$ = dim_add(ctx, $1, $3); NN($$); }
    ;

dim: INT {
         memset(&$$, 0, sizeof $$);
         $$.kind = FMD_DIM_LITERAL;
         $$.span = @$;
         fmd_int_value v = int_value(ctx, $1, false, @$);
         $$.value = v.ok ? v.value : 1;
     }
   | '-' INT {
         memset(&$$, 0, sizeof $$);
         $$.kind = FMD_DIM_LITERAL;
         $$.span = @$;
         fmd_int_value v = int_value(ctx, $2, true, @$);
         $$.value = v.ok ? v.value : 1;
     }
   | IDENT {
         memset(&$$, 0, sizeof $$);
         $$.kind = FMD_DIM_PARAM;
         $$.span = @$;
         $$.name = $1;
         for (int v = 0; v < FMD_VAR_COUNT; v++) {
             if (v == FMD_VAR_Q_LEN || v == FMD_VAR_KV_LEN || v == FMD_VAR_BATCH || v == FMD_VAR_HEADS) {
                 if (!strcmp($1, fmd_builtin_var_name((fmd_builtin_var)v))) {
                     $$.kind = FMD_DIM_SHAPE;
                     $$.shape = (fmd_builtin_var)v;
                 }
             }
         }
     }
   ;

expr: cond ;

cond: or_expr
    | or_expr '?' nest expr ':' cond {
          ctx->depth--;
          $$ = new_expr(ctx, FMD_EXPR_COND, @$);
          NN($$);
          $$->u.cond.cond = $1;
          $$->u.cond.then_expr = $4;
          $$->u.cond.else_expr = $6;
      }
    ;

/* An empty rule after each opening token: counts one level of nesting. */
nest: %empty { if (!nest_enter(ctx, @0)) YYERROR; } ;

or_expr: and_expr
       | or_expr OROR and_expr { $$ = chain_append(ctx, $1, FMD_OP_OR, @2, $3, FMD_PREC_OR); NN($$); }
       ;

and_expr: eq_expr
        | and_expr ANDAND eq_expr { $$ = chain_append(ctx, $1, FMD_OP_AND, @2, $3, FMD_PREC_AND); NN($$); }
        ;

eq_expr: rel_expr
       | eq_expr eqop rel_expr { $$ = chain_append(ctx, $1, $2, @2, $3, FMD_PREC_EQ); NN($$); }
       ;

eqop: EQEQ { $$ = FMD_OP_EQ; } | NE { $$ = FMD_OP_NE; } ;

rel_expr: add_expr
        | rel_expr relop add_expr { $$ = comparison(ctx, $1, $2, @2, $3, @$); NN($$); }
        ;

relop: '<' { $$ = FMD_OP_LT; } | LE { $$ = FMD_OP_LE; }
     | '>' { $$ = FMD_OP_GT; } | GE { $$ = FMD_OP_GE; }
     ;

add_expr: mul_expr
        | add_expr addop mul_expr { $$ = chain_append(ctx, $1, $2, @2, $3, FMD_PREC_ADD); NN($$); }
        ;

addop: '+' { $$ = FMD_OP_ADD; } | '-' { $$ = FMD_OP_SUB; } ;

mul_expr: unary
        | mul_expr mulop unary { $$ = chain_append(ctx, $1, $2, @2, $3, FMD_PREC_MUL); NN($$); }
        ;

mulop: '*' { $$ = FMD_OP_MUL; } | '/' { $$ = FMD_OP_DIV; } | '%' { $$ = FMD_OP_MOD; } ;

unary: primary
     | '-' nest unary { ctx->depth--; $$ = new_unary(ctx, FMD_UNOP_NEG, @1, $3, @$); NN($$); }
     | '!' nest unary { ctx->depth--; $$ = new_unary(ctx, FMD_UNOP_NOT, @1, $3, @$); NN($$); }
     ;

primary: INT   { $$ = new_literal(ctx, $1, @$); NN($$); }
       | TRUE  { $$ = new_expr(ctx, FMD_EXPR_BOOL, @$); NN($$); $$->u.boolean = true; }
       | FALSE { $$ = new_expr(ctx, FMD_EXPR_BOOL, @$); NN($$); $$->u.boolean = false; }
       | IDENT {
             $$ = new_expr(ctx, FMD_EXPR_NAME, @$);
             NN($$);
             $$->u.name.name = $1;
         }
       | IDENT '(' nest opt_args ')' {
             ctx->depth--;
             $$ = new_access(ctx, FMD_EXPR_CALL, $1, @1, $4, @$);
             NN($$);
         }
       | IDENT '[' nest opt_args ']' {
             ctx->depth--;
             $$ = new_access(ctx, FMD_EXPR_INDEX, $1, @1, $4, @$);
             NN($$);
         }
       | '(' nest expr ')' {
             ctx->depth--;
             $$ = $3;
             $$->paren = true;
             $$->span = @$;
         }
       ;

opt_args: %empty { $$ = NULL; }
        | args
        ;

args: expr          { $$ = list_add(ctx, NULL, $1); NN($$); }
    | args ',' expr { $$ = list_add(ctx, $1, $3); NN($$); }
    ;

%%

/* ---- building the tree ------------------------------------------------- */

static fmd_expr *new_expr(fmd_parse_ctx *ctx, fmd_expr_kind kind, fmd_span span) {
    fmd_expr *e = fmd_arena_alloc(&ctx->prog->arena, sizeof *e);
    if (!e) return NULL;
    e->kind = kind;
    e->span = span;
    return e;
}

static fmd_expr *new_literal(fmd_parse_ctx *ctx, fmd_lit lit, fmd_span span) {
    fmd_expr *e = new_expr(ctx, FMD_EXPR_INT, span);
    if (!e) return NULL;
    e->u.lit.magnitude = lit.magnitude;
    e->u.lit.overflow = lit.overflow;
    return e;
}

static fmd_expr *new_unary(fmd_parse_ctx *ctx, fmd_unop op, fmd_span op_span, fmd_expr *operand,
                           fmd_span span) {
    fmd_expr *e = new_expr(ctx, FMD_EXPR_UNARY, span);
    if (!e) return NULL;
    e->u.unary.op = op;
    e->u.unary.op_span = op_span;
    e->u.unary.operand = operand;
    return e;
}

/* Makes room for one more operand (and operator) in a chain. */
static bool chain_reserve(fmd_parse_ctx *ctx, fmd_expr *c, size_t need) {
    if (need <= c->u.chain.cap) return true;
    fmd_arena *a = &ctx->prog->arena;
    size_t c1 = c->u.chain.cap, c2 = c1, c3 = c1;
    void *p1 = c->u.chain.operands, *p2 = c->u.chain.ops, *p3 = c->u.chain.op_spans;
    if (fmd_arena_grow(a, &p1, &c1, need, sizeof(fmd_expr *)) ||
        fmd_arena_grow(a, &p2, &c2, need, sizeof(fmd_binop)) ||
        fmd_arena_grow(a, &p3, &c3, need, sizeof(fmd_span)))
        return false;
    c->u.chain.operands = p1;
    c->u.chain.ops = p2;
    c->u.chain.op_spans = p3;
    c->u.chain.cap = c1;
    return true;
}

/* Appends `op right` to left when left is an unparenthesized chain of the
 * same level (one left-associative chain); otherwise starts a new chain. */
static fmd_expr *chain_append(fmd_parse_ctx *ctx, fmd_expr *left, fmd_binop op, fmd_span op_span,
                              fmd_expr *right, fmd_prec prec) {
    fmd_expr *c = left;
    if (!(left->kind == FMD_EXPR_CHAIN && !left->paren && left->u.chain.prec == prec &&
          prec != FMD_PREC_REL)) {
        /* Most chains hold one operator: start small (the arena's own
         * growth would start at 8 slots). */
        fmd_arena *a = &ctx->prog->arena;
        c = new_expr(ctx, FMD_EXPR_CHAIN, left->span);
        if (!c) return NULL;
        c->u.chain.operands = fmd_arena_array(a, 2, sizeof(fmd_expr *));
        c->u.chain.ops = fmd_arena_array(a, 2, sizeof(fmd_binop));
        c->u.chain.op_spans = fmd_arena_array(a, 2, sizeof(fmd_span));
        if (!c->u.chain.operands || !c->u.chain.ops || !c->u.chain.op_spans) return NULL;
        c->u.chain.cap = 2;
        c->u.chain.prec = prec;
        c->u.chain.operands[0] = left;
        c->u.chain.count = 1;
    }
    size_t n = c->u.chain.count;
    if (!chain_reserve(ctx, c, n + 1)) return NULL;
    c->u.chain.operands[n] = right;
    c->u.chain.ops[n - 1] = op;
    c->u.chain.op_spans[n - 1] = op_span;
    c->u.chain.count = n + 1;
    c->span.end = right->span.end;
    return c;
}

/* Source text of a span when it is short and on one line, else NULL. */
static const char *short_text(fmd_parse_ctx *ctx, fmd_span s, int *len) {
    if (s.end - s.start > 24) return NULL;
    const char *t = ctx->src->text + s.start;
    for (uint32_t i = 0; i < s.end - s.start; i++)
        if (t[i] == '\n') return NULL;
    *len = (int)(s.end - s.start);
    return t;
}

static fmd_expr *comparison(fmd_parse_ctx *ctx, fmd_expr *left, fmd_binop op, fmd_span op_span,
                            fmd_expr *right, fmd_span span) {
    bool chained = left->kind == FMD_EXPR_CHAIN && !left->paren &&
                   left->u.chain.prec == FMD_PREC_REL;
    fmd_expr *c = chain_append(ctx, left, op, op_span, right, FMD_PREC_REL);
    if (!c || !chained) return c;
    /* The checker skips nodes already marked as errors. */
    c->type = FMD_TYPE_ERROR;
    if (left->type == FMD_TYPE_ERROR) return c; /* a < b < c < d: said once */
    int la = 0, lb = 0, lc = 0;
    const char *a = short_text(ctx, left->u.chain.operands[0]->span, &la);
    const char *b = short_text(ctx, left->u.chain.operands[1]->span, &lb);
    const char *cc = short_text(ctx, right->span, &lc);
    char hint[200];
    if (a && b && cc)
        snprintf(hint, sizeof hint, "write '%.*s %s %.*s && %.*s %s %.*s'",
                 la, a, fmd_binop_spelling(left->u.chain.ops[0]), lb, b, lb, b,
                 fmd_binop_spelling(op), lc, cc);
    else
        snprintf(hint, sizeof hint, "compare twice and join the results with '&&'");
    fmd_parse_error(ctx, span, hint, "comparisons do not chain");
    return c;
}

static fmd_expr *new_access(fmd_parse_ctx *ctx, fmd_expr_kind kind, const char *name,
                            fmd_span name_span, fmd_expr_list *args, fmd_span span) {
    fmd_expr *e = new_expr(ctx, kind, span);
    if (!e) return NULL;
    size_t n = args ? args->count : 0;
    fmd_expr **items = args ? args->items : NULL;
    if (kind == FMD_EXPR_CALL) {
        e->u.call.name = name;
        e->u.call.name_span = name_span;
        e->u.call.count = n;
        e->u.call.args = items;
    } else {
        e->u.index.name = name;
        e->u.index.name_span = name_span;
        e->u.index.count = n;
        e->u.index.indices = items;
    }
    return e;
}

static fmd_expr_list *list_add(fmd_parse_ctx *ctx, fmd_expr_list *l, fmd_expr *e) {
    fmd_arena *a = &ctx->prog->arena;
    if (!l && !(l = fmd_arena_alloc(a, sizeof *l))) return NULL;
    void *p = l->items;
    if (fmd_arena_grow(a, &p, &l->cap, l->count + 1, sizeof *l->items)) return NULL;
    l->items = p;
    l->items[l->count++] = e;
    return l;
}

static fmd_dim_list *dim_add(fmd_parse_ctx *ctx, fmd_dim_list *l, fmd_dim d) {
    fmd_arena *a = &ctx->prog->arena;
    if (!l && !(l = fmd_arena_alloc(a, sizeof *l))) return NULL;
    void *p = l->items;
    if (fmd_arena_grow(a, &p, &l->cap, l->count + 1, sizeof *l->items)) return NULL;
    l->items = p;
    l->items[l->count++] = d;
    return l;
}

static bool nest_enter(fmd_parse_ctx *ctx, fmd_span at) {
    if (++ctx->depth <= FMD_MAX_NESTING) return true;
    char hint[160];
    snprintf(hint, sizeof hint,
             "at most %d levels of parentheses, unary operators, '?:', calls and indices",
             FMD_MAX_NESTING);
    fmd_parse_error(ctx, at, hint, "expression nested too deeply");
    ctx->skipping = true;
    return false;
}

/* A literal, possibly negated, as a signed 64-bit value. */
static fmd_int_value int_value(fmd_parse_ctx *ctx, fmd_lit lit, bool negative, fmd_span span) {
    fmd_int_value v = {0, true};
    uint64_t limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    if (lit.overflow || lit.magnitude > limit) {
        fmd_parse_error(ctx, span, FMD_INT_RANGE_HINT, "integer literal out of the 64-bit range");
        v.ok = false;
    } else if (negative) {
        v.value = lit.magnitude == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)lit.magnitude;
    } else {
        v.value = (int64_t)lit.magnitude;
    }
    return v;
}

/* ---- declarations --------------------------------------------------- */

/* A statement holding a character the scanner dropped is already reported;
 * what remains of it would only produce confusing follow-up errors. */
static bool has_lex_error(const fmd_parse_ctx *ctx, fmd_span span) {
    return ctx->lex_error_any && ctx->lex_error_at >= span.start && ctx->lex_error_at < span.end;
}

static fmd_decl *add_decl(fmd_parse_ctx *ctx, fmd_decl_kind kind, const char *name,
                          fmd_span name_span, fmd_span span) {
    fmd_decl *d = fmd_arena_alloc(&ctx->prog->arena, sizeof *d);
    if (!d) return NULL;
    d->kind = kind;
    d->name = name;
    d->name_span = name_span;
    d->span = span;
    d->type = kind == FMD_DECL_MASK ? FMD_TYPE_BOOL
              : kind == FMD_DECL_LET ? FMD_TYPE_UNKNOWN : FMD_TYPE_INT;
    if (has_lex_error(ctx, span)) d->type = FMD_TYPE_ERROR;
    if (ctx->prog->count >= FMD_MAX_DECLS) {
        /* Reported once: the scanner stops, so the parse ends here. The
         * statement's actions still fill in d, which is left out. */
        fmd_parse_error(ctx, name_span, "split the file, or generate fewer declarations",
                        "too many declarations: a file may hold at most %d", FMD_MAX_DECLS);
        ctx->stop = true;
        d->type = FMD_TYPE_ERROR;
        return d;
    }
    return fmd_program_add_decl(ctx->prog, d) ? d : NULL;
}

static bool add_input(fmd_parse_ctx *ctx, const char *name, fmd_span name_span,
                      fmd_dim_list *dims, fmd_span span) {
    fmd_decl *d = add_decl(ctx, FMD_DECL_INPUT, name, name_span, span);
    if (!d) return false;
    d->rank = dims->count;
    if (dims->count > FMD_MAX_RANK) {
        fmd_span s = {dims->items[FMD_MAX_RANK].span.start, dims->items[dims->count - 1].span.end};
        fmd_parse_error(ctx, s, "inputs have 1 to 4 dimensions",
                        "input '%s' has %zu dimensions; at most %d are allowed", name,
                        dims->count, FMD_MAX_RANK);
        d->rank = FMD_MAX_RANK;
        d->type = FMD_TYPE_ERROR;
    }
    for (size_t i = 0; i < d->rank; i++) d->dims[i] = dims->items[i];
    return true;
}

static bool add_poisoned(fmd_parse_ctx *ctx, fmd_decl_kind kind, const char *name,
                         fmd_span name_span, fmd_span span) {
    fmd_decl *d = add_decl(ctx, kind, name, name_span, span);
    if (!d) return false;
    d->type = FMD_TYPE_ERROR;
    return true;
}

/* ---- syntax errors -------------------------------------------------- */

/* What the parser was looking for, in words: token classes rather than a
 * list of every operator. */
static void describe_expected(const yypcontext_t *yyctx, char *out, size_t cap, bool *semi) {
    yysymbol_kind_t exp[YYNTOKENS];
    int n = yypcontext_expected_tokens(yyctx, exp, YYNTOKENS);
    static const char *const expr_start[] = {"name", "integer", "'('", "'-'", "'!'", "'true'", "'false'"};
    static const char *const operators[] = {"'||'", "'&&'", "'=='", "'!='", "'<'", "'<='", "'>'",
                                            "'>='", "'+'", "'-'", "'*'", "'/'", "'%'", "'?'"};
    static const char *const keywords[] = {"'param'", "'input'", "'let'", "'mask'"};
    bool has_name = false, has_int = false, has_op = false, has_paren = false, kw = false;
    int nkw = 0;
    *semi = false;
    for (int i = 0; i < n; i++) {
        const char *s = yysymbol_name(exp[i]);
        has_name |= !strcmp(s, "name");
        has_int |= !strcmp(s, "integer");
        has_paren |= !strcmp(s, "'('");
        *semi |= !strcmp(s, "';'");
        /* '-' alone is the unary minus that starts an expression. */
        for (size_t k = 0; k < sizeof operators / sizeof *operators; k++)
            has_op |= !strcmp(s, operators[k]) && strcmp(s, "'-'");
        for (size_t k = 0; k < sizeof keywords / sizeof *keywords; k++) nkw += !strcmp(s, keywords[k]);
    }
    bool expr = has_name && has_int && has_paren;
    bool dim = has_name && has_int && !has_paren; /* in an input's [...] */
    /* A declared name may be spelt as a keyword (the checker rejects it
     * with a better message), so a name's place also accepts keywords. */
    bool name_only = has_name && !has_int;
    kw = nkw == 4 && !name_only;
    const char *parts[YYNTOKENS + 4];
    int np = 0;
    if (expr) parts[np++] = "an expression";
    if (dim) parts[np++] = "a dimension";
    if (kw) parts[np++] = "a statement";
    for (int i = 0; i < n; i++) {
        const char *s = yysymbol_name(exp[i]);
        bool skip = false;
        if (expr || dim)
            for (size_t k = 0; k < sizeof expr_start / sizeof *expr_start; k++) skip |= !strcmp(s, expr_start[k]);
        /* Before a literal, '-' is just its sign. */
        if (has_int) skip |= !strcmp(s, "'-'");
        if (has_op)
            for (size_t k = 0; k < sizeof operators / sizeof *operators; k++) skip |= !strcmp(s, operators[k]);
        if (kw || name_only)
            for (size_t k = 0; k < sizeof keywords / sizeof *keywords; k++) skip |= !strcmp(s, keywords[k]);
        if (name_only) skip |= !strcmp(s, "'true'") || !strcmp(s, "'false'");
        if (kw) skip |= !strcmp(s, "end of file");
        if (skip) continue;
        if (!strcmp(s, "name")) s = "a name";
        else if (!strcmp(s, "integer")) s = "an integer";
        parts[np++] = s;
    }
    if (has_op) parts[np++] = "an operator";
    size_t len = 0;
    out[0] = '\0';
    if (np == 0) snprintf(out, cap, "something else");
    for (int i = 0; i < np && len < cap; i++) {
        const char *sep = i == 0 ? "" : i == np - 1 ? " or " : ", ";
        int w = snprintf(out + len, cap - len, "%s%s", sep, parts[i]);
        if (w < 0) break;
        len += (size_t)w;
    }
}

static bool is_statement_start(const char *s) {
    return !strcmp(s, "'param'") || !strcmp(s, "'input'") || !strcmp(s, "'let'") ||
           !strcmp(s, "'mask'");
}

static int yyreport_syntax_error(const yypcontext_t *yyctx, yyscan_t scanner, fmd_parse_ctx *ctx) {
    (void)scanner;
    ctx->missing_semi = false;
    fmd_span at = *yypcontext_location(yyctx);
    /* The scanner already reported what went wrong in this statement. */
    if (ctx->lex_error_pending || (ctx->lex_error_synced && at.start <= ctx->lex_error_sync))
        return 0;
    const char *la = yysymbol_name(yypcontext_token(yyctx));
    bool eof = yypcontext_token(yyctx) == YYSYMBOL_YYEOF;
    char expected[256];
    bool semi;
    describe_expected(yyctx, expected, sizeof expected, &semi);
    if (semi && (eof || is_statement_start(la))) {
        ctx->missing_semi = true;
        fmd_span s = {ctx->prev_end, ctx->prev_end};
        fmd_parse_error(ctx, s, NULL, "missing ';' at the end of the statement");
        return 0;
    }
    char found[64];
    if (eof) {
        /* Point just past the last token rather than at a blank last line. */
        at.start = at.end = ctx->prev_end;
        snprintf(found, sizeof found, "end of file");
    } else {
        uint32_t len = at.end - at.start;
        snprintf(found, sizeof found, "'%.*s%s'", (int)(len > 32 ? 32 : len),
                 ctx->src->text + at.start, len > 32 ? "..." : "");
    }
    const char *hint = NULL;
    bool operand = !strcmp(la, "name") || !strcmp(la, "integer") || !strcmp(la, "'('") ||
                   !strcmp(la, "'true'") || !strcmp(la, "'false'");
    /* After a complete expression the parser only asks for ';' (its other
     * continuations were folded away), but the operator is the likely miss. */
    if (semi && operand && !strcmp(expected, "';'")) snprintf(expected, sizeof expected, "an operator or ';'");
    if (!strcmp(la, "'='") && (semi || strstr(expected, "an operator"))) hint = "to compare, write '=='";
    else if (strstr(expected, "a dimension"))
        hint = "a dimension is an integer, a param, Q_LEN, KV_LEN, BATCH or HEADS";
    else if (semi && (!strcmp(la, "')'") || !strcmp(la, "']'")))
        hint = !strcmp(la, "')'") ? "this ')' has no matching '('" : "this ']' has no matching '['";
    else if (!strcmp(expected, "a statement") && !strcmp(la, "name"))
        hint = "statements start with 'param', 'input', 'let' or 'mask'";
    fmd_parse_error(ctx, at, hint, "expected %s, found %s", expected, found);
    return 0;
}

static void fmdyyerror(fmd_span *loc, yyscan_t scanner, fmd_parse_ctx *ctx, const char *msg) {
    (void)scanner;
    fmd_parse_error(ctx, *loc, NULL, "expression too complex to parse (%s)", msg);
}
