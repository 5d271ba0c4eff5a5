#include "dsl/diag.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static char *dup_n(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

fmd_source *fmd_source_new(const char *name, const char *text, size_t len) {
    if (len > FMD_MAX_SOURCE_BYTES) return NULL;
    fmd_source *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->name = dup_n(name ? name : "<string>", strlen(name ? name : "<string>"));
    s->text = malloc(len + 1);
    size_t nl = 1;
    for (size_t i = 0; i < len; i++) nl += text[i] == '\n';
    s->line_starts = malloc(nl * sizeof *s->line_starts);
    if (!s->name || !s->text || !s->line_starts) {
        fmd_source_free(s);
        return NULL;
    }
    if (len) memcpy(s->text, text, len);
    s->text[len] = '\0';
    s->len = len;
    s->line_starts[0] = 0;
    s->nlines = 1;
    for (size_t i = 0; i < len; i++)
        if (text[i] == '\n') s->line_starts[s->nlines++] = (uint32_t)(i + 1);
    return s;
}

void fmd_source_free(fmd_source *s) {
    if (!s) return;
    free(s->name);
    free(s->text);
    free(s->line_starts);
    free(s);
}

static size_t line_index(const fmd_source *src, uint32_t offset) {
    size_t lo = 0, hi = src->nlines; /* last line start <= offset */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (src->line_starts[mid] <= offset) lo = mid;
        else hi = mid;
    }
    return lo;
}

void fmd_source_position(const fmd_source *src, uint32_t offset, int *line, int *col) {
    if (offset > src->len) offset = (uint32_t)src->len;
    size_t li = line_index(src, offset);
    *line = (int)li + 1;
    *col = (int)(offset - src->line_starts[li]) + 1;
}

void fmd_diags_init(fmd_diags *d) {
    memset(d, 0, sizeof *d);
    d->max_errors = FMD_DEFAULT_MAX_ERRORS;
}

static void diag_free(fmd_diag *x) {
    free(x->file);
    free(x->message);
    free(x->hint);
    free(x->source_line);
}

void fmd_diags_clear(fmd_diags *d) {
    for (size_t i = 0; i < d->count; i++) diag_free(&d->items[i]);
    free(d->items);
    size_t max = d->max_errors;
    memset(d, 0, sizeof *d);
    d->max_errors = max;
}

bool fmd_diag_addv(fmd_diags *d, fmd_severity sev, const fmd_source *src, fmd_span span,
                   const char *hint, const char *fmt, va_list ap) {
    if (sev == FMD_ERROR && d->max_errors && d->errors >= d->max_errors) {
        d->truncated = true;
        return false;
    }
    if (d->count == d->cap) {
        size_t ncap = d->cap ? d->cap * 2 : 8;
        fmd_diag *n = realloc(d->items, ncap * sizeof *n);
        if (!n) {
            d->oom = true;
            if (sev == FMD_ERROR) d->errors++;
            return false;
        }
        d->items = n;
        d->cap = ncap;
    }
    fmd_diag x;
    memset(&x, 0, sizeof x);
    x.severity = sev;
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    x.message = malloc(n > 0 ? (size_t)n + 1 : 1);
    if (x.message) vsnprintf(x.message, (size_t)n + 1, fmt, ap);
    if (hint) x.hint = dup_n(hint, strlen(hint));
    if (src) {
        if (span.start > src->len) span.start = (uint32_t)src->len;
        if (span.end < span.start) span.end = span.start;
        if (span.end > src->len) span.end = (uint32_t)src->len;
        x.file = dup_n(src->name, strlen(src->name));
        fmd_source_position(src, span.start, &x.line, &x.col);
        fmd_source_position(src, span.end, &x.end_line, &x.end_col);
        size_t li = (size_t)x.line - 1;
        uint32_t ls = src->line_starts[li];
        uint32_t le = li + 1 < src->nlines ? src->line_starts[li + 1] - 1 : (uint32_t)src->len;
        if (le > ls && src->text[le - 1] == '\r') le--;
        x.source_line = dup_n(src->text + ls, le - ls);
        /* A NUL byte would end the echoed line early: show it as a control
         * character (rendered '?') so the caret still lines up. */
        if (x.source_line)
            for (uint32_t i = 0; i < le - ls; i++)
                if (x.source_line[i] == '\0') x.source_line[i] = '\x01';
        x.span_start = span.start;
        x.span_end = span.end;
    }
    if (!x.message || (hint && !x.hint) || (src && (!x.file || !x.source_line))) {
        diag_free(&x);
        d->oom = true;
        if (sev == FMD_ERROR) d->errors++;
        return false;
    }
    d->items[d->count++] = x;
    if (sev == FMD_ERROR) d->errors++;
    return true;
}

