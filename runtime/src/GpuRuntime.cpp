//===- GpuRuntime.cpp - run a PTX layer through the CUDA driver -----------===//
//
// The C ABI of moe_runtime_cuda.h. A layer is the PTX module plus its launch
// description (docs/gpu-launch.md): one device buffer per `arg` line, one
// per `scratch` line (zero-filled before each call), and the kernels
// launched in file order on one stream with no host synchronisation between
// them, so the sequence can be captured into a CUDA graph.
//
// Every call plans first (tensor checks, buffer sizes, grids for this T) and
// touches the device only once the plan is valid; results are copied to a
// host staging buffer and into the caller's tensors only after the stream
// completed without error, so a failed call leaves them untouched.
//
//===----------------------------------------------------------------------===//

#include "moe_runtime_cuda.h"

#include "CudaDriver.h"
#include "GpuLaunch.h"
#include "RuntimeInternal.h"

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

using namespace moe::gpu;
using moe::rt::clearError;
using moe::rt::fail;

namespace {
struct DeviceBuffer {
  CUdeviceptr ptr = 0;
  size_t capacity = 0;
};

/// Above this, a kernel's dynamic shared memory must be opted into with
/// CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES.
constexpr int64_t kDefaultDynamicSharedLimit = 48 * 1024;

bool readFile(const char *path, std::string &text) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  text = ss.str();
  return !in.bad();
}
} // namespace

struct moe_gpu_layer {
  const CudaDriver *cu = nullptr;
  CUdevice device = 0;
  CUcontext context = nullptr;
  bool contextRetained = false;
  CUmodule module = nullptr;
  CUstream stream = nullptr;
  LaunchDescription desc;
  std::string launchPath;
  std::vector<moe::rt::TensorSig> inputs, outputs;
  std::vector<CUfunction> functions; // one per kernel line
  std::vector<DeviceBuffer> argBuffers, scratchBuffers;
  std::vector<char> staging; // results, before they are known good
  std::string deviceName;
};

