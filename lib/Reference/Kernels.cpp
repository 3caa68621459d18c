//===- Kernels.cpp - reference semantics of every moe op ------------------===//
//
// Straight loops, written to match docs/dialect.md sentence by sentence.
// Ranking everywhere is "larger value first, ties to the lower index", which
// a stable sort on indices by descending value gives directly.
//
//===----------------------------------------------------------------------===//

#include "moe/Reference/Kernels.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

namespace moe::ref {

bool isGated(Activation act) {
  return act == Activation::SwiGLU || act == Activation::GeGLU;
}

static double silu(double v) { return v / (1.0 + std::exp(-v)); }
static double gelu(double v) { return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))); }

double activate(Activation act, double v) {
  switch (act) {
  case Activation::SwiGLU:
  case Activation::SiLU:
    return silu(v);
  case Activation::GeGLU:
  case Activation::GeLU:
    return gelu(v);
  case Activation::ReLU:
    return v > 0.0 ? v : 0.0;
  }
  return v;
}

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

namespace {
/// Indices 0..n-1 ordered by descending value, ties to the lower index.
std::vector<int64_t> rankDescending(const std::vector<double> &values) {
  std::vector<int64_t> order(values.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return values[a] > values[b];
  });
  return order;
}

Status checkShape(const Tensor &t, const char *name, size_t rank, DType dtype) {
  if (t.rank() != rank || t.dtype != dtype)
    return Status::failure(std::string("'") + name + "' must be a rank-" +
                           std::to_string(rank) + " " + dtypeName(dtype) +
                           " tensor, got " + t.describe());
  return Status::success();
}

/// x [T, H] and gate [E, H]: checks and returns logits [T][E] as float
/// (the value an f32 implementation would store), failing on non-finite ones.
Status computeLogits(const Tensor &x, const Tensor &gate,
                     std::vector<std::vector<double>> &logits) {
  Status s = checkShape(x, "hidden", 2, DType::F32);
  if (!s.ok())
    return s;
  if (!(s = checkShape(gate, "gate", 2, DType::F32)).ok())
    return s;
  int64_t t = x.dim(0), h = x.dim(1), e = gate.dim(0);
  if (gate.dim(1) != h)
    return Status::failure("'gate' has H = " + std::to_string(gate.dim(1)) +
                           " but 'hidden' has H = " + std::to_string(h));
  logits.assign(t, std::vector<double>(e));
  for (int64_t i = 0; i < t; ++i)
    for (int64_t j = 0; j < e; ++j) {
      double acc = 0.0;
      for (int64_t c = 0; c < h; ++c)
        acc += double(x.f[i * h + c]) * double(gate.f[j * h + c]);
      float logit = float(acc);
      if (!std::isfinite(logit))
        return Status::failure("router logit of token " + std::to_string(i) +
                               ", expert " + std::to_string(j) +
                               " is not finite (" + std::to_string(logit) +
                               "): the input holds NaN or Inf");
      logits[i][j] = logit;
    }
  return Status::success();
}

double sigmoid(double v) {
  // Two forms so that neither exp overflows for large |v|.
  if (v >= 0)
    return 1.0 / (1.0 + std::exp(-v));
  double e = std::exp(v);
  return e / (1.0 + e);
}

/// Scores of one token's logits, rounded to f32 like a stored tensor.
std::vector<double> score(const std::vector<double> &logits, Scoring scoring) {
  std::vector<double> s(logits.size());
  if (scoring == Scoring::Sigmoid) {
    for (size_t j = 0; j < logits.size(); ++j)
      s[j] = float(sigmoid(logits[j]));
    return s;
  }
  double mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (size_t j = 0; j < logits.size(); ++j)
    sum += (s[j] = std::exp(logits[j] - mx));
  for (double &v : s)
    v = float(v / sum);
  return s;
}

Status checkBias(const Tensor *bias, int64_t e) {
  if (!bias)
    return Status::success();
  Status s = checkShape(*bias, "bias", 1, DType::F32);
  if (!s.ok())
    return s;
  if (bias->dim(0) != e)
    return Status::failure("'bias' has E = " + std::to_string(bias->dim(0)) +
                           " but 'gate' has E = " + std::to_string(e));
  return Status::success();
}

/// The values top-k selection ranks: scores plus the selection-only bias.
std::vector<double> selectionKeys(const std::vector<double> &scores, const Tensor *bias) {
  std::vector<double> keys = scores;
  if (bias)
    for (size_t j = 0; j < keys.size(); ++j)
      keys[j] += bias->f[j];
  return keys;
}

