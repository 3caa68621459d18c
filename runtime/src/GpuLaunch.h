//===- GpuLaunch.h - the GPU launch description (.launch), parsed ---------===//
//
// The text format written next to the PTX by the NVPTX path of moe-compile
// and specified in docs/gpu-launch.md (format version 1): the entry's
// arguments, the device scratch buffers, and the kernels in launch order
// with their grids as functions of the token count T. Parsed here without
// any GPU, so the format and the T-dependent sizes are tested on any
// machine. Internal to the runtime (used by GpuRuntime.cpp and the unit
// tests), not part of the C ABI.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_RUNTIME_GPU_LAUNCH_H
#define MOE_RUNTIME_GPU_LAUNCH_H

#include "RuntimeInternal.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moe::gpu {

/// The launch format version this runtime reads.
constexpr int kLaunchFormatVersion = 1;

/// ceil((a*T + b) / d) * m + c, d >= 1: every grid dimension and scratch size.
struct SizeExpr {
  int64_t a = 0, b = 0, d = 1, m = 1, c = 0;
  /// The value for `tokens` (>= 0). False, with `error` set, when the value
  /// is negative or overflows int64.
  bool evaluate(int64_t tokens, int64_t &value, std::string &error) const;
  std::string str() const; // "ceil((a*T + b) / d) * m + c"
};

struct LaunchArg {
  std::string name;
  bool isOutput = false;
  rt::TensorSig sig; // dims: -1 = T
  int line = 0;
};

struct ScratchBuffer {
  std::string name;
  SizeExpr bytes;
  int line = 0;
};

/// One kernel parameter: a device pointer (argument or scratch buffer), the
/// token count, or a 64-bit constant.
struct ArgRef {
  enum Kind { Argument, Scratch, Tokens, Constant } kind = Constant;
  int index = 0;     // into LaunchDescription::args / ::scratch
  int64_t value = 0; // Constant
};

struct KernelLaunch {
  std::string symbol;
  SizeExpr grid[3];
  int64_t block[3] = {1, 1, 1};
  int64_t sharedBytes = 0; // dynamic shared memory per block
  std::vector<ArgRef> params;
  int line = 0;
};

struct LaunchDescription {
  int version = 0;
  std::string entry;
  std::string chip; // "sm_90", "sm_90a", ...
  int chipNumber = 0; // 90 for sm_90 / sm_90a
  std::vector<LaunchArg> args; // inputs first, then outputs
  std::vector<ScratchBuffer> scratch;
  /// The scratch buffer (index into `scratch`) whose first 4 bytes hold the
  /// kernels' run-time error code (a moe_status; 0 = success), or -1.
  int statusScratch = -1;
  std::vector<KernelLaunch> kernels;

  int numInputs() const;
  /// The signature in the form the tensor checks take (inputs / outputs).
  std::vector<rt::TensorSig> inputSigs() const;
  std::vector<rt::TensorSig> outputSigs() const;
};

/// Parses `text`. On error returns false and sets `error` to
/// "line N: <what was expected>, got '<what was there>'" ("<source>:" first
/// when `source` is given).
bool parseLaunchDescription(std::string_view text, LaunchDescription &out, std::string &error,
                            const std::string &source = "");

/// The grid of `kernel` for `tokens`, checked against the CUDA limits
/// (x < 2^31, y and z <= 65535). A zero dimension means the launch has no
/// blocks and is skipped.
bool evaluateGrid(const KernelLaunch &kernel, int64_t tokens, uint32_t grid[3],
                  std::string &error);

} // namespace moe::gpu

#endif // MOE_RUNTIME_GPU_LAUNCH_H
