//===- Runtime.cpp - load, check and run compiled moe layers ---------------===//
//
// Everything between a caller's tensors and a compiled entry point: the
// signature checks (so a wrong shape is an error with a message, never an
// out-of-bounds access), the memref descriptors, the status-to-message map,
// and dlopen of ahead-of-time layers. Plain C++; no LLVM.
//
//===----------------------------------------------------------------------===//

#include "moe_runtime.h"
#include "RuntimeInternal.h"

#include <dlfcn.h>

#include <cstring>
#include <sstream>
#include <string>
#include <vector>

namespace moe::rt {
namespace {
thread_local std::string lastError;
/// Set by moe_rt_error_detail during this thread's moe_run_packed call.
thread_local ErrorDetail lastDetail;
} // namespace

int fail(int status, const std::string &message) {
  lastError = message;
  return status;
}

std::string failureMessage(int status, const ErrorDetail &detail) {
  std::string message = moe_status_message(status);
  if (detail.code != status)
    return message;
  // The general rule first (callers match on it), then the values the
  // reference interpreter's message gives.
  std::string token = std::to_string(detail.token), id = std::to_string(detail.id),
              bound = std::to_string(detail.bound);
  if (status == MOE_ERR_EXPERT_ID) {
    std::string slot = std::to_string(detail.slot);
    return message + "; first bad id: " + id + " at ids[" + token + ", " + slot + "] (token " +
           token + ", slot " + slot + "), E = " + bound;
  }
  if (status == MOE_ERR_PATH_ID)
    return message + "; first bad path: " + id + " of token " + token + ", P = " + bound;
  if (status == MOE_ERR_POSITION)
    return message + "; first bad position: " + id + " of token " + token;
  return message;
}

void clearError() { lastError.clear(); }

int rawDtype(const moe_tensor &t) {
  static_assert(sizeof(moe_dtype) == sizeof(int32_t), "moe_dtype is passed as a 32-bit int");
  int32_t raw;
  std::memcpy(&raw, &t.dtype, sizeof raw);
  return raw;
}

const char *dtypeName(int dtype) {
  switch (dtype) {
  case MOE_F32:
    return "f32";
  case MOE_I32:
    return "i32";
  case MOE_I64:
    return "i64";
  case MOE_BF16:
    return "bf16";
  case MOE_F16:
    return "f16";
  case MOE_I8:
    return "i8";
  }
  return "?";
}

size_t dtypeSize(int dtype) {
  switch (dtype) {
  case MOE_F32:
  case MOE_I32:
    return 4;
  case MOE_I64:
    return 8;
  case MOE_BF16:
  case MOE_F16:
    return 2;
  case MOE_I8:
    return 1;
  }
  return 0;
}

int64_t numElements(const moe_tensor &t) {
  int64_t n = 1;
  for (int32_t d = 0; d < t.rank; ++d)
    n *= t.shape[d];
  return n;
}

namespace {
std::string describe(const TensorSig &sig) {
  std::string s = "[";
  for (size_t d = 0; d < sig.shape.size(); ++d)
    s += (d ? ", " : "") + (sig.shape[d] < 0 ? std::string("T") : std::to_string(sig.shape[d]));
  return s + "] " + dtypeName(sig.dtype);
}

std::string describe(const moe_tensor &t) {
  std::string s = "[";
  for (int32_t d = 0; d < t.rank; ++d)
    s += (d ? ", " : "") + std::to_string(t.shape[d]);
  return s + "] " + dtypeName(rawDtype(t));
}

bool isEmpty(const moe_tensor &t) {
  for (int32_t d = 0; d < t.rank; ++d)
    if (t.shape[d] == 0)
      return true;
  return false;
}
} // namespace

int checkTensors(const std::vector<TensorSig> &argSigs, const std::vector<TensorSig> &resultSigs,
                 const std::string &fname, const moe_tensor *args, int num_args,
                 const moe_tensor *results, int num_results, int64_t *tokensOut) {
  if (num_args != int(argSigs.size()))
    return fail(MOE_ERR_INVALID_ARGUMENT, "'" + fname + "' takes " +
                                              std::to_string(argSigs.size()) +
                                              " arguments, got " + std::to_string(num_args));
  if (num_results != int(resultSigs.size()))
    return fail(MOE_ERR_INVALID_ARGUMENT, "'" + fname + "' returns " +
                                              std::to_string(resultSigs.size()) +
                                              " results, got " + std::to_string(num_results) +
                                              " result buffers");
  if ((num_args && !args) || (num_results && !results))
    return fail(MOE_ERR_INVALID_ARGUMENT, "null tensor array");
  // Arguments: dtype, rank, static dims; every dynamic dim is T.
  int64_t tokens = -1;
  for (int i = 0; i < num_args; ++i) {
    const TensorSig &want = argSigs[i];
    const moe_tensor &got = args[i];
    std::string what = "argument #" + std::to_string(i);
    if (rawDtype(got) != want.dtype)
      return fail(MOE_ERR_SHAPE, what + ": expected element type " + dtypeName(want.dtype) +
                                     ", got " + dtypeName(rawDtype(got)));
    if (got.rank != int32_t(want.shape.size()) || (got.rank && !got.shape))
      return fail(MOE_ERR_SHAPE, what + ": expected shape " + describe(want) + ", got rank " +
                                     std::to_string(got.rank));
    for (int32_t d = 0; d < got.rank; ++d) {
      int64_t w = want.shape[d], g = got.shape[d];
      if (g < 0 || (w >= 0 && g != w))
        return fail(MOE_ERR_SHAPE,
                    what + ": expected shape " + describe(want) + ", got " + describe(got));
      if (w < 0) {
        if (tokens < 0)
          tokens = g;
        else if (g != tokens)
          return fail(MOE_ERR_SHAPE, what + " has token count " + std::to_string(g) +
                                         " but an earlier argument has " +
                                         std::to_string(tokens) +
                                         " (every dynamic dimension is T)");
      }
    }
    if (!got.data && !isEmpty(got))
      return fail(MOE_ERR_INVALID_ARGUMENT, what + " is a null pointer");
  }
  for (int i = 0; i < num_results; ++i) {
    const TensorSig &want = resultSigs[i];
    const moe_tensor &got = results[i];
    std::string what = "result #" + std::to_string(i);
    bool ok = rawDtype(got) == want.dtype && got.rank == int32_t(want.shape.size()) &&
              (!got.rank || got.shape);
    for (int32_t d = 0; ok && d < got.rank; ++d) {
      int64_t w = want.shape[d] < 0 ? tokens : want.shape[d];
      ok = got.shape[d] == w;
    }
    if (!ok) {
      TensorSig expected = want;
      for (int64_t &d : expected.shape)
        if (d < 0)
          d = tokens;
      return fail(MOE_ERR_SHAPE, what + ": output buffer has the wrong shape: expected " +
                                     describe(expected) + ", got " +
                                     (got.rank >= 0 && (got.shape || !got.rank) ? describe(got)
                                                                                : "?"));
    }
    if (!got.data && !isEmpty(got))
      return fail(MOE_ERR_INVALID_ARGUMENT, what + " is a null pointer");
  }
  if (tokensOut)
    *tokensOut = tokens;
  return MOE_OK;
}
int describeTensor(const std::vector<TensorSig> &list, int index, moe_dtype *dtype, int32_t *rank,
                   const int64_t **shape) {
  if (index < 0 || index >= int(list.size()))
    return fail(MOE_ERR_INVALID_ARGUMENT, "index " + std::to_string(index) + " out of range");
  if (dtype)
    *dtype = moe_dtype(list[index].dtype);
  if (rank)
    *rank = int32_t(list[index].shape.size());
  if (shape)
    *shape = list[index].shape.data();
  return MOE_OK;
}

} // namespace moe::rt