/// Writes the chosen (expert, weight) pairs of token t into slots 0.., with
/// optional renormalization and scaling; the remaining slots stay -1 / 0.
void fillSlots(Routing &r, int64_t t, int64_t slots,
               const std::vector<int64_t> &chosen,
               const std::vector<double> &weight, bool renormalize,
               float scalingFactor) {
  double sum = 0.0;
  for (int64_t e : chosen)
    sum += weight[e];
  for (size_t s = 0; s < chosen.size(); ++s) {
    double w = weight[chosen[s]];
    // A zero sum (all chosen scores underflowed) leaves the weights at zero.
    if (renormalize && sum > 0.0)
      w /= sum;
    r.ids.i[t * slots + s] = chosen[s];
    r.weights.f[t * slots + s] = float(w * double(scalingFactor));
  }
}

Routing emptyRouting(int64_t t, int64_t k) {
  Routing r;
  r.ids = Tensor::ints(DType::I32, {t, k}, std::vector<int64_t>(t * k, -1));
  r.weights = Tensor::f32({t, k});
  return r;
}

Status checkK(const char *what, int64_t k, int64_t lo, int64_t hi) {
  if (k < lo || k > hi)
    return Status::failure(std::string("'") + what + "' = " + std::to_string(k) +
                           " must be in [" + std::to_string(lo) + ", " +
                           std::to_string(hi) + "]");
  return Status::success();
}
} // namespace

//===----------------------------------------------------------------------===//
// Routers
//===----------------------------------------------------------------------===//

Status topkRouter(const Tensor &x, const Tensor &gate, const Tensor *bias,
                  Scoring scoring, int64_t k, bool renormalize,
                  float scalingFactor, Routing &out) {
  std::vector<std::vector<double>> logits;
  Status s = computeLogits(x, gate, logits);
  if (!s.ok() || !(s = checkBias(bias, gate.dim(0))).ok() ||
      !(s = checkK("k", k, 1, gate.dim(0))).ok())
    return s;
  int64_t t = x.dim(0);
  Routing r = emptyRouting(t, k);
  for (int64_t i = 0; i < t; ++i) {
    std::vector<double> sc = score(logits[i], scoring);
    std::vector<double> biased = selectionKeys(sc, bias);
    std::vector<int64_t> order = rankDescending(biased);
    order.resize(k);
    fillSlots(r, i, k, order, sc, renormalize, scalingFactor);
  }
  out = std::move(r);
  return Status::success();
}

Status groupedTopkRouter(const Tensor &x, const Tensor &gate, const Tensor *bias,
                         Scoring scoring, int64_t k, int64_t numGroups,
                         int64_t topkGroups, bool renormalize,
                         float scalingFactor, Routing &out) {
  std::vector<std::vector<double>> logits;
  Status s = computeLogits(x, gate, logits);
  if (!s.ok() || !(s = checkBias(bias, gate.dim(0))).ok())
    return s;
  int64_t t = x.dim(0), e = gate.dim(0);
  if (numGroups < 1 || e % numGroups != 0)
    return Status::failure("'num_groups' = " + std::to_string(numGroups) +
                           " must divide E = " + std::to_string(e));
  int64_t groupSize = e / numGroups;
  if (!(s = checkK("topk_groups", topkGroups, 1, numGroups)).ok() ||
      !(s = checkK("k", k, 1, topkGroups * groupSize)).ok())
    return s;
  Routing r = emptyRouting(t, k);
  for (int64_t i = 0; i < t; ++i) {
    std::vector<double> sc = score(logits[i], scoring);
    std::vector<double> biased = selectionKeys(sc, bias);
    // Group score: sum of the group's top-min(2, size) biased scores.
    std::vector<double> groupScore(numGroups);
    for (int64_t g = 0; g < numGroups; ++g) {
      std::vector<double> members(biased.begin() + g * groupSize,
                                  biased.begin() + (g + 1) * groupSize);
      std::vector<int64_t> order = rankDescending(members);
      double sum = 0.0;
      for (int64_t m = 0; m < std::min<int64_t>(2, groupSize); ++m)
        sum += members[order[m]];
      groupScore[g] = sum;
    }
    std::vector<int64_t> groups = rankDescending(groupScore);
    // Experts outside the kept groups rank below every expert inside.
    std::vector<double> masked(e, -INFINITY);
    for (int64_t gi = 0; gi < topkGroups; ++gi)
      for (int64_t j = groups[gi] * groupSize; j < (groups[gi] + 1) * groupSize; ++j)
        masked[j] = biased[j];
    std::vector<int64_t> order = rankDescending(masked);
    order.resize(k);
    fillSlots(r, i, k, order, sc, renormalize, scalingFactor);
  }
  out = std::move(r);
  return Status::success();
}

