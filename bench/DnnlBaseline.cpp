//===- DnnlBaseline.cpp - the oneDNN per-expert baseline --------------------===//

#include "DnnlBaseline.h"

#include <oneapi/dnnl/dnnl.hpp>

#include "llvm/Support/FormatVariadic.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <unordered_map>

namespace moe::bench {

using dnnl::memory;
using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

namespace {

// Per-call conversions, inlined (Quant.h's floatToBf16 and int8 rounding,
// minus NaN handling: the activations are finite).
uint16_t toBf16(float v) { // round to nearest even
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return uint16_t(bits >> 16);
}

/// Symmetric per-row 8-bit quantization: q = round(v / scale), |q| <= 127.
float quantizeRow(const float *v, int64_t n, int8_t *q) {
  float mx = 0;
  for (int64_t i = 0; i < n; ++i)
    mx = std::max(mx, std::fabs(v[i]));
  float scale = mx > 0 ? mx / 127.0f : 1.0f, inv = 1.0f / scale;
  for (int64_t i = 0; i < n; ++i)
    q[i] = int8_t(std::clamp(std::nearbyint(v[i] * inv), -127.0f, 127.0f));
  return scale;
}

/// A K x N matmul and the weight layouts oneDNN chose for it: usually one
/// for every row count, but for s8 sources a single row takes a VNNI kernel
/// whose layout carries a compensation (AMX takes the others), so the
/// weights are reordered once into each layout a call can need.
struct MatmulShape {
  int64_t k, n;
  std::vector<memory::desc> layouts;
};

} // namespace

struct DnnlBaseline::Impl {
  const Shape &s;
  WeightFormat format;
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  dt srcType = dt::f32;
  MatmulShape up, down; // x (h) -> inter, and inter -> h
  // Per layout, per expert, in oneDNN's layout: w1, w3 (up) and w2 (down).
  std::vector<std::vector<memory>> w1, w3, w2;
  // Int8: the per-output-channel scales of w1, w3 (inter) and w2 (h).
  std::vector<std::vector<float>> s1, s3, s2;
  // The router (softmax cases): T x h times the gate, reordered once.
  dnnl::matmul router;
  memory gate;
  /// The primitives for a row count and the layouts their weights take.
  struct RowPrimitives {
    dnnl::matmul up, down;
    size_t upLayout = 0, downLayout = 0;
  };
  std::unordered_map<int64_t, RowPrimitives> byRows;
  double prepareMs = 0, preparedBytes = 0;
  // Per-call scratch.
  std::vector<float> logits, xe, g, u, ye, rowScale, rowScale2;
  std::vector<int32_t> ids;
  std::vector<float> wts;
  std::vector<char> xq, hq; // bf16 or s8 copies of the matmuls' sources
  ExpertGroups groups;

  Impl(const Shape &shape, WeightFormat f) : s(shape), format(f) {}

  dnnl::matmul::primitive_desc matmulDesc(int64_t m, int64_t k, int64_t n,
                                          const memory::desc &weights) {
    memory::desc src({m, k}, srcType, tag::ab), dst({m, n}, dt::f32, tag::ab);
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, weights, dst), eng);
  }
  memory::desc anyWeights(int64_t k, int64_t n) {
    dt w = format == WeightFormat::F32 ? dt::f32 : format == WeightFormat::BF16 ? dt::bf16 : dt::s8;
    return memory::desc({k, n}, w, tag::any);
  }
  /// The layouts oneDNN picks for 8 rows and for 1 row (the same, or two).
  MatmulShape chooseLayouts(int64_t k, int64_t n) {
    MatmulShape m{k, n, {matmulDesc(8, k, n, anyWeights(k, n)).weights_desc()}};
    memory::desc single = matmulDesc(1, k, n, anyWeights(k, n)).weights_desc();
    if (single != m.layouts[0])
      m.layouts.push_back(single);
    return m;
  }
  /// The prepared layout a `rows`-row matmul prefers (the first if none).
  size_t layoutFor(int64_t rows, const MatmulShape &m) {
    memory::desc wanted = matmulDesc(rows, m.k, m.n, anyWeights(m.k, m.n)).weights_desc();
    for (size_t i = 0; i < m.layouts.size(); ++i)
      if (m.layouts[i] == wanted)
        return i;
    return 0;
  }
  void reorderWeights(const float *rowMajorNxK, const MatmulShape &m,
                      std::vector<std::vector<memory>> &into, std::vector<float> &scales);
  void prepare(const CaseInputs &in);
  RowPrimitives &primitivesFor(int64_t rows);
  void route(const float *x);
  void gatherSource(const float *x, const std::vector<int64_t> &tokens);
  void swiglu(int64_t e, int64_t n);
  void runExpert(const float *x, int64_t e, float *out);
  void run(const CaseInputs &in, float *out);
};

