//===- Random.cpp - deterministic input generation -------------------------===//
#include "moe/Support/Random.h"

#include <cmath>

namespace moe {
uint64_t Rng::next() {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

float Rng::uniformFromDraw(uint64_t draw, float lo, float hi) {
  // 24 random bits: every value is exactly representable in f32.
  float unit = float(draw >> 40) * (1.0f / 16777216.0f);
  return lo + (hi - lo) * unit;
}

int64_t Rng::integer(int64_t lo, int64_t hi) {
  return lo + int64_t(next() % uint64_t(hi - lo));
}
Tensor randomFloats(std::vector<int64_t> shape, uint64_t seed) {
  float a = shape.size() >= 2 && shape.back() > 0
                ? std::sqrt(3.0f / float(shape.back()))
                : 1.0f;
  Tensor t = Tensor::f32(std::move(shape));
  Rng rng(seed);
  for (float &v : t.f)
    v = rng.uniform(-a, a);
  return t;
}

Tensor randomInts(DType dtype, std::vector<int64_t> shape,
                       uint64_t seed, int64_t lo, int64_t hi) {
  Tensor t = Tensor::ints(dtype, std::move(shape));
  Rng rng(seed);
  for (int64_t &v : t.i)
    v = rng.integer(lo, hi);
  return t;
}
} // namespace moe