Status toppRouter(const Tensor &x, const Tensor &gate, float threshold,
                  int64_t maxK, bool renormalize, float scalingFactor,
                  Routing &out) {
  std::vector<std::vector<double>> logits;
  Status s = computeLogits(x, gate, logits);
  if (!s.ok() || !(s = checkK("max_k", maxK, 1, gate.dim(0))).ok())
    return s;
  if (!(threshold > 0.0f && threshold <= 1.0f))
    return Status::failure("'threshold' must be in (0, 1], got " +
                           std::to_string(threshold));
  int64_t t = x.dim(0);
  Routing r = emptyRouting(t, maxK);
  for (int64_t i = 0; i < t; ++i) {
    std::vector<double> p = score(logits[i], Scoring::Softmax);
    std::vector<int64_t> order = rankDescending(p), chosen;
    double cumulative = 0.0;
    for (int64_t j : order) {
      chosen.push_back(j);
      cumulative += p[j];
      if (cumulative >= threshold || int64_t(chosen.size()) == maxK)
        break;
    }
    fillSlots(r, i, maxK, chosen, p, renormalize, scalingFactor);
  }
  out = std::move(r);
  return Status::success();
}

Status reluRouter(const Tensor &x, const Tensor &gate, int64_t slots,
                  float scalingFactor, Routing &out) {
  std::vector<std::vector<double>> logits;
  Status s = computeLogits(x, gate, logits);
  if (!s.ok() || !(s = checkK("slots K", slots, 1, gate.dim(0))).ok())
    return s;
  int64_t t = x.dim(0);
  Routing r = emptyRouting(t, slots);
  for (int64_t i = 0; i < t; ++i) {
    std::vector<int64_t> chosen;
    for (int64_t j : rankDescending(logits[i]))
      if (logits[i][j] > 0.0 && int64_t(chosen.size()) < slots)
        chosen.push_back(j);
    fillSlots(r, i, slots, chosen, logits[i], false, scalingFactor);
  }
  out = std::move(r);
  return Status::success();
}

Status expertChoiceRouter(const Tensor &x, const Tensor &gate, Scoring scoring,
                          int64_t capacity, float scalingFactor, Routing &out) {
  std::vector<std::vector<double>> logits;
  Status s = computeLogits(x, gate, logits);
  if (!s.ok())
    return s;
  if (capacity < 1)
    return Status::failure("'capacity' must be positive, got " +
                           std::to_string(capacity));
  int64_t t = x.dim(0), e = gate.dim(0);
  std::vector<std::vector<double>> scores(t);
  for (int64_t i = 0; i < t; ++i)
    scores[i] = score(logits[i], scoring);
  // taken[i][j]: expert j took token i.
  std::vector<std::vector<bool>> taken(t, std::vector<bool>(e, false));
  for (int64_t j = 0; j < e; ++j) {
    std::vector<double> column(t);
    for (int64_t i = 0; i < t; ++i)
      column[i] = scores[i][j];
    std::vector<int64_t> order = rankDescending(column);
    for (int64_t c = 0; c < std::min(capacity, t); ++c)
      taken[order[c]][j] = true;
  }
  Routing r = emptyRouting(t, e);
  for (int64_t i = 0; i < t; ++i) {
    std::vector<int64_t> chosen;
    for (int64_t j = 0; j < e; ++j)
      if (taken[i][j])
        chosen.push_back(j);
    fillSlots(r, i, e, chosen, scores[i], false, scalingFactor);
  }
  out = std::move(r);
  return Status::success();
}

int64_t hashExpert(int64_t tokenId, int64_t numExperts) {
  uint32_t h = uint32_t(uint64_t(tokenId)) * 2654435761u;
  return int64_t(h % uint32_t(numExperts));
}

Status hashRouter(const Tensor &tokenIds, int64_t numExperts, Routing &out) {
  if (tokenIds.rank() != 1 || tokenIds.isFloat())
    return Status::failure("'token_ids' must be a rank-1 integer tensor, got " +
                           tokenIds.describe());
  if (numExperts < 1)
    return Status::failure("'num_experts' must be positive");
  int64_t t = tokenIds.dim(0);
  Routing r = emptyRouting(t, 1);
  for (int64_t i = 0; i < t; ++i) {
    r.ids.i[i] = hashExpert(tokenIds.i[i], numExperts);
    r.weights.f[i] = 1.0f;
  }
  out = std::move(r);
  return Status::success();
}

