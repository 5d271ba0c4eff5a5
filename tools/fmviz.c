/* fmviz: look at a BlockMask. A terminal picture of each stored slice and
 * its statistics, PNG/SVG images, and --check, which compares the
 * BlockMask with the mask evaluated at every position. */
#include <langinfo.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "tools/fmviz.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: fmviz FILE --q-len N [flags] [--png OUT.png] [--svg OUT.svg] [--pdf OUT.pdf]\n"
            "             [--check]\n"
            "\n"
            "Shows the BlockMask of a mask for one shape: which tiles of the attention\n"
            "matrix are full (the kernel computes them without evaluating the mask),\n"
            "partial (it evaluates the mask inside) and empty (it skips them).\n"
            "\n"
            "With no output flag it draws each stored (batch, head) slice in the\n"
            "terminal, one cell per tile (large grids are downsampled, and the picture\n"
            "says by how much), then prints the tile counts, the fraction of positions\n"
            "where the mask is true, and the fraction of attention work skipped\n"
            "against a dense run. Queries go down, keys/values go right.\n"
            "\n"
            "common flags:\n"
            "%s"
            "\n"
            "fmviz flags:\n"
            "  --png FILE, --svg FILE, --pdf FILE\n"
            "                        write the picture as an image: a title, one panel\n"
            "                        per slice with position and block axes, a legend\n"
            "                        with counts. Small shapes are drawn one square per\n"
            "                        position, larger ones one cell per tile or group of\n"
            "                        tiles (its most common class; a paler shade when its\n"
            "                        tiles differ). Colours: green full, orange partial,\n"
            "                        grey empty; per position, dark orange / pale yellow\n"
            "                        are true / false positions of partial tiles, and red\n"
            "                        marks a position that contradicts its tile's class\n"
            "  --heads-shown N       draw the first N stored (batch, head) slices\n"
            "                        (default 4)\n"
            "  --check               evaluate the mask at every position of every batch\n"
            "                        and head and compare with the BlockMask, tile by tile;\n"
            "                        prints each misclassified tile (exit 3) or\n"
            "                        'coverage ok: N tiles checked'; slow for large shapes\n"
            "  --width N             widest terminal picture, in cells (default: fits\n"
            "                        $COLUMNS or the terminal, at most 96); every line\n"
            "                        fits $COLUMNS\n"
            "  --color auto|always|never  colours in the terminal picture (default auto:\n"
            "                        only when stdout is a terminal and NO_COLOR is unset)\n"
            "  --ascii               draw with # + . and an ASCII frame instead of\n"
            "                        Unicode blocks (the default when the locale is\n"
            "                        not UTF-8)\n"
            "  -h, --help            this text\n"
            "  --version             the version\n"
            "\n"
            "With --png, --svg or --pdf the pictures go to the files and only the statistics\n"
            "are printed; with --check only its result is printed.\n"
            "\n"
            "examples:\n"
            "  fmviz examples/masks/sliding_window.mask --q-len 4096 -D window=1024\n"
            "  fmviz examples/masks/document.mask --q-len 8 --block 2 \\\n"
            "      --input doc=0,0,0,1,1,2,2,2 --png doc.png\n"
            "  fmviz examples/masks/per_head.mask --q-len 2048 --heads 2 --check\n"
            "\n"
            "Exit status: 0 ok, 1 the mask, a param or an input is wrong, 2 bad usage,\n"
            "3 --check found a misclassified tile.\n"
            "\n"
            "The manual (docs/cli.md) and the example masks are installed in\n"
            "  %s\n",
            fmcli_common_help, fmcli_share_dir());
}

/* $COLUMNS when set (as a shell or a test sets it), else the terminal's
 * width, else 80. */
static int terminal_width(void) {
    const char *cols = getenv("COLUMNS");
    int n = cols ? atoi(cols) : 0;
    if (n > 0) return n < 20 ? 20 : n > 4096 ? 4096 : n;
    struct winsize ws;
    if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col < 20 ? 20 : ws.ws_col;
    return 80;
}

static bool utf8_locale(void) {
    if (!setlocale(LC_CTYPE, "")) return false;
    const char *cs = nl_langinfo(CODESET);
    return cs && (!strcmp(cs, "UTF-8") || !strcmp(cs, "utf8"));
}

#ifndef FMVIZ_IMAGES
/* Built without cairo (FM_CAIRO): the pictures are the terminal's only. */
int fmviz_write_image(const fmviz *v, const char *path, int format) {
    (void)format;
    return fmcli_input_error(&v->c, "install libcairo2-dev and rebuild to draw images",
                             "cannot write '%s': this fmviz was built without cairo, so it draws "
                             "no images",
                             path);
}
#endif

