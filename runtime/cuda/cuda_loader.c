/* libcuda.so.1 through dlopen. */
#define _POSIX_C_SOURCE 200809L
#include "runtime/cuda/cuda_loader.h"

#include <stdio.h>
#include <string.h>

#ifndef FM_HAVE_CUDA

bool fmr_cuda_usable(char *why, size_t n) {
    if (why && n)
        snprintf(why, n, "flexmask was built without CUDA support (the CUDA Toolkit was not found "
                         "at build time)");
    return false;
}

#else

#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>

#include "runtime/cuda/dynlib.h"

static fmr_cuda_api api;
static bool api_ok;
static char api_why[512];
static pthread_once_t api_once = PTHREAD_ONCE_INIT;

#define FN(field, name) {name, NULL, offsetof(fmr_cuda_api, field)}
static const fmr_dynlib_sym driver_syms[] = {
    FN(Init, "cuInit"),
    FN(DriverGetVersion, "cuDriverGetVersion"),
    FN(DeviceGetCount, "cuDeviceGetCount"),
    FN(DeviceGet, "cuDeviceGet"),
    FN(DeviceGetName, "cuDeviceGetName"),
    FN(DeviceGetAttribute, "cuDeviceGetAttribute"),
    FN(DevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain"),
    FN(DevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2"),
    FN(CtxSetCurrent, "cuCtxSetCurrent"),
    FN(CtxSynchronize, "cuCtxSynchronize"),
    FN(MemAlloc, "cuMemAlloc_v2"),
    FN(MemFree, "cuMemFree_v2"),
    FN(MemcpyHtoD, "cuMemcpyHtoD_v2"),
    FN(MemcpyDtoH, "cuMemcpyDtoH_v2"),
    FN(MemsetD8, "cuMemsetD8_v2"),
    FN(ModuleLoadData, "cuModuleLoadData"),
    FN(ModuleUnload, "cuModuleUnload"),
    FN(ModuleGetFunction, "cuModuleGetFunction"),
    FN(FuncSetAttribute, "cuFuncSetAttribute"),
    FN(FuncGetAttribute, "cuFuncGetAttribute"),
    FN(LaunchKernel, "cuLaunchKernel"),
    FN(EventCreate, "cuEventCreate"),
    FN(EventRecord, "cuEventRecord"),
    FN(EventSynchronize, "cuEventSynchronize"),
    /* Older drivers only have the unversioned name. */
    {"cuEventElapsedTime_v2", "cuEventElapsedTime", offsetof(fmr_cuda_api, EventElapsedTime)},
    FN(EventDestroy, "cuEventDestroy_v2"),
    FN(GetErrorString, "cuGetErrorString"),
};
#undef FN
static const char *const driver_sonames[] = {"libcuda.so.1", "libcuda.so"};
static const fmr_dynlib_spec driver_spec = {
    "FLEXMASK_CUDA_DRIVER", driver_sonames, sizeof driver_sonames / sizeof driver_sonames[0],
    driver_syms, sizeof driver_syms / sizeof driver_syms[0]};

static void load(void) {
    char err[256];
    void *lib;
    fmr_dynlib_result res = fmr_dynlib_load(&driver_spec, &api, &lib, err, sizeof err);
    if (res == FMR_DYNLIB_NOT_FOUND) {
        snprintf(api_why, sizeof api_why,
                 "the CUDA driver (libcuda.so.1) could not be loaded: %s (no NVIDIA driver is "
                 "installed, or this machine has no GPU)",
                 err);
        return;
    }
    if (res != FMR_DYNLIB_OK) {
        snprintf(api_why, sizeof api_why,
                 "the CUDA driver found is too old (%s is missing); update the NVIDIA driver", err);
        return;
    }
    CUresult r = api.Init(0);
    if (r != CUDA_SUCCESS) {
        snprintf(api_why, sizeof api_why, "the CUDA driver failed to initialise: %s",
                 fmr_cuda_error_string(r));
        return;
    }
    int count = 0;
    r = api.DeviceGetCount(&count);
    if (r != CUDA_SUCCESS || count <= 0) {
        snprintf(api_why, sizeof api_why, "the CUDA driver reports no GPU%s%s",
                 r != CUDA_SUCCESS ? ": " : "", r != CUDA_SUCCESS ? fmr_cuda_error_string(r) : "");
        return;
    }
    api_ok = true;
}

const char *fmr_cuda_error_string(CUresult r) {
    const char *s = NULL;
    if (api.GetErrorString && api.GetErrorString(r, &s) == CUDA_SUCCESS && s) return s;
    return "unknown CUDA error";
}

const fmr_cuda_api *fmr_cuda_driver(char *why, size_t n) {
    pthread_once(&api_once, load);
    if (!api_ok) {
        if (why && n) snprintf(why, n, "%s", api_why);
        return NULL;
    }
    return &api;
}

bool fmr_cuda_usable(char *why, size_t n) { return fmr_cuda_driver(why, n) != NULL; }

#endif
