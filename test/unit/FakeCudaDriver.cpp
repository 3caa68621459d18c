//===- FakeCudaDriver.cpp - a CPU stand-in for libcuda, for the unit tests ===//
//
// The GPU runtime loads the driver with dlopen, so the tests can hand it
// this library instead (MOE_LIBCUDA) and exercise everything between the C
// API and the driver on a machine without a GPU: the order of calls, the
// buffer sizes, the grids and kernel parameters computed from T, the
// zero-filled scratch, and every driver-error path. "Device" memory is host
// memory. A few kernels, recognised by name, compute on it so results can
// be checked:
//   fake_scale(in, out, T, cols, factor)   out[i] = in[i] * factor, i < T*cols
//   fake_accumulate(in, acc, T, cols)      acc[j] += sum_t in[t*cols + j]
//   fake_write_sum(acc, out, cols)         out[j] = acc[j]
//   fake_copy_rows(in, out, rows, row_bytes)  memcpy of rows * row_bytes
//   fake_set_status(buf, code)             *(int32_t *)buf = code
//   fake_fault(...)                        the next synchronize reports
//                                          CUDA_ERROR_ILLEGAL_ADDRESS
// Other kernels are only recorded. The fake_cuda_* functions let a test
// inject a driver error into the next call of a named entry point and read
// the log of what happened.
//
//===----------------------------------------------------------------------===//

// The runtime's declarations of the driver types, so every fake entry point
// has exactly the type the runtime calls it through (-fsanitize=function).
#include "CudaDriver.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>

namespace {
using namespace moe::gpu;
constexpr CUresult kSuccess = 0, kInvalidValue = 1, kOutOfMemory = 2, kNotInitialized = 3,
                   kNoDevice = 100, kInvalidPtx = 218, kNotFound = 500, kIllegalAddress = 700;

struct Module {
  std::set<std::string> kernels;
};

std::map<std::string, CUresult> injected; // entry point -> error for its next call
std::string log;
std::set<uintptr_t> allocations;
std::set<Module *> modules;
int streams = 0, contextRefs = 0, allocCalls = 0, capability = 90;
bool initialized = false;
CUresult pendingStreamError = kSuccess;

CUresult injectedError(const char *api) {
  auto it = injected.find(api);
  if (it == injected.end())
    return kSuccess;
  CUresult r = it->second;
  injected.erase(it);
  return r;
}

#define FAKE_ENTRY(api)                                                                            \
  if (CUresult injectedResult = injectedError(api))                                                \
    return injectedResult;

std::string pointerOrValue(uint64_t v) {
  if (allocations.count(uintptr_t(v)))
    return "ptr";
  return std::to_string(int64_t(v));
}

uint64_t param(void **params, int i) {
  uint64_t v;
  std::memcpy(&v, params[i], sizeof v);
  return v;
}
} // namespace

