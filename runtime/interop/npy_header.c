/* The header dict of a .npy file: a Python literal such as
 *
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
 *
 * numpy reads it with ast.literal_eval; we accept the subset numpy (and
 * older numpy under Python 2, which wrote `3L`) produces, with free
 * whitespace and either quote, and refuse the rest with the byte offset of
 * the problem. The parser only ever indexes below the length it is given. */
#include "runtime/interop/npy_internal.h"

#include <string.h>

typedef struct hparse {
    const char *s;
    size_t n, i;
    const char *name;
    size_t base; /* offset of the header in the file, for messages */
    fmd_diags *diags;
} hparse;

typedef struct hstr {
    const char *p;
    size_t len;
} hstr;

static fm_status bad(hparse *h, const char *what) {
    size_t at = h->base + h->i;
    if (h->i >= h->n)
        fmr_npy_error(h->diags, "%s: malformed header: it ends where %s was expected", h->name,
                      what);
    else if ((unsigned char)h->s[h->i] >= 0x21 && (unsigned char)h->s[h->i] < 0x7F)
        fmr_npy_error(h->diags, "%s: malformed header at byte %zu: expected %s, found '%c'",
                      h->name, at, what, h->s[h->i]);
    else
        fmr_npy_error(h->diags, "%s: malformed header at byte %zu: expected %s, found byte 0x%02x",
                      h->name, at, what, (unsigned char)h->s[h->i]);
    return FM_ERR_FORMAT;
}

static void skip_ws(hparse *h) {
    while (h->i < h->n) {
        char c = h->s[h->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != '\v') break;
        h->i++;
    }
}

static bool peek(hparse *h, char c) {
    return h->i < h->n && h->s[h->i] == c;
}

static bool accept(hparse *h, char c) {
    skip_ws(h);
    if (!peek(h, c)) return false;
    h->i++;
    return true;
}

static bool accept_word(hparse *h, const char *w) {
    size_t len = strlen(w);
    if (h->n - h->i < len || memcmp(h->s + h->i, w, len) != 0) return false;
    /* `Trueish` is a name, not True. */
    if (h->i + len < h->n) {
        char c = h->s[h->i + len];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')
            return false;
    }
    h->i += len;
    return true;
}

static fm_status parse_string(hparse *h, hstr *out, const char *what) {
    skip_ws(h);
    if (!peek(h, '\'') && !peek(h, '"')) return bad(h, what);
    char q = h->s[h->i++];
    size_t start = h->i;
    while (h->i < h->n && h->s[h->i] != q) {
        char c = h->s[h->i];
        if (c == '\\') {
            fmr_npy_error(h->diags,
                          "%s: malformed header at byte %zu: escape sequences in strings are not "
                          "supported",
                          h->name, h->base + h->i);
            return FM_ERR_FORMAT;
        }
        if (c == '\n' || c == '\0') return bad(h, "the closing quote of a string");
        h->i++;
    }
    if (h->i >= h->n) return bad(h, "the closing quote of a string");
    out->p = h->s + start;
    out->len = h->i - start;
    h->i++;
    return FM_OK;
}

/* Keys and dtypes come from the file: at most their first 40 bytes are
 * shown, escaped (a crafted key must not reach the terminal raw). */
#define SHOWN_MAX 40
#define ESCAPED_MAX (4 * SHOWN_MAX + 1)
static const char *escaped(char buf[ESCAPED_MAX], hstr s) {
    fmd_escape(buf, ESCAPED_MAX, s.p, s.len > SHOWN_MAX ? SHOWN_MAX : s.len);
    return buf;
}

static bool str_is(hstr s, const char *w) {
    return s.len == strlen(w) && memcmp(s.p, w, s.len) == 0;
}

/* A Python int literal as numpy writes dimensions: optional sign, decimal
 * digits, an optional L suffix (Python 2). */
