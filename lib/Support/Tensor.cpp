//===- Tensor.cpp - host tensors, element types, signatures ----------------===//
#include "moe/Support/Tensor.h"

#include <cstring>
#include <sstream>

namespace moe {

const char *dtypeName(DType t) {
  switch (t) {
  case DType::F32:
    return "f32";
  case DType::I32:
    return "i32";
  case DType::I64:
    return "i64";
  case DType::BF16:
    return "bf16";
  case DType::F16:
    return "f16";
  case DType::I8:
    return "i8";
  }
  return "?";
}

size_t dtypeSize(DType t) {
  switch (t) {
  case DType::F32:
  case DType::I32:
    return 4;
  case DType::I64:
    return 8;
  case DType::BF16:
  case DType::F16:
    return 2;
  case DType::I8:
    return 1;
  }
  return 0;
}

int64_t numElements(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

Tensor Tensor::f32(std::vector<int64_t> shape, std::vector<float> data) {
  Tensor t;
  t.dtype = DType::F32;
  t.shape = std::move(shape);
  t.f = data.empty() ? std::vector<float>(numElements(t.shape), 0.0f) : std::move(data);
  return t;
}

Tensor Tensor::ints(DType dtype, std::vector<int64_t> shape,
                    std::vector<int64_t> data) {
  Tensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.i = data.empty() ? std::vector<int64_t>(numElements(t.shape), 0) : std::move(data);
  return t;
}

int64_t Tensor::numel() const { return numElements(shape); }

std::string Tensor::describe() const {
  std::ostringstream os;
  os << "[";
  for (size_t d = 0; d < shape.size(); ++d)
    os << (d ? ", " : "") << shape[d];
  os << "] " << dtypeName(dtype);
  return os.str();
}

int64_t loadIntElement(DType dtype, const void *data, int64_t k) {
  const auto *p = static_cast<const unsigned char *>(data) + k * int64_t(dtypeSize(dtype));
  switch (dtype) {
  case DType::I8:
    return int8_t(p[0]);
  case DType::BF16:
  case DType::F16:
    return int64_t(p[0]) | (int64_t(p[1]) << 8);
  case DType::I32: {
    int32_t v;
    std::memcpy(&v, p, 4);
    return v;
  }
  case DType::I64: {
    int64_t v;
    std::memcpy(&v, p, 8);
    return v;
  }
  case DType::F32:
    break;
  }
  return 0;
}

void storeIntElement(DType dtype, void *data, int64_t k, int64_t v) {
  auto *p = static_cast<unsigned char *>(data) + k * int64_t(dtypeSize(dtype));
  switch (dtype) {
  case DType::I8:
    p[0] = static_cast<unsigned char>(v);
    return;
  case DType::BF16:
  case DType::F16:
    p[0] = static_cast<unsigned char>(v);
    p[1] = static_cast<unsigned char>(v >> 8);
    return;
  case DType::I32: {
    int32_t w = int32_t(v);
    std::memcpy(p, &w, 4);
    return;
  }
  case DType::I64:
    std::memcpy(p, &v, 8);
    return;
  case DType::F32:
    return;
  }
}

std::string TensorSignature::describe() const {
  std::string s = "[";
  for (size_t d = 0; d < shape.size(); ++d)
    s += (d ? ", " : "") + (shape[d] < 0 ? std::string("T") : std::to_string(shape[d]));
  return s + "] " + dtypeName(dtype);
}

std::vector<int64_t> TensorSignature::shapeFor(int64_t tokens) const {
  std::vector<int64_t> resolved = shape;
  for (int64_t &d : resolved)
    if (d < 0)
      d = tokens;
  return resolved;
}

} // namespace moe