/// Weights of one expert matrix (N x K row-major, i.e. a K x N matrix in
/// tag::ba) converted to the format and reordered into each layout of `m`
/// (appended to `into[layout]`); Int8 quantizes once per output channel
/// with Quant.h, as our layers get their int8 weights.
void DnnlBaseline::Impl::reorderWeights(const float *rowMajorNxK, const MatmulShape &m,
                                        std::vector<std::vector<memory>> &into,
                                        std::vector<float> &scales) {
  std::vector<int8_t> q;
  memory src;
  if (format == WeightFormat::Int8) {
    q.resize(m.k * m.n);
    scales.resize(m.n);
    quantizeRows(WeightFormat::Int8, rowMajorNxK, m.n, m.k, q.data(), scales.data());
    src = memory({{m.k, m.n}, dt::s8, tag::ba}, eng, q.data());
  } else { // f32 -> f32 or bf16: the reorder converts
    src = memory({{m.k, m.n}, dt::f32, tag::ba}, eng, const_cast<float *>(rowMajorNxK));
  }
  into.resize(m.layouts.size());
  for (size_t l = 0; l < m.layouts.size(); ++l) {
    memory dst(m.layouts[l], eng);
    dnnl::reorder(src, dst).execute(strm, src, dst);
    strm.wait();
    preparedBytes += double(m.layouts[l].get_size());
    into[l].push_back(dst);
  }
}

void DnnlBaseline::Impl::prepare(const CaseInputs &in) {
  auto start = std::chrono::steady_clock::now();
  srcType = format == WeightFormat::F32 ? dt::f32 : format == WeightFormat::BF16 ? dt::bf16 : dt::s8;
  up = chooseLayouts(s.h, s.inter);
  down = chooseLayouts(s.inter, s.h);
  int64_t size = s.inter * s.h;
  s1.resize(s.e), s3.resize(s.e), s2.resize(s.e);
  for (int64_t e = 0; e < s.e; ++e) {
    reorderWeights(in.w1.f.data() + e * size, up, w1, s1[e]);
    reorderWeights(in.w3.f.data() + e * size, up, w3, s3[e]);
    reorderWeights(in.w2.f.data() + e * size, down, w2, s2[e]);
  }
  if (!s.zipf) { // the router stays FP32 in every format, as ours does
    memory::desc src({s.t, s.h}, dt::f32, tag::ab), dst({s.t, s.e}, dt::f32, tag::ab);
    memory::desc any({s.h, s.e}, dt::f32, tag::any);
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, any, dst), eng);
    router = dnnl::matmul(pd);
    gate = memory(pd.weights_desc(), eng);
    memory user({{s.h, s.e}, dt::f32, tag::ba}, eng, const_cast<float *>(in.gate.f.data()));
    dnnl::reorder(user, gate).execute(strm, user, gate);
    strm.wait();
  }
  prepareMs = 1e3 * std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

DnnlBaseline::Impl::RowPrimitives &DnnlBaseline::Impl::primitivesFor(int64_t rows) {
  auto it = byRows.find(rows);
  if (it != byRows.end())
    return it->second;
  RowPrimitives p;
  p.upLayout = layoutFor(rows, up);
  p.downLayout = layoutFor(rows, down);
  p.up = dnnl::matmul(matmulDesc(rows, up.k, up.n, up.layouts[p.upLayout]));
  p.down = dnnl::matmul(matmulDesc(rows, down.k, down.n, down.layouts[p.downLayout]));
  return byRows.emplace(rows, p).first->second;
}