int main(int argc, char **argv) {
    fmviz v;
    memset(&v, 0, sizeof v);
    fmcli_init(&v.c, "fmviz", argc, argv);
    const char *png = NULL, *svg = NULL, *pdf = NULL, *color = "auto";
    bool check = false;
    int64_t width = 0;
    v.heads_shown = 4;
    int rc = 0;
    for (int i = 1; i < argc && !rc;) {
        const char *arg = argv[i];
        const char *val;
        fmcli_parse_result r = fmcli_parse_common(&v.c, argc, argv, &i);
        if (r == FMCLI_BAD) {
            rc = FMCLI_EXIT_USAGE;
        } else if (r == FMCLI_TAKEN) {
            continue;
        } else if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            usage(stdout);
            rc = fmcli_stdout_status(&v.c, 0);
            fmcli_free(&v.c);
            return rc;
        } else if (!strcmp(arg, "--version")) {
            printf("fmviz %s (mask language %d)\n", fm_version(), FM_LANGUAGE_VERSION);
            rc = fmcli_stdout_status(&v.c, 0);
            fmcli_free(&v.c);
            return rc;
        } else if (fmcli_is_flag(arg, "--pdf")) {
            if (!(pdf = fmcli_flag_value(&v.c, "--pdf", argc, argv, &i))) rc = FMCLI_EXIT_USAGE;
        } else if (fmcli_is_flag(arg, "--heads-shown")) {
            if (!(val = fmcli_flag_value(&v.c, "--heads-shown", argc, argv, &i)))
                rc = FMCLI_EXIT_USAGE;
            else if (!fmcli_parse_int(val, &v.heads_shown) || v.heads_shown < 1 ||
                     v.heads_shown > 256)
                rc = fmcli_usage_error(&v.c, "--heads-shown must be an integer from 1 to 256, got '%s'",
                                       val);
        } else if (fmcli_is_flag(arg, "--png")) {
            if (!(png = fmcli_flag_value(&v.c, "--png", argc, argv, &i))) rc = FMCLI_EXIT_USAGE;
        } else if (fmcli_is_flag(arg, "--svg")) {
            if (!(svg = fmcli_flag_value(&v.c, "--svg", argc, argv, &i))) rc = FMCLI_EXIT_USAGE;
        } else if (!strcmp(arg, "--ascii")) {
            v.ascii = true;
            i++;
        } else if (!strcmp(arg, "--check")) {
            check = true;
            i++;
        } else if (fmcli_is_flag(arg, "--width")) {
            if (!(val = fmcli_flag_value(&v.c, "--width", argc, argv, &i)))
                rc = FMCLI_EXIT_USAGE;
            else if (!fmcli_parse_int(val, &width) || width < 8 || width > 4096)
                rc = fmcli_usage_error(&v.c, "--width must be an integer from 8 to 4096, got '%s'",
                                       val);
        } else if (fmcli_is_flag(arg, "--color")) {
            if (!(color = fmcli_flag_value(&v.c, "--color", argc, argv, &i)))
                rc = FMCLI_EXIT_USAGE;
            else if (strcmp(color, "auto") && strcmp(color, "always") && strcmp(color, "never"))
                rc = fmcli_usage_error(&v.c, "--color must be auto, always or never, got '%s'",
                                       color);
        } else if (arg[0] == '-' && arg[1] != '\0') {
            static const char *const own[] = {"--png",   "--svg",   "--check",
                                              "--width", "--color", "--ascii"};
            rc = fmcli_unknown_flag(&v.c, arg, true, own, sizeof own / sizeof *own);
        } else if (v.c.file) {
            rc = fmcli_usage_error(&v.c, "more than one mask file given ('%s' and '%s')", v.c.file,
                                   arg);
        } else {
            v.c.file = arg;
            i++;
        }
    }
    if (!rc) rc = fmcli_require_build_args(&v.c);
    if (!rc) rc = fmcli_build(&v.c, &v.s);
    if (!rc) {
        fm_blockmask_get_info(v.s.blockmask, &v.info);
        v.stored_batch = v.info.broadcast_batch ? 1 : v.info.shape.batch;
        v.stored_heads = v.info.broadcast_heads ? 1 : v.info.shape.heads;
        const char *no_color = getenv("NO_COLOR");
        v.color = !strcmp(color, "always") ||
                  (!strcmp(color, "auto") && isatty(STDOUT_FILENO) && !(no_color && *no_color));
        if (!utf8_locale()) v.ascii = true;
        v.term_width = terminal_width();
        v.max_cols = (int)width; /* 0: fit the terminal */
        v.max_rows = 64;
        /* Images are written first so that --check next to them still
         * leaves the pictures to look at when it finds a mismatch. */
        if (png) rc = fmviz_write_image(&v, png, FMV_FORMAT_PNG);
        if (svg && !rc) rc = fmviz_write_image(&v, svg, FMV_FORMAT_SVG);
        if (pdf && !rc) rc = fmviz_write_image(&v, pdf, FMV_FORMAT_PDF);
        if (!rc && !png && !svg && !pdf && !check) fmviz_print_picture(&v);
        if (!rc && !check && !fmviz_print_stats(&v)) rc = FMCLI_EXIT_INPUT;
        if (!rc && check) rc = fmviz_check(&v);
        rc = fmcli_stdout_status(&v.c, rc);
    }
    fmcli_session_free(&v.s);
    fmcli_free(&v.c);
    return rc;
}