/// Checks a routing's shapes and that every id is in [-1, E).
static Status checkRouting(const Routing &r, int64_t numExperts) {
  Status s = checkShape(r.ids, "ids", 2, DType::I32);
  if (!s.ok() || !(s = checkShape(r.weights, "weights", 2, DType::F32)).ok())
    return s;
  if (r.ids.shape != r.weights.shape)
    return Status::failure("'ids' " + r.ids.describe() + " and 'weights' " +
                           r.weights.describe() + " must have the same shape");
  int64_t k = r.ids.dim(1);
  for (int64_t n = 0; n < r.ids.numel(); ++n) {
    int64_t id = r.ids.i[n];
    if (id < -1 || id >= numExperts)
      return Status::failure("expert id " + std::to_string(id) + " at ids[" +
                             std::to_string(n / k) + ", " + std::to_string(n % k) +
                             "] is outside [-1, " + std::to_string(numExperts) +
                             ")");
  }
  return Status::success();
}

int64_t capacityLimit(float capacityFactor, int64_t tokens, int64_t slots,
                      int64_t numExperts) {
  return int64_t(std::ceil(double(capacityFactor) * double(tokens) *
                           double(slots) / double(numExperts)));
}

Status capacityDrop(const Routing &in, int64_t numExperts, float capacityFactor,
                    Routing &out) {
  Status s = checkRouting(in, numExperts);
  if (!s.ok())
    return s;
  if (!(capacityFactor > 0.0f) || !std::isfinite(capacityFactor))
    return Status::failure("'capacity_factor' must be positive and finite");
  int64_t t = in.ids.dim(0), k = in.ids.dim(1);
  int64_t limit = capacityLimit(capacityFactor, t, k, numExperts);
  Routing r = in;
  std::vector<int64_t> load(numExperts, 0);
  for (int64_t slot = 0; slot < k; ++slot)
    for (int64_t i = 0; i < t; ++i) {
      int64_t n = i * k + slot, id = r.ids.i[n];
      if (id < 0)
        continue;
      if (load[id] < limit) {
        ++load[id];
      } else {
        r.ids.i[n] = -1;
        r.weights.f[n] = 0.0f;
      }
    }
  out = std::move(r);
  return Status::success();
}

Status routerScores(const Tensor &x, const Tensor &gate, Scoring scoring, Tensor &scores) {
  std::vector<std::vector<double>> logits;
  Status s = computeLogits(x, gate, logits);
  if (!s.ok())
    return s;
  int64_t t = x.dim(0), e = gate.dim(0);
  Tensor out = Tensor::f32({t, e});
  for (int64_t i = 0; i < t; ++i) {
    std::vector<double> row = score(logits[i], scoring);
    for (int64_t j = 0; j < e; ++j)
      out.f[i * e + j] = float(row[j]);
  }
  scores = std::move(out);
  return Status::success();
}

namespace {
/// Checks scores [T, E] against a routing of T tokens: shape, finite values.
Status checkScores(const Tensor &scores, int64_t tokens) {
  Status s = checkShape(scores, "scores", 2, DType::F32);
  if (!s.ok())
    return s;
  if (scores.dim(0) != tokens || scores.dim(1) < 1)
    return Status::failure("'scores' " + scores.describe() + " must be [T, E] with T = " +
                           std::to_string(tokens) + " and E >= 1");
  int64_t e = scores.dim(1);
  for (int64_t n = 0; n < scores.numel(); ++n)
    if (!std::isfinite(scores.f[n]))
      return Status::failure("score at scores[" + std::to_string(n / e) + ", " +
                             std::to_string(n % e) + "] is not finite (" +
                             std::to_string(scores.f[n]) + ")");
  return Status::success();
}
} // namespace

