//===- EagerBaseline.cpp - the cases' inputs and the eager OpenBLAS loop ---===//

#include "EagerBaseline.h"

#include "moe/Support/Random.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace moe::bench {

std::vector<Shape> benchShapes() {
  return {
      {"MIX-P", 8, 2, 1024, 3584, 512, false},     {"MIX-P-zipf", 8, 2, 1024, 3584, 512, true},
      {"MIX-D", 8, 2, 1024, 3584, 8, false},       {"DS-P", 64, 6, 1024, 256, 1024, false},
      {"DS-P-zipf", 64, 6, 1024, 256, 1024, true}, {"DS-D", 64, 6, 1024, 256, 8, false},
      {"QW-P", 128, 8, 512, 192, 512, false},      {"QW-P-zipf", 128, 8, 512, 192, 512, true},
      {"QW-D", 128, 8, 512, 192, 1, false},
  };
}

/// Zipf(s = 1.2) routing: k distinct experts per token, the probability of
/// expert e proportional to 1 / (e + 1)^1.2; weights positive, summing to 1.
static void zipfRouting(const Shape &s, Tensor &ids, Tensor &w) {
  Rng rng(7);
  std::vector<double> p(s.e);
  for (int64_t e = 0; e < s.e; ++e)
    p[e] = 1.0 / std::pow(double(e + 1), 1.2);
  ids = Tensor::ints(DType::I32, {s.t, s.k});
  w = Tensor::f32({s.t, s.k});
  for (int64_t t = 0; t < s.t; ++t) {
    std::vector<double> q = p;
    double sum = 0;
    for (int64_t j = 0; j < s.k; ++j) {
      double total = std::accumulate(q.begin(), q.end(), 0.0), u = rng.uniform(0.0f, 1.0f) * total;
      int64_t e = 0;
      while (e + 1 < s.e && (u -= q[e]) > 0)
        ++e;
      while (q[e] == 0) // rounding landed on a taken expert
        e = (e + 1) % s.e;
      q[e] = 0;
      ids.i[t * s.k + j] = e;
      double v = 0.5 + rng.uniform(0.0f, 1.0f);
      w.f[t * s.k + j] = float(v);
      sum += v;
    }
    for (int64_t j = 0; j < s.k; ++j)
      w.f[t * s.k + j] = float(w.f[t * s.k + j] / sum);
  }
}

CaseInputs makeCaseInputs(const Shape &s) {
  CaseInputs in;
  in.x = randomFloats({s.t, s.h}, 1);
  in.gate = randomFloats({s.e, s.h}, 2);
  in.w1 = randomFloats({s.e, s.inter, s.h}, 3);
  in.w3 = randomFloats({s.e, s.inter, s.h}, 4);
  in.w2 = randomFloats({s.e, s.h, s.inter}, 5);
  if (s.zipf)
    zipfRouting(s, in.ids, in.w);
  in.ids32.assign(in.ids.i.begin(), in.ids.i.end());
  return in;
}

void softmaxTopK(const Shape &s, float *logits, int32_t *ids, float *wts) {
  std::vector<int32_t> order(s.e);
  for (int64_t t = 0; t < s.t; ++t) {
    float *l = &logits[t * s.e];
    float mx = *std::max_element(l, l + s.e), sum = 0;
    for (int64_t e = 0; e < s.e; ++e)
      sum += (l[e] = std::exp(l[e] - mx));
    for (int64_t e = 0; e < s.e; ++e)
      l[e] /= sum;
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + s.k, order.end(),
                      [&](int32_t a, int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); });
    float top = 0;
    for (int64_t j = 0; j < s.k; ++j)
      top += l[order[j]];
    for (int64_t j = 0; j < s.k; ++j) {
      ids[t * s.k + j] = order[j];
      wts[t * s.k + j] = l[order[j]] / top;
    }
  }
}

void ExpertGroups::build(const Shape &s, const int32_t *ids, const float *wts) {
  tokensOf.assign(s.e, {});
  weightOf.assign(s.e, {});
  for (int64_t t = 0; t < s.t; ++t)
    for (int64_t j = 0; j < s.k; ++j) {
      tokensOf[ids[t * s.k + j]].push_back(t);
      weightOf[ids[t * s.k + j]].push_back(wts[t * s.k + j]);
    }
}

void scatterAdd(const Shape &s, const std::vector<int64_t> &tokens,
                const std::vector<float> &weights, const float *ye, float *out) {
  for (size_t r = 0; r < tokens.size(); ++r) {
    float wr = weights[r];
    float *o = out + tokens[r] * s.h;
    for (int64_t c = 0; c < s.h; ++c)
      o[c] += wr * ye[r * s.h + c];
  }
}

void OpenBlasBaseline::route(const float *x, const float *gate) {
  logits.resize(s.t * s.e);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(s.t), int(s.e), int(s.h), 1.0f, x,
              int(s.h), gate, int(s.h), 0.0f, logits.data(), int(s.e));
  ids.resize(s.t * s.k);
  wts.resize(s.t * s.k);
  softmaxTopK(s, logits.data(), ids.data(), wts.data());
}

void OpenBlasBaseline::run(const float *x, const float *gate, const int32_t *givenIds,
                           const float *givenW, const float *w1, const float *w3, const float *w2,
                           float *out) {
  if (gate)
    route(x, gate);
  groups.build(s, gate ? ids.data() : givenIds, gate ? wts.data() : givenW);
  std::fill(out, out + s.t * s.h, 0.0f);
  for (int64_t e = 0; e < s.e; ++e) {
    const std::vector<int64_t> &tokens = groups.tokensOf[e];
    int64_t n = int64_t(tokens.size());
    if (n == 0)
      continue;
    xe.resize(n * s.h);
    g.resize(n * s.inter);
    u.resize(n * s.inter);
    ye.resize(n * s.h);
    for (int64_t r = 0; r < n; ++r)
      std::copy_n(x + tokens[r] * s.h, s.h, &xe[r * s.h]);
    const float *e1 = w1 + e * s.inter * s.h, *e3 = w3 + e * s.inter * s.h,
                *e2 = w2 + e * s.h * s.inter;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(n), int(s.inter), int(s.h), 1.0f,
                xe.data(), int(s.h), e1, int(s.h), 0.0f, g.data(), int(s.inter));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(n), int(s.inter), int(s.h), 1.0f,
                xe.data(), int(s.h), e3, int(s.h), 0.0f, u.data(), int(s.inter));
    for (int64_t i = 0; i < n * s.inter; ++i)
      g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(n), int(s.h), int(s.inter), 1.0f,
                g.data(), int(s.inter), e2, int(s.inter), 0.0f, ye.data(), int(s.h));
    scatterAdd(s, tokens, groups.weightOf[e], ye.data(), out);
  }
}

} // namespace moe::bench
