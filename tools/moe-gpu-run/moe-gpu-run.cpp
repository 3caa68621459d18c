//===- moe-gpu-run.cpp - run a compiled PTX layer on a GPU and time it ----===//
//
//   moe-gpu-run LAYER.ptx LAYER.launch [--tokens=T] [--warmup=N] [--iters=N]
//               [--seed=S] [--int-max=N] [--inputs=DIR] [--dump=DIR] [--json]
//   moe-gpu-run --check LAYER.launch
//
// For GPU machines, which have a CUDA driver but no LLVM: links only
// moe_runtime and MoeSupport (plain C++: the .npy codec, the RNG and the
// dtype names the other tools use too). Fills the layer's inputs with
// random values (or reads them from DIR/in<i>.npy), runs the layer, and
// reports three times, each the median over --iters calls after --warmup:
//   run       moe_gpu_layer_run: host-to-device copies, kernels, copies back;
//   launch    moe_gpu_layer_launch + synchronize on device buffers (the layer
//             alone, with one host round trip per call);
//   pipelined --iters launches back to back, one synchronize, divided by
//             --iters (the closest to the kernels' own time without events).
// --dump=DIR writes every input and result as .npy (bf16 as raw '<u2'), so
// bench/gpu/torch_baseline.py can compare against torch on the same data.
//
// Random inputs: floats uniform in [-1, 1), divided by sqrt(last dim) for
// tensors without a token dimension (weights, whose last dim is the one
// contracted), so activations stay O(1); i32 inputs uniform in
// [0, --int-max).
//
//===----------------------------------------------------------------------===//

#include "moe/Support/Npy.h"
#include "moe/Support/Random.h"
#include "moe/Support/Tensor.h"
#include "moe_runtime_cuda.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Options {
  std::string ptx, launch, inputs, dump;
  int64_t tokens = 128;
  int warmup = 3, iters = 20, intMax = 2;
  uint64_t seed = 1;
  bool check = false, json = false;
};

[[noreturn]] void usage(const char *why) {
  std::fprintf(stderr,
               "moe-gpu-run: %s\n"
               "usage: moe-gpu-run LAYER.ptx LAYER.launch [--tokens=T] [--warmup=N] [--iters=N]\n"
               "                   [--seed=S] [--int-max=N] [--inputs=DIR] [--dump=DIR] [--json]\n"
               "       moe-gpu-run --check LAYER.launch\n",
               why);
  std::exit(2);
}

int64_t intOption(const std::string &arg, size_t prefix, int64_t min) {
  char *end = nullptr;
  long long v = std::strtoll(arg.c_str() + prefix, &end, 10);
  if (*end || end == arg.c_str() + prefix || v < min)
    usage(("bad value in '" + arg + "' (an integer >= " + std::to_string(min) + ")").c_str());
  return v;
}

Options parseOptions(int argc, char **argv) {
  Options o;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto starts = [&](const char *p) { return a.rfind(p, 0) == 0; };
    if (starts("--tokens="))
      o.tokens = intOption(a, 9, 0);
    else if (starts("--warmup="))
      o.warmup = int(intOption(a, 9, 0));
    else if (starts("--iters="))
      o.iters = int(intOption(a, 8, 1));
    else if (starts("--seed="))
      o.seed = uint64_t(intOption(a, 7, 0));
    else if (starts("--int-max="))
      o.intMax = int(intOption(a, 10, 1));
    else if (starts("--inputs="))
      o.inputs = a.substr(9);
    else if (starts("--dump="))
      o.dump = a.substr(7);
    else if (a == "--json")
      o.json = true;
    else if (a == "--check")
      o.check = true;
    else if (starts("-"))
      usage(("unknown option '" + a + "'").c_str());
    else
      files.push_back(a);
  }
  if (o.check) {
    if (files.size() != 1)
      usage("--check takes one launch description");
    o.launch = files[0];
  } else {
    if (files.size() != 2)
      usage("expected a .ptx and a .launch file");
    o.ptx = files[0];
    o.launch = files[1];
  }
  return o;
}

