//===- CudaDriver.cpp - dlopen libcuda and resolve the driver API ---------===//

#include "CudaDriver.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

namespace moe::gpu {

namespace {
std::mutex driverMutex;
void *driverHandle = nullptr;
CudaDriver driverTable;
bool driverReady = false;

/// Names for the codes a driver may be unable to name itself: the CUDA
/// toolkit's stub libcuda (linked against at build time, never meant to
/// run) answers every call, cuGetErrorName included, with
/// CUDA_ERROR_STUB_LIBRARY. Values from cuda.h's CUresult.
void fallbackName(CUresult result, const char *&name, const char *&text) {
  switch (result) {
  case 3:
    name = "CUDA_ERROR_NOT_INITIALIZED";
    text = "initialization error";
    return;
  case 34:
    name = "CUDA_ERROR_STUB_LIBRARY";
    text = "the CUDA stub library was loaded instead of the real driver";
    return;
  case 100:
    name = "CUDA_ERROR_NO_DEVICE";
    text = "no CUDA-capable device is detected";
    return;
  case 803:
    name = "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH";
    text = "the driver and the kernel module versions do not match";
    return;
  }
}

std::string resultText(const CudaDriver &d, CUresult result) {
  const char *name = nullptr, *text = nullptr;
  if (d.cuGetErrorName && d.cuGetErrorName(result, &name) != CUDA_SUCCESS)
    name = nullptr;
  if (d.cuGetErrorString && d.cuGetErrorString(result, &text) != CUDA_SUCCESS)
    text = nullptr;
  if (!name)
    fallbackName(result, name, text);
  std::string s = name ? name : "CUDA error " + std::to_string(result);
  if (text)
    s += std::string(" (") + text + ")";
  return s;
}

template <typename Fn> bool resolve(void *handle, Fn &slot, const char *symbol,
                                    std::string &missing) {
  slot = reinterpret_cast<Fn>(dlsym(handle, symbol));
  if (!slot)
    missing += std::string(missing.empty() ? "" : ", ") + symbol;
  return slot != nullptr;
}
} // namespace

std::string driverError(const CudaDriver &driver, const char *call, CUresult result,
                        const std::string &doing) {
  return std::string(call) + " (" + doing + ") failed: " + resultText(driver, result);
}

const CudaDriver *loadCudaDriver(std::string &error) {
  std::lock_guard<std::mutex> lock(driverMutex);
  if (driverReady)
    return &driverTable;
  const char *override = std::getenv("MOE_LIBCUDA");
  std::string library = override && *override ? override : "libcuda.so.1";
  if (!driverHandle) {
    driverHandle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!driverHandle) {
      const char *why = dlerror();
      error = "no CUDA driver: cannot load " + library + " (" + (why ? why : "unknown error") +
              "); the GPU path needs an NVIDIA driver" +
              (override ? "" : " (set MOE_LIBCUDA to use a library at another path)");
      return nullptr;
    }
  }
  CudaDriver d{};
  std::string missing;
  void *h = driverHandle;
  resolve(h, d.cuInit, "cuInit", missing);
  resolve(h, d.cuDriverGetVersion, "cuDriverGetVersion", missing);
  resolve(h, d.cuDeviceGetCount, "cuDeviceGetCount", missing);
  resolve(h, d.cuDeviceGet, "cuDeviceGet", missing);
  resolve(h, d.cuDeviceGetName, "cuDeviceGetName", missing);
  resolve(h, d.cuDeviceGetAttribute, "cuDeviceGetAttribute", missing);
  resolve(h, d.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain", missing);
  resolve(h, d.cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2", missing);
  resolve(h, d.cuCtxSetCurrent, "cuCtxSetCurrent", missing);
  resolve(h, d.cuModuleLoadDataEx, "cuModuleLoadDataEx", missing);
  resolve(h, d.cuModuleUnload, "cuModuleUnload", missing);
  resolve(h, d.cuModuleGetFunction, "cuModuleGetFunction", missing);
  resolve(h, d.cuFuncSetAttribute, "cuFuncSetAttribute", missing);
  resolve(h, d.cuMemAlloc, "cuMemAlloc_v2", missing);
  resolve(h, d.cuMemFree, "cuMemFree_v2", missing);
  resolve(h, d.cuMemcpyHtoD, "cuMemcpyHtoD_v2", missing);
  resolve(h, d.cuMemcpyDtoH, "cuMemcpyDtoH_v2", missing);
  resolve(h, d.cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2", missing);
  resolve(h, d.cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2", missing);
  resolve(h, d.cuMemsetD8Async, "cuMemsetD8Async", missing);
  resolve(h, d.cuLaunchKernel, "cuLaunchKernel", missing);
  resolve(h, d.cuStreamCreate, "cuStreamCreate", missing);
  resolve(h, d.cuStreamDestroy, "cuStreamDestroy_v2", missing);
  resolve(h, d.cuStreamSynchronize, "cuStreamSynchronize", missing);
  resolve(h, d.cuGetErrorName, "cuGetErrorName", missing);
  resolve(h, d.cuGetErrorString, "cuGetErrorString", missing);
  if (!missing.empty()) {
    error = library + " is not a usable CUDA driver: missing " + missing +
            " (driver too old?)";
    return nullptr;
  }
  if (CUresult r = d.cuInit(0)) {
    error = "the CUDA driver loaded but " +
            driverError(d, "cuInit", r, "initializing the driver") +
            (r == CUDA_ERROR_NO_DEVICE ? ": this machine has no NVIDIA GPU" : "");
    return nullptr;
  }
  int count = 0;
  if (CUresult r = d.cuDeviceGetCount(&count)) {
    error = driverError(d, "cuDeviceGetCount", r, "counting devices");
    return nullptr;
  }
  if (count == 0) {
    error = "the CUDA driver loaded but reports no device";
    return nullptr;
  }
  driverTable = d;
  driverReady = true;
  return &driverTable;
}

void unloadCudaDriverForTesting() {
  std::lock_guard<std::mutex> lock(driverMutex);
  if (driverHandle)
    dlclose(driverHandle);
  driverHandle = nullptr;
  driverReady = false;
  driverTable = CudaDriver{};
}

} // namespace moe::gpu