Status capacityReroute(const Routing &in, const Tensor &scores, float capacityFactor,
                       Routing &out) {
  Status s = checkShape(in.ids, "ids", 2, DType::I32);
  if (!s.ok() || !(s = checkScores(scores, in.ids.dim(0))).ok())
    return s;
  int64_t e = scores.dim(1);
  if (!(s = checkRouting(in, e)).ok())
    return s;
  if (!(capacityFactor > 0.0f) || !std::isfinite(capacityFactor))
    return Status::failure("'capacity_factor' must be positive and finite");
  int64_t t = in.ids.dim(0), k = in.ids.dim(1);
  int64_t limit = capacityLimit(capacityFactor, t, k, e);
  auto score = [&](int64_t pair, int64_t expert) { return scores.f[(pair / k) * e + expert]; };
  // Used pairs (index t * K + s) in descending score; the stable sort keeps
  // ties in (token, slot) order.
  std::vector<int64_t> order;
  for (int64_t n = 0; n < t * k; ++n)
    if (in.ids.i[n] >= 0)
      order.push_back(n);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return score(a, in.ids.i[a]) > score(b, in.ids.i[b]);
  });
  Routing r = in;
  std::vector<int64_t> load(e, 0), dropped;
  for (int64_t n : order) {
    int64_t id = in.ids.i[n];
    if (load[id] < limit) {
      ++load[id];
      continue;
    }
    r.ids.i[n] = -1;
    r.weights.f[n] = 0.0f;
    dropped.push_back(n);
  }
  // Re-routing, in the same order: the best expert with room that the token
  // does not hold in another slot (ties: lower id).
  for (int64_t n : dropped) {
    float old = score(n, in.ids.i[n]);
    if (old == 0.0f)
      continue; // no weight-to-score ratio to carry over: stays dropped
    int64_t tok = n / k, best = -1;
    for (int64_t j = 0; j < e; ++j) {
      bool held = false;
      for (int64_t q = 0; q < k; ++q)
        held |= r.ids.i[tok * k + q] == j;
      if (load[j] < limit && !held && (best < 0 || score(n, j) > score(n, best)))
        best = j;
    }
    if (best < 0)
      continue;
    ++load[best];
    r.ids.i[n] = best;
    float ratio = score(n, best) / old;
    r.weights.f[n] = in.weights.f[n] * ratio;
  }
  out = std::move(r);
  return Status::success();
}

Status compressSlots(const Routing &in, const std::vector<int64_t> &compressed, int64_t keep,
                     Routing &out) {
  int64_t e = int64_t(compressed.size());
  Status s = checkRouting(in, e);
  if (!s.ok())
    return s;
  int64_t t = in.ids.dim(0), k = in.ids.dim(1);
  if (keep < 0 || keep > k)
    return Status::failure("'keep' must be in [0, K]");
  Routing r = in;
  for (int64_t i = 0; i < t; ++i)
    for (int64_t slot = 0; slot < k; ++slot) {
      int64_t n = i * k + slot, id = in.ids.i[n];
      if (id < 0)
        continue;
      // rank = the used slots before this one in descending weight, ties
      // to the lower slot (a count, so that NaN weights rank the same way
      // in every implementation).
      float w = in.weights.f[n];
      int64_t rank = 0;
      for (int64_t q = 0; q < k; ++q) {
        float v = in.weights.f[i * k + q];
        rank += in.ids.i[i * k + q] >= 0 && (v > w || (v == w && q < slot));
      }
      if (rank >= keep)
        r.ids.i[n] = e + compressed[id];
    }
  out = std::move(r);
  return Status::success();
}

Status pathRouter(const Tensor &x, const Tensor &gate, Tensor &paths) {
  std::vector<std::vector<double>> logits;
  Status s = computeLogits(x, gate, logits);
  if (!s.ok())
    return s;
  int64_t t = x.dim(0);
  Tensor p = Tensor::ints(DType::I32, {t});
  for (int64_t i = 0; i < t; ++i)
    p.i[i] = rankDescending(logits[i])[0];
  paths = std::move(p);
  return Status::success();
}

Status exitLayers(const Tensor &positions, int64_t maxExit, int64_t minExit,
                  int64_t decayPositions, Tensor &exits) {
  int64_t t = positions.dim(0);
  Tensor e = Tensor::ints(DType::I32, {t});
  for (int64_t i = 0; i < t; ++i) {
    int64_t p = positions.i[i];
    if (p < 0)
      return Status::failure("position " + std::to_string(p) + " of token " + std::to_string(i) +
                             " is negative (moe.exit_layers)");
    e.i[i] = maxExit - (maxExit - minExit) * std::min(p, decayPositions) / decayPositions;
  }
  exits = std::move(e);
  return Status::success();
}

Status exitPaths(const Tensor &exits, int64_t layer, Tensor &paths) {
  int64_t t = exits.dim(0);
  Tensor p = Tensor::ints(DType::I32, {t});
  for (int64_t i = 0; i < t; ++i)
    p.i[i] = layer < exits.i[i] ? 1 : 0;
  paths = std::move(p);
  return Status::success();
}

