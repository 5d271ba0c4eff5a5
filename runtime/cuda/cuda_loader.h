/* The CUDA driver API, loaded with dlopen (libcuda.so.1) on first use so
 * that the library starts on machines without a GPU or driver. */
#ifndef FM_RUNTIME_CUDA_LOADER_H
#define FM_RUNTIME_CUDA_LOADER_H

#include <stdbool.h>
#include <stddef.h>

#ifdef FM_HAVE_CUDA
#include <cuda.h>

typedef struct fmr_cuda_api {
    CUresult (*Init)(unsigned);
    CUresult (*DriverGetVersion)(int *);
    CUresult (*DeviceGetCount)(int *);
    CUresult (*DeviceGet)(CUdevice *, int);
    CUresult (*DeviceGetName)(char *, int, CUdevice);
    CUresult (*DeviceGetAttribute)(int *, CUdevice_attribute, CUdevice);
    CUresult (*DevicePrimaryCtxRetain)(CUcontext *, CUdevice);
    CUresult (*DevicePrimaryCtxRelease)(CUdevice);
    CUresult (*CtxSetCurrent)(CUcontext);
    CUresult (*CtxSynchronize)(void);
    CUresult (*MemAlloc)(CUdeviceptr *, size_t);
    CUresult (*MemFree)(CUdeviceptr);
    CUresult (*MemcpyHtoD)(CUdeviceptr, const void *, size_t);
    CUresult (*MemcpyDtoH)(void *, CUdeviceptr, size_t);
    CUresult (*MemsetD8)(CUdeviceptr, unsigned char, size_t);
    CUresult (*ModuleLoadData)(CUmodule *, const void *);
    CUresult (*ModuleUnload)(CUmodule);
    CUresult (*ModuleGetFunction)(CUfunction *, CUmodule, const char *);
    CUresult (*FuncSetAttribute)(CUfunction, CUfunction_attribute, int);
    CUresult (*FuncGetAttribute)(int *, CUfunction_attribute, CUfunction);
    CUresult (*LaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
                             unsigned, unsigned, CUstream, void **, void **);
    CUresult (*EventCreate)(CUevent *, unsigned);
    CUresult (*EventRecord)(CUevent, CUstream);
    CUresult (*EventSynchronize)(CUevent);
    CUresult (*EventElapsedTime)(float *, CUevent, CUevent);
    CUresult (*EventDestroy)(CUevent);
    CUresult (*GetErrorString)(CUresult, const char **);
} fmr_cuda_api;

/* The driver, initialised (cuInit done) with at least one device; NULL
 * when unusable, with the reason in why (n bytes). Thread-safe. */
const fmr_cuda_api *fmr_cuda_driver(char *why, size_t n);
/* "cuMemAlloc: out of memory" style text for an error code. */
const char *fmr_cuda_error_string(CUresult r);
#endif

/* Whether a CUDA GPU is usable here; if not, why. Always false (with the
 * reason) when CUDA support was not built. */
bool fmr_cuda_usable(char *why, size_t n);

#endif