bool fmd_diag_add(fmd_diags *d, fmd_severity sev, const fmd_source *src, fmd_span span,
                  const char *hint, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    bool ok = fmd_diag_addv(d, sev, src, span, hint, fmt, ap);
    va_end(ap);
    return ok;
}

void fmd_diags_move(fmd_diags *dst, fmd_diags *src) {
    for (size_t i = 0; i < src->count; i++) {
        fmd_diag *x = &src->items[i];
        if (dst->count == dst->cap) {
            size_t ncap = dst->cap ? dst->cap * 2 : 8;
            fmd_diag *n = realloc(dst->items, ncap * sizeof *n);
            if (!n) {
                dst->oom = true;
                diag_free(x);
                continue;
            }
            dst->items = n;
            dst->cap = ncap;
        }
        dst->items[dst->count++] = *x;
        if (x->severity == FMD_ERROR) dst->errors++;
    }
    dst->truncated |= src->truncated;
    dst->oom |= src->oom;
    free(src->items);
    size_t max = src->max_errors;
    memset(src, 0, sizeof *src);
    src->max_errors = max;
}

const char *fmd_severity_name(fmd_severity sev) {
    switch (sev) {
    case FMD_ERROR: return "error";
    case FMD_WARNING: return "warning";
    case FMD_NOTE: return "note";
    }
    return "error";
}

size_t fmd_utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) len = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, min = 0x10000;
    else return 0;
    if (len > n) return 0;
    unsigned cp = c & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

/* Bytes of the display unit at s[i]: a valid UTF-8 character, or one byte
 * (a control byte or a byte that is not valid UTF-8, echoed as '?'). */
static size_t unit_len(const unsigned char *s, size_t n, size_t i) {
    if (s[i] < 0x80) return 1;
    size_t l = fmd_utf8_len(s + i, n - i);
    return l ? l : 1;
}

/* Whether the unit at s[i] (l bytes) may reach a terminal as it is: not a
 * C0 control, DEL, a C1 control (U+0080..U+009F, which some terminals obey
 * as escapes even in UTF-8) or a byte that is not UTF-8. Tab is left to
 * the caller. */
static bool unit_printable(const unsigned char *s, size_t i, size_t l) {
    if (s[i] < 0x80) return s[i] >= 0x20 && s[i] != 0x7F;
    return l > 1 && !(s[i] == 0xC2 && s[i + 1] < 0xA0);
}

bool fmd_needs_escape(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    for (size_t i = 0; i < n;) {
        size_t l = unit_len(s, n, i);
        if (!unit_printable(s, i, l)) return true;
        i += l;
    }
    return false;
}

size_t fmd_escape(char *dst, size_t cap, const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t o = 0;
    if (cap == 0) return 0;
    for (size_t i = 0; i < n;) {
        size_t l = unit_len(s, n, i);
        bool as_is = unit_printable(s, i, l);
        size_t need = as_is ? l : 4 * l;
        if (o + need >= cap) break; /* whole units only */
        if (as_is) {
            memcpy(dst + o, s + i, l);
            o += l;
        } else {
            for (size_t k = 0; k < l; k++, o += 4)
                snprintf(dst + o, 5, "\\x%02x", s[i + k]);
        }
        i += l;
    }
    dst[o] = '\0';
    return o;
}

/* Longest echoed source line (in bytes); a longer one is shown as a window
 * around the span, so a generated 16 MiB one-line file does not flood the
 * terminal with each error. */
enum { ECHO_MAX = 160, ECHO_BEFORE = 60 };

/* Echoes source line s[ws, we) safely (control bytes and invalid UTF-8
 * become '?', one column each), then the caret line under [start, end). */
static void put_source_and_carets(const unsigned char *s, size_t n, size_t start, size_t end,
                                  FILE *out) {
    size_t ws = 0, we = n;
    if (n > ECHO_MAX) {
        ws = start > ECHO_BEFORE ? start - ECHO_BEFORE : 0;
        while (ws > 0 && (s[ws] & 0xC0) == 0x80) ws--;
        we = ws + ECHO_MAX < n ? ws + ECHO_MAX : n;
        while (we < n && (s[we] & 0xC0) == 0x80) we++;
    }
    if (ws > 0) fputs("...", out);
    for (size_t i = ws; i < we;) {
        size_t l = unit_len(s, we, i);
        if (s[i] == '\t') fputc('\t', out);
        else if (!unit_printable(s, i, l)) fputc('?', out);
        else fwrite(s + i, 1, l, out);
        i += l;
    }
    if (we < n) fputs("...", out);
    fputc('\n', out);
    if (ws > 0) fputs("   ", out);
    size_t i = ws;
    for (; i < we && i < start; i += unit_len(s, we, i)) fputc(s[i] == '\t' ? '\t' : ' ', out);
    bool any = false;
    for (; i < we && i < end; i += unit_len(s, we, i)) {
        fputc('^', out);
        any = true;
    }
    if (!any) fputc('^', out); /* a point at the end of the line */
    fputc('\n', out);
}

