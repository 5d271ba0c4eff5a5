/* Reading kernel resources out of a CUBIN (a 64-bit ELF file) without any
 * NVIDIA tool: the register count and stack frame come from the .nv.info
 * section's attributes, static shared memory from the size of each
 * kernel's .nv.shared.<name> section, and the spill counts from ptxas's
 * report in the NVRTC log. Every offset is bounds-checked: a malformed
 * file gives -1, never a read out of bounds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cuda/jit.h"

/* .nv.info attribute codes (format byte, attribute byte, then a payload). */
enum {
    EIFMT_NVAL = 1,
    EIFMT_BVAL = 2,
    EIFMT_HVAL = 3,
    EIFMT_SVAL = 4,
    EIATTR_MAX_THREADS = 0x05,
    EIATTR_FRAME_SIZE = 0x11,
    EIATTR_CBANK_PARAM_SIZE = 0x19,
    EIATTR_REGCOUNT = 0x2f
};

static uint64_t rd(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

typedef struct elf {
    const uint8_t *d;
    size_t len;
    uint64_t shoff;
    unsigned shnum, shentsize;
    uint64_t shstr_off, shstr_size;
} elf;

typedef struct shdr {
    uint32_t name, type;
    uint64_t offset, size;
    uint32_t link, info;
    uint64_t entsize;
} shdr;

static bool sec(const elf *e, unsigned i, shdr *s) {
    if (i >= e->shnum) return false;
    const uint8_t *p = e->d + e->shoff + (uint64_t)i * e->shentsize;
    s->name = (uint32_t)rd(p, 4);
    s->type = (uint32_t)rd(p + 4, 4);
    s->offset = rd(p + 24, 8);
    s->size = rd(p + 32, 8);
    s->link = (uint32_t)rd(p + 40, 4);
    s->info = (uint32_t)rd(p + 44, 4);
    s->entsize = rd(p + 56, 8);
    /* NOBITS (8) sections occupy no file bytes. */
    if (s->type != 8 && (s->offset > e->len || s->size > e->len - s->offset)) return false;
    return true;
}

static const char *str_at(const uint8_t *d, uint64_t base, uint64_t size, uint64_t off) {
    if (off >= size) return NULL;
    const char *s = (const char *)d + base + off;
    if (!memchr(s, 0, (size_t)(size - off))) return NULL;
    return s;
}

static const char *sec_name(const elf *e, const shdr *s) {
    return str_at(e->d, e->shstr_off, e->shstr_size, s->name);
}

int fmr_cubin_resources(const uint8_t *d, size_t len, fmr_kernel_resources *out, int max) {
    if (!d || len < 64 || memcmp(d, "\177ELF", 4) || d[4] != 2 /* 64-bit */ || d[5] != 1)
        return -1;
    elf e = {.d = d, .len = len};
    e.shoff = rd(d + 0x28, 8);
    e.shentsize = (unsigned)rd(d + 0x3a, 2);
    e.shnum = (unsigned)rd(d + 0x3c, 2);
    unsigned shstrndx = (unsigned)rd(d + 0x3e, 2);
    if (e.shentsize < 64 || e.shoff > len || (uint64_t)e.shnum * e.shentsize > len - e.shoff)
        return -1;
    shdr ss;
    if (!sec(&e, shstrndx, &ss)) return -1;
    e.shstr_off = ss.offset;
    e.shstr_size = ss.size;

    /* Symbol table, to map the symbol indices .nv.info uses to kernels. */
    shdr symtab = {0}, strtab = {0};
    bool have_sym = false;
    for (unsigned i = 0; i < e.shnum; i++) {
        shdr s;
        if (!sec(&e, i, &s)) return -1;
        if (s.type == 2 /* SYMTAB */ && sec(&e, s.link, &strtab)) {
            symtab = s;
            have_sym = true;
        }
    }
    int count = 0;
    for (unsigned i = 0; i < e.shnum; i++) {
        shdr s;
        sec(&e, i, &s);
        const char *n = sec_name(&e, &s);
        if (!n || strncmp(n, ".text.", 6)) continue;
        const char *kname = n + 6;
        fmr_kernel_resources r = {0};
        snprintf(r.name, sizeof r.name, "%s", kname);
        r.registers = -1;
        r.param_bytes = -1;
        /* The kernel's symbol index. */
        int64_t symidx = -1;
        if (have_sym && symtab.entsize >= 24) {
            uint64_t nsym = symtab.size / symtab.entsize;
            for (uint64_t k = 0; k < nsym; k++) {
                const uint8_t *p = d + symtab.offset + k * symtab.entsize;
                const char *sn = str_at(d, strtab.offset, strtab.size, rd(p, 4));
                if (sn && !strcmp(sn, kname) && rd(p + 6, 2) == i) {
                    symidx = (int64_t)k;
                    break;
                }
            }
        }
        for (unsigned j = 0; j < e.shnum; j++) {
            shdr t;
            sec(&e, j, &t);
            const char *tn = sec_name(&e, &t);
            if (!tn) continue;
            if (!strncmp(tn, ".nv.shared.", 11) && !strcmp(tn + 11, kname)) r.shared_bytes = (int64_t)t.size;
            bool global_info = !strcmp(tn, ".nv.info");
            bool own_info = !strncmp(tn, ".nv.info.", 9) && !strcmp(tn + 9, kname);
            if (!global_info && !own_info) continue;
            const uint8_t *p = d + t.offset, *end = p + t.size;
            while (end - p >= 4) {
                int fmt = p[0], attr = p[1];
                size_t plen = 0;
                if (fmt == EIFMT_SVAL) plen = (size_t)rd(p + 2, 2);
                else if (fmt != EIFMT_NVAL && fmt != EIFMT_BVAL && fmt != EIFMT_HVAL) break;
                if ((size_t)(end - p) < 4 + plen) break;
                const uint8_t *v = p + 4;
                if (global_info && fmt == EIFMT_SVAL && plen == 8 && (int64_t)rd(v, 4) == symidx) {
                    if (attr == EIATTR_REGCOUNT) r.registers = (int)rd(v + 4, 4);
                    if (attr == EIATTR_FRAME_SIZE) r.frame_bytes = (int64_t)rd(v + 4, 4);
                }
                if (own_info && attr == EIATTR_CBANK_PARAM_SIZE && fmt == EIFMT_HVAL)
                    r.param_bytes = (int64_t)rd(p + 2, 2);
                if (own_info && attr == EIATTR_MAX_THREADS && fmt == EIFMT_SVAL && plen >= 12)
                    r.max_threads = (int64_t)(rd(v, 4) * rd(v + 4, 4) * rd(v + 8, 4));
                p += 4 + plen;
            }
        }
        if (count < max && out) out[count] = r;
        count++;
    }
    return count;
}

bool fmr_log_spills(const char *log, const char *name, int64_t *stores, int64_t *loads) {
    if (!log) return false;
    /* ptxas prints "Function properties for NAME" and, on the next line,
       "N bytes stack frame, S bytes spill stores, L bytes spill loads". */
    char key[200];
    snprintf(key, sizeof key, "Function properties for %s", name);
    const char *p = strstr(log, key);
    while (p) {
        const char *after = p + strlen(key);
        if (*after == '\n' || *after == '\r' || *after == ' ') break;
        p = strstr(after, key);
    }
    if (!p) return false;
    const char *nl = strchr(p, '\n');
    if (!nl) return false;
    const char *end = strchr(nl + 1, '\n');
    const char *f = strstr(nl + 1, "stack frame, ");
    if (!f || (end && f > end)) return false;
    long long s, l;
    if (sscanf(f + 13, "%lld bytes spill stores, %lld bytes spill loads", &s, &l) != 2)
        return false;
    *stores = s;
    *loads = l;
    return true;
}
