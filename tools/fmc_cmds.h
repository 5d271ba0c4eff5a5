/* The subcommands of fmc, one file each (fmc_<name>.c). Each takes the
 * arguments after the subcommand name (argv[0] is the subcommand) and
 * returns the exit status of the CLI contract: 0 ok, 1 bad mask/param/input,
 * 2 bad usage, 3 a check found a mismatch. */
#ifndef FM_TOOLS_FMC_CMDS_H
#define FM_TOOLS_FMC_CMDS_H

int fmc_cmd_check(int argc, char **argv);
int fmc_cmd_print(int argc, char **argv);
int fmc_cmd_blockmask(int argc, char **argv);
int fmc_cmd_attend(int argc, char **argv);
int fmc_cmd_cuda(int argc, char **argv);
int fmc_cmd_ptx(int argc, char **argv);

#endif
