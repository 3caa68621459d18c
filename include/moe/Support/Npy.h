//===- Npy.h - read and write NumPy .npy files ------------------*- C++ -*-===//
//
// Version 1/2 .npy, little-endian '<f4', '<i4', '<i8', C order: what
// numpy.save writes for float32/int32/int64 arrays.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_SUPPORT_NPY_H
#define MOE_SUPPORT_NPY_H

#include "moe/Reference/Kernels.h"
#include <string>

namespace moe {
ref::Status readNpy(const std::string &path, ref::Tensor &out);
ref::Status writeNpy(const std::string &path, const ref::Tensor &t);
} // namespace moe

#endif // MOE_SUPPORT_NPY_H
