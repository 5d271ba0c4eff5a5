/* Placeholder until the subcommand lands; replaced by its owner. */
#include <stdio.h>
#include "tools/fmc_cmds.h"
int fmc_cmd_attend(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "fmc attend: not built yet\n"); return 2; }
