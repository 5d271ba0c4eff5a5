/* NVRTC through dlopen, the compile path and the cache glue. */
#define _POSIX_C_SOURCE 200809L
#include "runtime/cuda/jit.h"
#include "runtime/cuda/cuda_fwd.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cuda/kernels_embedded.h"

#ifndef FM_VERSION_STRING
#define FM_VERSION_STRING FM_VERSION
#endif

char *fmr_jit_full_source(const char *mask_text, size_t mask_len, size_t *len) {
    static const char sep[] = "\n/* ---- kernel template: kernels/flash_fwd.cuh ---- */\n";
    size_t n = mask_len + sizeof sep - 1 + fmk_flash_fwd_cuh_len;
    char *s = malloc(n + 1);
    if (!s) return NULL;
    memcpy(s, mask_text, mask_len);
    memcpy(s + mask_len, sep, sizeof sep - 1);
    memcpy(s + mask_len + sizeof sep - 1, fmk_flash_fwd_cuh, fmk_flash_fwd_cuh_len);
    s[n] = 0;
    if (len) *len = n;
    return s;
}

int fmr_jit_options(const fmr_kernel_config *cfg, int arch, char buf[256], const char *opts[8]) {
    int n = 0;
    size_t used = 0;
#define OPT(...)                                                                                   \
    do {                                                                                           \
        int w = snprintf(buf + used, 256 - used, __VA_ARGS__);                                     \
        opts[n++] = buf + used;                                                                    \
        used += (size_t)w + 1;                                                                     \
    } while (0)
    OPT("-arch=sm_%d", arch);
    OPT("-std=c++17");
    OPT("-DFM_HEAD_DIM=%d", cfg->head_dim);
    if (cfg->bf16) OPT("-DFM_DTYPE_BF16=1");
    if (cfg->int32) OPT("-DFM_MASK_INT32=1");
    /* ptxas's resource report lands in the log, where fmc ptx and the
       tests read the spill counts. */
    OPT("-Xptxas=-v");
#undef OPT
    return n;
}

#ifndef FM_HAVE_CUDA

static const char no_cuda[] = "flexmask was built without CUDA support (the CUDA Toolkit was not "
                              "found at build time)";

bool fmr_nvrtc_available(char *why, size_t n) {
    if (why && n) snprintf(why, n, "%s", no_cuda);
    return false;
}
bool fmr_nvrtc_version(int *major, int *minor) {
    (void)major;
    (void)minor;
    return false;
}
int fmr_jit_clamp_arch(int want) {
    (void)want;
    return 0;
}
int fmr_jit_default_arch(void) { return 0; }
fm_status fmr_jit_compile(fmr_jit_cache *cache, const char *mask_text, size_t mask_len,
                          const fmr_kernel_config *cfg, bool number_source, fmr_jit_binary *out,
                          fmd_diags *diags) {
    (void)cache, (void)mask_text, (void)mask_len, (void)cfg, (void)number_source, (void)out;
    fmd_diag_add(diags, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL, "%s", no_cuda);
    return FM_ERR_UNSUPPORTED;
}
fm_status fmr_jit_ptx(const char *mask_text, size_t mask_len, const fmr_kernel_config *cfg,
                      char **ptx, char **log, fmd_diags *diags) {
    (void)mask_text, (void)mask_len, (void)cfg, (void)ptx, (void)log;
    fmd_diag_add(diags, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL, "%s", no_cuda);
    return FM_ERR_UNSUPPORTED;
}

#else

#include <dlfcn.h>
#include <nvrtc.h>
#include <openssl/evp.h>
#include <stddef.h>

#include "runtime/cuda/dynlib.h"

typedef struct nvrtc_api {
    void *lib;
    char why[512];
    int major, minor;
    int *archs;
    int narchs;
    nvrtcResult (*Version)(int *, int *);
    nvrtcResult (*GetNumSupportedArchs)(int *);
    nvrtcResult (*GetSupportedArchs)(int *);
    nvrtcResult (*CreateProgram)(nvrtcProgram *, const char *, const char *, int,
                                 const char *const *, const char *const *);
    nvrtcResult (*CompileProgram)(nvrtcProgram, int, const char *const *);
    nvrtcResult (*DestroyProgram)(nvrtcProgram *);
    nvrtcResult (*GetProgramLogSize)(nvrtcProgram, size_t *);
    nvrtcResult (*GetProgramLog)(nvrtcProgram, char *);
    nvrtcResult (*GetPTXSize)(nvrtcProgram, size_t *);
    nvrtcResult (*GetPTX)(nvrtcProgram, char *);
    nvrtcResult (*GetCUBINSize)(nvrtcProgram, size_t *);
    nvrtcResult (*GetCUBIN)(nvrtcProgram, char *);
    const char *(*GetErrorString)(nvrtcResult);
} nvrtc_api;