static fm_status parse_int(hparse *h, int64_t *out) {
    skip_ws(h);
    size_t start = h->i;
    bool neg = false;
    if (peek(h, '-') || peek(h, '+')) neg = h->s[h->i++] == '-';
    if (h->i >= h->n || h->s[h->i] < '0' || h->s[h->i] > '9') {
        h->i = start;
        return bad(h, "an integer dimension");
    }
    uint64_t v = 0;
    while (h->i < h->n && h->s[h->i] >= '0' && h->s[h->i] <= '9') {
        unsigned d = (unsigned)(h->s[h->i] - '0');
        if (v > (UINT64_MAX - d) / 10 || v * 10 + d > (uint64_t)INT64_MAX) {
            fmr_npy_error(h->diags,
                          "%s: malformed header at byte %zu: dimension does not fit in 64 bits",
                          h->name, h->base + start);
            return FM_ERR_FORMAT;
        }
        v = v * 10 + d;
        h->i++;
    }
    if (peek(h, 'L') || peek(h, 'l')) h->i++;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return FM_OK;
}

/* A tuple of ints: (), (3,), (3, 4), (3, 4,). As in Python, (3) is not a
 * tuple. */
static fm_status parse_shape(hparse *h, fmr_npy_header *out) {
    if (!accept(h, '(')) return bad(h, "a tuple '(' for the shape");
    size_t rank = 0;
    bool trailing_comma = false;
    for (;;) {
        if (accept(h, ')')) break;
        if (rank == FMR_NPY_MAX_RANK) {
            fmr_npy_error(h->diags, "%s: the shape has more than %d dimensions (the limit)",
                          h->name, FMR_NPY_MAX_RANK);
            return FM_ERR_LIMIT;
        }
        size_t at = h->i;
        int64_t d = 0;
        fm_status st = parse_int(h, &d);
        if (st) return st;
        if (d < 0) {
            fmr_npy_error(h->diags, "%s: malformed header at byte %zu: negative dimension %lld",
                          h->name, h->base + at, (long long)d);
            return FM_ERR_FORMAT;
        }
        out->shape[rank++] = d;
        trailing_comma = accept(h, ',');
        if (!trailing_comma) {
            if (accept(h, ')')) break;
            return bad(h, "',' or ')' in the shape");
        }
    }
    if (rank == 1 && !trailing_comma) {
        fmr_npy_error(h->diags,
                      "%s: malformed header: the shape is a bare integer in parentheses, not a "
                      "tuple (a one-dimensional shape is written (N,))",
                      h->name);
        return FM_ERR_FORMAT;
    }
    out->rank = rank;
    return FM_OK;
}

static fm_status parse_dict(hparse *h, hstr *descr, fmr_npy_header *out) {
    bool seen_descr = false, seen_fortran = false, seen_shape = false;
    skip_ws(h);
    if (!accept(h, '{')) return bad(h, "'{' (the header is a Python dict)");
    for (;;) {
        if (accept(h, '}')) break;
        hstr key;
        size_t key_at = h->i;
        fm_status st = parse_string(h, &key, "a quoted key or '}'");
        if (st) return st;
        if (!accept(h, ':')) return bad(h, "':' after a key");
        bool *seen;
        if (str_is(key, "descr")) {
            seen = &seen_descr;
            skip_ws(h);
            if (peek(h, '[') || peek(h, '{')) {
                fmr_npy_error(h->diags,
                              "%s: structured dtypes are not supported (only plain numeric and "
                              "bool arrays)",
                              h->name);
                return FM_ERR_UNSUPPORTED;
            }
            st = parse_string(h, descr, "a quoted dtype such as '<f4'");
        } else if (str_is(key, "fortran_order")) {
            seen = &seen_fortran;
            skip_ws(h);
            if (accept_word(h, "True"))
                out->fortran_order = true;
            else if (accept_word(h, "False"))
                out->fortran_order = false;
            else
                st = bad(h, "True or False for 'fortran_order'");
        } else if (str_is(key, "shape")) {
            seen = &seen_shape;
            st = parse_shape(h, out);
        } else {
            char shown[ESCAPED_MAX];
            fmr_npy_error(h->diags,
                          "%s: malformed header at byte %zu: unexpected key '%s' (a .npy header "
                          "holds exactly 'descr', 'fortran_order' and 'shape')",
                          h->name, h->base + key_at, escaped(shown, key));
            return FM_ERR_FORMAT;
        }
        if (st) return st;
        if (*seen) {
            char shown[ESCAPED_MAX];
            fmr_npy_error(h->diags, "%s: malformed header at byte %zu: key '%s' appears twice",
                          h->name, h->base + key_at, escaped(shown, key));
            return FM_ERR_FORMAT;
        }
        *seen = true;
        if (accept(h, ',')) continue;
        if (accept(h, '}')) break;
        return bad(h, "',' or '}'");
    }
    skip_ws(h);
    if (h->i < h->n) return bad(h, "only padding after the header dict");
    const char *missing = !seen_descr     ? "descr"
                          : !seen_fortran ? "fortran_order"
                          : !seen_shape   ? "shape"
                                          : NULL;
    if (missing) {
        fmr_npy_error(h->diags, "%s: malformed header: key '%s' is missing", h->name, missing);
        return FM_ERR_FORMAT;
    }
    return FM_OK;
}