//===----------------------------------------------------------------------===//
// Experts and layer
//===----------------------------------------------------------------------===//

namespace {
/// out[rows] = M[rows, cols] · v[cols], M at `m` row-major.
std::vector<double> matvec(const float *m, int64_t rows, int64_t cols,
                           const std::vector<double> &v) {
  std::vector<double> out(rows, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    double acc = 0.0;
    for (int64_t c = 0; c < cols; ++c)
      acc += double(m[r * cols + c]) * v[c];
    out[r] = acc;
  }
  return out;
}

/// base · v + scale · B (A v), the LoRA-adapted projection (no adapter when
/// a is null).
std::vector<double> project(const float *base, int64_t rows, int64_t cols,
                            const std::vector<double> &v, const float *a,
                            const float *b, int64_t rank, double scale) {
  std::vector<double> out = matvec(base, rows, cols, v);
  if (a) {
    std::vector<double> low = matvec(a, rank, cols, v);
    std::vector<double> up = matvec(b, rows, rank, low);
    for (int64_t r = 0; r < rows; ++r)
      out[r] += scale * up[r];
  }
  return out;
}

/// w2 · (act(w1 v) [⊙ w3 v]) with optional adapters.
/// v as the products see it under precision `p` (v holds f32 values).
std::vector<double> roundForProducts(ActivationPrecision p, const std::vector<double> &v) {
  if (p == ActivationPrecision::F32)
    return v;
  std::vector<float> f(v.begin(), v.end()), r(v.size());
  roundActivations(p, f.data(), int64_t(f.size()), r.data());
  return std::vector<double>(r.begin(), r.end());
}

std::vector<double> ffnRow(Activation act, int64_t h, int64_t inter,
                           const float *w1, const float *w3, const float *w2,
                           const std::vector<double> &x, const float *a1,
                           const float *b1, const float *a3, const float *b3,
                           const float *a2, const float *b2, int64_t rank,
                           double scale, ActivationPrecision precision = ActivationPrecision::F32) {
  std::vector<double> v = roundForProducts(precision, x);
  std::vector<double> up = project(w1, inter, h, v, a1, b1, rank, scale);
  std::vector<double> mid(inter);
  if (isGated(act)) {
    std::vector<double> g = project(w3, inter, h, v, a3, b3, rank, scale);
    for (int64_t i = 0; i < inter; ++i)
      mid[i] = double(float(activate(act, up[i]) * g[i]));
  } else {
    for (int64_t i = 0; i < inter; ++i)
      mid[i] = double(float(activate(act, up[i])));
  }
  return project(w2, h, inter, roundForProducts(precision, mid), a2, b2, rank, scale);
}
} // namespace

Tensor dequantizeWeights(WeightFormat format, const Tensor &stored, const Tensor *scales,
                         int64_t k) {
  int64_t cols = stored.shape.back(), rows = cols ? stored.numel() / cols : 0;
  DType dtype = storageDType(format);
  std::vector<int64_t> shape = stored.shape;
  shape.back() = k;
  Tensor out = Tensor::f32(shape);
  std::vector<unsigned char> row(size_t(cols) * dtypeSize(dtype));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c)
      storeIntElement(dtype, row.data(), c, stored.i[r * cols + c]);
    float scale = scales ? scales->f[r] : 0.0f;
    dequantizeRow(format, row.data(), scale, k, out.f.data() + r * k);
  }
  return out;
}

void applyExpert(const ExpertBank &bank, int64_t n, const float *x,
                 std::vector<double> &out) {
  int64_t h = bank.hidden;
  std::vector<double> v(x, x + h);
  switch (bank.kind) {
  case ExpertBank::Kind::Zero:
    out.assign(h, 0.0);
    return;
  case ExpertBank::Kind::Copy:
    out = v;
    return;
  case ExpertBank::Kind::Const:
    out.assign(bank.values->f.begin() + n * h, bank.values->f.begin() + (n + 1) * h);
    return;
  case ExpertBank::Kind::Ffn: {
    int64_t inter = bank.w1->dim(1), per = inter * h;
    out = ffnRow(bank.activation, h, inter, bank.w1->f.data() + n * per,
                 bank.w3 ? bank.w3->f.data() + n * per : nullptr,
                 bank.w2->f.data() + n * per, v, nullptr, nullptr, nullptr,
                 nullptr, nullptr, nullptr, 0, 0.0, bank.activations);
    return;
  }
  case ExpertBank::Kind::Lora: {
    int64_t inter = bank.w1->dim(0), rank = bank.a1->dim(1);
    auto at = [&](const Tensor *t) {
      return t ? t->f.data() + n * (t->dim(1) * t->dim(2)) : nullptr;
    };
    out = ffnRow(bank.activation, h, inter, bank.w1->f.data(),
                 bank.w3 ? bank.w3->f.data() : nullptr, bank.w2->f.data(), v,
                 at(bank.a1), at(bank.b1), at(bank.a3), at(bank.b3), at(bank.a2),
                 at(bank.b2), rank, double(bank.alpha) / double(rank));
    return;
  }
  }
}

