/* Fuzz target: the safetensors BlockMask reader and writer.
 *
 * First byte even: the rest is a file image handed straight to the loader.
 * Odd: a small BlockMask (one of a few masks, shape, params and input data
 * from the bytes) is saved, loaded back, which must give the same tile
 * lists, and then loaded again with a few of its bytes overwritten by the
 * fuzz bytes (must fail cleanly or load something consistent). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flexmask.h"
#include "fuzz/fuzz_util.h"

static const char *const masks[] = {
    "mask m = kv <= q;\n",
    "param w = 5;\nmask m = kv <= q && q - kv < w;\n",
    "input doc[KV_LEN];\ninput qdoc[Q_LEN];\nmask m = qdoc[q] == doc[kv] && kv <= q;\n",
    "mask m = (b + h) % 2 == 0 || kv <= q;\n",
    "param n;\ninput lens[BATCH];\nmask m = kv < min(lens[b], n) || q % 3 == 0;\n",
};

static bool same_lists(const fm_blockmask *a, const fm_blockmask *b) {
    fm_blockmask_info ia, ib;
    if (fm_blockmask_get_info(a, &ia) != FM_OK || fm_blockmask_get_info(b, &ib) != FM_OK)
        return false;
    if (memcmp(&ia.shape, &ib.shape, sizeof ia.shape) || ia.block_q != ib.block_q ||
        ia.block_kv != ib.block_kv || ia.full_tiles != ib.full_tiles ||
        ia.partial_tiles != ib.partial_tiles)
        return false;
    for (int64_t bb = 0; bb < ia.shape.batch; bb++)
        for (int64_t h = 0; h < ia.shape.heads; h++)
            for (int64_t i = 0; i < ia.num_q_blocks; i++) {
                const int32_t *f1, *p1, *f2, *p2;
                int64_t nf1, np1, nf2, np2;
                if (fm_blockmask_row(a, bb, h, i, &f1, &nf1, &p1, &np1) != FM_OK ||
                    fm_blockmask_row(b, bb, h, i, &f2, &nf2, &p2, &np2) != FM_OK || nf1 != nf2 ||
                    np1 != np2 || memcmp(f1, f2, (size_t)nf1 * 4) || memcmp(p1, p2, (size_t)np1 * 4))
                    return false;
            }
    return true;
}

/* A consistent BlockMask must answer its own queries without faults. */
static void probe(const fm_blockmask *m) {
    fm_blockmask_info info;
    if (fm_blockmask_get_info(m, &info) != FM_OK) __builtin_trap();
    const int32_t *f, *p;
    int64_t nf, np;
    if (fm_blockmask_row(m, 0, 0, 0, &f, &nf, &p, &np) != FM_OK) __builtin_trap();
    bool v;
    if (fm_blockmask_eval(m, 0, 0, 0, 0, &v) != FM_OK) __builtin_trap();
}

static void round_trip(void) {
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "/tmp/fuzz_st_%d.safetensors", (int)getpid());
    const char *src = masks[take() % (sizeof masks / sizeof masks[0])];
    fm_diagnostics *diags = fm_diagnostics_create();
    fm_program *prog = NULL;
    fm_mask *mask = NULL;
    fm_bindings *bind = NULL;
    fm_blockmask *bm = NULL, *back = NULL;
    int32_t *arrays[4] = {0};
    fm_shape s = {1 + take() % 3, 1 + take() % 3, 1 + take() % 70, 1 + take() % 70};
    fm_build_options opts = {.struct_size = sizeof(fm_build_options), .block_q = 1 + take() % 32, .block_kv = 1 + take() % 32};
    if (fm_compile_string("rt.mask", src, strlen(src), diags, &prog) != FM_OK ||
        fm_mask_select(prog, NULL, diags, &mask) != FM_OK ||
        fm_bindings_create(mask, &bind) != FM_OK)
        __builtin_trap();
    for (size_t i = 0; i < fm_mask_param_count(mask); i++)
        fm_bindings_set_param(bind, fm_mask_param_name(mask, i), (int64_t)(take() % 50) - 5, diags);
    for (size_t i = 0; i < fm_mask_input_count(mask) && i < 4; i++) {
        const char *name = fm_mask_input_name(mask, i);
        int64_t n = !strcmp(name, "lens") ? s.batch : !strcmp(name, "qdoc") ? s.q_len : s.kv_len;
        arrays[i] = malloc((size_t)n * 4);
        int32_t cur = 0;
        for (int64_t k = 0; k < n; k++) {
            unsigned v = take();
            cur += v & 1;
            arrays[i][k] = !strcmp(name, "lens") ? (int32_t)(v % 80) : cur;
        }
        fm_bindings_set_input(bind, name, arrays[i], 1, &n, FM_COPY, diags);
    }
    if (fm_blockmask_build(mask, bind, s, &opts, diags, &bm) != FM_OK) goto done;
    if (fm_blockmask_save_safetensors(bm, path, diags) != FM_OK) __builtin_trap();
    size_t len = 0;
    unsigned char *img = read_file(path, &len);
    unlink(path);
    if (!img) __builtin_trap();
    if (fm_blockmask_load_safetensors_memory("rt.safetensors", img, len, diags, &back) != FM_OK ||
        !same_lists(bm, back)) {
        char *t = fm_diagnostics_format(diags, false);
        fprintf(stderr, "round trip failed:\n%s", t ? t : "");
        __builtin_trap();
    }
    fm_blockmask_free(back);
    back = NULL;
    /* Overwrite a few bytes (offset, value pairs from the fuzz bytes). */
    unsigned edits = take() % 8;
    for (unsigned e = 0; e < edits && len; e++) {
        size_t off = ((size_t)take() << 8 | take()) % len;
        img[off] = (unsigned char)take();
    }
    if (take() % 4 == 0 && len) len -= 1 + take() % len; /* truncated */
    if (fm_blockmask_load_safetensors_memory("bad.safetensors", img, len, diags, &back) == FM_OK)
        probe(back);
    free(img);
done:
    fm_blockmask_free(back);
    fm_blockmask_free(bm);
    for (int i = 0; i < 4; i++) free(arrays[i]);
    fm_bindings_free(bind);
    fm_mask_free(mask);
    fm_program_free(prog);
    fm_diagnostics_free(diags);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    if (data[0] % 2 == 0) {
        fm_diagnostics *diags = fm_diagnostics_create();
        fm_blockmask *m = NULL;
        if (fm_blockmask_load_safetensors_memory("fuzz.safetensors", data + 1, size - 1, diags,
                                                 &m) == FM_OK)
            probe(m);
        char *t = fm_diagnostics_format(diags, true);
        fm_free(t);
        fm_blockmask_free(m);
        fm_diagnostics_free(diags);
        return 0;
    }
    g_p = data + 1;
    g_n = size - 1;
    round_trip();
    return 0;
}
