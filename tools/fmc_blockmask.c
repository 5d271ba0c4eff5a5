/* Placeholder until the subcommand lands; replaced by its owner. */
#include <stdio.h>
#include "tools/fmc_cmds.h"
int fmc_cmd_blockmask(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "fmc blockmask: not built yet\n"); return 2; }
