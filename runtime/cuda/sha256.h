/* SHA-256 (FIPS 180-4), for JIT cache keys and entry checksums. */
#ifndef FM_RUNTIME_SHA256_H
#define FM_RUNTIME_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct fmr_sha256_ctx {
    uint32_t h[8];
    uint64_t total; /* bytes hashed so far */
    uint8_t buf[64];
    size_t nbuf;
} fmr_sha256_ctx;

void fmr_sha256_init(fmr_sha256_ctx *s);
void fmr_sha256_update(fmr_sha256_ctx *s, const void *data, size_t len);
void fmr_sha256_final(fmr_sha256_ctx *s, uint8_t out[32]);
/* One-shot digest. */
void fmr_sha256(const void *data, size_t len, uint8_t out[32]);
/* 64 lowercase hex digits and a NUL. */
void fmr_sha256_hex(const uint8_t digest[32], char out[65]);

#endif