using namespace moe::rt;

namespace {
/// A memref descriptor: {allocated, aligned, offset, sizes[R], strides[R]}.
std::vector<int64_t> descriptor(const moe_tensor &t) {
  std::vector<int64_t> words(3 + 2 * size_t(t.rank));
  std::memcpy(&words[0], &t.data, sizeof(void *));
  std::memcpy(&words[1], &t.data, sizeof(void *));
  words[2] = 0;
  int64_t stride = 1;
  for (int32_t d = t.rank; d-- > 0;) {
    words[3 + d] = t.shape[d];
    words[3 + t.rank + d] = stride;
    stride *= t.shape[d];
  }
  return words;
}
} // namespace


extern "C" {

const char *moe_status_message(int status) {
  switch (status) {
  case MOE_OK:
    return "success";
  case MOE_ERR_EXPERT_ID:
    return "an expert id in the routing is outside [-1, E) (E = the layer's "
           "expert count); -1 marks an unused slot";
  case MOE_ERR_NONFINITE_SCORE:
    return "a router logit or skip score is NaN or infinite: the input holds "
           "NaN/Inf values";
  case MOE_ERR_PATH_ID:
    return "a path id given to moe.path_select is outside [0, P] (0 = skip)";
  case MOE_ERR_SHAPE:
    return "a tensor's shape or element type does not match the layer";
  case MOE_ERR_INVALID_ARGUMENT:
    return "invalid argument";
  case MOE_ERR_LOAD:
    return "the layer could not be loaded (shared object, PTX or launch description)";
  case MOE_ERR_DEVICE:
    return "no usable CUDA device: the driver (libcuda.so.1) is missing, finds no GPU, or "
           "reported an error";
  case MOE_ERR_EXCHANGE:
    return "an expert-parallel exchange between ranks failed or timed out, or the "
           "ranks disagree (moe_runtime_mpi: moe_mpi_last_error() says which)";
  case MOE_ERR_POSITION:
    return "a token position given to moe.exit_layers is negative";
  default:
    return "unknown status code";
  }
}

const char *moe_last_error(void) { return moe::rt::lastError.c_str(); }

void moe_rt_error_detail(int64_t code, int64_t token, int64_t slot, int64_t id, int64_t bound) {
  moe::rt::lastDetail = {code, token, slot, id, bound};
}

moe_signature *moe_signature_parse(const char *text) {
  if (!text)
    return nullptr;
  auto *sig = new moe_signature();
  std::string s(text);
  size_t bar = s.find('|');
  if (bar == std::string::npos) {
    delete sig;
    return nullptr;
  }
  auto parseList = [](const std::string &part, std::vector<TensorSig> &out) {
    std::stringstream items(part);
    std::string item;
    while (std::getline(items, item, ';')) {
      if (item.empty())
        continue;
      std::stringstream fields(item);
      std::string dtype;
      int rank = -1;
      if (!(fields >> dtype >> rank) || rank < 0)
        return false;
      TensorSig t;
      t.dtype = -1;
      for (int candidate : {MOE_F32, MOE_I32, MOE_I64, MOE_BF16, MOE_F16, MOE_I8})
        if (dtype == dtypeName(candidate))
          t.dtype = candidate;
      if (t.dtype < 0)
        return false;
      for (int d = 0; d < rank; ++d) {
        int64_t v;
        if (!(fields >> v))
          return false;
        t.shape.push_back(v);
      }
      out.push_back(t);
    }
    return true;
  };
  if (!parseList(s.substr(0, bar), sig->args) || !parseList(s.substr(bar + 1), sig->results)) {
    delete sig;
    return nullptr;
  }
  return sig;
}

void moe_signature_free(moe_signature *sig) { delete sig; }

int moe_run_packed(moe_packed_fn fn, const moe_signature *sig, const char *name,
                   const moe_tensor *args, int num_args, moe_tensor *results,
                   int num_results) {
  clearError();
  std::string fname = name ? name : "layer";
  if (!fn || !sig)
    return fail(MOE_ERR_INVALID_ARGUMENT, "no compiled entry point");
  if (int status = checkTensors(sig->args, sig->results, fname, args, num_args, results,
                                num_results, nullptr))
    return status;
  return moe::rt::callPacked(fn, fname, args, num_args, results, num_results);
}

} // extern "C"

