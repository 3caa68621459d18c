//===- CudaDriver.h - the CUDA driver API, loaded at run time -------------===//
//
// The project builds and tests without CUDA: no CUDA header or library is
// used at build time. The few driver entry points the GPU runtime needs are
// declared here with the types and enum values of the documented driver ABI
// (cuda.h), and resolved with dlopen("libcuda.so.1") + dlsym the first time
// a GPU entry point is called. Symbols are the ones cuda.h maps the API
// names to (cuMemAlloc -> cuMemAlloc_v2, ...), since those are what the
// library exports with the 64-bit-pointer ABI.
//
// MOE_LIBCUDA, when set, names the library to load instead of libcuda.so.1
// (a non-standard install, or the unit tests' fake driver).
//
//===----------------------------------------------------------------------===//
#ifndef MOE_RUNTIME_CUDA_DRIVER_H
#define MOE_RUNTIME_CUDA_DRIVER_H

#include <cstddef>
#include <cstdint>
#include <string>

namespace moe::gpu {

using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long; // the _v2 ABI: always 64-bit
using CUcontext = struct CUctx_st *;
using CUmodule = struct CUmod_st *;
using CUfunction = struct CUfunc_st *;
using CUstream = struct CUstream_st *;

constexpr CUresult CUDA_SUCCESS = 0;
constexpr CUresult CUDA_ERROR_NO_DEVICE = 100;

// CUjit_option
constexpr int CU_JIT_INFO_LOG_BUFFER = 3;
constexpr int CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES = 4;
constexpr int CU_JIT_ERROR_LOG_BUFFER = 5;
constexpr int CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6;
// CUdevice_attribute
constexpr int CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16;
constexpr int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
constexpr int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;
// CUfunction_attribute
constexpr int CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8;
// CUstream_flags
constexpr unsigned CU_STREAM_NON_BLOCKING = 1;

/// The driver entry points, resolved from the loaded library.
struct CudaDriver {
  CUresult (*cuInit)(unsigned flags);
  CUresult (*cuDriverGetVersion)(int *version);
  CUresult (*cuDeviceGetCount)(int *count);
  CUresult (*cuDeviceGet)(CUdevice *device, int ordinal);
  CUresult (*cuDeviceGetName)(char *name, int len, CUdevice device);
  CUresult (*cuDeviceGetAttribute)(int *value, int attribute, CUdevice device);
  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *ctx, CUdevice device);
  CUresult (*cuDevicePrimaryCtxRelease)(CUdevice device); // _v2
  CUresult (*cuCtxSetCurrent)(CUcontext ctx);
  CUresult (*cuModuleLoadDataEx)(CUmodule *module, const void *image, unsigned numOptions,
                                 int *options, void **optionValues);
  CUresult (*cuModuleUnload)(CUmodule module);
  CUresult (*cuModuleGetFunction)(CUfunction *fn, CUmodule module, const char *name);
  CUresult (*cuFuncSetAttribute)(CUfunction fn, int attribute, int value);
  CUresult (*cuMemAlloc)(CUdeviceptr *ptr, size_t bytes);                       // _v2
  CUresult (*cuMemFree)(CUdeviceptr ptr);                                       // _v2
  CUresult (*cuMemcpyHtoD)(CUdeviceptr dst, const void *src, size_t bytes);     // _v2
  CUresult (*cuMemcpyDtoH)(void *dst, CUdeviceptr src, size_t bytes);           // _v2
  CUresult (*cuMemcpyHtoDAsync)(CUdeviceptr dst, const void *src, size_t bytes, // _v2
                                CUstream stream);
  CUresult (*cuMemcpyDtoHAsync)(void *dst, CUdeviceptr src, size_t bytes, // _v2
                                CUstream stream);
  CUresult (*cuMemsetD8Async)(CUdeviceptr dst, unsigned char value, size_t count,
                              CUstream stream);
  CUresult (*cuLaunchKernel)(CUfunction fn, unsigned gridX, unsigned gridY, unsigned gridZ,
                             unsigned blockX, unsigned blockY, unsigned blockZ,
                             unsigned sharedBytes, CUstream stream, void **params, void **extra);
  CUresult (*cuStreamCreate)(CUstream *stream, unsigned flags);
  CUresult (*cuStreamDestroy)(CUstream stream); // _v2
  CUresult (*cuStreamSynchronize)(CUstream stream);
  CUresult (*cuGetErrorName)(CUresult error, const char **name);
  CUresult (*cuGetErrorString)(CUresult error, const char **text);
};

/// The loaded, initialized driver (cuInit done, at least one device), or
/// null with `error` saying why (no library, a missing symbol, cuInit
/// failed, no device). Loads on first use; thread-safe.
const CudaDriver *loadCudaDriver(std::string &error);

/// "cuMemAlloc (allocating 4096 bytes for argument 'x'): CUDA_ERROR_OUT_OF_MEMORY
/// (out of memory)": the call, what it was doing, and the driver's error
/// name and string.
std::string driverError(const CudaDriver &driver, const char *call, CUresult result,
                        const std::string &doing);

/// Unloads the driver library so the next loadCudaDriver loads it again
/// (reading MOE_LIBCUDA again). For tests only; no GPU layer may be open.
void unloadCudaDriverForTesting();

} // namespace moe::gpu

#endif // MOE_RUNTIME_CUDA_DRIVER_H