namespace {
int driverFail(const moe_gpu_layer &layer, const char *call, CUresult r,
               const std::string &doing) {
  return fail(MOE_ERR_DEVICE, driverError(*layer.cu, call, r, doing));
}

void destroy(moe_gpu_layer *layer) {
  if (layer->cu && layer->context) {
    const CudaDriver &cu = *layer->cu;
    cu.cuCtxSetCurrent(layer->context);
    for (auto *list : {&layer->argBuffers, &layer->scratchBuffers})
      for (DeviceBuffer &b : *list)
        if (b.ptr)
          cu.cuMemFree(b.ptr);
    if (layer->stream)
      cu.cuStreamDestroy(layer->stream);
    if (layer->module)
      cu.cuModuleUnload(layer->module);
    if (layer->contextRetained)
      cu.cuDevicePrimaryCtxRelease(layer->device);
  }
  delete layer;
}

int makeCurrent(const moe_gpu_layer &layer) {
  if (CUresult r = layer.cu->cuCtxSetCurrent(layer.context))
    return driverFail(layer, "cuCtxSetCurrent", r, "making the layer's context current");
  return MOE_OK;
}

/// Grows `buffer` to at least `bytes` (contents are not kept).
int ensureBuffer(moe_gpu_layer &layer, DeviceBuffer &buffer, size_t bytes,
                 const std::string &what) {
  if (buffer.capacity >= bytes && buffer.ptr)
    return MOE_OK;
  if (buffer.ptr) {
    layer.cu->cuMemFree(buffer.ptr);
    buffer = DeviceBuffer();
  }
  size_t rounded = (bytes + 255) / 256 * 256;
  if (rounded == 0)
    rounded = 256; // kernels get a valid pointer even for an empty tensor
  if (CUresult r = layer.cu->cuMemAlloc(&buffer.ptr, rounded)) {
    buffer = DeviceBuffer();
    return driverFail(layer, "cuMemAlloc", r,
                      "allocating " + std::to_string(rounded) + " bytes for " + what);
  }
  buffer.capacity = rounded;
  return MOE_OK;
}

/// The scratch sizes and grids for `tokens`; no device work.
struct Plan {
  std::vector<size_t> scratchBytes;
  std::vector<std::array<uint32_t, 3>> grids;
};

int makePlan(const moe_gpu_layer &layer, int64_t tokens, Plan &plan) {
  for (const ScratchBuffer &s : layer.desc.scratch) {
    int64_t bytes;
    std::string why;
    if (!s.bytes.evaluate(tokens, bytes, why))
      return fail(MOE_ERR_INVALID_ARGUMENT, "scratch '" + s.name + "' (line " +
                                                std::to_string(s.line) + " of " +
                                                layer.launchPath + "): " + why);
    plan.scratchBytes.push_back(size_t(bytes));
  }
  for (const KernelLaunch &k : layer.desc.kernels) {
    std::array<uint32_t, 3> grid;
    std::string why;
    if (!evaluateGrid(k, tokens, grid.data(), why))
      return fail(MOE_ERR_INVALID_ARGUMENT, why + " (" + layer.launchPath + ")");
    plan.grids.push_back(grid);
  }
  return MOE_OK;
}

int reserveScratch(moe_gpu_layer &layer, const Plan &plan) {
  for (size_t i = 0; i < plan.scratchBytes.size(); ++i)
    if (int status = ensureBuffer(layer, layer.scratchBuffers[i], plan.scratchBytes[i],
                                  "scratch buffer '" + layer.desc.scratch[i].name + "'"))
      return status;
  return MOE_OK;
}

/// Zero-fills the scratch and enqueues every kernel on `stream`.
int enqueue(moe_gpu_layer &layer, int64_t tokens, const Plan &plan,
            const std::vector<CUdeviceptr> &argPtrs, CUstream stream) {
  const CudaDriver &cu = *layer.cu;
  if (int status = reserveScratch(layer, plan))
    return status;
  for (size_t i = 0; i < plan.scratchBytes.size(); ++i)
    if (plan.scratchBytes[i])
      if (CUresult r = cu.cuMemsetD8Async(layer.scratchBuffers[i].ptr, 0, plan.scratchBytes[i],
                                          stream))
        return driverFail(layer, "cuMemsetD8Async", r,
                          "zero-filling scratch buffer '" + layer.desc.scratch[i].name + "'");
  std::vector<uint64_t> values;
  std::vector<void *> params;
  for (size_t k = 0; k < layer.desc.kernels.size(); ++k) {
    const KernelLaunch &kernel = layer.desc.kernels[k];
    const auto &grid = plan.grids[k];
    if (!grid[0] || !grid[1] || !grid[2])
      continue; // no blocks for this T: nothing to launch
    values.assign(kernel.params.size(), 0);
    params.assign(kernel.params.size(), nullptr);
    for (size_t p = 0; p < kernel.params.size(); ++p) {
      const ArgRef &ref = kernel.params[p];
      switch (ref.kind) {
      case ArgRef::Argument:
        values[p] = argPtrs[ref.index];
        break;
      case ArgRef::Scratch:
        values[p] = layer.scratchBuffers[ref.index].ptr;
        break;
      case ArgRef::Tokens:
        values[p] = uint64_t(tokens);
        break;
      case ArgRef::Constant:
        values[p] = uint64_t(ref.value);
        break;
      }
      params[p] = &values[p];
    }
    if (CUresult r = cu.cuLaunchKernel(layer.functions[k], grid[0], grid[1], grid[2],
                                       unsigned(kernel.block[0]), unsigned(kernel.block[1]),
                                       unsigned(kernel.block[2]), unsigned(kernel.sharedBytes),
                                       stream, params.empty() ? nullptr : params.data(),
                                       nullptr))
      return driverFail(layer, "cuLaunchKernel", r,
                        "launching kernel '" + kernel.symbol + "' (line " +
                            std::to_string(kernel.line) + ") with grid " +
                            std::to_string(grid[0]) + "x" + std::to_string(grid[1]) + "x" +
                            std::to_string(grid[2]) + " for T = " + std::to_string(tokens));
  }
  return MOE_OK;
}

size_t tensorBytes(const moe::rt::TensorSig &sig, int64_t tokens) {
  size_t n = moe::rt::dtypeSize(sig.dtype);
  for (int64_t d : sig.shape)
    n *= size_t(d < 0 ? tokens : d);
  return n;
}

int openDevice(moe_gpu_layer &layer, const std::string &ptx, const char *ptxPath) {
  const CudaDriver &cu = *layer.cu;
  int ordinal = 0;
  if (const char *env = std::getenv("MOE_CUDA_DEVICE"); env && *env)
    ordinal = std::atoi(env);
  if (CUresult r = cu.cuDeviceGet(&layer.device, ordinal))
    return driverFail(layer, "cuDeviceGet", r,
                      "getting device " + std::to_string(ordinal) + " (MOE_CUDA_DEVICE)");
  char name[256] = {0};
  if (CUresult r = cu.cuDeviceGetName(name, sizeof name - 1, layer.device))
    return driverFail(layer, "cuDeviceGetName", r, "naming the device");
  int major = 0, minor = 0, sms = 0;
  if (CUresult r = cu.cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                                           layer.device))
    return driverFail(layer, "cuDeviceGetAttribute", r, "reading the compute capability");
  cu.cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, layer.device);
  cu.cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, layer.device);
  int capability = major * 10 + minor;
  layer.deviceName = std::string(name) + " (sm_" + std::to_string(capability) + ", " +
                     std::to_string(sms) + " SMs)";
  const std::string &chip = layer.desc.chip;
  bool archSpecific = !chip.empty() && chip.back() == 'a';
  if (capability < layer.desc.chipNumber ||
      (archSpecific && capability != layer.desc.chipNumber))
    return fail(MOE_ERR_DEVICE, "the layer was compiled for " + chip + " but device " +
                                    std::to_string(ordinal) + " is " + layer.deviceName +
                                    "; recompile with --chip=sm_" + std::to_string(capability));

  if (CUresult r = cu.cuDevicePrimaryCtxRetain(&layer.context, layer.device))
    return driverFail(layer, "cuDevicePrimaryCtxRetain", r, "creating the device context");
  layer.contextRetained = true;
  if (int status = makeCurrent(layer))
    return status;

  // Load the PTX with the JIT's logs, so a rejected module says why.
  char errorLog[8192] = {0}, infoLog[4096] = {0};
  int options[] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
                   CU_JIT_INFO_LOG_BUFFER, CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES};
  void *values[] = {errorLog, reinterpret_cast<void *>(uintptr_t(sizeof errorLog - 1)), infoLog,
                    reinterpret_cast<void *>(uintptr_t(sizeof infoLog - 1))};
  if (CUresult r = cu.cuModuleLoadDataEx(&layer.module, ptx.c_str(), 4, options, values)) {
    layer.module = nullptr;
    std::string log = errorLog[0] ? errorLog : "(the JIT left no error log)";
    return fail(MOE_ERR_DEVICE,
                driverError(cu, "cuModuleLoadDataEx", r,
                            std::string("loading the PTX of ") + ptxPath) +
                    "\nJIT error log:\n" + log);
  }
  for (const KernelLaunch &k : layer.desc.kernels) {
    CUfunction fn = nullptr;
    if (CUresult r = cu.cuModuleGetFunction(&fn, layer.module, k.symbol.c_str()))
      return driverFail(layer, "cuModuleGetFunction", r,
                        "finding kernel '" + k.symbol + "' (line " + std::to_string(k.line) +
                            " of " + layer.launchPath + ") in " + ptxPath);
    if (k.sharedBytes > kDefaultDynamicSharedLimit)
      if (CUresult r = cu.cuFuncSetAttribute(fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                             int(k.sharedBytes)))
        return driverFail(layer, "cuFuncSetAttribute", r,
                          "allowing " + std::to_string(k.sharedBytes) +
                              " bytes of dynamic shared memory for kernel '" + k.symbol + "'");
    layer.functions.push_back(fn);
  }
  if (CUresult r = cu.cuStreamCreate(&layer.stream, CU_STREAM_NON_BLOCKING)) {
    layer.stream = nullptr;
    return driverFail(layer, "cuStreamCreate", r, "creating the layer's stream");
  }
  return MOE_OK;
}