int moe::rt::callPacked(moe_packed_fn fn, const std::string &fname, const moe_tensor *args,
                        int num_args, const moe_tensor *results, int num_results) {
  std::vector<std::vector<int64_t>> descs;
  descs.reserve(num_args + num_results);
  for (int i = 0; i < num_args; ++i)
    descs.push_back(descriptor(args[i]));
  for (int i = 0; i < num_results; ++i)
    descs.push_back(descriptor(results[i]));
  std::vector<void *> descPtrs;
  for (auto &d : descs)
    descPtrs.push_back(d.data());
  int32_t status = -1;
  std::vector<void *> packed;
  for (void *&p : descPtrs)
    packed.push_back(&p);
  packed.push_back(&status);
  moe::rt::lastDetail = {};
  moe::rt::clearStats();
  fn(packed.data());
  if (status != MOE_OK) {
    moe::rt::clearStats();
    return fail(status, "compiled '" + fname + "' failed: " +
                            failureMessage(status, moe::rt::lastDetail));
  }
  return MOE_OK;
}

extern "C" {

int moe_layer_open(const char *path, const char *entry, moe_layer **out) {
  clearError();
  if (!out)
    return fail(MOE_ERR_INVALID_ARGUMENT, "moe_layer_open: null output pointer");
  *out = nullptr;
  if (!path || !entry)
    return fail(MOE_ERR_INVALID_ARGUMENT, "moe_layer_open: null path or entry");
  void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!handle)
    return fail(MOE_ERR_LOAD, std::string("cannot load '") + path + "': " + dlerror());
  std::string e(entry);
  auto fn = reinterpret_cast<moe_packed_fn>(dlsym(handle, ("_mlir__mlir_ciface_" + e).c_str()));
  auto sigText = reinterpret_cast<const char *const *>(dlsym(handle, ("moe_signature_" + e).c_str()));
  if (!fn || !sigText) {
    dlclose(handle);
    return fail(MOE_ERR_LOAD, "'" + std::string(path) + "' has no moe entry point '" + e +
                                  "' (compile it with moe-compile --entry=" + e + ")");
  }
  moe_signature *sig = moe_signature_parse(*sigText);
  if (!sig) {
    dlclose(handle);
    return fail(MOE_ERR_LOAD, "'" + std::string(path) + "': malformed signature");
  }
  auto *layer = new moe_layer{handle, fn, sig, e};
  // The prepared entries (moe-compile exports them next to the entry):
  // optional, moe_layer_prepare says when they are missing.
  auto prepareFn =
      reinterpret_cast<moe_packed_fn>(dlsym(handle, ("_mlir__mlir_ciface_" + e + "_prepare").c_str()));
  auto runFn = reinterpret_cast<moe_packed_fn>(dlsym(handle, ("_mlir__mlir_ciface_" + e + "_run").c_str()));
  auto prepareSig =
      reinterpret_cast<const char *const *>(dlsym(handle, ("moe_signature_" + e + "_prepare").c_str()));
  auto runSig = reinterpret_cast<const char *const *>(dlsym(handle, ("moe_signature_" + e + "_run").c_str()));
  if (prepareFn && runFn && prepareSig && runSig) {
    layer->prepareFn = prepareFn;
    layer->runFn = runFn;
    layer->prepareSig = moe_signature_parse(*prepareSig);
    layer->runSig = moe_signature_parse(*runSig);
  }
  *out = layer;
  return MOE_OK;
}

