/* A strict JSON reader (see json.h for why it exists). */
#define _POSIX_C_SOURCE 200809L /* strnlen */
#include "runtime/interop/json.h"

#include "dsl/diag.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct parser {
    const unsigned char *s;
    size_t len, pos;
    fmd_arena *arena;
    char *err;
    size_t errlen;
    bool failed, oom;
} parser;

static bool fail(parser *p, size_t at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static bool fail(parser *p, size_t at, const char *fmt, ...) {
    if (p->failed) return false;
    p->failed = true;
    if (p->err && p->errlen) {
        int w = snprintf(p->err, p->errlen, "byte %zu: ", at);
        if (w >= 0 && (size_t)w < p->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(p->err + w, p->errlen - (size_t)w, fmt, ap);
            va_end(ap);
        }
    }
    return false;
}

static bool out_of_memory(parser *p) {
    p->oom = true;
    return fail(p, p->pos, "out of memory");
}

static void skip_ws(parser *p) {
    while (p->pos < p->len) {
        unsigned char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

/* A printable description of the byte at pos, for "unexpected ..." messages. */
static const char *describe(parser *p, char *buf, size_t n) {
    if (p->pos >= p->len) return "the end of the text";
    unsigned char c = p->s[p->pos];
    if (c >= 0x20 && c < 0x7f)
        snprintf(buf, n, "'%c'", c);
    else
        snprintf(buf, n, "byte 0x%02x", c);
    return buf;
}

static bool literal(parser *p, const char *word) {
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
        return fail(p, p->pos, "expected a value");
    p->pos += n;
    return true;
}

static bool parse_number(parser *p, fmr_json *v) {
    size_t start = p->pos;
    bool neg = false;
    if (p->s[p->pos] == '-') {
        neg = true;
        p->pos++;
    }
    if (p->pos >= p->len || p->s[p->pos] < '0' || p->s[p->pos] > '9')
        return fail(p, start, "a number needs digits after '-'");
    if (p->s[p->pos] == '0' && p->pos + 1 < p->len && p->s[p->pos + 1] >= '0' &&
        p->s[p->pos + 1] <= '9')
        return fail(p, start, "a number may not have leading zeros");
    uint64_t mag = 0;
    bool big = false;
    while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
        unsigned d = p->s[p->pos++] - '0';
        if (mag > (UINT64_MAX - d) / 10)
            big = true;
        else
            mag = mag * 10 + d;
    }
    bool integer = true;
    if (p->pos < p->len && p->s[p->pos] == '.') {
        integer = false;
        p->pos++;
        size_t digits = p->pos;
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
            p->pos++;
        if (p->pos == digits) return fail(p, start, "a number needs digits after '.'");
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        integer = false;
        p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-')) p->pos++;
        size_t digits = p->pos;
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
            p->pos++;
        if (p->pos == digits) return fail(p, start, "a number needs digits in its exponent");
    }
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    if (integer && !big && mag <= limit) {
        v->kind = FMR_JSON_INT;
        v->integer = neg ? (mag == limit ? INT64_MIN : -(int64_t)mag) : (int64_t)mag;
    } else {
        v->kind = FMR_JSON_NUMBER;
    }
    return true;
}

static int hex4(const unsigned char *s) {
    int v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Length of the valid UTF-8 sequence at s (up to n bytes), or 0. */
static size_t utf8_length(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, cp = c & 0x07;
    else
        return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

static size_t put_utf8(unsigned char *o, uint32_t cp) {
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xc0 | cp >> 6);
        o[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xe0 | cp >> 12);
        o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (unsigned char)(0xf0 | cp >> 18);
    o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

/* A string literal at p->pos (the opening quote) into *str, *len. The
 * decoded text is never longer than the literal, which bounds the buffer. */
static bool parse_string(parser *p, char **str, size_t *len) {
    size_t start = p->pos++;
    size_t end = p->pos;
    while (end < p->len && p->s[end] != '"')
        end += p->s[end] == '\\' ? 2 : 1;
    if (end >= p->len) return fail(p, start, "a string is not closed");
    unsigned char *o = fmd_arena_alloc(p->arena, end - p->pos + 1);
    if (!o) return out_of_memory(p);
    size_t n = 0;
    while (p->pos < end) {
        unsigned char c = p->s[p->pos];
        if (c < 0x20) return fail(p, p->pos, "a control character (0x%02x) inside a string", c);
        if (c != '\\') {
            size_t l = utf8_length(p->s + p->pos, end - p->pos);
            if (!l) return fail(p, p->pos, "a string holds bytes that are not valid UTF-8");
            memcpy(o + n, p->s + p->pos, l);
            n += l;
            p->pos += l;
            continue;
        }
        size_t esc = p->pos;
        unsigned char e = p->s[p->pos + 1]; /* end is past it: the scan skipped pairs */
        p->pos += 2;
        switch (e) {
        case '"': o[n++] = '"'; break;
        case '\\': o[n++] = '\\'; break;
        case '/': o[n++] = '/'; break;
        case 'b': o[n++] = '\b'; break;
        case 'f': o[n++] = '\f'; break;
        case 'n': o[n++] = '\n'; break;
        case 'r': o[n++] = '\r'; break;
        case 't': o[n++] = '\t'; break;
        case 'u': {
            int u = end - p->pos >= 4 ? hex4(p->s + p->pos) : -1;
            if (u < 0) return fail(p, esc, "\\u must be followed by four hex digits");
            p->pos += 4;
            uint32_t cp = (uint32_t)u;
            if (cp >= 0xdc00 && cp <= 0xdfff)
                return fail(p, esc, "a \\u escape holds a lone low surrogate");
            if (cp >= 0xd800 && cp <= 0xdbff) {
                int lo = end - p->pos >= 6 && p->s[p->pos] == '\\' && p->s[p->pos + 1] == 'u'
                             ? hex4(p->s + p->pos + 2)
                             : -1;
                if (lo < 0xdc00 || lo > 0xdfff)
                    return fail(p, esc, "a \\u escape holds a high surrogate without its pair");
                p->pos += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + ((uint32_t)lo - 0xdc00);
            }
            /* Six escape bytes (or twelve for a pair) never decode to more. */
            n += put_utf8(o + n, cp);
            break;
        }
        default:
            return fail(p, esc, "unknown escape '\\%c' in a string",
                        e >= 0x20 && e < 0x7f ? e : '?');
        }
    }
    o[n] = '\0';
    p->pos = end + 1;
    *str = (char *)o;
    *len = n;
    return true;
}

static bool parse_value(parser *p, fmr_json *v, int depth);

static bool parse_array(parser *p, fmr_json *v, int depth) {
    size_t cap = 0;
    v->kind = FMR_JSON_ARRAY;
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == ']') {
        p->pos++;
        return true;
    }
    for (;;) {
        fmr_json item;
        if (!parse_value(p, &item, depth + 1)) return false;
        if (fmd_arena_grow(p->arena, (void **)&v->items, &cap, v->count + 1, sizeof item) != 0)
            return out_of_memory(p);
        v->items[v->count++] = item;
        skip_ws(p);
        char buf[16];
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == ']') {
            p->pos++;
            return true;
        }
        return fail(p, p->pos, "expected ',' or ']' in an array, found %s",
                    describe(p, buf, sizeof buf));
    }
}

static int key_cmp(const void *a, const void *b) {
    const char *const *x = a, *const *y = b;
    return strcmp(*x, *y);
}

/* Two members with one name are an error: readers disagree on which wins. */
static bool check_duplicates(parser *p, fmr_json *v) {
    if (v->count < 2) return true;
    char **sorted = malloc(v->count * sizeof *sorted);
    if (!sorted) return out_of_memory(p);
    memcpy(sorted, v->keys, v->count * sizeof *sorted);
    qsort(sorted, v->count, sizeof *sorted, key_cmp);
    bool ok = true;
    for (size_t i = 1; i < v->count && ok; i++) {
        if (strcmp(sorted[i - 1], sorted[i]) == 0) {
            char shown[4 * 64 + 1]; /* a key from the file: escaped, as every message's text */
            fmd_escape(shown, sizeof shown, sorted[i], strnlen(sorted[i], 64));
            fail(p, v->offset, "the object holds the key \"%s\" twice", shown);
            ok = false;
        }
    }
    free(sorted);
    return ok;
}

static bool parse_object(parser *p, fmr_json *v, int depth) {
    size_t cap = 0, kcap = 0, lcap = 0;
    v->kind = FMR_JSON_OBJECT;
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == '}') {
        p->pos++;
        return true;
    }
    for (;;) {
        char buf[16];
        skip_ws(p);
        if (p->pos >= p->len || p->s[p->pos] != '"')
            return fail(p, p->pos, "expected a string key in an object, found %s",
                        describe(p, buf, sizeof buf));
        char *key;
        size_t klen;
        if (!parse_string(p, &key, &klen)) return false;
        skip_ws(p);
        if (p->pos >= p->len || p->s[p->pos] != ':')
            return fail(p, p->pos, "expected ':' after an object key, found %s",
                        describe(p, buf, sizeof buf));
        p->pos++;
        fmr_json item;
        if (!parse_value(p, &item, depth + 1)) return false;
        if (fmd_arena_grow(p->arena, (void **)&v->items, &cap, v->count + 1, sizeof item) != 0 ||
            fmd_arena_grow(p->arena, (void **)&v->keys, &kcap, v->count + 1, sizeof key) != 0 ||
            fmd_arena_grow(p->arena, (void **)&v->key_lens, &lcap, v->count + 1, sizeof klen) != 0)
            return out_of_memory(p);
        v->items[v->count] = item;
        v->keys[v->count] = key;
        v->key_lens[v->count] = klen;
        v->count++;
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == '}') {
            p->pos++;
            return check_duplicates(p, v);
        }
        return fail(p, p->pos, "expected ',' or '}' in an object, found %s",
                    describe(p, buf, sizeof buf));
    }
}