static nvrtc_api api;
static pthread_once_t api_once = PTHREAD_ONCE_INIT;

#define FN(field, name) {name, NULL, offsetof(nvrtc_api, field)}
static const fmr_dynlib_sym nvrtc_syms[] = {
    FN(Version, "nvrtcVersion"),
    FN(GetNumSupportedArchs, "nvrtcGetNumSupportedArchs"),
    FN(GetSupportedArchs, "nvrtcGetSupportedArchs"),
    FN(CreateProgram, "nvrtcCreateProgram"),
    FN(CompileProgram, "nvrtcCompileProgram"),
    FN(DestroyProgram, "nvrtcDestroyProgram"),
    FN(GetProgramLogSize, "nvrtcGetProgramLogSize"),
    FN(GetProgramLog, "nvrtcGetProgramLog"),
    FN(GetPTXSize, "nvrtcGetPTXSize"),
    FN(GetPTX, "nvrtcGetPTX"),
    FN(GetCUBINSize, "nvrtcGetCUBINSize"),
    FN(GetCUBIN, "nvrtcGetCUBIN"),
    FN(GetErrorString, "nvrtcGetErrorString"),
};
#undef FN
static const char *const nvrtc_sonames[] = {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"};
static const fmr_dynlib_spec nvrtc_spec = {
    "FLEXMASK_NVRTC_LIBRARY", nvrtc_sonames, sizeof nvrtc_sonames / sizeof nvrtc_sonames[0],
    nvrtc_syms, sizeof nvrtc_syms / sizeof nvrtc_syms[0]};

static void api_load(void) {
    char err[256];
    fmr_dynlib_result r = fmr_dynlib_load(&nvrtc_spec, &api, &api.lib, err, sizeof err);
    if (r == FMR_DYNLIB_NOT_FOUND) {
        snprintf(api.why, sizeof api.why,
                 "NVRTC (libnvrtc.so.13 or libnvrtc.so) could not be loaded: %s; install the CUDA "
                 "Toolkit's NVRTC or set FLEXMASK_NVRTC_LIBRARY",
                 err);
        return;
    }
    if (r != FMR_DYNLIB_OK || api.Version(&api.major, &api.minor) != NVRTC_SUCCESS ||
        api.GetNumSupportedArchs(&api.narchs) != NVRTC_SUCCESS || api.narchs <= 0 ||
        !(api.archs = calloc((size_t)api.narchs, sizeof(int))) ||
        api.GetSupportedArchs(api.archs) != NVRTC_SUCCESS) {
        snprintf(api.why, sizeof api.why,
                 "the NVRTC library found lacks a needed function or failed to report its "
                 "version (NVRTC 11.2 or newer is required)");
        if (api.lib) dlclose(api.lib);
        api.lib = NULL;
    }
}

static bool api_get(fmd_diags *diags) {
    pthread_once(&api_once, api_load);
    if (api.lib) return true;
    if (diags) fmd_diag_add(diags, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL, "%s", api.why);
    return false;
}

bool fmr_nvrtc_available(char *why, size_t n) {
    pthread_once(&api_once, api_load);
    if (!api.lib && why && n) snprintf(why, n, "%s", api.why);
    return api.lib != NULL;
}

bool fmr_nvrtc_version(int *major, int *minor) {
    if (!api_get(NULL)) return false;
    *major = api.major;
    *minor = api.minor;
    return true;
}

int fmr_jit_clamp_arch(int want) {
    if (!api_get(NULL)) return 0;
    int best = 0;
    for (int i = 0; i < api.narchs; i++)
        if (api.archs[i] <= want && api.archs[i] > best) best = api.archs[i];
    return best;
}

int fmr_jit_default_arch(void) {
    int want = 90;
    const char *e = getenv("FLEXMASK_CUDA_ARCH");
    if (e && *e) {
        const char *p = e;
        if (!strncmp(p, "sm_", 3)) p += 3;
        else if (!strncmp(p, "compute_", 8)) p += 8;
        char *end;
        long v = strtol(p, &end, 10);
        if (end != p && v >= 10 && v < 1000 && (*end == 0 || *end == 'a' || *end == 'f')) want = (int)v;
    }
    return fmr_jit_clamp_arch(want);
}

/* The template's hash is computed once per process: a memory-cache hit
 * then hashes only the (small) mask text. */
static uint8_t tmpl_hash[32];
static bool tmpl_ok;
static pthread_once_t tmpl_once = PTHREAD_ONCE_INIT;

static bool sha256_parts(const void *const *parts, const size_t *lens, int n, uint8_t out[32]) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    for (int i = 0; ok && i < n; i++) ok = EVP_DigestUpdate(ctx, parts[i], lens[i]);
    ok = ok && EVP_DigestFinal_ex(ctx, out, NULL);
    EVP_MD_CTX_free(ctx);
    return ok;
}

