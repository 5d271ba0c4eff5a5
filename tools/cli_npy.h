/* .npy inputs for the tools: --input NAME=@FILE.npy and fmc attend's
 * arrays, where "-" means standard input. */
#ifndef FM_TOOLS_CLI_NPY_H
#define FM_TOOLS_CLI_NPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dsl/diag.h"
#include "runtime/interop/npy.h"
#include "tools/cli.h"

/* How messages name the input "-". */
#define FMCLI_STDIN_NAME "<stdin>"

/* path as messages show it: FMCLI_STDIN_NAME for "-". */
const char *fmcli_npy_name(const char *path);

/* Loads the .npy file at path, or standard input for "-" (read to its end,
 * which must be where the array ends). Standard input can be read once: a
 * second "-" is an error that says so. */
fm_status fmcli_npy_load(const char *path, fmr_npy *a, fmd_diags *d);

/* At most one input may be "-": n paths named by their flags, plus every
 * --input NAME=@- of c. Returns 0, or prints a usage error naming the two
 * and returns its exit status. */
int fmcli_npy_check_stdin(const fmcli_common *c, const char *const *flags, const char *const *paths,
                          size_t n);

/* Loads an int32 or int64 (C order) .npy file whose values all fit in
 * int32 into *data (malloc'd, caller frees), its rank and dims (at most
 * max_rank). On failure writes a message naming the file into err. A rank-0
 * file is refused: inputs have rank 1 to 4. */
bool fmcli_npy_load_int32(const char *path, int32_t **data, size_t *rank, int64_t *dims,
                          size_t max_rank, char *err, size_t err_size);

#endif
