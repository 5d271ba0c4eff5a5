/* Fuzz target: the streaming .npy reader (fmr_npy_load_stream), the path
 * pipes, FIFOs and standard input take, against the reader of memory
 * buffers (which knows the size up front).
 *
 * Input: byte 0 chooses how the stream delivers (bits 0-5 seed the sizes
 * of the pieces each read returns, from 1 byte to whole; bit 6 unbuffered
 * stdio; bit 7 a read error), byte 1 where the read error strikes (at byte
 * 64 * it of the stream), the rest is the stream's bytes.
 *
 * Without a read error, the stream must give exactly the memory reader's
 * status (short, long and exact inputs alike) and, when both load, the
 * same array byte for byte. A read error the reader met must give
 * FM_ERR_IO; a failed load must leave *out empty. */
#define _GNU_SOURCE /* fopencookie */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "runtime/interop/npy.h"

typedef struct cookie {
    const unsigned char *p;
    size_t n, pos;
    uint32_t rng; /* piece sizes */
    bool fail;    /* a read error at fail_at */
    size_t fail_at;
    bool failed; /* the reader was told of the error */
} cookie;

static ssize_t cookie_read(void *c_, char *buf, size_t size) {
    cookie *c = c_;
    if (c->fail && c->pos >= c->fail_at) {
        c->failed = true;
        errno = EIO;
        return -1;
    }
    c->rng ^= c->rng << 13;
    c->rng ^= c->rng >> 17;
    c->rng ^= c->rng << 5;
    size_t piece = c->rng % 4 == 0 ? size : 1 + c->rng % 97;
    size_t k = c->n - c->pos;
    if (k > size) k = size;
    if (k > piece) k = piece;
    if (c->fail && c->pos + k > c->fail_at) k = c->fail_at - c->pos;
    memcpy(buf, c->p + c->pos, k);
    c->pos += k;
    return (ssize_t)k;
}

static bool same_array(const fmr_npy *a, const fmr_npy *b) {
    return a->dtype == b->dtype && a->rank == b->rank && a->count == b->count &&
           a->nbytes == b->nbytes && memcmp(a->shape, b->shape, sizeof a->shape) == 0 &&
           memcmp(a->data, b->data, a->nbytes) == 0;
}

static bool empty(const fmr_npy *a) {
    return !a->data && a->rank == 0 && a->nbytes == 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (size < 2) return 0;
    unsigned mode = data[0], at = data[1];
    cookie c = {.p = data + 2, .n = size - 2, .rng = 2463534242u ^ (mode & 63) * 2654435761u};
    c.fail = (mode & 128) != 0;
    c.fail_at = (size_t)at * 64;
    cookie_io_functions_t io = {.read = cookie_read};
    FILE *f = fopencookie(&c, "r", io);
    if (!f) return 0;
    if (mode & 64) setvbuf(f, NULL, _IONBF, 0);

    fmd_diags dm, ds;
    fmd_diags_init(&dm);
    fmd_diags_init(&ds);
    fmr_npy m, s;
    fm_status sm = fmr_npy_load_memory("fuzz.npy", c.p, c.n, &m, &dm);
    fm_status ss = fmr_npy_load_stream("fuzz.npy", f, &s, &ds);
    fclose(f);

    if (c.failed) {
        if (ss != FM_ERR_IO) {
            fprintf(stderr, "a read error gave %s\n", fm_status_string(ss));
            __builtin_trap();
        }
    } else if (ss != sm) {
        fprintf(stderr, "stream %s, memory %s\n", fm_status_string(ss), fm_status_string(sm));
        for (size_t i = 0; i < ds.count; i++)
            fprintf(stderr, "  stream: %s\n", ds.items[i].message);
        for (size_t i = 0; i < dm.count; i++)
            fprintf(stderr, "  memory: %s\n", dm.items[i].message);
        __builtin_trap();
    } else if (ss == FM_OK && !same_array(&s, &m)) {
        fprintf(stderr, "stream and memory loads differ\n");
        __builtin_trap();
    }
    if ((ss != FM_OK && (!empty(&s) || ds.count == 0)) || (ss == FM_OK && ds.count != 0))
        __builtin_trap();
    fmr_npy_free(&m);
    fmr_npy_free(&s);
    fmd_diags_clear(&dm);
    fmd_diags_clear(&ds);
    return 0;
}
