/* State shared by the flex scanner and the bison parser of one parse.
 * Private to dsl/lexer.l, dsl/parser.y and dsl/ast.c. */
#ifndef FM_DSL_PARSE_INTERNAL_H
#define FM_DSL_PARSE_INTERNAL_H

#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>

#include "dsl/ast.h"

typedef struct fmd_parse_ctx {
    fmd_program *prog;
    fmd_diags *diags;
    const fmd_source *src;
    uint32_t offset;   /* scanner: offset of the next byte */
    uint32_t last_end; /* end of the last token handed to the parser */
    uint32_t prev_end; /* end of the token before that one */
    int depth;         /* expression nesting of the statement being parsed */
    /* After a scanner error the parser stays quiet until the next ';' or
     * statement keyword: the dropped character already explains the mess. */
    bool lex_error_pending;
    bool lex_error_synced;
    bool lex_error_any; /* some scanner error so far; the last one at: */
    uint32_t lex_error_at;
    uint32_t lex_error_sync;
    /* After a too-deep nesting the scanner drops the rest of the statement
     * itself: a million tokens of error recovery in the parser is slow. */
    bool skipping;
    bool missing_semi; /* the last syntax error was only a missing ';' */
    bool stop;         /* the error limit was reached: stop scanning */
    bool oom;
    jmp_buf fatal; /* the scanner's allocation failures land here */
} fmd_parse_ctx;

#define FMD_INT_RANGE_HINT "ints are signed 64-bit: -9223372036854775808 to 9223372036854775807"

/* Appends d to p's declarations; false when out of memory. */
bool fmd_program_add_decl(fmd_program *p, fmd_decl *d);

/* Records a located error; returns false (and sets ctx->stop) once the
 * error limit is reached. */
bool fmd_parse_error(fmd_parse_ctx *ctx, fmd_span span, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
