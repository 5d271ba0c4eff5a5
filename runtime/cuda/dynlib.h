/* Loading optional libraries (the CUDA driver, NVRTC) at run time, so the
 * library starts on machines without them. Both go through one rule: which
 * files are tried, in which order, and how their function tables are
 * filled. */
#ifndef FM_RUNTIME_DYNLIB_H
#define FM_RUNTIME_DYNLIB_H

#include <stddef.h>

/* One entry of a function table: the symbol, an older name tried when the
 * library lacks it (NULL: none), and where its address goes (offsetof the
 * function pointer in the caller's table struct). */
typedef struct fmr_dynlib_sym {
    const char *name;
    const char *fallback;
    size_t offset;
} fmr_dynlib_sym;

typedef struct fmr_dynlib_spec {
    const char *env;            /* the FLEXMASK_* variable naming a file to load instead */
    const char *const *sonames; /* the defaults, most wanted first */
    size_t nsonames;
    const fmr_dynlib_sym *syms;
    size_t nsyms;
} fmr_dynlib_spec;

typedef enum fmr_dynlib_result {
    FMR_DYNLIB_OK,
    FMR_DYNLIB_NOT_FOUND,     /* err: the loader's message */
    FMR_DYNLIB_MISSING_SYMBOL /* err: the symbol's name */
} fmr_dynlib_result;

/* Opens the library and writes every symbol's address into table. When
 * spec->env is set and not empty only the file it names is tried (the user
 * asked for that one); otherwise the sonames in order, and err tells why
 * the first failed (the versioned soname is the one that matters). A
 * library missing a symbol is closed again. On FMR_DYNLIB_OK *handle is the
 * open library. */
fmr_dynlib_result fmr_dynlib_load(const fmr_dynlib_spec *spec, void *table, void **handle,
                                  char *err, size_t errlen);

#endif