/* Maps numpy's type string to ours; refuses byte orders we cannot take. */
static fm_status parse_descr(hparse *h, hstr d, fmr_npy_dtype *out) {
    char order = d.len ? d.p[0] : 0;
    hstr kind = {d.p + 1, d.len ? d.len - 1 : 0};
    bool order_ok = order == '<' || order == '>' || order == '|' || order == '=';
    if (order_ok && (str_is(kind, "b1") || str_is(kind, "u1"))) {
        /* One byte has no byte order: numpy writes '|', any mark is fine. */
        *out = kind.p[0] == 'b' ? FMR_NPY_BOOL : FMR_NPY_UINT8;
        return FM_OK;
    }
    static const struct {
        const char *kind;
        fmr_npy_dtype t;
    } multi[] = {{"i4", FMR_NPY_INT32},
                 {"i8", FMR_NPY_INT64},
                 {"f2", FMR_NPY_FLOAT16},
                 {"f4", FMR_NPY_FLOAT32},
                 {"f8", FMR_NPY_FLOAT64}};
    for (size_t i = 0; order_ok && i < sizeof multi / sizeof multi[0]; i++) {
        if (!str_is(kind, multi[i].kind)) continue;
        if (order == '<') {
            *out = multi[i].t;
            return FM_OK;
        }
        if (order == '>') {
            fmr_npy_error(h->diags,
                          "%s: big-endian data ('%.*s') is not supported; save it little-endian "
                          "(numpy: a.astype('<%s'))",
                          h->name, (int)d.len, d.p, multi[i].kind);
            return FM_ERR_UNSUPPORTED;
        }
        fmr_npy_error(h->diags, "%s: dtype '%.*s' has no explicit byte order", h->name, (int)d.len,
                      d.p);
        return FM_ERR_FORMAT;
    }
    char shown[ESCAPED_MAX];
    fmr_npy_error(h->diags,
                  "%s: dtype '%s' is not supported (supported: bool, uint8, int32, int64, "
                  "float16, float32, float64, little-endian)",
                  h->name, escaped(shown, d));
    return FM_ERR_UNSUPPORTED;
}

fm_status fmr_npy_parse_header(const char *name, const char *text, size_t len, size_t base,
                               fmr_npy_header *out, fmd_diags *diags) {
    memset(out, 0, sizeof *out);
    hparse h = {text, len, 0, name, base, diags};
    hstr descr = {0};
    fm_status st = parse_dict(&h, &descr, out);
    if (st) return st;
    st = parse_descr(&h, descr, &out->dtype);
    if (st) return st;
    if (out->fortran_order) {
        fmr_npy_error(diags,
                      "%s: Fortran-order (column-major) arrays are not supported; save a C-order "
                      "array (numpy: np.ascontiguousarray(a))",
                      name);
        return FM_ERR_UNSUPPORTED;
    }
    /* Any zero dimension makes an empty array whatever the others are. */
    uint64_t count = 1;
    for (size_t i = 0; i < out->rank; i++)
        if (out->shape[i] == 0) count = 0;
    uint64_t item = fmr_npy_dtype_size(out->dtype);
    for (size_t i = 0; count && i < out->rank; i++) {
        uint64_t d = (uint64_t)out->shape[i];
        if (count > FMR_NPY_MAX_BYTES / item / d) {
            fmr_npy_error(diags, "%s: the shape describes more than %llu bytes of data (the limit)",
                          name, (unsigned long long)FMR_NPY_MAX_BYTES);
            return FM_ERR_LIMIT;
        }
        count *= d;
    }
    out->count = (size_t)count;
    out->nbytes = (size_t)(count * item);
    return FM_OK;
}
