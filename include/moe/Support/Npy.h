//===- Npy.h - read and write NumPy .npy files ------------------*- C++ -*-===//
//
// Version 1/2 .npy, little-endian, C order: '<f4', '<i4', '<i8' (what
// numpy.save writes for float32/int32/int64 arrays), and for the GPU path's
// 16-bit types '<f2' (f16) and '<u2' (bf16 as its raw bits: numpy has no
// bfloat16). The one codec of the project: moe-run, the tests and
// moe-gpu-run (which has no LLVM) all use it.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_SUPPORT_NPY_H
#define MOE_SUPPORT_NPY_H

#include "moe/Support/Tensor.h"

#include <string>
#include <vector>

namespace moe {

/// An array as it is in the file: element type, shape and the raw
/// little-endian bytes (dtypeSize(dtype) per element).
struct NpyArray {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<unsigned char> data;
};

/// numpy's descr of `t`: "<f4", "<i4", "<i8", "<u2" (bf16), "<f2" (f16),
/// "|i1" (i8).
const char *npyDescr(DType t);
/// The header dictionary numpy writes, without padding:
/// "{'descr': '<f4', 'fortran_order': False, 'shape': (2,3), }".
std::string npyHeaderDict(DType dtype, const std::vector<int64_t> &shape);

Status readNpy(const std::string &path, NpyArray &out);
Status writeNpy(const std::string &path, DType dtype, const std::vector<int64_t> &shape,
                const void *data, size_t bytes);

/// Tensor forms: f32, i32 and i64 arrays only (i32 widened in memory).
Status readNpy(const std::string &path, Tensor &out);
Status writeNpy(const std::string &path, const Tensor &t);

} // namespace moe

#endif // MOE_SUPPORT_NPY_H
