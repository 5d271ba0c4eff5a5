#define _POSIX_C_SOURCE 200809L
#include "runtime/cuda/dynlib.h"

#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *open_first(const fmr_dynlib_spec *spec, char *err, size_t errlen) {
    const char *override = spec->env ? getenv(spec->env) : NULL;
    bool only_override = override && *override;
    size_t count = only_override ? 1 : spec->nsonames;
    for (size_t i = 0; i < count; i++) {
        const char *name = only_override ? override : spec->sonames[i];
        void *lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
        if (lib) return lib;
        const char *why = dlerror();
        if (errlen && !err[0]) {
            if (only_override)
                snprintf(err, errlen, "%s=%s: %s", spec->env, name, why ? why : "not found");
            else
                snprintf(err, errlen, "%s", why ? why : "not found");
        }
    }
    if (errlen && !err[0]) snprintf(err, errlen, "not found");
    return NULL;
}

fmr_dynlib_result fmr_dynlib_load(const fmr_dynlib_spec *spec, void *table, void **handle,
                                  char *err, size_t errlen) {
    if (errlen) err[0] = '\0';
    *handle = NULL;
    void *lib = open_first(spec, err, errlen);
    if (!lib) return FMR_DYNLIB_NOT_FOUND;
    /* Every symbol is checked before any is written, so a library that
       fails leaves the table untouched (no pointers into a closed one). */
    for (size_t i = 0; i < spec->nsyms; i++) {
        const fmr_dynlib_sym *s = &spec->syms[i];
        if (!dlsym(lib, s->name) && !(s->fallback && dlsym(lib, s->fallback))) {
            if (errlen) snprintf(err, errlen, "%s", s->name);
            dlclose(lib);
            return FMR_DYNLIB_MISSING_SYMBOL;
        }
    }
    for (size_t i = 0; i < spec->nsyms; i++) {
        const fmr_dynlib_sym *s = &spec->syms[i];
        void *addr = dlsym(lib, s->name);
        if (!addr) addr = dlsym(lib, s->fallback);
        /* POSIX guarantees a data pointer can hold a function's address,
           which is how dlsym hands it back. */
        memcpy((char *)table + s->offset, &addr, sizeof addr);
    }
    *handle = lib;
    return FMR_DYNLIB_OK;
}
