/* fmc blockmask: build a BlockMask and print it, as JSON (the CLI
 * contract's layout, which scripts parse) or as text for a person. */
#include <stdio.h>
#include <string.h>

#include "flexmask_tools.h"
#include "tools/cli.h"
#include "tools/cli_interop.h"
#include "tools/fmc_cmds.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: fmc blockmask FILE --q-len N [flags] [--format text|json]\n"
            "       fmc blockmask --dense FILE.npy [flags] [--format text|json]\n"
            "\n"
            "Builds the BlockMask of a mask for one shape and prints, for each stored\n"
            "(batch, head, query block), the key/value blocks that are full (every\n"
            "position true: the kernel skips the mask) and partial (the kernel evaluates\n"
            "the mask); the blocks in neither list are empty and never touched.\n"
            "A mask that never reads b (or h) is stored once for every batch (head).\n"
            "\n"
            "flags:\n"
            "%s"
            "  --dense FILE.npy      build from a dense mask instead of a mask file:\n"
            "                        bool/uint8 (1 = attend) or float (0 / -inf), shape\n"
            "                        [Q, KV], [H, Q, KV] or [B, H, Q, KV]; --batch and\n"
            "                        --heads may broadcast a size-1 dimension\n"
            "  --safetensors FILE    also write the BlockMask for PyTorch (the\n"
            "                        BlockMask.from_kv_blocks tensors; docs/interop.md)\n"
            "  --dense-out FILE.npy  also write the mask as a bool [B, H, Q, KV] array\n"
            "  --format text|json    output form (default text); the JSON layout is\n"
            "                        fixed by the CLI contract\n"
            "  -h, --help            this text\n"
            "\n"
            "examples:\n"
            "  fmc blockmask examples/masks/sliding_window.mask --q-len 4096 -D window=512\n"
            "  fmc blockmask examples/masks/document.mask --q-len 6 --block 2 \\\n"
            "      --input doc=0,0,0,1,1,1 --format json\n"
            "\n"
            "Exit status: 0 ok, 1 the mask, a param or an input is wrong, 2 bad usage.\n",
            fmcli_common_help);
}

static void print_list(FILE *out, const int32_t *v, int64_t n, bool json) {
    fputc('[', out);
    for (int64_t i = 0; i < n; i++)
        fprintf(out, json && i ? ", %d" : i ? " %d" : "%d", v[i]);
    fputc(']', out);
}

static int64_t stored(int64_t n, bool bcast) {
    return bcast ? 1 : n;
}

static void print_json(const fm_blockmask *bm, const char *name, const fm_blockmask_info *in) {
    printf("{\n  \"mask\": ");
    fmt_json_string(stdout, name);
    printf(
        ",\n  \"shape\": {\"batch\": %lld, \"heads\": %lld, \"q_len\": %lld, \"kv_len\": %lld},\n",
        (long long)in->shape.batch, (long long)in->shape.heads, (long long)in->shape.q_len,
        (long long)in->shape.kv_len);
    printf("  \"block\": {\"q\": %lld, \"kv\": %lld},\n", (long long)in->block_q,
           (long long)in->block_kv);
    printf("  \"num_q_blocks\": %lld, \"num_kv_blocks\": %lld,\n", (long long)in->num_q_blocks,
           (long long)in->num_kv_blocks);
    printf("  \"broadcast\": {\"batch\": %s, \"heads\": %s},\n",
           in->broadcast_batch ? "true" : "false", in->broadcast_heads ? "true" : "false");
    printf("  \"rows\": [");
    bool first = true;
    int64_t nb = stored(in->shape.batch, in->broadcast_batch);
    int64_t nh = stored(in->shape.heads, in->broadcast_heads);
    for (int64_t b = 0; b < nb; b++)
        for (int64_t h = 0; h < nh; h++)
            for (int64_t qb = 0; qb < in->num_q_blocks; qb++) {
                const int32_t *full, *part;
                int64_t nf = 0, np = 0;
                fm_blockmask_row(bm, b, h, qb, &full, &nf, &part, &np);
                printf("%s\n    {\"b\": %lld, \"h\": %lld, \"q_block\": %lld, \"full\": ",
                       first ? "" : ",", (long long)b, (long long)h, (long long)qb);
                print_list(stdout, full, nf, true);
                printf(", \"partial\": ");
                print_list(stdout, part, np, true);
                printf("}");
                first = false;
            }
    printf("%s],\n", first ? "" : "\n  ");
    printf("  \"stats\": {\"full\": %lld, \"partial\": %lld, \"empty\": %lld, \"evaluations\": "
           "%lld}\n}\n",
           (long long)in->full_tiles, (long long)in->partial_tiles, (long long)in->empty_tiles,
           (long long)in->evaluations);
}

