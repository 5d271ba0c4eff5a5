/* Reading small JSON documents such as safetensors headers (RFC 8259; no
 * extensions), with jansson doing the parsing.
 *
 * jansson keeps integers as 64-bit json_int_t, so a data offset past 2^53
 * stays exact (a reader holding numbers as doubles, such as cJSON, would
 * round it); an integer outside int64 is a parse error. The parsed tree is
 * copied into one arena, freed at once; nesting is capped at
 * FMR_JSON_MAX_DEPTH. */
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
    FMR_JSON_NUMBER, /* a number with a fraction or exponent: only its kind is kept */
    FMR_JSON_STRING,
    FMR_JSON_ARRAY,
    FMR_JSON_OBJECT
} fmr_json_kind;

typedef struct fmr_json fmr_json;
struct fmr_json {
    fmr_json_kind kind;
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
 * message in err ("byte 17: ':' expected near '1'", jansson's words after
 * the byte position); an object with two equal keys is an error. oom is set when memory ran out. doc must
 * be released with fmr_json_free either way. */
bool fmr_json_parse(const char *text, size_t len, fmr_json_doc *doc, char *err, size_t errlen,
                    bool *oom);
void fmr_json_free(fmr_json_doc *doc);

/* The member called key of an object, or NULL (also for a non-object). */
const fmr_json *fmr_json_get(const fmr_json *obj, const char *key);

/* The kind as a word for messages ("an integer", "a string", ...). */
const char *fmr_json_kind_name(fmr_json_kind k);

#endif