extern "C" {

// --- test hooks ------------------------------------------------------------
void fake_cuda_reset() {
  injected.clear();
  log.clear();
  pendingStreamError = kSuccess;
  allocCalls = 0;
  capability = 90;
}
void fake_cuda_fail_next(const char *api, int code) { injected[api] = code; }
const char *fake_cuda_log() { return log.c_str(); }
int fake_cuda_live_resources() {
  return int(allocations.size() + modules.size()) + streams + contextRefs;
}
int fake_cuda_alloc_calls() { return allocCalls; }
void fake_cuda_set_capability(int cc) { capability = cc; }

// --- the driver API subset the runtime resolves -----------------------------
CUresult cuInit(unsigned) {
  FAKE_ENTRY("cuInit");
  initialized = true;
  return kSuccess;
}
CUresult cuDriverGetVersion(int *v) {
  *v = 13000;
  return kSuccess;
}
CUresult cuDeviceGetCount(int *count) {
  FAKE_ENTRY("cuDeviceGetCount");
  *count = initialized ? 1 : 0;
  return initialized ? kSuccess : kNotInitialized;
}
CUresult cuDeviceGet(CUdevice *device, int ordinal) {
  FAKE_ENTRY("cuDeviceGet");
  if (ordinal != 0)
    return kInvalidValue;
  *device = 0;
  return kSuccess;
}
CUresult cuDeviceGetName(char *name, int len, CUdevice) {
  std::strncpy(name, "Fake GPU", size_t(len));
  return kSuccess;
}
CUresult cuDeviceGetAttribute(int *value, int attribute, CUdevice) {
  switch (attribute) {
  case 16:
    *value = 132;
    return kSuccess;
  case 75:
    *value = capability / 10;
    return kSuccess;
  case 76:
    *value = capability % 10;
    return kSuccess;
  }
  return kInvalidValue;
}
CUresult cuDevicePrimaryCtxRetain(CUcontext *ctx, CUdevice) {
  FAKE_ENTRY("cuDevicePrimaryCtxRetain");
  static int context;
  *ctx = reinterpret_cast<CUcontext>(&context);
  ++contextRefs;
  return kSuccess;
}
CUresult cuDevicePrimaryCtxRelease_v2(CUdevice) {
  --contextRefs;
  return kSuccess;
}
CUresult cuCtxSetCurrent(CUcontext) {
  FAKE_ENTRY("cuCtxSetCurrent");
  return kSuccess;
}
CUresult cuModuleLoadDataEx(CUmodule *module, const void *image, unsigned numOptions, int *options,
                            void **values) {
  FAKE_ENTRY("cuModuleLoadDataEx");
  std::string ptx(static_cast<const char *>(image));
  if (ptx.find("FAKE_SYNTAX_ERROR") != std::string::npos) {
    for (unsigned i = 0; i + 1 < numOptions; ++i)
      if (options[i] == 5 && options[i + 1] == 6) // error log buffer, its size
        std::strncpy(static_cast<char *>(values[i]), "ptxas fatal: fake syntax error on line 3",
                     size_t(uintptr_t(values[i + 1])));
    return kInvalidPtx;
  }
  auto *m = new Module();
  for (size_t at = ptx.find(".entry "); at != std::string::npos; at = ptx.find(".entry ", at + 1)) {
    size_t begin = at + 7, end = ptx.find_first_of("( \n", begin);
    m->kernels.insert(ptx.substr(begin, end - begin));
  }
  modules.insert(m);
  *module = reinterpret_cast<CUmodule>(m);
  return kSuccess;
}
CUresult cuModuleUnload(CUmodule handle) {
  auto *module = reinterpret_cast<Module *>(handle);
  modules.erase(module);
  delete module;
  return kSuccess;
}
CUresult cuModuleGetFunction(CUfunction *fn, CUmodule handle, const char *name) {
  auto *module = reinterpret_cast<Module *>(handle);
  FAKE_ENTRY("cuModuleGetFunction");
  auto it = module->kernels.find(name);
  if (it == module->kernels.end())
    return kNotFound;
  *fn = reinterpret_cast<CUfunction>(const_cast<char *>(it->c_str())); // the handle is its name
  return kSuccess;
}
CUresult cuFuncSetAttribute(CUfunction handle, int attribute, int value) {
  auto *fn = reinterpret_cast<const char *>(handle);
  FAKE_ENTRY("cuFuncSetAttribute");
  log += std::string("attr ") + fn + " " + std::to_string(attribute) + "=" +
         std::to_string(value) + "\n";
  return kSuccess;
}
CUresult cuMemAlloc_v2(CUdeviceptr *ptr, size_t bytes) {
  FAKE_ENTRY("cuMemAlloc");
  ++allocCalls;
  if (bytes == 0)
    return kInvalidValue;
  void *p = std::malloc(bytes);
  std::memset(p, 0xAB, bytes); // not zero: the runtime must zero-fill scratch itself
  allocations.insert(uintptr_t(p));
  *ptr = uintptr_t(p);
  return kSuccess;
}
CUresult cuMemFree_v2(CUdeviceptr ptr) {
  if (!allocations.erase(uintptr_t(ptr)))
    return kInvalidValue;
  std::free(reinterpret_cast<void *>(ptr));
  return kSuccess;
}
CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t bytes) {
  FAKE_ENTRY("cuMemcpyHtoD");
  std::memcpy(reinterpret_cast<void *>(dst), src, bytes);
  return kSuccess;
}
CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t bytes) {
  FAKE_ENTRY("cuMemcpyDtoH");
  std::memcpy(dst, reinterpret_cast<const void *>(src), bytes);
  return kSuccess;
}
CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t bytes, CUstream) {
  FAKE_ENTRY("cuMemcpyHtoDAsync");
  std::memcpy(reinterpret_cast<void *>(dst), src, bytes);
  return kSuccess;
}
CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t bytes, CUstream) {
  FAKE_ENTRY("cuMemcpyDtoHAsync");
  std::memcpy(dst, reinterpret_cast<const void *>(src), bytes);
  return kSuccess;
}
CUresult cuMemsetD8Async(CUdeviceptr dst, unsigned char value, size_t count, CUstream) {
  FAKE_ENTRY("cuMemsetD8Async");
  std::memset(reinterpret_cast<void *>(dst), value, count);
  log += "memset " + std::to_string(count) + "\n";
  return kSuccess;
}
CUresult cuLaunchKernel(CUfunction handle, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                        unsigned by, unsigned bz, unsigned smem, CUstream, void **params,
                        void **) {
  auto *fn = reinterpret_cast<const char *>(handle);
  FAKE_ENTRY("cuLaunchKernel");
  if (!gx || !gy || !gz)
    return kInvalidValue; // the real driver rejects empty grids too
  std::string name(fn);
  std::string entry = "launch " + name + " grid " + std::to_string(gx) + "," +
                      std::to_string(gy) + "," + std::to_string(gz) + " block " +
                      std::to_string(bx) + "," + std::to_string(by) + "," + std::to_string(bz) +
                      " smem " + std::to_string(smem);
  int count = name == "fake_scale"        ? 5
              : name == "fake_accumulate" ? 4
              : name == "fake_copy_rows"  ? 4
              : name == "fake_write_sum"  ? 3
              : name == "fake_set_status" ? 2
                                          : 0;
  for (int i = 0; i < count; ++i)
    entry += " " + pointerOrValue(param(params, i));
  log += entry + "\n";
  if (name == "fake_scale") {
    auto *in = reinterpret_cast<const float *>(param(params, 0));
    auto *out = reinterpret_cast<float *>(param(params, 1));
    int64_t n = int64_t(param(params, 2)) * int64_t(param(params, 3));
    for (int64_t i = 0; i < n; ++i)
      out[i] = in[i] * float(int64_t(param(params, 4)));
  } else if (name == "fake_accumulate") {
    auto *in = reinterpret_cast<const float *>(param(params, 0));
    auto *acc = reinterpret_cast<float *>(param(params, 1));
    int64_t tokens = int64_t(param(params, 2)), cols = int64_t(param(params, 3));
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t j = 0; j < cols; ++j)
        acc[j] += in[t * cols + j];
  } else if (name == "fake_write_sum") {
    auto *acc = reinterpret_cast<const float *>(param(params, 0));
    auto *out = reinterpret_cast<float *>(param(params, 1));
    for (int64_t j = 0; j < int64_t(param(params, 2)); ++j)
      out[j] = acc[j];
  } else if (name == "fake_copy_rows") {
    std::memcpy(reinterpret_cast<void *>(param(params, 1)),
                reinterpret_cast<const void *>(param(params, 0)),
                size_t(param(params, 2) * param(params, 3)));
  } else if (name == "fake_set_status") {
    int32_t code = int32_t(param(params, 1));
    std::memcpy(reinterpret_cast<void *>(param(params, 0)), &code, sizeof(code));
  } else if (name == "fake_fault") {
    pendingStreamError = kIllegalAddress;
  }
  return kSuccess;
}
CUresult cuStreamCreate(CUstream *stream, unsigned) {
  FAKE_ENTRY("cuStreamCreate");
  static int theStream;
  *stream = reinterpret_cast<CUstream>(&theStream);
  ++streams;
  return kSuccess;
}
CUresult cuStreamDestroy_v2(CUstream) {
  --streams;
  return kSuccess;
}
CUresult cuStreamSynchronize(CUstream) {
  FAKE_ENTRY("cuStreamSynchronize");
  CUresult r = pendingStreamError;
  pendingStreamError = kSuccess;
  return r;
}
CUresult cuGetErrorName(CUresult error, const char **name) {
  switch (error) {
  case kSuccess: *name = "CUDA_SUCCESS"; return kSuccess;
  case kInvalidValue: *name = "CUDA_ERROR_INVALID_VALUE"; return kSuccess;
  case kOutOfMemory: *name = "CUDA_ERROR_OUT_OF_MEMORY"; return kSuccess;
  case kNotInitialized: *name = "CUDA_ERROR_NOT_INITIALIZED"; return kSuccess;
  case kNoDevice: *name = "CUDA_ERROR_NO_DEVICE"; return kSuccess;
  case kInvalidPtx: *name = "CUDA_ERROR_INVALID_PTX"; return kSuccess;
  case kNotFound: *name = "CUDA_ERROR_NOT_FOUND"; return kSuccess;
  case kIllegalAddress: *name = "CUDA_ERROR_ILLEGAL_ADDRESS"; return kSuccess;
  }
  *name = nullptr;
  return kInvalidValue;
}
CUresult cuGetErrorString(CUresult error, const char **text) {
  switch (error) {
  case kSuccess: *text = "no error"; return kSuccess;
  case kInvalidValue: *text = "invalid argument"; return kSuccess;
  case kOutOfMemory: *text = "out of memory"; return kSuccess;
  case kNotInitialized: *text = "initialization error"; return kSuccess;
  case kNoDevice: *text = "no CUDA-capable device is detected"; return kSuccess;
  case kInvalidPtx: *text = "a PTX JIT compilation failed"; return kSuccess;
  case kNotFound: *text = "named symbol not found"; return kSuccess;
  case kIllegalAddress: *text = "an illegal memory access was encountered"; return kSuccess;
  }
  *text = nullptr;
  return kInvalidValue;
}

} // extern "C"