static void print_text(const fm_blockmask *bm, const char *name, const fm_blockmask_info *in) {
    printf("mask %s\n", name);
    printf("shape: batch %lld, heads %lld, q_len %lld, kv_len %lld\n", (long long)in->shape.batch,
           (long long)in->shape.heads, (long long)in->shape.q_len, (long long)in->shape.kv_len);
    printf("blocks: %lld x %lld positions; %lld query blocks x %lld key/value blocks\n",
           (long long)in->block_q, (long long)in->block_kv, (long long)in->num_q_blocks,
           (long long)in->num_kv_blocks);
    printf("broadcast: batch %s, heads %s%s\n", in->broadcast_batch ? "yes" : "no",
           in->broadcast_heads ? "yes" : "no",
           in->broadcast_batch || in->broadcast_heads
               ? " (a broadcast slice is stored once, at index 0, and stands for all)"
               : "");
    printf("rows (kv blocks in neither list are empty):\n");
    int64_t nb = stored(in->shape.batch, in->broadcast_batch);
    int64_t nh = stored(in->shape.heads, in->broadcast_heads);
    for (int64_t b = 0; b < nb; b++)
        for (int64_t h = 0; h < nh; h++)
            for (int64_t qb = 0; qb < in->num_q_blocks; qb++) {
                const int32_t *full, *part;
                int64_t nf = 0, np = 0;
                fm_blockmask_row(bm, b, h, qb, &full, &nf, &part, &np);
                printf("  b=%lld h=%lld q_block=%lld: full ", (long long)b, (long long)h,
                       (long long)qb);
                print_list(stdout, full, nf, false);
                printf(" partial ");
                print_list(stdout, part, np, false);
                putchar('\n');
            }
    int64_t total = in->full_tiles + in->partial_tiles + in->empty_tiles;
    printf("tiles (over every batch and head): full %lld, partial %lld, empty %lld, total %lld\n",
           (long long)in->full_tiles, (long long)in->partial_tiles, (long long)in->empty_tiles,
           (long long)total);
    printf("build: %lld point evaluations, %lld tiles proven by analysis, %lld settled point by "
           "point, %lld bytes of lists\n",
           (long long)in->evaluations, (long long)in->tiles_by_analysis,
           (long long)in->tiles_by_points, (long long)in->bytes);
}

int fmc_cmd_blockmask(int argc, char **argv) {
    fmcli_common c;
    fmcli_init(&c, "fmc blockmask", argc, argv);
    bool json = false;
    int rc = 0;
    const char *dense = NULL, *st_out = NULL, *dense_out = NULL; /* interop (issue 6) */
    for (int i = 1; i < argc && !rc;) {
        const char *arg = argv[i];
        fmcli_parse_result r = fmcli_parse_common(&c, argc, argv, &i);
        if (r == FMCLI_BAD) {
            rc = FMCLI_EXIT_USAGE;
        } else if (r == FMCLI_TAKEN) {
            continue;
        } else if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            usage(stdout);
            fmcli_free(&c);
            return 0;
        } else if (fmcli_is_flag(arg, "--format")) {
            const char *v = fmcli_flag_value(&c, "--format", argc, argv, &i);
            if (!v)
                rc = FMCLI_EXIT_USAGE;
            else if (!strcmp(v, "json"))
                json = true;
            else if (!strcmp(v, "text"))
                json = false;
            else
                rc = fmcli_usage_error(&c, "--format must be text or json, got '%s'", v);
        } else if (fmcli_is_flag(arg, "--dense") || fmcli_is_flag(arg, "--safetensors") ||
                   fmcli_is_flag(arg, "--dense-out")) {
            /* interop (issue 6): the flags take a path each */
            const char *flag = fmcli_is_flag(arg, "--dense")         ? "--dense"
                               : fmcli_is_flag(arg, "--safetensors") ? "--safetensors"
                                                                     : "--dense-out";
            const char *v = fmcli_flag_value(&c, flag, argc, argv, &i);
            if (!v)
                rc = FMCLI_EXIT_USAGE;
            else if (flag[7] == '\0')
                dense = v;
            else if (flag[2] == 's')
                st_out = v;
            else
                dense_out = v;
        } else if (arg[0] == '-' && arg[1] != '\0') {
            static const char *const own[] = {"--format", "--dense", "--safetensors",
                                              "--dense-out"};
            rc = fmcli_unknown_flag(&c, arg, true, own, sizeof own / sizeof *own);
        } else if (c.file) {
            rc =
                fmcli_usage_error(&c, "more than one mask file given ('%s' and '%s')", c.file, arg);
        } else {
            c.file = arg;
            i++;
        }
    }
    fmcli_session s = {0};
    if (!rc && dense) {
        /* interop (issue 6): a dense .npy replaces the mask file */
        if (c.file)
            rc = fmcli_usage_error(&c, "--dense replaces the mask file; give one or the other");
        else
            rc = fmcli_build_dense(&c, &s, dense);
    } else {
        if (!rc) rc = fmcli_require_build_args(&c);
        if (!rc) rc = fmcli_build(&c, &s);
    }
    if (!rc && st_out) rc = fmcli_save_safetensors(&c, &s, st_out);
    if (!rc && dense_out) rc = fmcli_save_dense_npy(&c, &s, dense_out);
    if (!rc) {
        fm_blockmask_info info;
        fm_blockmask_get_info(s.blockmask, &info);
        const char *name = dense ? "dense" : fm_mask_name(s.mask);
        if (json)
            print_json(s.blockmask, name, &info);
        else
            print_text(s.blockmask, name, &info);
        rc = fmcli_stdout_status(&c, rc);
    }
    fmcli_session_free(&s);
    fmcli_free(&c);
    return rc;
}