static void tmpl_init(void) {
    const void *parts[] = {fmk_flash_fwd_cuh, "\0", fmk_fm_fwd_params_h};
    size_t lens[] = {fmk_flash_fwd_cuh_len, 1, fmk_fm_fwd_params_h_len};
    tmpl_ok = sha256_parts(parts, lens, 3, tmpl_hash);
}

/* SHA-256 over everything that decides the CUBIN: the cache format, the
 * library's and NVRTC's versions, the options (the architecture among
 * them), the template and the mask's text. False only when OpenSSL is out
 * of memory. */
static bool make_key(const char *mask_text, size_t mask_len, int nopts, const char *const *opts,
                     uint8_t key[32]) {
    pthread_once(&tmpl_once, tmpl_init);
    if (!tmpl_ok) return false;
    char head[160];
    int n = snprintf(head, sizeof head, "flexmask-jit format=%d lib=%s nvrtc=%d.%d",
                     FMR_JIT_CACHE_FORMAT, FM_VERSION_STRING, api.major, api.minor);
    const void *parts[12];
    size_t lens[12];
    int k = 0;
    parts[k] = head, lens[k++] = (size_t)n + 1;
    for (int i = 0; i < nopts && i < 8; i++) parts[k] = opts[i], lens[k++] = strlen(opts[i]) + 1;
    parts[k] = tmpl_hash, lens[k++] = 32;
    parts[k] = mask_text, lens[k++] = mask_len;
    return sha256_parts(parts, lens, k, key);
}

/* The source with line numbers, for compile errors on request. */
static char *numbered(const char *src) {
    size_t lines = 1, n = strlen(src);
    for (size_t i = 0; i < n; i++) lines += src[i] == '\n';
    size_t cap = n + lines * 8 + 1;
    char *out = malloc(cap);
    if (!out) return NULL;
    size_t o = 0, line = 1;
    const char *p = src;
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        o += (size_t)snprintf(out + o, cap - o, "%5zu| ", line++);
        if (o + len + 2 > cap) break;
        memcpy(out + o, p, len);
        o += len;
        out[o++] = '\n';
        p += len + (e ? 1 : 0);
    }
    out[o] = 0;
    return out;
}

static char *program_log(nvrtcProgram prog) {
    size_t n = 0;
    if (api.GetProgramLogSize(prog, &n) != NVRTC_SUCCESS) n = 0;
    char *log = malloc(n + 1);
    if (!log) return NULL;
    log[0] = 0;
    if (n) api.GetProgramLog(prog, log);
    log[n] = 0;
    return log;
}

static fm_status run_nvrtc_source(const char *src, int nopts, const char *const *opts,
                                  bool number_source, nvrtcProgram *prog_out, fmd_diags *diags) {
    const char *hdr_src[] = {fmk_fm_fwd_params_h};
    const char *hdr_name[] = {"fm_fwd_params.h"};
    nvrtcProgram prog;
    nvrtcResult r = api.CreateProgram(&prog, src, "flexmask_fwd.cu", 1, hdr_src, hdr_name);
    if (r != NVRTC_SUCCESS) {
        fmd_diag_add(diags, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL,
                     "NVRTC could not create a program: %s", api.GetErrorString(r));
        return r == NVRTC_ERROR_OUT_OF_MEMORY ? FM_ERR_NO_MEMORY : FM_ERR_CUDA;
    }
    r = api.CompileProgram(prog, nopts, opts);
    if (r != NVRTC_SUCCESS) {
        char *log = program_log(prog);
        const char *env = getenv("FLEXMASK_JIT_SOURCE");
        bool show = number_source || (env && !strcmp(env, "1"));
        char *num = show ? numbered(src) : NULL;
        fmd_diag_add(diags, FMD_ERROR, NULL, (fmd_span){0, 0},
                     show ? NULL : "set FLEXMASK_JIT_SOURCE=1 to see the numbered source",
                     "NVRTC failed to compile the kernel (%s, %s): %s%s%s",
                     opts[0], api.GetErrorString(r), log ? log : "(no log)",
                     num ? "\nsource given to NVRTC:\n" : "", num ? num : "");
        free(num);
        free(log);
        api.DestroyProgram(&prog);
        return FM_ERR_CUDA;
    }
    *prog_out = prog;
    return FM_OK;
}

