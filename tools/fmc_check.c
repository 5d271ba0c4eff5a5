/* Placeholder until the subcommand lands; replaced by its owner. */
#include <stdio.h>
#include "tools/fmc_cmds.h"
int fmc_cmd_check(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "fmc check: not built yet\n"); return 2; }
int fmc_cmd_print(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "fmc print: not built yet\n"); return 2; }