[[noreturn]] void die(const char *what, int status) {
  std::fprintf(stderr, "moe-gpu-run: %s: %s (status %d: %s)\n", what, moe_last_error(), status,
               moe_status_message(status));
  std::exit(1);
}

// The runtime reports element types as its C enum; MoeSupport's DType is
// numbered the same way, so the conversion is a cast.
static_assert(int(moe::DType::F32) == MOE_F32 && int(moe::DType::I32) == MOE_I32 &&
                  int(moe::DType::I64) == MOE_I64 && int(moe::DType::BF16) == MOE_BF16 &&
                  int(moe::DType::F16) == MOE_F16 && int(moe::DType::I8) == MOE_I8,
              "moe::DType must be numbered as moe_dtype");

/// A host tensor of the layer, its shape resolved for T.
struct HostTensor {
  std::string name;
  moe::TensorSignature signature; // as the layer declares it (-1 = T)
  std::vector<int64_t> shape;     // for --tokens
  std::vector<unsigned char> data;

  bool perToken() const {
    return std::any_of(signature.shape.begin(), signature.shape.end(),
                       [](int64_t d) { return d < 0; });
  }
  moe_tensor view() {
    return moe_tensor{data.data(), moe_dtype(signature.dtype), int32_t(shape.size()),
                      shape.data()};
  }
};

HostTensor makeTensor(const char *name, moe_dtype dtype, int32_t rank, const int64_t *shape,
                      int64_t tokens) {
  HostTensor t;
  t.name = name ? name : "?";
  t.signature.dtype = moe::DType(dtype);
  t.signature.shape.assign(shape, shape + rank);
  t.shape = t.signature.shapeFor(tokens);
  t.data.assign(size_t(moe::numElements(t.shape)) * moe::dtypeSize(t.signature.dtype), 0);
  return t;
}

uint16_t toBf16(float f) { // round to nearest even
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u)
    return 0x7fc0;
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return uint16_t(bits >> 16);
}

/// IEEE half, round to nearest even, subnormals included (written out rather
/// than _Float16 so that older compilers on GPU machines build this too).
uint16_t toF16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  uint16_t sign = uint16_t((bits >> 16) & 0x8000u);
  uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u)
    return sign | 0x7e00; // NaN
  if (magnitude >= 0x477ff000u) // rounds to >= 65520: infinity
    return sign | 0x7c00;
  if (magnitude < 0x38800000u) { // below 2^-14: subnormal or zero
    if (magnitude < 0x33000000u) // below 2^-25: rounds to zero
      return sign;
    // f = M * 2^(e - 150) with the 24-bit significand M; a half subnormal
    // is h * 2^-24, so h = M >> (126 - e), shift in [14, 24].
    uint32_t significand = (magnitude & 0x7fffffu) | 0x800000u;
    int shift = 126 - int(magnitude >> 23);
    uint32_t half = significand >> shift;
    uint32_t rest = significand & ((1u << shift) - 1);
    uint32_t halfway = 1u << (shift - 1);
    if (rest > halfway || (rest == halfway && (half & 1u)))
      ++half; // 1024 is the smallest normal, encoded correctly as is
    return sign | uint16_t(half);
  }
  uint32_t rounded = magnitude - 0x38000000u; // rebias exponent 127 -> 15
  rounded += 0xfffu + ((rounded >> 13) & 1u);
  return sign | uint16_t(rounded >> 13);
}