int parseFile(const char *launchPath, LaunchDescription &desc) {
  std::string text, error;
  if (!readFile(launchPath, text))
    return fail(MOE_ERR_LOAD, std::string("cannot read the launch description '") + launchPath +
                                  "': " + std::strerror(errno));
  if (!parseLaunchDescription(text, desc, error, launchPath))
    return fail(MOE_ERR_LOAD, "malformed launch description: " + error);
  return MOE_OK;
}

/// The common checks of the entry points that need an open layer.
int requireLayer(const moe_gpu_layer *layer, const char *fn) {
  if (!layer)
    return fail(MOE_ERR_INVALID_ARGUMENT, std::string(fn) + ": null layer");
  return MOE_OK;
}
} // namespace

extern "C" {

int moe_cuda_available(void) {
  clearError();
  std::string error;
  if (!loadCudaDriver(error)) {
    fail(MOE_ERR_DEVICE, error);
    return 0;
  }
  return 1;
}

int moe_gpu_launch_check(const char *launch_path) {
  clearError();
  if (!launch_path)
    return fail(MOE_ERR_INVALID_ARGUMENT, "moe_gpu_launch_check: null path");
  LaunchDescription desc;
  return parseFile(launch_path, desc);
}

int moe_gpu_layer_open(const char *ptx_path, const char *launch_path, moe_gpu_layer **out) {
  clearError();
  if (!out)
    return fail(MOE_ERR_INVALID_ARGUMENT, "moe_gpu_layer_open: null output pointer");
  *out = nullptr;
  if (!ptx_path || !launch_path)
    return fail(MOE_ERR_INVALID_ARGUMENT, "moe_gpu_layer_open: null PTX or launch path");
  auto *layer = new moe_gpu_layer();
  layer->launchPath = launch_path;
  if (int status = parseFile(launch_path, layer->desc)) {
    destroy(layer);
    return status;
  }
  std::string ptx;
  if (!readFile(ptx_path, ptx)) {
    destroy(layer);
    return fail(MOE_ERR_LOAD, std::string("cannot read the PTX '") + ptx_path +
                                  "': " + std::strerror(errno));
  }
  layer->inputs = layer->desc.inputSigs();
  layer->outputs = layer->desc.outputSigs();
  layer->argBuffers.resize(layer->desc.args.size());
  layer->scratchBuffers.resize(layer->desc.scratch.size());
  std::string error;
  layer->cu = loadCudaDriver(error);
  if (!layer->cu) {
    destroy(layer);
    return fail(MOE_ERR_DEVICE, "cannot run '" + std::string(ptx_path) + "': " + error);
  }
  if (int status = openDevice(*layer, ptx, ptx_path)) {
    std::string message = moe_last_error();
    destroy(layer);
    return fail(status, message);
  }
  *out = layer;
  return MOE_OK;
}

void moe_gpu_layer_close(moe_gpu_layer *layer) {
  if (layer)
    destroy(layer);
}

int moe_gpu_layer_num_args(const moe_gpu_layer *layer) {
  return layer ? int(layer->inputs.size()) : -1;
}
int moe_gpu_layer_num_results(const moe_gpu_layer *layer) {
  return layer ? int(layer->outputs.size()) : -1;
}

int moe_gpu_layer_arg(const moe_gpu_layer *layer, int index, moe_dtype *dtype, int32_t *rank,
                      const int64_t **shape) {
  clearError();
  if (int status = requireLayer(layer, "moe_gpu_layer_arg"))
    return status;
  return moe::rt::describeTensor(layer->inputs, index, dtype, rank, shape);
}

int moe_gpu_layer_result(const moe_gpu_layer *layer, int index, moe_dtype *dtype,
                         int32_t *rank, const int64_t **shape) {
  clearError();
  if (int status = requireLayer(layer, "moe_gpu_layer_result"))
    return status;
  return moe::rt::describeTensor(layer->outputs, index, dtype, rank, shape);
}

const char *moe_gpu_layer_arg_name(const moe_gpu_layer *layer, int index) {
  if (!layer || index < 0 || index >= layer->desc.numInputs())
    return nullptr;
  return layer->desc.args[size_t(index)].name.c_str();
}

const char *moe_gpu_layer_result_name(const moe_gpu_layer *layer, int index) {
  if (!layer || index < 0 || index >= int(layer->outputs.size()))
    return nullptr;
  return layer->desc.args[size_t(layer->desc.numInputs() + index)].name.c_str();
}

const char *moe_gpu_layer_device(const moe_gpu_layer *layer) {
  return layer ? layer->deviceName.c_str() : "";
}

int moe_gpu_layer_run(moe_gpu_layer *layer, const moe_tensor *args, int num_args,
                      moe_tensor *results, int num_results) {
  clearError();
  if (int status = requireLayer(layer, "moe_gpu_layer_run"))
    return status;
  int64_t tokens = -1;
  if (int status = moe::rt::checkTensors(layer->inputs, layer->outputs, layer->desc.entry, args,
                                         num_args, results, num_results, &tokens))
    return status;
  if (tokens < 0)
    tokens = 0; // no dynamic dim anywhere: T plays no role
  Plan plan;
  if (int status = makePlan(*layer, tokens, plan))
    return status;
  if (int status = makeCurrent(*layer))
    return status;
  const CudaDriver &cu = *layer->cu;
  const auto &descArgs = layer->desc.args;
  std::vector<CUdeviceptr> ptrs(descArgs.size());
  std::vector<size_t> bytes(descArgs.size());
  size_t stagingBytes = 0;
  for (size_t i = 0; i < descArgs.size(); ++i) {
    bytes[i] = tensorBytes(descArgs[i].sig, tokens);
    if (int status = ensureBuffer(*layer, layer->argBuffers[i], bytes[i],
                                  "argument '" + descArgs[i].name + "'"))
      return status;
    ptrs[i] = layer->argBuffers[i].ptr;
    if (descArgs[i].isOutput)
      stagingBytes += bytes[i];
  }
  int numInputs = layer->desc.numInputs();
  for (int i = 0; i < numInputs; ++i)
    if (bytes[i])
      if (CUresult r = cu.cuMemcpyHtoDAsync(ptrs[i], args[i].data, bytes[i], layer->stream))
        return driverFail(*layer, "cuMemcpyHtoDAsync", r,
                          "copying input '" + descArgs[i].name + "' to the device");
  if (int status = enqueue(*layer, tokens, plan, ptrs, layer->stream))
    return status;
  layer->staging.resize(stagingBytes);
  size_t offset = 0;
  for (size_t i = numInputs; i < descArgs.size(); ++i) {
    if (bytes[i])
      if (CUresult r = cu.cuMemcpyDtoHAsync(layer->staging.data() + offset, ptrs[i], bytes[i],
                                            layer->stream))
        return driverFail(*layer, "cuMemcpyDtoHAsync", r,
                          "copying result '" + descArgs[i].name + "' to the host");
    offset += bytes[i];
  }
  // The kernels' error code (bad expert id, non-finite score...), read back
  // with the results so one synchronize covers both.
  int32_t kernelStatus = 0;
  if (int s = layer->desc.statusScratch; s >= 0 && plan.scratchBytes[size_t(s)] >= 4)
    if (CUresult r = cu.cuMemcpyDtoHAsync(&kernelStatus, layer->scratchBuffers[size_t(s)].ptr,
                                          sizeof(kernelStatus), layer->stream))
      return driverFail(*layer, "cuMemcpyDtoHAsync", r,
                        "copying the status of '" + layer->desc.entry + "' to the host");
  if (CUresult r = cu.cuStreamSynchronize(layer->stream))
    return driverFail(*layer, "cuStreamSynchronize", r,
                      "waiting for the kernels of '" + layer->desc.entry +
                          "' (an error here is usually a fault inside a kernel)");
  if (kernelStatus != 0)
    return fail(kernelStatus > 0 && kernelStatus <= MOE_ERR_DEVICE ? kernelStatus
                                                                    : MOE_ERR_DEVICE,
                "the kernels of '" + layer->desc.entry + "' reported error " +
                    std::to_string(kernelStatus) + ": " + moe_status_message(kernelStatus) +
                    " (outputs left untouched)");
  // Only now, with every kernel and copy done and no error reported, are the
  // results written.
  offset = 0;
  for (size_t i = numInputs; i < descArgs.size(); ++i) {
    if (bytes[i])
      std::memcpy(results[i - numInputs].data, layer->staging.data() + offset, bytes[i]);
    offset += bytes[i];
  }
  return MOE_OK;
}

int moe_gpu_layer_launch(moe_gpu_layer *layer, int64_t tokens, const uint64_t *buffers,
                         int num_buffers, void *stream) {
  clearError();
  if (int status = requireLayer(layer, "moe_gpu_layer_launch"))
    return status;
  if (tokens < 0)
    return fail(MOE_ERR_INVALID_ARGUMENT,
                "moe_gpu_layer_launch: token count " + std::to_string(tokens) + " is negative");
  if (num_buffers != int(layer->desc.args.size()))
    return fail(MOE_ERR_INVALID_ARGUMENT,
                "moe_gpu_layer_launch: '" + layer->desc.entry + "' takes " +
                    std::to_string(layer->desc.args.size()) +
                    " device buffers (inputs then outputs), got " + std::to_string(num_buffers));
  if (num_buffers && !buffers)
    return fail(MOE_ERR_INVALID_ARGUMENT, "moe_gpu_layer_launch: null buffer array");
  for (int i = 0; i < num_buffers; ++i)
    if (!buffers[i] && tensorBytes(layer->desc.args[i].sig, tokens))
      return fail(MOE_ERR_INVALID_ARGUMENT, "moe_gpu_layer_launch: device buffer #" +
                                                std::to_string(i) + " ('" +
                                                layer->desc.args[i].name + "') is null");
  Plan plan;
  if (int status = makePlan(*layer, tokens, plan))
    return status;
  if (int status = makeCurrent(*layer))
    return status;
  std::vector<CUdeviceptr> ptrs(buffers, buffers + num_buffers);
  return enqueue(*layer, tokens, plan, ptrs,
                 stream ? static_cast<CUstream>(stream) : layer->stream);
}

int moe_gpu_layer_reserve(moe_gpu_layer *layer, int64_t max_tokens) {
  clearError();
  if (int status = requireLayer(layer, "moe_gpu_layer_reserve"))
    return status;
  if (max_tokens < 0)
    return fail(MOE_ERR_INVALID_ARGUMENT, "moe_gpu_layer_reserve: negative token count");
  Plan plan;
  if (int status = makePlan(*layer, max_tokens, plan))
    return status;
  if (int status = makeCurrent(*layer))
    return status;
  // Scratch sizes are non-decreasing in T for every affine-ceil expression
  // with a >= 0; the description's are (sizes of per-token buffers).
  return reserveScratch(*layer, plan);
}

void *moe_gpu_layer_stream(const moe_gpu_layer *layer) {
  return layer ? static_cast<void *>(layer->stream) : nullptr;
}

int moe_gpu_layer_synchronize(moe_gpu_layer *layer) {
  clearError();
  if (int status = requireLayer(layer, "moe_gpu_layer_synchronize"))
    return status;
  if (int status = makeCurrent(*layer))
    return status;
  if (CUresult r = layer->cu->cuStreamSynchronize(layer->stream))
    return driverFail(*layer, "cuStreamSynchronize", r, "waiting for the layer's stream");
  return MOE_OK;
}

int moe_gpu_alloc(moe_gpu_layer *layer, size_t bytes, uint64_t *device_ptr) {
  clearError();
  if (int status = requireLayer(layer, "moe_gpu_alloc"))
    return status;
  if (!device_ptr)
    return fail(MOE_ERR_INVALID_ARGUMENT, "moe_gpu_alloc: null output pointer");
  *device_ptr = 0;
  if (int status = makeCurrent(*layer))
    return status;
  CUdeviceptr ptr = 0;
  if (CUresult r = layer->cu->cuMemAlloc(&ptr, bytes ? bytes : 1))
    return driverFail(*layer, "cuMemAlloc", r, "allocating " + std::to_string(bytes) + " bytes");
  *device_ptr = ptr;
  return MOE_OK;
}

int moe_gpu_free(moe_gpu_layer *layer, uint64_t device_ptr) {
  clearError();
  if (int status = requireLayer(layer, "moe_gpu_free"))
    return status;
  if (!device_ptr)
    return MOE_OK;
  if (int status = makeCurrent(*layer))
    return status;
  if (CUresult r = layer->cu->cuMemFree(device_ptr))
    return driverFail(*layer, "cuMemFree", r, "freeing a device buffer");
  return MOE_OK;
}

int moe_gpu_copy_to_device(moe_gpu_layer *layer, uint64_t device_dst, const void *host_src,
                           size_t bytes) {
  clearError();
  if (int status = requireLayer(layer, "moe_gpu_copy_to_device"))
    return status;
  if (bytes && (!device_dst || !host_src))
    return fail(MOE_ERR_INVALID_ARGUMENT, "moe_gpu_copy_to_device: null pointer");
  if (int status = makeCurrent(*layer))
    return status;
  if (bytes)
    if (CUresult r = layer->cu->cuMemcpyHtoD(device_dst, host_src, bytes))
      return driverFail(*layer, "cuMemcpyHtoD", r,
                        "copying " + std::to_string(bytes) + " bytes to the device");
  return MOE_OK;
}

int moe_gpu_copy_to_host(moe_gpu_layer *layer, void *host_dst, uint64_t device_src,
                         size_t bytes) {
  clearError();
  if (int status = requireLayer(layer, "moe_gpu_copy_to_host"))
    return status;
  if (bytes && (!device_src || !host_dst))
    return fail(MOE_ERR_INVALID_ARGUMENT, "moe_gpu_copy_to_host: null pointer");
  if (int status = makeCurrent(*layer))
    return status;
  if (bytes)
    if (CUresult r = layer->cu->cuMemcpyDtoH(host_dst, device_src, bytes))
      return driverFail(*layer, "cuMemcpyDtoH", r,
                        "copying " + std::to_string(bytes) + " bytes to the host");
  return MOE_OK;
}

} // extern "C"
