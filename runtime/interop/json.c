/* JSON reading on top of jansson (see json.h). jansson keeps integers as
 * long long (checked below), so every int64 is exact; the tree is copied
 * into the arena so that callers index arrays and objects directly and
 * free everything at once. */
#define _POSIX_C_SOURCE 200809L /* strnlen */
#include "runtime/interop/json.h"

#include "dsl/diag.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

_Static_assert(sizeof(json_int_t) == sizeof(int64_t), "jansson's integers must be 64-bit");

typedef struct copier {
    fmd_arena *arena;
    char *err;
    size_t errlen;
    bool oom;
} copier;

static bool copy(copier *c, const json_t *j, fmr_json *v, int depth) {
    memset(v, 0, sizeof *v);
    if (depth > FMR_JSON_MAX_DEPTH) {
        snprintf(c->err, c->errlen, "nested deeper than %d levels", FMR_JSON_MAX_DEPTH);
        return false;
    }
    switch (json_typeof(j)) {
    case JSON_NULL: v->kind = FMR_JSON_NULL; return true;
    case JSON_TRUE: v->kind = FMR_JSON_BOOL; v->boolean = true; return true;
    case JSON_FALSE: v->kind = FMR_JSON_BOOL; return true;
    case JSON_INTEGER: v->kind = FMR_JSON_INT; v->integer = json_integer_value(j); return true;
    case JSON_REAL: v->kind = FMR_JSON_NUMBER; return true;
    case JSON_STRING:
        v->kind = FMR_JSON_STRING;
        v->len = json_string_length(j);
        v->str = fmd_arena_strndup(c->arena, json_string_value(j), v->len);
        break;
    case JSON_ARRAY:
        v->kind = FMR_JSON_ARRAY;
        v->count = json_array_size(j);
        v->items = fmd_arena_array(c->arena, v->count ? v->count : 1, sizeof *v->items);
        if (!v->items) break;
        for (size_t i = 0; i < v->count; i++)
            if (!copy(c, json_array_get(j, i), &v->items[i], depth + 1)) return false;
        return true;
    case JSON_OBJECT: {
        v->kind = FMR_JSON_OBJECT;
        size_t n = json_object_size(j), k = 0;
        v->items = fmd_arena_array(c->arena, n ? n : 1, sizeof *v->items);
        v->keys = fmd_arena_array(c->arena, n ? n : 1, sizeof *v->keys);
        v->key_lens = fmd_arena_array(c->arena, n ? n : 1, sizeof *v->key_lens);
        if (!v->items || !v->keys || !v->key_lens) break;
        /* jansson iterates in insertion order: the file's order. */
        const char *key;
        size_t klen;
        json_t *x;
        json_object_keylen_foreach((json_t *)j, key, klen, x) {
            if (!(v->keys[k] = fmd_arena_strndup(c->arena, key, klen))) break;
            v->key_lens[k] = klen;
            if (!copy(c, x, &v->items[k], depth + 1)) return false;
            k++;
        }
        v->count = k;
        if (k == n) return true;
        break;
    }
    }
    if (v->kind == FMR_JSON_STRING && v->str) return true;
    c->oom = true;
    snprintf(c->err, c->errlen, "out of memory");
    return false;
}

bool fmr_json_parse(const char *text, size_t len, fmr_json_doc *doc, char *err, size_t errlen,
                    bool *oom) {
    fmd_arena_init(&doc->arena);
    doc->root = NULL;
    char scratch[1];
    if (!err || !errlen) err = scratch, errlen = sizeof scratch;
    err[0] = '\0';
    if (oom) *oom = false;
    json_error_t e;
    /* Strict RFC 8259 (jansson checks UTF-8, escapes, surrogates and
     * number syntax), any top-level value, no duplicate keys; \u0000 is
     * allowed in strings, whose length is kept. Integers stay integers:
     * never JSON_DECODE_INT_AS_REAL. */
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL,
                           &e);
    if (!j) {
        if (json_error_code(&e) == json_error_out_of_memory && oom) *oom = true;
        /* jansson quotes the offending bytes (a duplicate key, a bad token):
         * escaped, so a crafted header cannot drive the terminal. */
        char shown[4 * JSON_ERROR_TEXT_LENGTH + 1];
        fmd_escape(shown, sizeof shown, e.text, strnlen(e.text, sizeof e.text));
        snprintf(err, errlen, "byte %d: %s", e.position, shown);
        return false;
    }
    copier c = {&doc->arena, err, errlen, false};
    fmr_json *root = fmd_arena_alloc(&doc->arena, sizeof *root);
    bool ok = root && copy(&c, j, root, 0);
    if (!root) {
        c.oom = true;
        snprintf(err, errlen, "out of memory");
    }
    json_decref(j);
    if (oom) *oom = c.oom;
    if (ok) doc->root = root;
    return ok;
}

void fmr_json_free(fmr_json_doc *doc) {
    if (!doc) return;
    fmd_arena_free(&doc->arena);
    doc->root = NULL;
}

const fmr_json *fmr_json_get(const fmr_json *obj, const char *key) {
    if (!obj || obj->kind != FMR_JSON_OBJECT) return NULL;
    size_t n = strlen(key);
    for (size_t i = 0; i < obj->count; i++)
        if (obj->key_lens[i] == n && memcmp(obj->keys[i], key, n) == 0) return &obj->items[i];
    return NULL;
}

const char *fmr_json_kind_name(fmr_json_kind k) {
    switch (k) {
    case FMR_JSON_NULL: return "null";
    case FMR_JSON_BOOL: return "a boolean";
    case FMR_JSON_INT: return "an integer";
    case FMR_JSON_NUMBER: return "a non-integer number";
    case FMR_JSON_STRING: return "a string";
    case FMR_JSON_ARRAY: return "an array";
    case FMR_JSON_OBJECT: return "an object";
    }
    return "?";
}
