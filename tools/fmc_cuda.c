/* Placeholder until the subcommand lands; replaced by its owner. */
#include <stdio.h>
#include "tools/fmc_cmds.h"
int fmc_cmd_cuda(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "fmc cuda: not built yet\n"); return 2; }
int fmc_cmd_ptx(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "fmc ptx: not built yet\n"); return 2; }