void DnnlBaseline::Impl::route(const float *x) {
  logits.resize(s.t * s.e);
  memory src({{s.t, s.h}, dt::f32, tag::ab}, eng, const_cast<float *>(x));
  memory dst({{s.t, s.e}, dt::f32, tag::ab}, eng, logits.data());
  router.execute(strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, gate}, {DNNL_ARG_DST, dst}});
  strm.wait();
  ids.resize(s.t * s.k);
  wts.resize(s.t * s.k);
  softmaxTopK(s, logits.data(), ids.data(), wts.data());
}

/// The expert's rows of x, in the matmul's source type (xe keeps f32 rows
/// for F32; xq holds bf16 or s8, with rowScale for s8).
void DnnlBaseline::Impl::gatherSource(const float *x, const std::vector<int64_t> &tokens) {
  int64_t n = int64_t(tokens.size());
  if (format == WeightFormat::F32) {
    xe.resize(n * s.h);
    for (int64_t r = 0; r < n; ++r)
      std::copy_n(x + tokens[r] * s.h, s.h, &xe[r * s.h]);
  } else if (format == WeightFormat::BF16) {
    xq.resize(n * s.h * 2);
    auto *q = reinterpret_cast<uint16_t *>(xq.data());
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = 0; c < s.h; ++c)
        q[r * s.h + c] = toBf16(x[tokens[r] * s.h + c]);
  } else {
    xq.resize(n * s.h);
    rowScale.resize(n);
    for (int64_t r = 0; r < n; ++r)
      rowScale[r] = quantizeRow(x + tokens[r] * s.h, s.h, reinterpret_cast<int8_t *>(&xq[r * s.h]));
  }
}

/// g = silu(g) * u over n rows, the Int8 scales applied first; then the
/// down matmul's source in its type (hq, rowScale2 for s8).
void DnnlBaseline::Impl::swiglu(int64_t e, int64_t n) {
  bool int8 = format == WeightFormat::Int8;
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < s.inter; ++c) {
      float gv = g[r * s.inter + c], uv = u[r * s.inter + c];
      if (int8) {
        gv *= rowScale[r] * s1[e][c];
        uv *= rowScale[r] * s3[e][c];
      }
      g[r * s.inter + c] = gv / (1.0f + std::exp(-gv)) * uv;
    }
  if (format == WeightFormat::BF16) {
    hq.resize(n * s.inter * 2);
    auto *q = reinterpret_cast<uint16_t *>(hq.data());
    for (int64_t i = 0; i < n * s.inter; ++i)
      q[i] = toBf16(g[i]);
  } else if (int8) {
    hq.resize(n * s.inter);
    rowScale2.resize(n);
    for (int64_t r = 0; r < n; ++r)
      rowScale2[r] = quantizeRow(&g[r * s.inter], s.inter,
                                 reinterpret_cast<int8_t *>(&hq[r * s.inter]));
  }
}

