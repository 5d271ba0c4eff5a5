#include "dsl/ast.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsl/parse_internal.h"

const char *fmd_expr_kind_name(fmd_expr_kind k) {
    static const char *const names[] = {
#define X(name, desc) desc,
        FMD_EXPR_KINDS(X)
#undef X
    };
    return (unsigned)k < FMD_EXPR_KIND_COUNT ? names[k] : "?";
}

const char *fmd_decl_keyword(fmd_decl_kind k) {
    static const char *const names[] = {
#define X(name, kw) kw,
        FMD_DECL_KINDS(X)
#undef X
    };
    return (unsigned)k < FMD_DECL_KIND_COUNT ? names[k] : "?";
}

const char *fmd_binop_spelling(fmd_binop op) {
    static const char *const names[] = {
#define X(name, spelling, cls) spelling,
        FMD_BINOPS(X)
#undef X
    };
    return (unsigned)op < FMD_BINOP_COUNT ? names[op] : "?";
}

fmd_prec fmd_binop_prec(fmd_binop op) {
    static const fmd_prec precs[] = {
#define X(name, spelling, cls) FMD_PREC_##cls,
        FMD_BINOPS(X)
#undef X
    };
    return (unsigned)op < FMD_BINOP_COUNT ? precs[op] : FMD_PREC_OR;
}

const char *fmd_builtin_var_name(fmd_builtin_var v) {
    static const char *const names[] = {
#define X(name, spelling) spelling,
        FMD_BUILTIN_VARS(X)
#undef X
    };
    return (unsigned)v < FMD_VAR_COUNT ? names[v] : "?";
}

const char *fmd_type_name(fmd_type t) {
    switch (t) {
    case FMD_TYPE_INT: return "int";
    case FMD_TYPE_BOOL: return "bool";
    case FMD_TYPE_ERROR: return "error";
    case FMD_TYPE_UNKNOWN: break;
    }
    return "unknown";
}

fmd_decl *fmd_program_find(const fmd_program *p, const char *name) {
    if (!p || !name) return NULL;
    for (size_t i = 0; i < p->count; i++)
        if (!strcmp(p->decls[i]->name, name)) return p->decls[i];
    return NULL;
}

bool fmd_program_add_decl(fmd_program *p, fmd_decl *d) {
    void *items = p->decls;
    if (fmd_arena_grow(&p->arena, &items, &p->cap, p->count + 1, sizeof *p->decls)) return false;
    p->decls = items;
    size_t same = 0;
    for (size_t i = p->count; i > 0 && same == 0; i--)
        if (p->decls[i - 1]->kind == d->kind) same = p->decls[i - 1]->index + 1;
    d->index = same;
    p->decls[p->count++] = d;
    return true;
}

bool fmd_parse_error(fmd_parse_ctx *ctx, fmd_span span, const char *hint, const char *fmt, ...) {
    ctx->prog->parse_errors++;
    va_list ap;
    va_start(ap, fmt);
    bool ok = fmd_diag_addv(ctx->diags, FMD_ERROR, ctx->src, span, hint, fmt, ap);
    va_end(ap);
    if (!ok) ctx->stop = true;
    return ok;
}

void fmd_program_free(fmd_program *p) {
    if (!p) return;
    fmd_arena_free(&p->arena);
    fmd_source_free(p->source);
    free(p);
}

fmd_source *fmd_source_read_file(const char *path, fmd_diags *diags, fmd_read_status *why) {
    fmd_span none = {0, 0};
    fmd_read_status dummy;
    if (!why) why = &dummy;
    *why = FMD_READ_OK;
    FILE *f = fopen(path, "rb");
    if (!f) {
        fmd_diag_add(diags, FMD_ERROR, NULL, none, NULL, "cannot read '%s': %s", path,
                     strerror(errno));
        *why = FMD_READ_IO;
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    bool too_big = false, failed = buf == NULL;
    int err = ENOMEM;
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) {
            if (ferror(f)) {
                failed = true;
                err = errno ? errno : EIO;
            }
            break;
        }
        if (n > FMD_MAX_SOURCE_BYTES) {
            too_big = true;
            break;
        }
        if (n == cap) {
            /* One byte past the limit is enough to know it is too big. */
            size_t ncap = cap * 2 > FMD_MAX_SOURCE_BYTES + 1 ? FMD_MAX_SOURCE_BYTES + 1 : cap * 2;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                failed = true;
                break;
            }
            buf = nb;
            cap = ncap;
        }
    }
    fclose(f);
    fmd_source *src = NULL;
    if (too_big) *why = FMD_READ_TOO_BIG;
    else if (failed) *why = err == ENOMEM ? FMD_READ_NO_MEMORY : FMD_READ_IO;
    if (too_big)
        fmd_diag_add(diags, FMD_ERROR, NULL, none, "split the file or generate a shorter mask",
                     "'%s' is larger than the %u MiB limit for mask files", path,
                     FMD_MAX_SOURCE_BYTES >> 20);
    else if (failed)
        fmd_diag_add(diags, FMD_ERROR, NULL, none, NULL, "cannot read '%s': %s", path,
                     strerror(err));
    else if (!(src = fmd_source_new(path, buf, n)) && (*why = FMD_READ_NO_MEMORY))
        fmd_diag_add(diags, FMD_ERROR, NULL, none, NULL, "cannot read '%s': out of memory", path);
    free(buf);
    return src;
}

void fmd_diags_sort(fmd_diags *d, size_t from) {
    /* Insertion sort: the list is short (capped) and mostly in order. */
    for (size_t i = from + 1; i < d->count; i++) {
        fmd_diag x = d->items[i];
        size_t j = i;
        while (j > from && d->items[j - 1].span_start > x.span_start) {
            d->items[j] = d->items[j - 1];
            j--;
        }
        d->items[j] = x;
    }
}