/* Runs NVRTC once over the mask's whole kernel source. On success *prog is
 * left for the caller to read. */
static fm_status run_nvrtc(const char *mask_text, size_t mask_len, int nopts,
                           const char *const *opts, bool number_source, nvrtcProgram *prog_out,
                           fmd_diags *diags) {
    size_t slen;
    char *src = fmr_jit_full_source(mask_text, mask_len, &slen);
    if (!src) return FM_ERR_NO_MEMORY;
    fm_status st = run_nvrtc_source(src, nopts, opts, number_source, prog_out, diags);
    free(src);
    return st;
}

static bool config_ok(const fmr_kernel_config *cfg, fmd_diags *diags) {
    char why[200];
    if (fmr_gpu_head_dim_problem(cfg->head_dim, why, sizeof why)) {
        fmd_diag_add(diags, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL, "%s", why);
        return false;
    }
    return true;
}

static int resolve_arch(const fmr_kernel_config *cfg, fmd_diags *diags) {
    int arch = cfg->arch ? fmr_jit_clamp_arch(cfg->arch) : fmr_jit_default_arch();
    if (arch < 80) {
        int asked = cfg->arch ? cfg->arch : 90;
        if (arch)
            fmd_diag_add(diags, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL,
                         "the CUDA kernel needs sm_80 or newer (mma.sync for bf16, cp.async); asked "
                         "for sm_%d, which this NVRTC can only target as sm_%d", asked, arch);
        else
            fmd_diag_add(diags, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL,
                         "the CUDA kernel needs sm_80 or newer (mma.sync for bf16, cp.async); asked "
                         "for sm_%d, which is older than anything this NVRTC supports", asked);
        return 0;
    }
    return arch;
}

/* Cached payload: u64 cubin length, the cubin, then the log (NUL-ended). */
static void unpack(const uint8_t *data, size_t len, fmr_jit_binary *out) {
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | data[i];
    out->cubin = data + 8;
    out->cubin_len = (size_t)n;
    out->log = (const char *)data + 8 + n;
}

static bool payload_ok(const uint8_t *data, size_t len) {
    if (len < 9) return false;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | data[i];
    return n <= len - 9 && data[len - 1] == 0;
}

static fm_status jit_compile(fmr_jit_cache *cache, const char *mask_text, size_t mask_len,
                             const fmr_kernel_config *cfg, bool number_source,
                             fmr_jit_binary *out, fmd_diags *diags);

/* The helpers below report into diags unconditionally; a caller that wants
 * no messages (NULL) gets a scratch list that is dropped. */
fm_status fmr_jit_compile(fmr_jit_cache *cache, const char *mask_text, size_t mask_len,
                          const fmr_kernel_config *cfg, bool number_source, fmr_jit_binary *out,
                          fmd_diags *diags) {
    if (diags) return jit_compile(cache, mask_text, mask_len, cfg, number_source, out, diags);
    fmd_diags scratch;
    fmd_diags_init(&scratch);
    fm_status st = jit_compile(cache, mask_text, mask_len, cfg, number_source, out, &scratch);
    fmd_diags_clear(&scratch);
    return st;
}

