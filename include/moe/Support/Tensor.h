//===- Tensor.h - host tensors, element types, signatures -------*- C++ -*-===//
//
// The vocabulary every layer above the runtime shares: the element types, a
// dense host tensor, a result Status, and the signature of a function's
// argument or result. Part of MoeSupport, which links neither LLVM nor MLIR,
// so the tools, the tests, the reference interpreter and the compiled path
// use the same types without any of them depending on another (these types
// used to live in the reference interpreter's Kernels.h, which made the
// compiled path depend on the oracle it is checked against).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_SUPPORT_TENSOR_H
#define MOE_SUPPORT_TENSOR_H

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace moe {

/// Element types, numbered as the runtime's C enum moe_dtype (moe_runtime.h)
/// so that a moe_dtype converts with a cast (moe-gpu-run static_asserts the
/// numbering; this header does not include the runtime's). A Tensor of
/// BF16 or F16 holds the raw 16-bit patterns, and one of I8 the bytes (the
/// low-precision weight formats of Quant.h), widened into `i` like I32.
enum class DType { F32 = 0, I32 = 1, I64 = 2, BF16 = 3, F16 = 4, I8 = 5 };

/// "f32", "i32", "i64", "bf16", "f16", "i8" (the names of the IR, the runtime's
/// signature text and the launch descriptions); "?" for any other value.
const char *dtypeName(DType t);
/// Bytes per element as stored in memory (i32 as 4, not widened); 0 for a
/// value outside DType.
size_t dtypeSize(DType t);

/// A dense row-major tensor. Integer data is held widened to int64.
struct Tensor {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<float> f;
  std::vector<int64_t> i;

  static Tensor f32(std::vector<int64_t> shape, std::vector<float> data = {});
  static Tensor ints(DType dtype, std::vector<int64_t> shape,
                     std::vector<int64_t> data = {});
  int64_t numel() const;
  int64_t dim(size_t d) const { return shape[d]; }
  size_t rank() const { return shape.size(); }
  bool isFloat() const { return dtype == DType::F32; }
  /// "[16, 64] f32"
  std::string describe() const;
};

/// Element k of dense little-endian data of a non-F32 `dtype`, widened as
/// Tensor::i holds it (I8, I32 sign-extended; BF16/F16 the raw bits).
int64_t loadIntElement(DType dtype, const void *data, int64_t k);
/// Stores v (as Tensor::i holds it) as element k of `dtype` data.
void storeIntElement(DType dtype, void *data, int64_t k, int64_t v);

/// The product of `shape` (1 for rank 0).
int64_t numElements(const std::vector<int64_t> &shape);

struct Status {
  std::string error; // empty on success
  bool ok() const { return error.empty(); }
  static Status success() { return {}; }
  static Status failure(std::string message) { return {std::move(message)}; }
};

/// Shape (-1 = dynamic, the token count T) and element type of an argument
/// or result of a compiled layer.
struct TensorSignature {
  std::vector<int64_t> shape;
  DType dtype = DType::F32;
  /// "[T, 64] f32"
  std::string describe() const;
  /// The shape with every dynamic dimension set to `tokens`.
  std::vector<int64_t> shapeFor(int64_t tokens) const;
};

} // namespace moe

#endif // MOE_SUPPORT_TENSOR_H
