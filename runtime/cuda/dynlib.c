#include "runtime/cuda/dynlib.h"

#include <dlfcn.h>
#include <stdio.h>

void *fmr_dlopen_first(const char *const *names, size_t count, char *err, size_t errlen) {
    if (errlen) err[0] = '\0';
    for (size_t i = 0; i < count; i++) {
        if (!names[i] || !*names[i]) continue;
        void *lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (lib) return lib;
        const char *why = dlerror();
        if (errlen && !err[0]) snprintf(err, errlen, "%s", why ? why : "not found");
    }
    if (errlen && !err[0]) snprintf(err, errlen, "not found");
    return NULL;
}
