//===- DlpackBindings.cpp - DLPack tensors as writable numpy views --------===//
//
// numpy 1.x imports every DLPack tensor read-only (numpy.from_dlpack: the
// protocol before DLPack 1.0 has no read-only flag, so numpy assumes the
// worst), which refused a writable torch tensor as an `out=` array. Here a
// DLPack capsule becomes a numpy view of the same memory, writable as the
// producer lent it, that owns the capsule's tensor (its deleter runs when
// the view dies). The structs are DLPack's stable (pre-1.0) ABI, declared
// here so the extension needs no DLPack header.
//
//===----------------------------------------------------------------------===//

#include "DlpackBindings.h"

#include <pybind11/numpy.h>

#include <cstdint>
#include <string>
#include <vector>

namespace py = pybind11;

namespace {

struct DLDevice {
  int32_t deviceType;
  int32_t deviceId;
};
struct DLDataType {
  uint8_t code;
  uint8_t bits;
  uint16_t lanes;
};
struct DLTensor {
  void *data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t *shape;
  int64_t *strides; // in elements; null = C-contiguous
  uint64_t byteOffset;
};
struct DLManagedTensor {
  DLTensor tensor;
  void *managerContext;
  void (*deleter)(DLManagedTensor *self);
};

enum DLDataTypeCode : uint8_t { kDLInt = 0, kDLUInt = 1, kDLFloat = 2, kDLBfloat = 4, kDLBool = 6 };
enum DLDeviceType : int32_t { kDLCPU = 1, kDLCUDAHost = 3 };

std::string describe(DLDataType t) {
  const char *kinds[] = {"int", "uint", "float", "opaque", "bfloat", "complex", "bool"};
  std::string s = t.code < 7 ? kinds[t.code] : "code " + std::to_string(t.code) + " ";
  s += std::to_string(t.bits);
  return t.lanes == 1 ? s : s + "x" + std::to_string(t.lanes);
}

/// The numpy dtype of a DLPack element type; bfloat16 is read as its uint16
/// bits where the function takes bf16 weights (`declared` == "uint16") and
/// is a TypeError naming the argument otherwise.
py::dtype numpyDtypeOf(DLDataType t, const std::string &what, const std::string &declared) {
  if (t.lanes == 1) {
    switch (t.code) {
    case kDLFloat:
      if (t.bits == 16 || t.bits == 32 || t.bits == 64)
        return py::dtype("float" + std::to_string(t.bits));
      break;
    case kDLInt:
    case kDLUInt:
      if (t.bits == 8 || t.bits == 16 || t.bits == 32 || t.bits == 64)
        return py::dtype((t.code == kDLInt ? "int" : "uint") + std::to_string(t.bits));
      break;
    case kDLBool:
      if (t.bits == 8)
        return py::dtype("bool");
      break;
    case kDLBfloat:
      if (t.bits == 16 && declared == "uint16")
        return py::dtype("uint16");
      if (t.bits == 16)
        throw py::type_error(what + ": expected dtype " + (declared.empty() ? "float32" : declared) +
                             ", got bfloat16 (tensors are never converted; pass .float())");
      break;
    }
  }
  throw py::type_error(what + ": the DLPack element type " + describe(t) +
                       " has no numpy equivalent" +
                       (declared.empty() ? std::string() : "; expected " + declared));
}

/// A numpy view of the tensor in a "dltensor" capsule, taking it over (the
/// capsule is renamed "used_dltensor" as the protocol asks).
py::array arrayFromDlpack(const py::capsule &capsule, const std::string &what,
                          const std::string &declared) {
  if (std::string(capsule.name() ? capsule.name() : "") != "dltensor")
    throw py::type_error(what + ": __dlpack__ returned no unused 'dltensor' capsule");
  auto *managed = static_cast<DLManagedTensor *>(capsule.get_pointer());
  const DLTensor &t = managed->tensor;
  // Every check before taking it over: until then the producer's capsule
  // frees the tensor.
  if (t.device.deviceType != kDLCPU && t.device.deviceType != kDLCUDAHost)
    throw py::value_error(what + ": the tensor is on DLPack device type " +
                          std::to_string(t.device.deviceType) +
                          " (not the CPU); moec runs on the CPU: copy it there first");
  py::dtype dtype = numpyDtypeOf(t.dtype, what, declared);
  std::vector<py::ssize_t> shape(t.shape, t.shape + t.ndim), strides(t.ndim);
  py::ssize_t step = dtype.itemsize();
  for (int d = t.ndim - 1; d >= 0; --d) {
    strides[d] = t.strides ? t.strides[d] * py::ssize_t(dtype.itemsize()) : step;
    step *= shape[d];
  }
  PyCapsule_SetName(capsule.ptr(), "used_dltensor");
  py::capsule owner(managed, [](void *p) {
    auto *m = static_cast<DLManagedTensor *>(p);
    if (m->deleter)
      m->deleter(m);
  });
  char *data = static_cast<char *>(t.data);
  if (!data) // an empty tensor: numpy wants memory of its own
    return py::array(dtype, shape, strides);
  return py::array(dtype, shape, strides, data + t.byteOffset, owner);
}

} // namespace

void bindDlpack(py::module_ &m) {
  m.def("array_from_dlpack", &arrayFromDlpack, py::arg("capsule"), py::arg("what"),
        py::arg("declared") = "",
        "A writable numpy view of a DLPack capsule's CPU tensor (owning it); "
        "`what` names the argument in errors, `declared` is the numpy dtype "
        "the function takes there (bfloat16 reads as uint16 bits for 'uint16').");
}
