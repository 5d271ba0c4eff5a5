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

#include <dlfcn.h>
#include <pthread.h>
#include "runtime/cuda/dynlib.h"
#include <stdlib.h>

static fmr_cuda_api api;
static bool api_ok;
static char api_why[512];
static pthread_once_t api_once = PTHREAD_ONCE_INIT;

static void load(void) {
    const char *names[] = {getenv("FLEXMASK_CUDA_DRIVER"), "libcuda.so.1", "libcuda.so"};
    char first_err[256];
    void *lib = fmr_dlopen_first(names, sizeof names / sizeof names[0], first_err, sizeof first_err);
    if (!lib) {
        snprintf(api_why, sizeof api_why,
                 "the CUDA driver (libcuda.so.1) could not be loaded: %s (no NVIDIA driver is "
                 "installed, or this machine has no GPU)",
                 first_err);
        return;
    }
    bool ok = true;
#define SYM(field, name)                                                                           \
    do {                                                                                           \
        *(void **)&api.field = dlsym(lib, name);                                                   \
        if (!api.field) ok = false;                                                                \
    } while (0)
    SYM(Init, "cuInit");
    SYM(DriverGetVersion, "cuDriverGetVersion");
    SYM(DeviceGetCount, "cuDeviceGetCount");
    SYM(DeviceGet, "cuDeviceGet");
    SYM(DeviceGetName, "cuDeviceGetName");
    SYM(DeviceGetAttribute, "cuDeviceGetAttribute");
    SYM(DevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
    SYM(DevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2");
    SYM(CtxSetCurrent, "cuCtxSetCurrent");
    SYM(CtxSynchronize, "cuCtxSynchronize");
    SYM(MemAlloc, "cuMemAlloc_v2");
    SYM(MemFree, "cuMemFree_v2");
    SYM(MemcpyHtoD, "cuMemcpyHtoD_v2");
    SYM(MemcpyDtoH, "cuMemcpyDtoH_v2");
    SYM(MemsetD8, "cuMemsetD8_v2");
    SYM(ModuleLoadData, "cuModuleLoadData");
    SYM(ModuleUnload, "cuModuleUnload");
    SYM(ModuleGetFunction, "cuModuleGetFunction");
    SYM(FuncSetAttribute, "cuFuncSetAttribute");
    SYM(FuncGetAttribute, "cuFuncGetAttribute");
    SYM(LaunchKernel, "cuLaunchKernel");
    SYM(EventCreate, "cuEventCreate");
    SYM(EventRecord, "cuEventRecord");
    SYM(EventSynchronize, "cuEventSynchronize");
    SYM(EventElapsedTime, "cuEventElapsedTime_v2");
    if (!api.EventElapsedTime) {
        ok = true; /* older drivers only have the unversioned name */
        SYM(EventElapsedTime, "cuEventElapsedTime");
    }
    SYM(EventDestroy, "cuEventDestroy_v2");
    SYM(GetErrorString, "cuGetErrorString");
#undef SYM
    if (!ok) {
        snprintf(api_why, sizeof api_why,
                 "the CUDA driver found is too old (a needed function is missing); update the "
                 "NVIDIA driver");
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
