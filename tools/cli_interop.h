/* The interop flags of `fmc blockmask` (issue 6): a BlockMask from a dense
 * mask in a .npy file instead of a mask file, and the BlockMask written out
 * as a safetensors file (PyTorch's BlockMask.from_kv_blocks arguments) or
 * as a dense boolean .npy. Each prints its diagnostics in the chosen form
 * and returns a contract exit status (0 ok, 1 the input is wrong). */
#ifndef FM_TOOLS_CLI_INTEROP_H
#define FM_TOOLS_CLI_INTEROP_H

#include "tools/cli.h"

/* --dense FILE.npy: builds s->blockmask from a bool/uint8 (1 = attend) or
 * float (additive: 0 / -inf) array of shape [Q, KV], [H, Q, KV] or
 * [B, H, Q, KV], with c's block sizes. --batch / --heads, when given, must
 * equal the file's size there or broadcast a size-1 dimension; --q-len /
 * --kv-len, when given, must equal the file's (--kv-len does not default
 * to --q-len here: the file says). s->diags is created here
 * when NULL; s->mask stays NULL (the mask is named "dense"). */
int fmcli_build_dense(const fmcli_common *c, fmcli_session *s, const char *npy_path);

/* --safetensors FILE: writes s->blockmask (see fm_blockmask_save_safetensors). */
int fmcli_save_safetensors(const fmcli_common *c, fmcli_session *s, const char *path);

/* --dense-out FILE.npy: writes the BlockMask's mask as a bool [B, H, Q, KV] array. */
int fmcli_save_dense_npy(const fmcli_common *c, fmcli_session *s, const char *path);

#endif