Status layer(const Tensor &x, const Routing &routing,
             const std::vector<ExpertBank> &experts,
             const std::vector<ExpertBank> &shared, Tensor &y) {
  Status s = checkShape(x, "hidden", 2, DType::F32);
  if (!s.ok())
    return s;
  int64_t numExperts = 0;
  std::vector<std::pair<const ExpertBank *, int64_t>> table; // bank, index in bank
  for (const ExpertBank &bank : experts)
    for (int64_t n = 0; n < bank.count; ++n, ++numExperts)
      table.push_back({&bank, n});
  if (!(s = checkRouting(routing, numExperts)).ok())
    return s;
  int64_t t = x.dim(0), h = x.dim(1), k = routing.ids.dim(1);
  if (routing.ids.dim(0) != t)
    return Status::failure("routing has T = " + std::to_string(routing.ids.dim(0)) +
                           " but 'hidden' has T = " + std::to_string(t));
  Tensor result = Tensor::f32({t, h});
  std::vector<double> acc(h), e;
  for (int64_t i = 0; i < t; ++i) {
    std::fill(acc.begin(), acc.end(), 0.0);
    const float *row = x.f.data() + i * h;
    for (int64_t slot = 0; slot < k; ++slot) {
      int64_t id = routing.ids.i[i * k + slot];
      if (id < 0)
        continue;
      double w = routing.weights.f[i * k + slot];
      applyExpert(*table[id].first, table[id].second, row, e);
      for (int64_t c = 0; c < h; ++c)
        acc[c] += w * e[c];
    }
    for (const ExpertBank &bank : shared)
      for (int64_t n = 0; n < bank.count; ++n) {
        applyExpert(bank, n, row, e);
        for (int64_t c = 0; c < h; ++c)
          acc[c] += e[c];
      }
    for (int64_t c = 0; c < h; ++c)
      result.f[i * h + c] = float(acc[c]);
  }
  y = std::move(result);
  return Status::success();
}

Status ffn(const Tensor &x, Activation act, const Tensor &w1, const Tensor *w3,
           const Tensor &w2, Tensor &y, ActivationPrecision precision) {
  Status s = checkShape(x, "hidden", 2, DType::F32);
  if (!s.ok())
    return s;
  int64_t t = x.dim(0), h = x.dim(1), inter = w1.dim(0);
  Tensor result = Tensor::f32({t, h});
  for (int64_t i = 0; i < t; ++i) {
    std::vector<double> v(x.f.begin() + i * h, x.f.begin() + (i + 1) * h);
    std::vector<double> out =
        ffnRow(act, h, inter, w1.f.data(), w3 ? w3->f.data() : nullptr,
               w2.f.data(), v, nullptr, nullptr, nullptr, nullptr, nullptr,
               nullptr, 0, 0.0, precision);
    for (int64_t c = 0; c < h; ++c)
      result.f[i * h + c] = float(out[c]);
  }
  y = std::move(result);
  return Status::success();
}

//===----------------------------------------------------------------------===//
// Skips
//===----------------------------------------------------------------------===//

