/* A strict JSON reader for small documents such as safetensors headers
 * (RFC 8259; no extensions).
 *
 * Why not a library: the one Debian packages (cJSON) holds numbers as
 * doubles, so a data offset past 2^53 would be silently rounded; here
 * integers are exact over the whole int64 range and anything else is kept
 * apart as a non-integer number. Every value lives in one arena, freed at
 * once. The parser recurses only on real nesting, capped at
 * FMR_JSON_MAX_DEPTH; input of any content never reads outside the buffer. */
#ifndef FM_RUNTIME_JSON_H
#define FM_RUNTIME_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dsl/arena.h"

#define FMR_JSON_MAX_DEPTH 64

typedef enum fmr_json_kind {
    FMR_JSON_NULL,
    FMR_JSON_BOOL,
    FMR_JSON_INT,    /* an integer literal (no fraction or exponent) within int64 */
    FMR_JSON_NUMBER, /* any other number: not needed here, kept only as a kind */
    FMR_JSON_STRING,
    FMR_JSON_ARRAY,
    FMR_JSON_OBJECT
} fmr_json_kind;

typedef struct fmr_json fmr_json;
struct fmr_json {
    fmr_json_kind kind;
    size_t offset;   /* byte offset of the value in the text (for messages) */
    bool boolean;    /* BOOL */
    int64_t integer; /* INT */
    char *str;       /* STRING: decoded UTF-8, NUL-terminated (may hold NULs) */
    size_t len;      /* STRING: bytes in str */
    fmr_json *items; /* ARRAY, OBJECT: count values */
    char **keys;     /* OBJECT: count decoded keys (NUL-terminated) */
    size_t *key_lens;
    size_t count;
};

typedef struct fmr_json_doc {
    fmd_arena arena;
    fmr_json *root;
} fmr_json_doc;

/* Parses len bytes of text (the whole of it must be one value, with only
 * whitespace around it). Returns true and fills doc, or false with a
 * message in err ("byte 17: expected ':' after an object key"); an object
 * with two equal keys is an error. oom is set when memory ran out. doc must
 * be released with fmr_json_free either way. */
bool fmr_json_parse(const char *text, size_t len, fmr_json_doc *doc, char *err, size_t errlen,
                    bool *oom);
void fmr_json_free(fmr_json_doc *doc);

/* The member called key of an object, or NULL (also for a non-object). */
const fmr_json *fmr_json_get(const fmr_json *obj, const char *key);

/* The kind as a word for messages ("an integer", "a string", ...). */
const char *fmr_json_kind_name(fmr_json_kind k);

#endif
