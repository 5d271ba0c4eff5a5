/* The kernel files embedded at build time by kernels/CMakeLists.txt
 * (NUL-terminated; _len excludes the NUL). */
#ifndef FM_RUNTIME_KERNELS_EMBEDDED_H
#define FM_RUNTIME_KERNELS_EMBEDDED_H

#include <stddef.h>

extern const char fmk_flash_fwd_cuh[];
extern const size_t fmk_flash_fwd_cuh_len;
extern const char fmk_fm_fwd_params_h[];
extern const size_t fmk_fm_fwd_params_h_len;

#endif
