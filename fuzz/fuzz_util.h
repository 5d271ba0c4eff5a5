/* Helpers every fuzz target uses: the input as a stream of choices, and
 * reading a file back whole. Each target is its own program, so these are
 * static and each includes the header once. */
#ifndef FM_FUZZ_UTIL_H
#define FM_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* The fuzz input not yet consumed (set by the entry point). */
static const uint8_t *g_p;
static size_t g_n;

/* The next byte of the input, 0 once it runs out (so every input decodes). */
static inline unsigned take(void) {
    if (!g_n) return 0;
    g_n--;
    return *g_p++;
}

/* A file's bytes (caller frees) and length; NULL when it cannot be read. */
static inline unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(n > 0 ? (size_t)n : 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

#endif