void fmd_diag_render_text(const fmd_diag *d, FILE *out) {
    if (d->file)
        fprintf(out, "%s:%d:%d: %s: %s\n", d->file, d->line, d->col,
                fmd_severity_name(d->severity), d->message);
    else
        fprintf(out, "%s: %s\n", fmd_severity_name(d->severity), d->message);
    if (d->source_line) {
        /* The whole span on its first line, at least one caret. */
        size_t n = strlen(d->source_line);
        size_t start = (size_t)d->col - 1;
        size_t end = d->end_line == d->line ? (size_t)d->end_col - 1 : n;
        if (end > n) end = n;
        if (end <= start) end = start + 1;
        put_source_and_carets((const unsigned char *)d->source_line, n, start, end, out);
    }
    if (d->hint) fprintf(out, "hint: %s\n", d->hint);
}

void fmd_json_string(FILE *out, const char *str) {
    fmd_json_string_n(out, str, strlen(str));
}

void fmd_json_string_n(FILE *out, const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    fputc('"', out);
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            fputc('\\', out);
            fputc(c, out);
            i++;
        } else if (c == '\n') {
            fputs("\\n", out);
            i++;
        } else if (c == '\t') {
            fputs("\\t", out);
            i++;
        } else if (c == '\r') {
            fputs("\\r", out);
            i++;
        } else if (c < 0x20 || c == 0x7F) {
            fprintf(out, "\\u%04x", c);
            i++;
        } else {
            size_t l = fmd_utf8_len(s + i, n - i);
            if (l == 0) {
                fputs("\\ufffd", out);
                i++;
            } else {
                fwrite(s + i, 1, l, out);
                i += l;
            }
        }
    }
    fputc('"', out);
}

void fmd_diag_render_json(const fmd_diag *d, FILE *out) {
    fputs("{\"file\": ", out);
    if (d->file) fmd_json_string(out, d->file);
    else fputs("null", out);
    fprintf(out, ", \"line\": %d, \"col\": %d, \"end_line\": %d, \"end_col\": %d, \"severity\": ",
            d->line, d->col, d->end_line, d->end_col);
    fmd_json_string(out, fmd_severity_name(d->severity));
    fputs(", \"message\": ", out);
    fmd_json_string(out, d->message);
    fputs(", \"hint\": ", out);
    if (d->hint) fmd_json_string(out, d->hint);
    else fputs("null", out);
    fputs("}\n", out);
}

void fmd_diags_render(const fmd_diags *d, FILE *out, bool json) {
    for (size_t i = 0; i < d->count; i++) {
        if (json) fmd_diag_render_json(&d->items[i], out);
        else fmd_diag_render_text(&d->items[i], out);
    }
    if (d->truncated && !json)
        fprintf(out, "error: too many errors (%zu shown); stopping\n", d->max_errors);
}

size_t fmd_edit_distance(const char *a, const char *b, size_t cap) {
    size_t la = strlen(a), lb = strlen(b);
    if ((la > lb ? la - lb : lb - la) > cap) return cap + 1;
    if (lb > 63) return cap + 1;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t prev = row[0], best;
        row[0] = i;
        best = row[0];
        for (size_t j = 1; j <= lb; j++) {
            size_t cur = row[j];
            size_t sub = prev + (a[i - 1] != b[j - 1]);
            size_t del = row[j] + 1, ins = row[j - 1] + 1;
            row[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
            if (row[j] < best) best = row[j];
            prev = cur;
        }
        if (best > cap) return cap + 1;
    }
    return row[lb];
}

void fmd_closest_init(fmd_closest *c, const char *name) {
    size_t len = strlen(name);
    c->name = name;
    c->limit = len <= 1 ? 0 : len <= 2 ? 1 : len <= 5 ? 2 : 3;
    c->best = c->limit + 1;
    c->found = NULL;
}

void fmd_closest_consider(fmd_closest *c, const char *cand) {
    size_t d = strcasecmp(cand, c->name) == 0 ? 0 : fmd_edit_distance(c->name, cand, c->limit);
    if (d < c->best) {
        c->best = d;
        c->found = cand;
    }
}

const char *fmd_closest_name(const char *name, const char *const *cands, size_t n) {
    fmd_closest c;
    fmd_closest_init(&c, name);
    for (size_t i = 0; i < n; i++) fmd_closest_consider(&c, cands[i]);
    return c.found;
}
