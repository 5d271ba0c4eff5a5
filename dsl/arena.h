/* One arena per compilation: every AST node, string and table of a compile
 * lives here and is released at once by fmd_arena_free. */
#ifndef FM_DSL_ARENA_H
#define FM_DSL_ARENA_H

#include <stddef.h>

typedef struct fmd_arena_chunk fmd_arena_chunk;

typedef struct fmd_arena {
    fmd_arena_chunk *head;
    size_t total; /* bytes handed out, for resource limits */
} fmd_arena;

void fmd_arena_init(fmd_arena *a);
void fmd_arena_free(fmd_arena *a);
/* Zeroed, 16-byte aligned memory; NULL only when malloc fails. */
void *fmd_arena_alloc(fmd_arena *a, size_t size);
/* Like fmd_arena_alloc(n * size) but NULL on multiplication overflow. */
void *fmd_arena_array(fmd_arena *a, size_t n, size_t size);
char *fmd_arena_strndup(fmd_arena *a, const char *s, size_t n);
char *fmd_arena_strdup(fmd_arena *a, const char *s);
/* Grows *items (with *cap slots of elem bytes) to hold at least need slots,
 * doubling; the old block stays in the arena. 0 on success, -1 on failure. */
int fmd_arena_grow(fmd_arena *a, void **items, size_t *cap, size_t need, size_t elem);

#endif
