/* Sources and diagnostics.
 *
 * A diagnostic is a located message: FILE:LINE:COL: error: MESSAGE, the
 * source line, a caret line under the whole span, and an optional hint.
 * Each diagnostic copies what it needs (file name, the first source line of
 * its span), so it outlives the compilation that produced it. Nothing here
 * prints on its own: callers render to a FILE* in text or JSON lines. */
#ifndef FM_DSL_DIAG_H
#define FM_DSL_DIAG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* A byte range [start, end) in a source. */
typedef struct fmd_span {
    uint32_t start, end;
} fmd_span;

/* The text of one mask file or string. Owns a copy of the bytes. */
typedef struct fmd_source {
    char *name;  /* file name or "<string>" */
    char *text;  /* len bytes plus a terminating NUL (the text may hold NULs) */
    size_t len;
    uint32_t *line_starts; /* offsets of the first byte of each line */
    size_t nlines;
} fmd_source;

/* Largest source accepted (the language's file-size limit). */
#define FMD_MAX_SOURCE_BYTES (16u * 1024u * 1024u)

/* Copies text; NULL when out of memory. len must be <= FMD_MAX_SOURCE_BYTES. */
fmd_source *fmd_source_new(const char *name, const char *text, size_t len);
void fmd_source_free(fmd_source *src);
/* 1-based line and byte column of an offset (offset may equal len). */
void fmd_source_position(const fmd_source *src, uint32_t offset, int *line, int *col);

typedef enum fmd_severity { FMD_ERROR, FMD_WARNING, FMD_NOTE } fmd_severity;

typedef struct fmd_diag {
    fmd_severity severity;
    char *file;        /* NULL when the message has no source (a bad flag) */
    int line, col;     /* 1-based; 0 when there is no source */
    int end_line, end_col; /* position just past the span (exclusive) */
    char *message;
    char *hint;        /* NULL when none */
    char *source_line; /* the text of `line`, without its newline; NULL if none */
    uint32_t span_start, span_end; /* byte offsets in the source */
} fmd_diag;

typedef struct fmd_diags {
    fmd_diag *items;
    size_t count, cap;
    size_t errors;      /* how many have severity FMD_ERROR */
    size_t max_errors;  /* stop recording errors past this many (0: no limit) */
    bool truncated;     /* some errors were dropped because of max_errors */
    bool oom;           /* a message could not be recorded for lack of memory */
} fmd_diags;

#define FMD_DEFAULT_MAX_ERRORS 20

void fmd_diags_init(fmd_diags *d);
void fmd_diags_clear(fmd_diags *d);
/* Records a diagnostic at span of src (src may be NULL). hint may be NULL.
 * Returns false once the error limit is reached (callers may stop early). */
bool fmd_diag_add(fmd_diags *d, fmd_severity sev, const fmd_source *src, fmd_span span,
                  const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
bool fmd_diag_addv(fmd_diags *d, fmd_severity sev, const fmd_source *src, fmd_span span,
                   const char *hint, const char *fmt, va_list ap);
/* Moves every diagnostic of src into dst (src is left empty). */
void fmd_diags_move(fmd_diags *dst, fmd_diags *src);

const char *fmd_severity_name(fmd_severity sev);
/* FILE:LINE:COL: error: MESSAGE, source line, caret line, hint. */
void fmd_diag_render_text(const fmd_diag *d, FILE *out);
/* One JSON object on one line with file, line, col, end_line, end_col,
 * severity, message, hint (null when none). */
void fmd_diag_render_json(const fmd_diag *d, FILE *out);
void fmd_diags_render(const fmd_diags *d, FILE *out, bool json);
/* Writes s as a JSON string literal (quotes included): the project's one
 * escaping rule, for diagnostics, `fmc blockmask --format json` and
 * safetensors headers. '"', '\\', \n, \r and \t get their short escapes,
 * other control bytes (and DEL) \u00XX, and each byte that does not start
 * a valid UTF-8 sequence U+FFFD (\ufffd); the rest is copied. */
void fmd_json_string(FILE *out, const char *s);
/* The same for len bytes (which may include NULs, written as \u0000). */
void fmd_json_string_n(FILE *out, const char *s, size_t len);

/* Length of the valid UTF-8 sequence at s (at most n bytes, n >= 1), or 0
 * when it is not one (overlong forms, surrogates and values past U+10FFFF
 * are invalid). */
size_t fmd_utf8_len(const unsigned char *s, size_t n);

/* Text taken from a file (a key, a dtype, a name) for a message: printable
 * ASCII and valid UTF-8 stay as they are; every other byte (C0 and C1
 * controls, DEL, bytes that are not UTF-8) becomes \xNN, so a crafted file
 * cannot retitle or clear the terminal that shows the message. Writes at
 * most cap - 1 bytes of s[0, n) escaped plus a NUL into dst (cut at a whole
 * character; 4n + 1 bytes always suffice) and returns the length.
 * Mask-file source lines are echoed through the same test (as '?'). */
size_t fmd_escape(char *dst, size_t cap, const char *s, size_t n);
/* Whether fmd_escape would change s[0, n). */
bool fmd_needs_escape(const char *s, size_t n);

/* Levenshtein distance between a and b, capped at cap+1 (cheap rejection). */
size_t fmd_edit_distance(const char *a, const char *b, size_t cap);

/* The candidate closest to a name nothing declares, when one is close
 * enough to be a likely typo: a change of case, or up to 1 (names of 2
 * bytes), 2 (up to 5) or 3 edits; one letter is too little to guess from.
 * Feed candidates with fmd_closest_consider; found is NULL when none is
 * close. Every "did you mean" of the front end, the runtime and the tools
 * goes through this, so they agree. */
typedef struct fmd_closest {
    const char *name;
    size_t limit, best;
    const char *found;
} fmd_closest;
void fmd_closest_init(fmd_closest *c, const char *name);
void fmd_closest_consider(fmd_closest *c, const char *cand);
/* The same over an array of n candidates. */
const char *fmd_closest_name(const char *name, const char *const *cands, size_t n);

#endif
