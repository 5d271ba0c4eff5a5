/* Fuzz target: the JIT cache's disk loader.
 *
 * First byte even: the rest of the bytes are written as the cache entry
 * file of a fixed key and looked up through a fresh cache: it must be
 * refused (and removed) unless it is a well-formed entry, whose payload is
 * then handed back exactly (without the folder's secret a well-formed one
 * is out of reach, so in practice: refused and removed). Odd: a valid entry is written through the cache
 * (payload from the bytes), then some of its bytes are overwritten or it is
 * truncated or extended; the lookup must hit with the same payload exactly
 * when the file is unchanged (but for the header's reserved bytes), and miss
 * otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "runtime/cuda/jit_cache.h"
#include "fuzz/fuzz_util.h"

static const char *dir(void) {
    static char d[64];
    if (!d[0]) {
        snprintf(d, sizeof d, "/tmp/fuzz_jit_%d", (int)getpid());
        mkdir(d, 0700);
    }
    return d;
}

static bool write_file(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(b, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    uint8_t key[32];
    if (!EVP_Digest("fuzz", 4, key, NULL, EVP_sha256(), NULL)) abort();
    fmr_jit_cache *c = fmr_jit_cache_create(dir(), 0);
    char *path = fmr_jit_cache_entry_path(c, key);
    if (!c || !path) abort();
    const uint8_t *got = NULL;
    size_t got_len = 0;
    if (data[0] % 2 == 0) {
        if (!write_file(path, data + 1, size - 1)) abort();
        fmr_cache_hit h = fmr_jit_cache_get(c, key, &got, &got_len);
        struct stat st;
        bool exists = stat(path, &st) == 0;
        if (h == FMR_CACHE_MEMORY) __builtin_trap();
        if (h == FMR_CACHE_MISS && exists) __builtin_trap(); /* a bad entry must be removed */
        if (h == FMR_CACHE_DISK && (got_len > size - 1 || !got)) __builtin_trap();
    } else {
        g_p = data + 1;
        g_n = size - 1;
        size_t plen = take() % 200;
        uint8_t payload[200];
        for (size_t i = 0; i < plen; i++) payload[i] = (uint8_t)take();
        fmr_jit_cache *w = fmr_jit_cache_create(dir(), 0);
        if (!w || !fmr_jit_cache_put(w, key, payload, plen)) abort();
        fmr_jit_cache_free(w);
        size_t len = 0;
        unsigned char *img = read_file(path, &len);
        if (!img) abort();
        unsigned char *orig = malloc(len ? len : 1);
        memcpy(orig, img, len);
        size_t newlen = len;
        unsigned edits = take() % 4;
        for (unsigned e = 0; e < edits && len; e++) {
            size_t off = (size_t)take() % len;
            img[off] = (uint8_t)take();
        }
        unsigned t = take();
        if (t % 5 == 1) newlen = len - (len ? 1 + take() % len : 0);
        if (t % 5 == 2) newlen = len + 1 + take() % 16;
        unsigned char *out = calloc(newlen + 1, 1);
        memcpy(out, img, newlen < len ? newlen : len);
        if (!write_file(path, out, newlen)) abort();
        /* Bytes 88..95 of the header are reserved (written 0, not read). */
        bool unchanged = newlen == len && len >= 96 && memcmp(out, orig, 88) == 0 &&
                         memcmp(out + 96, orig + 96, len - 96) == 0;
        fmr_cache_hit h = fmr_jit_cache_get(c, key, &got, &got_len);
        if (unchanged) {
            if (h != FMR_CACHE_DISK || got_len != plen || (plen && memcmp(got, payload, plen)))
                __builtin_trap();
        } else if (h != FMR_CACHE_MISS) {
            __builtin_trap();
        }
        free(out);
        free(orig);
        free(img);
    }
    unlink(path);
    free(path);
    fmr_jit_cache_free(c);
    return 0;
}
