//===- Prepared.cpp - layers with their weights packed once ---------------===//
//
// A prepared layer owns the packed weights its `_prepare` entry wrote and
// calls the `_run` entry with the caller's activations followed by them.
// It is read-only after preparation, so any number of threads may run it
// at once: each call builds its own descriptors on its own stack, and the
// compiled code's temporaries come from its thread's scratch.
//
//===----------------------------------------------------------------------===//

#include "moe_runtime.h"
#include "RuntimeInternal.h"

#include <sys/mman.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace moe::rt;

namespace {
constexpr size_t kHugePage = size_t(2) << 20;

/// One packed buffer: 64-byte aligned; buffers of a huge page or more are
/// aligned to one and advised to use them (fewer TLB misses when the
/// kernels stream weights).
struct PackedBuffer {
  void *data = nullptr;
  size_t bytes = 0;
  std::vector<int64_t> shape;
  int dtype = MOE_F32;
};

void *allocPacked(size_t bytes) {
  const size_t align = bytes >= kHugePage ? kHugePage : 64;
  size_t rounded = (bytes + align - 1) / align * align;
  void *p = std::aligned_alloc(align, rounded ? rounded : align);
#ifdef MADV_HUGEPAGE
  if (p && align == kHugePage)
    (void)madvise(p, rounded, MADV_HUGEPAGE);
#endif
  return p;
}
} // namespace

struct moe_prepared {
  moe_packed_fn run = nullptr;
  std::string name;
  std::vector<TensorSig> activations, results;
  std::vector<PackedBuffer> buffers;
  uint64_t bytes = 0;
  double seconds = 0.0;

  ~moe_prepared() {
    for (PackedBuffer &b : buffers)
      std::free(b.data);
  }
};

extern "C" {

int moe_prepare_packed(moe_packed_fn prepare, const moe_signature *prepare_sig, moe_packed_fn run,
                       const moe_signature *run_sig, const char *name, const moe_tensor *weights,
                       int num_weights, moe_prepared **out) {
  clearError();
  auto start = std::chrono::steady_clock::now();
  if (!out)
    return fail(MOE_ERR_INVALID_ARGUMENT, "moe_layer_prepare: null output pointer");
  *out = nullptr;
  if (!prepare || !prepare_sig || !run || !run_sig)
    return fail(MOE_ERR_INVALID_ARGUMENT, "no compiled prepare/run entry points");
  const size_t numPacked = prepare_sig->results.size();
  if (run_sig->args.size() < numPacked)
    return fail(MOE_ERR_LOAD, "malformed prepared entries: the run entry takes fewer "
                              "arguments than the prepare entry returns");
  std::string fname = name ? name : "layer";
  auto prepared = new moe_prepared();
  prepared->run = run;
  prepared->name = fname;
  prepared->activations.assign(run_sig->args.begin(), run_sig->args.end() - numPacked);
  prepared->results = run_sig->results;
  std::vector<moe_tensor> packed;
  for (const TensorSig &sig : prepare_sig->results) {
    PackedBuffer b;
    b.shape = sig.shape;
    b.dtype = sig.dtype;
    size_t n = 1;
    for (int64_t d : sig.shape)
      n *= size_t(d < 0 ? 0 : d);
    b.bytes = n * dtypeSize(sig.dtype);
    b.data = allocPacked(b.bytes);
    if (!b.data) {
      delete prepared;
      return fail(MOE_ERR_INVALID_ARGUMENT, "moe_layer_prepare: out of memory (" +
                                                std::to_string(b.bytes) + " bytes)");
    }
    prepared->bytes += b.bytes;
    prepared->buffers.push_back(std::move(b));
  }
  for (PackedBuffer &b : prepared->buffers)
    packed.push_back({b.data, moe_dtype(b.dtype), int32_t(b.shape.size()), b.shape.data()});
  // Every weight is checked here, once, as moe_layer_run checks arguments.
  std::string what = fname + "_prepare";
  int status = checkTensors(prepare_sig->args, prepare_sig->results, what, weights, num_weights,
                            packed.data(), int(packed.size()), nullptr);
  if (status == MOE_OK)
    status = callPacked(prepare, what, weights, num_weights, packed.data(), int(packed.size()));
  if (status != MOE_OK) {
    delete prepared;
    return status;
  }
  prepared->seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  *out = prepared;
  return MOE_OK;
}

int moe_layer_num_weights(const moe_layer *layer) {
  if (!layer || !layer->prepareSig || !layer->runSig)
    return -1;
  return int(layer->prepareSig->args.size());
}

int moe_layer_prepare(moe_layer *layer, const moe_tensor *weights, int num_weights,
                      moe_prepared **out) {
  clearError();
  if (out)
    *out = nullptr;
  if (!layer)
    return fail(MOE_ERR_INVALID_ARGUMENT, "moe_layer_prepare: null layer");
  if (!layer->prepareFn || !layer->prepareSig || !layer->runSig)
    return fail(MOE_ERR_LOAD, "the layer '" + layer->entry +
                                  "' has no prepared entries (compile it with moe-compile, "
                                  "without --no-prepared)");
  return moe_prepare_packed(layer->prepareFn, layer->prepareSig, layer->runFn, layer->runSig,
                            layer->entry.c_str(), weights, num_weights, out);
}

int moe_prepared_run(moe_prepared *prepared, const moe_tensor *activations, int num_activations,
                     moe_tensor *results, int num_results) {
  clearError();
  if (!prepared)
    return fail(MOE_ERR_INVALID_ARGUMENT, "moe_prepared_run: null prepared layer");
  // Only what the caller brings is checked; the packed buffers are ours.
  if (int status = checkTensors(prepared->activations, prepared->results, prepared->name,
                                activations, num_activations, results, num_results, nullptr))
    return status;
  std::vector<moe_tensor> args(activations, activations + num_activations);
  for (const PackedBuffer &b : prepared->buffers)
    args.push_back({b.data, moe_dtype(b.dtype), int32_t(b.shape.size()), b.shape.data()});
  return callPacked(prepared->run, prepared->name, args.data(), int(args.size()), results,
                    num_results);
}

void moe_prepared_free(moe_prepared *prepared) { delete prepared; }

uint64_t moe_prepared_bytes(const moe_prepared *prepared) { return prepared ? prepared->bytes : 0; }

double moe_prepared_seconds(const moe_prepared *prepared) {
  return prepared ? prepared->seconds : 0.0;
}

} // extern "C"