void fillRandom(HostTensor &t, moe::Rng &rng, int intMax) {
  float scale = 1.0f;
  if (!t.perToken() && !t.shape.empty() && t.shape.back() > 0)
    scale = 1.0f / std::sqrt(float(t.shape.back()));
  size_t size = moe::dtypeSize(t.signature.dtype);
  for (int64_t i = 0; i < moe::numElements(t.shape); ++i) {
    // One draw per element: its top bits give the float, the whole draw
    // the integer.
    uint64_t r = rng.next();
    float v = moe::Rng::uniformFromDraw(r, -1.0f, 1.0f) * scale;
    unsigned char *p = t.data.data() + size_t(i) * size;
    switch (t.signature.dtype) {
    case moe::DType::F32:
      std::memcpy(p, &v, 4);
      break;
    case moe::DType::BF16: {
      uint16_t h = toBf16(v);
      std::memcpy(p, &h, 2);
      break;
    }
    case moe::DType::F16: {
      uint16_t h = toF16(v);
      std::memcpy(p, &h, 2);
      break;
    }
    case moe::DType::I32: {
      int32_t k = int32_t(r % uint64_t(intMax));
      std::memcpy(p, &k, 4);
      break;
    }
    case moe::DType::I64: {
      int64_t k = int64_t(r % uint64_t(intMax));
      std::memcpy(p, &k, 8);
      break;
    }
    case moe::DType::I8: { // quantized weights: q in [-127, 127]
      int8_t k = int8_t(int(r % 255) - 127);
      std::memcpy(p, &k, 1);
      break;
    }
    }
  }
}

void writeNpy(const std::string &path, const HostTensor &t) {
  moe::Status s = moe::writeNpy(path, t.signature.dtype, t.shape, t.data.data(), t.data.size());
  if (!s.ok()) {
    std::fprintf(stderr, "moe-gpu-run: %s\n", s.error.c_str());
    std::exit(1);
  }
}

/// Reads DIR/in<i>.npy into `t`, which must have the same dtype and shape.
void readNpy(const std::string &path, HostTensor &t) {
  moe::NpyArray array;
  moe::Status s = moe::readNpy(path, array);
  if (!s.ok() || array.dtype != t.signature.dtype || array.shape != t.shape) {
    std::string got = s.ok() ? moe::npyHeaderDict(array.dtype, array.shape) : s.error;
    std::fprintf(stderr, "moe-gpu-run: %s: expected a .npy with header %s, got %s\n",
                 path.c_str(), moe::npyHeaderDict(t.signature.dtype, t.shape).c_str(),
                 got.c_str());
    std::exit(1);
  }
  t.data = std::move(array.data);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

double nowMs() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

} // namespace