static fm_status jit_compile(fmr_jit_cache *cache, const char *mask_text, size_t mask_len,
                             const fmr_kernel_config *cfg, bool number_source,
                             fmr_jit_binary *out, fmd_diags *diags) {
    if (!api_get(diags)) return FM_ERR_UNSUPPORTED;
    if (!config_ok(cfg, diags)) return FM_ERR_UNSUPPORTED;
    int arch = resolve_arch(cfg, diags);
    if (!arch) return FM_ERR_UNSUPPORTED;
    if (!cache) cache = fmr_jit_cache_default();
    if (!cache) return FM_ERR_NO_MEMORY;

    char buf[256];
    const char *opts[8];
    int nopts = fmr_jit_options(cfg, arch, buf, opts);
    fmr_jit_binary b = {0};
    b.arch = arch;
    if (!make_key(mask_text, mask_len, nopts, opts, b.key)) {
        if (diags) fmd_diag_add(diags, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL, "out of memory");
        return FM_ERR_NO_MEMORY;
    }

    const uint8_t *data;
    size_t len;
    b.hit = fmr_jit_cache_get(cache, b.key, &data, &len);
    /* The first lookup opened the cache folder: a refused one is said
       once per cache (once per process for the default one). */
    fmr_jit_cache_report(cache, diags);
    if (b.hit != FMR_CACHE_MISS && payload_ok(data, len)) {
        unpack(data, len, &b);
        *out = b;
        return FM_OK;
    }

    nvrtcProgram prog;
    fm_status st = run_nvrtc(mask_text, mask_len, nopts, opts, number_source, &prog, diags);
    if (st != FM_OK) return st;
    size_t clen = 0;
    char *log = program_log(prog);
    uint8_t *payload = NULL;
    size_t loglen = log ? strlen(log) : 0;
    if (api.GetCUBINSize(prog, &clen) == NVRTC_SUCCESS && clen > 0 &&
        (payload = malloc(8 + clen + loglen + 1))) {
        for (int i = 0; i < 8; i++) payload[i] = (uint8_t)((uint64_t)clen >> (8 * i));
        if (api.GetCUBIN(prog, (char *)payload + 8) != NVRTC_SUCCESS) {
            free(payload);
            payload = NULL;
        } else {
            memcpy(payload + 8 + clen, log ? log : "", loglen + 1);
        }
    }
    api.DestroyProgram(&prog);
    free(log);
    if (!payload) {
        fmd_diag_add(diags, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL,
                     "NVRTC compiled the kernel but returned no CUBIN for sm_%d", arch);
        return FM_ERR_CUDA;
    }
    size_t plen = 8 + clen + loglen + 1;
    /* A failed disk write only costs a recompile later: not an error. */
    fmr_jit_cache_put(cache, b.key, payload, plen);
    free(payload);
    if (fmr_jit_cache_get(cache, b.key, &data, &len) == FMR_CACHE_MISS || !payload_ok(data, len)) {
        fmd_diag_add(diags, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL, "out of memory");
        return FM_ERR_NO_MEMORY;
    }
    unpack(data, len, &b);
    b.hit = FMR_CACHE_MISS;
    *out = b;
    return FM_OK;
}

fm_status fmr_jit_ptx(const char *mask_text, size_t mask_len, const fmr_kernel_config *cfg,
                      char **ptx, char **log, fmd_diags *diags) {
    if (!api_get(diags)) return FM_ERR_UNSUPPORTED;
    if (!config_ok(cfg, diags)) return FM_ERR_UNSUPPORTED;
    int arch = resolve_arch(cfg, diags);
    if (!arch) return FM_ERR_UNSUPPORTED;
    char buf[256];
    const char *opts[8];
    int nopts = fmr_jit_options(cfg, arch, buf, opts);
    /* compute_XX: NVRTC stops at PTX. */
    char arch_opt[32];
    snprintf(arch_opt, sizeof arch_opt, "-arch=compute_%d", arch);
    opts[0] = arch_opt;
    nopts--; /* no ptxas run, so no -Xptxas */
    nvrtcProgram prog;
    fm_status st = run_nvrtc(mask_text, mask_len, nopts, opts, false, &prog, diags);
    if (st != FM_OK) return st;
    size_t n = 0;
    char *p = NULL;
    if (api.GetPTXSize(prog, &n) == NVRTC_SUCCESS && (p = malloc(n + 1))) {
        if (api.GetPTX(prog, p) != NVRTC_SUCCESS) {
            free(p);
            p = NULL;
        } else {
            p[n] = 0;
        }
    }
    char *l = program_log(prog);
    api.DestroyProgram(&prog);
    if (!p) {
        free(l);
        fmd_diag_add(diags, FMD_ERROR, NULL, (fmd_span){0, 0}, NULL, "NVRTC returned no PTX");
        return FM_ERR_CUDA;
    }
    *ptx = p;
    if (log) *log = l;
    else free(l);
    return FM_OK;
}

#endif