Status skipSelect(const Tensor &x, const Tensor &router,
                  std::optional<float> capacityFraction,
                  std::optional<float> threshold, std::vector<int64_t> &selected,
                  std::vector<float> &scores) {
  Status s = checkShape(x, "hidden", 2, DType::F32);
  if (!s.ok() || !(s = checkShape(router, "router", 1, DType::F32)).ok())
    return s;
  int64_t t = x.dim(0), h = x.dim(1);
  if (router.dim(0) != h)
    return Status::failure("'router' has H = " + std::to_string(router.dim(0)) +
                           " but 'hidden' has H = " + std::to_string(h));
  if (capacityFraction.has_value() == threshold.has_value())
    return Status::failure("exactly one of capacity_fraction and threshold");
  std::vector<double> r(t);
  std::vector<float> rf(t);
  for (int64_t i = 0; i < t; ++i) {
    double acc = 0.0;
    for (int64_t c = 0; c < h; ++c)
      acc += double(x.f[i * h + c]) * double(router.f[c]);
    rf[i] = float(acc);
    if (!std::isfinite(rf[i]))
      return Status::failure("skip router score of token " + std::to_string(i) +
                             " is not finite: the input holds NaN or Inf");
    r[i] = rf[i];
  }
  std::vector<int64_t> chosen;
  if (capacityFraction) {
    int64_t n = std::min<int64_t>(
        t, int64_t(std::ceil(double(*capacityFraction) * double(t))));
    chosen = rankDescending(r);
    chosen.resize(n);
    std::sort(chosen.begin(), chosen.end());
  } else {
    for (int64_t i = 0; i < t; ++i)
      if (r[i] > double(*threshold))
        chosen.push_back(i);
  }
  selected = std::move(chosen);
  scores = std::move(rf);
  return Status::success();
}

Tensor gatherRows(const Tensor &x, const std::vector<int64_t> &tokens) {
  int64_t h = x.dim(1);
  Tensor out = Tensor::f32({int64_t(tokens.size()), h});
  for (size_t j = 0; j < tokens.size(); ++j)
    std::copy(x.f.begin() + tokens[j] * h, x.f.begin() + (tokens[j] + 1) * h,
              out.f.begin() + j * h);
  return out;
}

Status addRows(Tensor &y, const std::vector<int64_t> &tokens, const Tensor &f,
               const std::vector<float> &scale) {
  int64_t h = y.dim(1);
  if (f.rank() != 2 || f.dim(0) != int64_t(tokens.size()) || f.dim(1) != h)
    return Status::failure("branch yielded " + f.describe() + " for " +
                           std::to_string(tokens.size()) +
                           " selected tokens of hidden size " + std::to_string(h));
  for (size_t j = 0; j < tokens.size(); ++j) {
    float g = scale.empty() ? 1.0f : scale[j];
    for (int64_t c = 0; c < h; ++c)
      y.f[tokens[j] * h + c] =
          float(double(y.f[tokens[j] * h + c]) + double(g) * double(f.f[j * h + c]));
  }
  return Status::success();
}

HaltingState::HaltingState(int64_t t, int64_t h)
    : cumulative(t, 0.0f), out(t * h, 0.0), steps(Tensor::ints(DType::I32, {t})) {}

Status haltingUpdate(const Tensor &s, const Tensor &haltWeights, const Tensor &haltBias,
                     int64_t layer, bool lastLayer, float epsilon,
                     std::vector<int64_t> &active, HaltingState &state) {
  int64_t h = s.dim(1);
  const float threshold = float(1.0 - double(epsilon));
  std::vector<int64_t> running;
  for (int64_t t : active) {
    double acc = double(haltBias.f[layer]);
    for (int64_t c = 0; c < h; ++c)
      acc += double(s.f[t * h + c]) * double(haltWeights.f[layer * h + c]);
    float logit = float(acc);
    if (!std::isfinite(logit))
      return Status::failure("halting logit of token " + std::to_string(t) + " after layer " +
                             std::to_string(layer) + " is not finite: the input holds NaN or Inf");
    float p = float(sigmoid(logit));
    float before = state.cumulative[t], after = before + p; // f32 addition
    bool halts = lastLayer || after >= threshold;
    double weight = halts ? double(1.0f - before) : double(p);
    for (int64_t c = 0; c < h; ++c)
      state.out[t * h + c] += weight * double(s.f[t * h + c]);
    state.cumulative[t] = after;
    state.steps.i[t] = layer + 1;
    if (!halts)
      running.push_back(t);
  }
  active = std::move(running);
  return Status::success();
}

Status groupByPath(const Tensor &paths, int64_t numPaths,
                   std::vector<std::vector<int64_t>> &groups) {
  if (paths.rank() != 1 || paths.isFloat())
    return Status::failure("'paths' must be a rank-1 integer tensor, got " +
                           paths.describe());
  std::vector<std::vector<int64_t>> g(numPaths);
  for (int64_t i = 0; i < paths.dim(0); ++i) {
    int64_t p = paths.i[i];
    if (p < 0 || p >= numPaths)
      return Status::failure("path " + std::to_string(p) + " of token " +
                             std::to_string(i) + " is outside [0, " +
                             std::to_string(numPaths) + ")");
    g[p].push_back(i);
  }
  groups = std::move(g);
  return Status::success();
}

} // namespace moe::ref