void DnnlBaseline::Impl::runExpert(const float *x, int64_t e, float *out) {
  const std::vector<int64_t> &tokens = groups.tokensOf[e];
  int64_t n = int64_t(tokens.size());
  RowPrimitives &p = primitivesFor(n);
  gatherSource(x, tokens);
  g.resize(n * s.inter);
  u.resize(n * s.inter);
  ye.resize(n * s.h);
  void *src = format == WeightFormat::F32 ? static_cast<void *>(xe.data()) : xq.data();
  memory xm({{n, s.h}, srcType, tag::ab}, eng, src);
  memory gm({{n, s.inter}, dt::f32, tag::ab}, eng, g.data());
  memory um({{n, s.inter}, dt::f32, tag::ab}, eng, u.data());
  p.up.execute(strm, {{DNNL_ARG_SRC, xm}, {DNNL_ARG_WEIGHTS, w1[p.upLayout][e]}, {DNNL_ARG_DST, gm}});
  p.up.execute(strm, {{DNNL_ARG_SRC, xm}, {DNNL_ARG_WEIGHTS, w3[p.upLayout][e]}, {DNNL_ARG_DST, um}});
  strm.wait();
  swiglu(e, n);
  void *hsrc = format == WeightFormat::F32 ? static_cast<void *>(g.data()) : hq.data();
  memory hm({{n, s.inter}, srcType, tag::ab}, eng, hsrc);
  memory ym({{n, s.h}, dt::f32, tag::ab}, eng, ye.data());
  p.down.execute(strm,
                 {{DNNL_ARG_SRC, hm}, {DNNL_ARG_WEIGHTS, w2[p.downLayout][e]}, {DNNL_ARG_DST, ym}});
  strm.wait();
  if (format == WeightFormat::Int8)
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = 0; c < s.h; ++c)
        ye[r * s.h + c] *= rowScale2[r] * s2[e][c];
  scatterAdd(s, tokens, groups.weightOf[e], ye.data(), out);
}

std::string DnnlBaseline::describe() {
  const dnnl_version_t *v = dnnl_version();
  const char *isa = "?";
  switch (dnnl::get_effective_cpu_isa()) {
  case dnnl::cpu_isa::avx2: isa = "avx2"; break;
  case dnnl::cpu_isa::avx2_vnni: isa = "avx2_vnni"; break;
  case dnnl::cpu_isa::avx512_core: isa = "avx512_core"; break;
  case dnnl::cpu_isa::avx512_core_vnni: isa = "avx512_core_vnni"; break;
  case dnnl::cpu_isa::avx512_core_bf16: isa = "avx512_core_bf16"; break;
  case dnnl::cpu_isa::avx512_core_amx: isa = "avx512_core_amx"; break;
  default: break;
  }
  return llvm::formatv("oneDNN {0}.{1}.{2}, ISA {3}", v->major, v->minor, v->patch, isa).str();
}

bool DnnlBaseline::supports(WeightFormat format) {
  return format == WeightFormat::F32 || format == WeightFormat::BF16 ||
         format == WeightFormat::Int8;
}

std::unique_ptr<DnnlBaseline> DnnlBaseline::create(const Shape &s, WeightFormat format,
                                                   const CaseInputs &in, std::string &error) {
  if (!supports(format)) {
    error = "oneDNN baseline: no " + formatName(format).str() + " weights (f32, bf16, int8 only)";
    return nullptr;
  }
  auto impl = std::make_unique<Impl>(s, format);
  try {
    impl->prepare(in);
  } catch (const dnnl::error &e) {
    error = std::string("oneDNN baseline (") + formatName(format).str() + "): " + e.what();
    return nullptr;
  }
  return std::unique_ptr<DnnlBaseline>(new DnnlBaseline(std::move(impl)));
}

DnnlBaseline::DnnlBaseline(std::unique_ptr<Impl> i) : impl(std::move(i)) {}
DnnlBaseline::~DnnlBaseline() = default;
double DnnlBaseline::prepareMs() const { return impl->prepareMs; }
double DnnlBaseline::preparedBytes() const { return impl->preparedBytes; }

bool DnnlBaseline::run(const CaseInputs &in, float *out, std::string &error) {
  try {
    impl->run(in, out);
  } catch (const dnnl::error &e) {
    error = std::string("oneDNN baseline (") + formatName(impl->format).str() + "): " + e.what();
    return false;
  }
  return true;
}

void DnnlBaseline::Impl::run(const CaseInputs &in, float *out) {
  Impl &m = *this;
  const Shape &s = m.s;
  if (!s.zipf)
    m.route(in.x.f.data());
  m.groups.build(s, s.zipf ? in.ids32.data() : m.ids.data(),
                 s.zipf ? in.w.f.data() : m.wts.data());
  std::fill(out, out + s.t * s.h, 0.0f);
  for (int64_t e = 0; e < s.e; ++e)
    if (!m.groups.tokensOf[e].empty())
      m.runExpert(in.x.f.data(), e, out);
}

} // namespace moe::bench
