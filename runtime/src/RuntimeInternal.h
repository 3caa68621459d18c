//===- RuntimeInternal.h - pieces shared by the CPU and GPU runtimes ------===//
//
// Not installed, not part of the C ABI: the error slot behind moe_last_error,
// the tensor signature and the one implementation of the caller-tensor
// checks, so the CPU path (moe_layer_run) and the GPU path
// (moe_gpu_layer_run) accept and reject exactly the same tensors with the
// same messages.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_RUNTIME_INTERNAL_H
#define MOE_RUNTIME_INTERNAL_H

#include "moe_runtime.h"

#include <cstdint>
#include <string>
#include <vector>

namespace moe::rt {

/// Sets this thread's moe_last_error() message and returns `status`.
int fail(int status, const std::string &message);

/// What compiled code knows about its failed check (moe_rt_error_detail):
/// the status code (0: nothing recorded), the token, the slot (-1 for a
/// path id), the bad id and the bound it broke (E, or P for paths).
struct ErrorDetail {
  int64_t code = 0;
  int64_t token = -1, slot = -1, id = 0, bound = 0;
};
/// The message of a compiled layer's failed `status`: moe_status_message,
/// followed, when a detail was recorded for that status, by the first bad
/// id with its token, slot and bound (the values the reference interpreter
/// names).
std::string failureMessage(int status, const ErrorDetail &detail);
/// Clears this thread's message (every C entry point starts with this).
void clearError();

/// "f32", "bf16", ... ; "?" for a value outside moe_dtype. The runtime's own
/// copy of MoeSupport's dtypeName (and TensorSig below of TensorSignature):
/// the runtime links nothing of ours, so that a deployed layer and
/// moe-gpu-run need only this library; a unit test (RuntimeTest) checks that
/// the names and sizes agree.
const char *dtypeName(int dtype);
/// A caller's element type as its integer: a C caller may pass any value,
/// and loading an out-of-range value through the enum type is undefined
/// behaviour in C++ (UBSan's -fsanitize=enum), so it is read as bytes.
int rawDtype(const moe_tensor &t);
/// Bytes per element; 0 for a value outside moe_dtype.
size_t dtypeSize(int dtype);

/// One argument or result of a layer: element type and dims (-1 = T).
struct TensorSig {
  int dtype;
  std::vector<int64_t> shape;
};

/// The checks of moe_layer_run: counts, null arrays, element types, ranks,
/// static dims, every dynamic dim of the arguments equal (that is T), and
/// result buffers shaped exactly for that T. `name` appears in messages.
/// On success returns MOE_OK and sets *tokens to T (-1 when no argument has
/// a dynamic dim); otherwise the status, with the message set.
int checkTensors(const std::vector<TensorSig> &argSigs, const std::vector<TensorSig> &resultSigs,
                 const std::string &name, const moe_tensor *args, int num_args,
                 const moe_tensor *results, int num_results, int64_t *tokens);

/// moe_layer_arg / moe_gpu_layer_arg and the result variants: entry `index`
/// of `list` into the non-null out-pointers; MOE_ERR_INVALID_ARGUMENT (with
/// the message) when `index` is out of range.
int describeTensor(const std::vector<TensorSig> &list, int index, moe_dtype *dtype, int32_t *rank,
                   const int64_t **shape);

/// The number of elements of a checked tensor.
int64_t numElements(const moe_tensor &t);

/// Calls a packed entry point on checked tensors (arguments, then results,
/// then the status) and turns a failed status into the message.
/// Forgets this thread's routing statistics (Stats.cpp): every call starts
/// without any, and a failed call leaves none.
void clearStats();
int callPacked(moe_packed_fn fn, const std::string &name, const moe_tensor *args, int num_args,
               const moe_tensor *results, int num_results);

} // namespace moe::rt

struct moe_signature {
  std::vector<moe::rt::TensorSig> args, results;
};

/// A layer loaded from a shared object; the prepared entries are null when
/// the object has none (moe-compile --no-prepared).
struct moe_layer {
  void *handle = nullptr;
  moe_packed_fn fn = nullptr;
  moe_signature *sig = nullptr;
  std::string entry;
  moe_packed_fn prepareFn = nullptr, runFn = nullptr;
  moe_signature *prepareSig = nullptr, *runSig = nullptr;
};

extern "C" {
/// Called by compiled CPU code, on the caller's thread, when a layer call
/// fails (moe-buffer-abi's error-details): keeps the detail for the
/// message of the moe_run_packed call that is running on this thread.
void moe_rt_error_detail(int64_t code, int64_t token, int64_t slot, int64_t id, int64_t bound);
}

#endif // MOE_RUNTIME_INTERNAL_H