static bool parse_value(parser *p, fmr_json *v, int depth) {
    memset(v, 0, sizeof *v);
    skip_ws(p);
    v->offset = p->pos;
    if (depth > FMR_JSON_MAX_DEPTH)
        return fail(p, p->pos, "nested deeper than %d levels", FMR_JSON_MAX_DEPTH);
    if (p->pos >= p->len) return fail(p, p->pos, "expected a value, found the end of the text");
    switch (p->s[p->pos]) {
    case '{': return parse_object(p, v, depth);
    case '[': return parse_array(p, v, depth);
    case '"': v->kind = FMR_JSON_STRING; return parse_string(p, &v->str, &v->len);
    case 't':
        v->kind = FMR_JSON_BOOL;
        v->boolean = true;
        return literal(p, "true");
    case 'f': v->kind = FMR_JSON_BOOL; return literal(p, "false");
    case 'n': v->kind = FMR_JSON_NULL; return literal(p, "null");
    default:
        if (p->s[p->pos] == '-' || (p->s[p->pos] >= '0' && p->s[p->pos] <= '9'))
            return parse_number(p, v);
        char buf[16];
        return fail(p, p->pos, "expected a value, found %s", describe(p, buf, sizeof buf));
    }
}

bool fmr_json_parse(const char *text, size_t len, fmr_json_doc *doc, char *err, size_t errlen,
                    bool *oom) {
    fmd_arena_init(&doc->arena);
    doc->root = NULL;
    if (err && errlen) err[0] = '\0';
    parser p = {(const unsigned char *)text, len, 0, &doc->arena, err, errlen, false, false};
    fmr_json *root = fmd_arena_alloc(&doc->arena, sizeof *root);
    bool ok = root ? parse_value(&p, root, 0) : out_of_memory(&p);
    if (ok) {
        skip_ws(&p);
        if (p.pos != len) {
            char buf[16];
            ok = fail(&p, p.pos, "unexpected %s after the value", describe(&p, buf, sizeof buf));
        }
    }
    if (oom) *oom = p.oom;
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
