/* Loading optional libraries (the CUDA driver, NVRTC) at run time, so the
 * library starts on machines without them. */
#ifndef FM_RUNTIME_DYNLIB_H
#define FM_RUNTIME_DYNLIB_H

#include <stddef.h>

/* Opens the first of names that loads (NULL or empty entries, such as an
 * unset environment variable, are skipped). On failure returns NULL and
 * writes the first loader error into err: the first name is the one that
 * matters to the user (the library a variable names, or the versioned
 * soname). */
void *fmr_dlopen_first(const char *const *names, size_t count, char *err, size_t errlen);

#endif
