/* bench/jit: for the forward kernel of each standard mask (head dim 128,
 * bf16, sm_90 unless FLEXMASK_CUDA_ARCH says otherwise), the time of an
 * NVRTC cold compile, of a load from the disk cache (a new process's first
 * use) and of an in-memory hit. Needs NVRTC, not a GPU.
 *
 *   jit [MASK_DIR] [--reps N]
 *
 * Targets: cold < 2 s, disk < 20 ms, memory < 50 us. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "compiler/codegen_cuda.h"
#include "runtime/api/api_internal.h"
#include "runtime/cuda/jit.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmp_s(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv) {
    const char *dir = "examples/masks";
    int reps = 20;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
            reps = atoi(argv[++i]);
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: %s [--reps N] [MASK_DIR]\n", argv[0]);
            return strcmp(argv[i], "--help") && strcmp(argv[i], "-h") ? 2 : 0;
        } else {
            dir = argv[i];
        }
    }
    if (reps < 1) reps = 1;
    char why[512];
    if (!fmr_nvrtc_available(why, sizeof why)) {
        printf("bench/jit: skipped: %s\n", why);
        return 0;
    }
    int major, minor;
    fmr_nvrtc_version(&major, &minor);
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "bench/jit: cannot open %s (run from the source root or pass the mask folder)\n", dir);
        return 1;
    }
    char *files[128];
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 128) {
        size_t l = strlen(de->d_name);
        if (l > 5 && !strcmp(de->d_name + l - 5, ".mask")) files[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(files, (size_t)n, sizeof *files, cmp_s);

    char cache_dir[] = "/tmp/flexmask-bench-jit.XXXXXX";
    if (!mkdtemp(cache_dir)) {
        perror("mkdtemp");
        return 1;
    }
    fmr_kernel_config cfg = {.head_dim = 128, .bf16 = true, .arch = 0};
    printf("bench/jit: NVRTC %d.%d, sm_%d, head dim 128, bf16; median of %d for disk and memory\n",
           major, minor, fmr_jit_default_arch(), reps);
    printf("%-24s %10s %10s %10s %8s %6s\n", "mask", "cold ms", "disk ms", "memory us", "cubin KB", "regs");
    double worst_cold = 0, worst_disk = 0, worst_mem = 0;
    int failures = 0;
    for (int i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        fm_program *prog;
        fm_mask *mask;
        if (fm_compile_file(path, NULL, &prog) != FM_OK || fm_mask_select(prog, NULL, NULL, &mask) != FM_OK) {
            printf("%-24s does not compile\n", files[i]);
            failures++;
            continue;
        }
        size_t len;
        char *text = fmc_codegen_cuda(mask->shared->program, &len, NULL);
        fmr_jit_cache *cache = fmr_jit_cache_create(cache_dir, 0);
        fmr_jit_binary b;
        fmd_diags dg;
        fmd_diags_init(&dg);
        double t0 = now();
        fm_status st = text ? fmr_jit_compile(cache, text, len, &cfg, false, &b, &dg) : FM_ERR_NO_MEMORY;
        double cold = now() - t0;
        if (st != FM_OK || b.hit != FMR_CACHE_MISS) {
            fmd_diags_render(&dg, stderr, false);
            printf("%-24s compile failed\n", files[i]);
            failures++;
        } else {
            double *disk = malloc(sizeof(double) * (size_t)reps), *mem = malloc(sizeof(double) * (size_t)reps);
            for (int r = 0; r < reps; r++) {
                fmr_jit_cache_drop_memory(cache); /* as a new process would find it */
                t0 = now();
                fmr_jit_compile(cache, text, len, &cfg, false, &b, NULL);
                disk[r] = now() - t0;
                if (b.hit != FMR_CACHE_DISK) failures++;
                t0 = now();
                fmr_jit_compile(cache, text, len, &cfg, false, &b, NULL);
                mem[r] = now() - t0;
                if (b.hit != FMR_CACHE_MEMORY) failures++;
            }
            fmr_kernel_resources res[2];
            int k = fmr_cubin_resources(b.cubin, b.cubin_len, res, 2);
            double dm = median(disk, reps), mm = median(mem, reps);
            printf("%-24s %10.1f %10.3f %10.1f %8.1f %6d\n", files[i], cold * 1e3, dm * 1e3, mm * 1e6,
                   (double)b.cubin_len / 1024.0, k > 0 ? res[0].registers : -1);
            worst_cold = cold > worst_cold ? cold : worst_cold;
            worst_disk = dm > worst_disk ? dm : worst_disk;
            worst_mem = mm > worst_mem ? mm : worst_mem;
            free(disk);
            free(mem);
        }
        fmd_diags_clear(&dg);
        fmr_jit_cache_free(cache);
        free(text);
        fm_mask_free(mask);
        fm_program_free(prog);
    }
    printf("worst: cold %.0f ms (target < 2000), disk %.2f ms (target < 20), memory %.1f us (target < 50)\n",
           worst_cold * 1e3, worst_disk * 1e3, worst_mem * 1e6);
    /* Leave no cache behind. */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", cache_dir);
    if (system(cmd) != 0) fprintf(stderr, "bench/jit: could not remove %s\n", cache_dir);
    for (int i = 0; i < n; i++) free(files[i]);
    return failures ? 1 : 0;
}
