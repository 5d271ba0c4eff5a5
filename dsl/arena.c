#include "dsl/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct fmd_arena_chunk {
    fmd_arena_chunk *next;
    size_t used, size;
    _Alignas(16) unsigned char data[];
};

enum { FMD_ARENA_CHUNK = 64 * 1024 };

void fmd_arena_init(fmd_arena *a) {
    a->head = NULL;
    a->total = 0;
}

void fmd_arena_free(fmd_arena *a) {
    if (!a) return;
    fmd_arena_chunk *c = a->head;
    while (c) {
        fmd_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->total = 0;
}

void *fmd_arena_alloc(fmd_arena *a, size_t size) {
    if (size > SIZE_MAX - 32) return NULL;
    size_t need = (size + 15) & ~(size_t)15;
    if (need == 0) need = 16;
    fmd_arena_chunk *c = a->head;
    if (!c || c->size - c->used < need) {
        size_t cap = need > FMD_ARENA_CHUNK ? need : FMD_ARENA_CHUNK;
        c = malloc(sizeof *c + cap);
        if (!c) return NULL;
        c->used = 0;
        c->size = cap;
        /* A big block gets its own chunk behind the current one, so the
         * current chunk's free space is not wasted. */
        if (a->head && need > FMD_ARENA_CHUNK) {
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }
    void *p = c->data + c->used;
    c->used += need;
    a->total += need;
    memset(p, 0, size);
    return p;
}

void *fmd_arena_array(fmd_arena *a, size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) return NULL;
    return fmd_arena_alloc(a, n * size);
}

char *fmd_arena_strndup(fmd_arena *a, const char *s, size_t n) {
    char *p = fmd_arena_alloc(a, n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *fmd_arena_strdup(fmd_arena *a, const char *s) {
    return fmd_arena_strndup(a, s, strlen(s));
}

int fmd_arena_grow(fmd_arena *a, void **items, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t ncap = *cap ? *cap : 8;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2) return -1;
        ncap *= 2;
    }
    void *p = fmd_arena_array(a, ncap, elem);
    if (!p) return -1;
    if (*cap) memcpy(p, *items, *cap * elem);
    *items = p;
    *cap = ncap;
    return 0;
}
