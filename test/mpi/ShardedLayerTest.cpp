//===- ShardedLayerTest.cpp - a moe-compile'd sharded layer under mpirun --===//
//
//   mpirun -np R moe-mpi-sharded-layer-test SHARDED.so WHOLE.so T
//
// SHARDED.so: `moe-compile --pipeline-options=ranks=R`; WHOLE.so: the same
// layer unsharded. Every rank builds the same batch of T tokens (f32
// arguments only, deterministic), runs SHARDED.so through the C runtime on
// its even share of the tokens, and rank 0 gathers the result and compares
// it with WHOLE.so on the whole batch (max relative error <= 1e-5).
//===----------------------------------------------------------------------===//

#include "moe_runtime.h"
#include "moe_runtime_mpi.h"

#include <cmath>
#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

struct Arg {
  std::vector<int64_t> shape; // the whole batch's
  std::vector<float> data;
  bool tokenDim = false; // dimension 0 is T
};

int failWith(const std::string &message) {
  std::fprintf(stderr, "rank %d: FAIL: %s\n", moe_mpi_rank(), message.c_str());
  moe_mpi_agree_status(1, message.c_str());
  moe_mpi_finalize();
  return 1;
}

std::vector<Arg> makeArgs(moe_layer *layer, int64_t tokens) {
  std::vector<Arg> args(moe_layer_num_args(layer));
  for (int i = 0; i < int(args.size()); ++i) {
    moe_dtype dtype;
    int32_t rank;
    const int64_t *shape;
    moe_layer_arg(layer, i, &dtype, &rank, &shape);
    int64_t n = 1;
    for (int d = 0; d < rank; ++d) {
      int64_t size = shape[d] < 0 ? tokens : shape[d];
      args[i].tokenDim |= d == 0 && shape[d] < 0;
      args[i].shape.push_back(size);
      n *= size;
    }
    // Uniform in [-a, a), a = sqrt(3 / last dim): unit-variance rows.
    float a = std::sqrt(3.0f / float(args[i].shape.back()));
    uint64_t state = 0x9e3779b97f4a7c15ull * uint64_t(i + 1);
    args[i].data.resize(n);
    for (float &v : args[i].data) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      v = a * (float(state >> 40) / float(1 << 24) * 2.0f - 1.0f);
    }
  }
  return args;
}

int runLayer(moe_layer *layer, std::vector<Arg> &args, int64_t begin, int64_t end,
             std::vector<float> &out, std::vector<int64_t> &outShape) {
  std::vector<std::vector<int64_t>> shapes;
  std::vector<moe_tensor> tensors;
  for (Arg &a : args) {
    shapes.push_back(a.shape);
    int64_t row = 1;
    for (size_t d = 1; d < a.shape.size(); ++d)
      row *= a.shape[d];
    float *data = a.data.data();
    if (a.tokenDim) {
      shapes.back()[0] = end - begin;
      data += begin * row;
    }
    tensors.push_back({data, MOE_F32, int32_t(a.shape.size()), nullptr});
  }
  for (size_t i = 0; i < tensors.size(); ++i)
    tensors[i].shape = shapes[i].data();
  moe_dtype dtype;
  int32_t rank;
  const int64_t *shape;
  moe_layer_result(layer, 0, &dtype, &rank, &shape);
  outShape.assign(shape, shape + rank);
  outShape[0] = end - begin;
  int64_t n = 1;
  for (int64_t d : outShape)
    n *= d;
  out.assign(n, 0.0f);
  moe_tensor result{out.data(), MOE_F32, rank, outShape.data()};
  return moe_layer_run(layer, tensors.data(), int(tensors.size()), &result, 1);
}

} // namespace

int main(int argc, char **argv) {
  if (moe_mpi_init(&argc, &argv) != 0 || argc != 4) {
    std::fprintf(stderr, "usage: mpirun -np R %s SHARDED.so WHOLE.so T\n", argv[0]);
    return 2;
  }
  int rank = moe_mpi_rank(), ranks = moe_mpi_size();
  int64_t tokens = std::atoll(argv[3]);
  moe_layer *sharded = nullptr;
  if (moe_layer_open(argv[1], "main", &sharded) != 0)
    return failWith(std::string("opening the sharded layer: ") + moe_last_error());
  std::vector<Arg> args = makeArgs(sharded, tokens);
  int64_t begin = tokens * rank / ranks, end = tokens * (rank + 1) / ranks;
  std::vector<float> local;
  std::vector<int64_t> shape;
  int status = runLayer(sharded, args, begin, end, local, shape);
  std::string message = status ? std::string(moe_last_error()) + " / " + moe_mpi_last_error()
                               : "";
  if (moe_mpi_agree_status(status, message.c_str()) != 0) {
    std::fprintf(stderr, "rank %d: FAIL: %s\n", rank, moe_mpi_last_error());
    moe_mpi_finalize();
    return 1;
  }
  int64_t row = 1;
  for (size_t d = 1; d < shape.size(); ++d)
    row *= shape[d];
  std::vector<float> gathered(rank == 0 ? tokens * row : 0);
  if (moe_mpi_gather_rows(local.data(), end - begin, row, gathered.data()) != 0)
    return failWith(moe_mpi_last_error());
  int verdict = 0;
  if (rank == 0) {
    moe_layer *whole = nullptr;
    std::vector<float> reference;
    if (moe_layer_open(argv[2], "main", &whole) != 0 ||
        runLayer(whole, args, 0, tokens, reference, shape) != 0) {
      std::fprintf(stderr, "FAIL: the whole layer: %s\n", moe_last_error());
      verdict = 1;
    } else {
      double maxAbs = 0, maxRef = 0;
      for (size_t k = 0; k < reference.size(); ++k) {
        double d = std::fabs(double(gathered[k]) - reference[k]);
        maxAbs = std::max(maxAbs, std::isnan(d) ? INFINITY : d);
        maxRef = std::max(maxRef, std::fabs(double(reference[k])));
      }
      double rel = maxRef > 0 ? maxAbs / maxRef : maxAbs;
      verdict = rel <= 1e-5 && maxRef > 0 ? 0 : 1;
      std::printf("sharded shared object at %d ranks vs the whole layer: max rel error %.3g: "
                  "%s\n", ranks, rel, verdict ? "FAIL" : "PASS");
      moe_layer_close(whole);
    }
  }
  moe_layer_close(sharded);
  moe_mpi_finalize();
  return verdict;
}
