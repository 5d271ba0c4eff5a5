/* Reading an int32 input array for --input NAME=@FILE.npy. */
#ifndef FM_TOOLS_CLI_NPY_H
#define FM_TOOLS_CLI_NPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Loads an int32 or int64 (C order) .npy file whose values all fit in
 * int32 into *data (malloc'd, caller frees), its rank and dims (at most
 * max_rank). On failure writes a message naming the file into err. A rank-0
 * file is refused: inputs have rank 1 to 4. */
bool fmcli_npy_load_int32(const char *path, int32_t **data, size_t *rank, int64_t *dims,
                          size_t max_rank, char *err, size_t err_size);

#endif