void moe_layer_close(moe_layer *layer) {
  if (!layer)
    return;
  moe_signature_free(layer->sig);
  moe_signature_free(layer->prepareSig);
  moe_signature_free(layer->runSig);
  dlclose(layer->handle);
  delete layer;
}

int moe_layer_num_args(const moe_layer *layer) { return layer ? int(layer->sig->args.size()) : -1; }
int moe_layer_num_results(const moe_layer *layer) {
  return layer ? int(layer->sig->results.size()) : -1;
}

int moe_layer_arg(const moe_layer *layer, int index, moe_dtype *dtype, int32_t *rank,
                  const int64_t **shape) {
  if (!layer)
    return fail(MOE_ERR_INVALID_ARGUMENT, "null layer");
  return describeTensor(layer->sig->args, index, dtype, rank, shape);
}

int moe_layer_result(const moe_layer *layer, int index, moe_dtype *dtype, int32_t *rank,
                     const int64_t **shape) {
  if (!layer)
    return fail(MOE_ERR_INVALID_ARGUMENT, "null layer");
  return describeTensor(layer->sig->results, index, dtype, rank, shape);
}

int moe_layer_run(moe_layer *layer, const moe_tensor *args, int num_args, moe_tensor *results,
                  int num_results) {
  if (!layer)
    return fail(MOE_ERR_INVALID_ARGUMENT, "null layer");
  return moe_run_packed(layer->fn, layer->sig, layer->entry.c_str(), args, num_args, results,
                        num_results);
}

} // extern "C"
