/* Messages for names nothing declares, and for inputs of the wrong size.
 * A lowered mask keeps only what it reaches, so the wording that helps
 * (what the file does declare, where) comes from parsing its source again:
 * cheap, and only ever on the way to an error. */
#include "runtime/api/api_names.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsl/ast.h"
#include "runtime/api/api_internal.h"

/* Appends ", NAME" (or "NAME" first) while it fits, leaving room for the
 * ", ..." that says the list goes on. */
static void append_name(char *buf, size_t cap, size_t *used, bool *cut, const char *name) {
    if (*cut) return;
    size_t need = strlen(name) + (*used ? 2 : 0);
    if (*used + need + 6 >= cap) {
        snprintf(buf + *used, cap - *used, "%s...", *used ? ", " : "");
        *cut = true;
        return;
    }
    *used += (size_t)snprintf(buf + *used, cap - *used, "%s%s", *used ? ", " : "", name);
}

/* The hint for a name the file does not declare as kind: the closest
 * declared one, then every declared one. */
static void declared_hint(const fmd_program *ast, fmd_decl_kind kind, const char *name, char *hint,
                          size_t cap) {
    const char *what = fmd_decl_keyword(kind);
    const char **names = calloc(ast->count + 1, sizeof *names);
    if (!names) {
        snprintf(hint, cap, "(out of memory listing the declared %ss)", what);
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < ast->count; i++)
        if (ast->decls[i]->kind == kind) names[n++] = ast->decls[i]->name;
    const char *near = fmd_closest_name(name, names, n);
    char list[400];
    size_t used = 0;
    bool cut = false;
    list[0] = '\0';
    for (size_t i = 0; i < n; i++)
        append_name(list, sizeof list, &used, &cut, names[i]);
    if (n == 0)
        snprintf(hint, cap, "the file declares no %ss", what);
    else if (near)
        snprintf(hint, cap, "did you mean '%s'? (declared %s%s: %s)", near, what, n == 1 ? "" : "s",
                 list);
    else
        snprintf(hint, cap, "declared %s%s: %s", what, n == 1 ? "" : "s", list);
    free(names);
}

static const char *article(const char *word) {
    return word[0] && strchr("aeiou", word[0]) ? "an" : "a";
}

/* The hint for a declared name the mask does not reach: what it reaches. */
static void reached_hint(const fmc_program *p, bool input, char *hint, size_t cap) {
    const char *what = input ? "input" : "param";
    size_t n = input ? p->ninputs : p->nparams;
    if (n == 0) {
        snprintf(hint, cap, "only what a mask uses can be bound, and '%s' uses no %ss",
                 p->mask_name, what);
        return;
    }
    char list[400];
    size_t used = 0;
    bool cut = false;
    list[0] = '\0';
    for (size_t i = 0; i < n; i++)
        append_name(list, sizeof list, &used, &cut, input ? p->inputs[i].name : p->params[i].name);
    snprintf(hint, cap, "only what a mask uses can be bound; '%s' uses the %s%s %s", p->mask_name,
             what, n == 1 ? "" : "s", list);
}

void fmr_unknown_binding(fm_diagnostics *diags, const fmc_program *p, const char *name,
                         bool input) {
    if (!diags) return;
    const char *what = input ? "input" : "param";
    fmd_decl_kind kind = input ? FMD_DECL_INPUT : FMD_DECL_PARAM;
    const fmd_source *src = p->source;
    fmd_program *ast = NULL;
    if (src) {
        fmd_diags scratch;
        fmd_diags_init(&scratch);
        ast = fmd_parse(fmd_source_new(src->name, src->text, src->len), &scratch);
        fmd_diags_clear(&scratch);
    }
    const char *file = src ? src->name : "<string>";
    if (!ast) {
        fmr_error(diags, "'%s': mask '%s' has no %s named '%s'", file, p->mask_name, what, name);
        return;
    }
    const fmd_decl *same = fmd_program_find(ast, name), *mask = NULL;
    for (size_t i = 0; i < ast->count; i++)
        if (ast->decls[i]->kind == FMD_DECL_MASK && !strcmp(ast->decls[i]->name, p->mask_name))
            mask = ast->decls[i];
    char hint[512];
    fmd_diags *d = &diags->d;
    if (same && same->kind == kind) {
        reached_hint(p, input, hint, sizeof hint);
        fmd_diag_add(d, FMD_ERROR, ast->source, same->name_span, hint,
                     "mask '%s' does not use the %s '%s'", p->mask_name, what, name);
    } else if (same) {
        declared_hint(ast, kind, name, hint, sizeof hint);
        const char *other = fmd_decl_keyword(same->kind);
        fmd_diag_add(d, FMD_ERROR, ast->source, same->name_span, hint, "'%s' is %s %s, not %s %s",
                     name, article(other), other, article(what), what);
    } else {
        declared_hint(ast, kind, name, hint, sizeof hint);
        /* No place names it; the mask being bound is the nearest one that
         * matters, and it puts the file name where tools and JSON expect. */
        if (mask)
            fmd_diag_add(d, FMD_ERROR, ast->source, mask->name_span, hint,
                         "the file declares no %s named '%s'", what, name);
        else
            fmd_diag_add(d, FMD_ERROR, NULL, (fmd_span){0, 0}, hint,
                         "'%s' declares no %s named '%s'", file, what, name);
    }
    fmd_program_free(ast);
}

void fmr_input_dims_hint(const fmc_program *p, const fmc_input_info *info, const fmc_env *env,
                         char *buf, size_t cap) {
    const char *names[FMD_MAX_RANK];
    int64_t values[FMD_MAX_RANK];
    size_t n = 0;
    for (size_t k = 0; k < info->rank && k < FMD_MAX_RANK; k++) {
        const fmc_dim *dim = &info->dims[k];
        const char *nm = NULL;
        if (dim->kind == FMD_DIM_PARAM && dim->value >= 0 && (size_t)dim->value < p->nparams)
            nm = p->params[dim->value].name;
        else if (dim->kind == FMD_DIM_SHAPE)
            nm = fmd_builtin_var_name((fmd_builtin_var)dim->value);
        bool seen = !nm;
        for (size_t j = 0; j < n && !seen; j++)
            seen = !strcmp(names[j], nm);
        if (seen) continue;
        names[n] = nm;
        values[n++] = fmc_dim_value(dim, env);
    }
    if (n == 0) {
        snprintf(buf, cap, "the declaration fixes every dimension");
        return;
    }
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && used < cap; i++) {
        int w = snprintf(buf + used, cap - used, "%s%s is %lld",
                         i == 0       ? ""
                         : i + 1 == n ? " and "
                                      : ", ",
                         names[i], (long long)values[i]);
        if (w < 0) return;
        used += (size_t)w;
    }
    if (used < cap) snprintf(buf + used, cap - used, " here");
}