int main(int argc, char **argv) {
  Options o = parseOptions(argc, argv);
  if (o.check) {
    if (int status = moe_gpu_launch_check(o.launch.c_str()))
      die("launch description", status);
    std::printf("%s: ok\n", o.launch.c_str());
    return 0;
  }
  moe_gpu_layer *layer = nullptr;
  if (int status = moe_gpu_layer_open(o.ptx.c_str(), o.launch.c_str(), &layer))
    die("cannot open the layer", status);

  std::vector<HostTensor> inputs, results;
  moe::Rng rng(o.seed);
  for (int i = 0; i < moe_gpu_layer_num_args(layer); ++i) {
    moe_dtype dtype;
    int32_t rank;
    const int64_t *shape;
    moe_gpu_layer_arg(layer, i, &dtype, &rank, &shape);
    inputs.push_back(makeTensor(moe_gpu_layer_arg_name(layer, i), dtype, rank, shape, o.tokens));
    if (o.inputs.empty())
      fillRandom(inputs.back(), rng, o.intMax);
    else
      readNpy(o.inputs + "/in" + std::to_string(i) + ".npy", inputs.back());
  }
  for (int i = 0; i < moe_gpu_layer_num_results(layer); ++i) {
    moe_dtype dtype;
    int32_t rank;
    const int64_t *shape;
    moe_gpu_layer_result(layer, i, &dtype, &rank, &shape);
    results.push_back(
        makeTensor(moe_gpu_layer_result_name(layer, i), dtype, rank, shape, o.tokens));
  }
  std::vector<moe_tensor> argViews, resultViews;
  for (HostTensor &t : inputs)
    argViews.push_back(t.view());
  for (HostTensor &t : results)
    resultViews.push_back(t.view());

  // 1. End to end, host tensors.
  std::vector<double> runMs;
  for (int i = 0; i < o.warmup + o.iters; ++i) {
    double start = nowMs();
    if (int status = moe_gpu_layer_run(layer, argViews.data(), int(argViews.size()),
                                       resultViews.data(), int(resultViews.size())))
      die("moe_gpu_layer_run", status);
    if (i >= o.warmup)
      runMs.push_back(nowMs() - start);
  }

  // 2. and 3. Device buffers, filled once.
  std::vector<uint64_t> buffers;
  for (HostTensor *t : [&] {
         std::vector<HostTensor *> all;
         for (HostTensor &x : inputs)
           all.push_back(&x);
         for (HostTensor &x : results)
           all.push_back(&x);
         return all;
       }()) {
    uint64_t ptr = 0;
    if (int status = moe_gpu_alloc(layer, t->data.size(), &ptr))
      die("moe_gpu_alloc", status);
    if (int status = moe_gpu_copy_to_device(layer, ptr, t->data.data(), t->data.size()))
      die("moe_gpu_copy_to_device", status);
    buffers.push_back(ptr);
  }
  if (int status = moe_gpu_layer_reserve(layer, o.tokens))
    die("moe_gpu_layer_reserve", status);
  std::vector<double> launchMs;
  for (int i = 0; i < o.warmup + o.iters; ++i) {
    double start = nowMs();
    if (int status = moe_gpu_layer_launch(layer, o.tokens, buffers.data(), int(buffers.size()),
                                          nullptr))
      die("moe_gpu_layer_launch", status);
    if (int status = moe_gpu_layer_synchronize(layer))
      die("synchronize", status);
    if (i >= o.warmup)
      launchMs.push_back(nowMs() - start);
  }
  double start = nowMs();
  for (int i = 0; i < o.iters; ++i)
    if (int status = moe_gpu_layer_launch(layer, o.tokens, buffers.data(), int(buffers.size()),
                                          nullptr))
      die("moe_gpu_layer_launch", status);
  if (int status = moe_gpu_layer_synchronize(layer))
    die("synchronize", status);
  double pipelinedMs = (nowMs() - start) / o.iters;
  for (uint64_t b : buffers)
    moe_gpu_free(layer, b);

  if (!o.dump.empty()) {
    for (size_t i = 0; i < inputs.size(); ++i)
      writeNpy(o.dump + "/in" + std::to_string(i) + ".npy", inputs[i]);
    for (size_t i = 0; i < results.size(); ++i)
      writeNpy(o.dump + "/out" + std::to_string(i) + ".npy", results[i]);
  }
  if (o.json) {
    std::printf("{\"device\": \"%s\", \"tokens\": %lld, \"iters\": %d, \"run_ms\": %.4f, "
                "\"launch_ms\": %.4f, \"pipelined_ms\": %.4f}\n",
                moe_gpu_layer_device(layer), (long long)o.tokens, o.iters, median(runMs),
                median(launchMs), pipelinedMs);
  } else {
    std::printf("device      %s\nlayer       %s (T = %lld)\n", moe_gpu_layer_device(layer),
                o.ptx.c_str(), (long long)o.tokens);
    std::printf("run         %9.4f ms  (median of %d; host copies included)\n", median(runMs),
                o.iters);
    std::printf("launch      %9.4f ms  (median of %d; device buffers, one sync per call)\n",
                median(launchMs), o.iters);
    std::printf("pipelined   %9.4f ms  (%d launches back to back, one sync)\n", pipelinedMs,
                o.iters);
    if (!o.dump.empty())
      std::printf("dumped      %zu inputs and %zu results to %s\n", inputs.size(),
                  results.size(), o.dump.c_str());
  }
  moe_gpu_layer_close(layer);
  return 0;
}
