//===- QuantBindings.cpp - moec's quantizers and safetensors I/O -----------===//
//
// The C++ half of moec.quantize / moec.dequantize (through moe::quantizeRows
// and moe::dequantizeRow, the one definition of every format, which
// moe-quantize and the reference interpreter use too) and of
// moec.load_safetensors / moec.save_safetensors (MoeSafetensors). Loaded
// arrays are read-only views of the file's mapping; each holds the mapping
// alive through its base object, so the file stays mapped while any array
// of it lives.
//
//===----------------------------------------------------------------------===//

#include "QuantBindings.h"

#include "moe/Support/Quant.h"
#include "moe/Support/Safetensors.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cstring>

namespace py = pybind11;
using namespace moe;

namespace {

const char *kFormats = "bf16, f16, int8, q8_0, q4_0";

WeightFormat formatOf(const std::string &name) {
  WeightFormat f;
  if (!parseWeightFormat(name, f) || f == WeightFormat::F32)
    throw py::value_error("format must be one of " + std::string(kFormats) + ", got '" + name +
                          "'");
  return f;
}

py::dtype numpyDtypeOf(SafetensorsDType t) {
  switch (t) {
  case SafetensorsDType::F32:
    return py::dtype::of<float>();
  case SafetensorsDType::BF16:
    return py::dtype::of<uint16_t>(); // numpy has no bfloat16: the bit patterns
  case SafetensorsDType::F16:
    return py::dtype("float16");
  case SafetensorsDType::I8:
    return py::dtype::of<int8_t>();
  case SafetensorsDType::U8:
    return py::dtype::of<uint8_t>();
  case SafetensorsDType::I32:
    return py::dtype::of<int32_t>();
  case SafetensorsDType::I64:
    return py::dtype::of<int64_t>();
  }
  throw std::logic_error("bad safetensors dtype");
}

/// The numpy dtype a weight of `f` is stored in (int8 bytes for int8 and the
/// block formats).
py::dtype storageNumpyDtype(WeightFormat f) {
  SafetensorsDType t;
  fromDType(storageDType(f), t);
  return numpyDtypeOf(t);
}

std::vector<int64_t> shapeOf(const py::array &a) {
  return std::vector<int64_t>(a.shape(), a.shape() + a.ndim());
}

std::string shapeText(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

/// A C-contiguous array of exactly `dtype` (never converted).
py::array checked(const py::handle &obj, const py::dtype &dtype, const std::string &what) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(what + ": expected a numpy array of " + std::string(py::str(dtype)) +
                         ", got '" + std::string(py::str(obj.get_type().attr("__name__"))) +
                         "'");
  py::array a = py::reinterpret_borrow<py::array>(obj);
  if (!a.dtype().equal(dtype))
    throw py::type_error(what + ": expected dtype " + std::string(py::str(dtype)) + ", got " +
                         std::string(py::str(a.dtype())));
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(what + ": expected a C-contiguous array; pass "
                                 "numpy.ascontiguousarray(...)");
  return a;
}

/// (data, scales or None) of w [..., K] float32 quantized to `format`.
py::tuple quantize(const py::object &wObj, const std::string &formatName) {
  WeightFormat f = formatOf(formatName);
  py::array w = checked(wObj, py::dtype::of<float>(), "w");
  if (w.ndim() < 1)
    throw py::value_error("w: a scalar cannot be quantized: pass rows of K values ([..., K])");
  std::vector<int64_t> shape = shapeOf(w);
  int64_t k = shape.back();
  if (isBlockFormat(f) && k % kQuantBlock != 0)
    throw py::value_error("w: K = " + std::to_string(k) + " (the last dimension) is not a " +
                          "multiple of " + std::to_string(kQuantBlock) + ", as " + formatName +
                          " needs");
  std::vector<int64_t> leading(shape.begin(), shape.end() - 1);
  int64_t rows = numElements(leading);
  std::vector<int64_t> stored = shape;
  stored.back() = storedRowElements(f, k);
  py::array data(storageNumpyDtype(f), stored);
  py::object scales = py::none();
  float *scalePtr = nullptr;
  if (hasRowScales(f)) {
    py::array_t<float> s(leading);
    scalePtr = s.mutable_data();
    scales = s;
  }
  const float *src = static_cast<const float *>(w.data());
  void *dst = data.mutable_data();
  {
    py::gil_scoped_release release;
    quantizeRows(f, src, rows, k, dst, scalePtr);
  }
  return py::make_tuple(data, scales);
}

/// float32 [..., K] of the stored rows `data` of `format`.
py::array dequantize(const py::object &dataObj, const std::string &formatName,
                     const py::object &scalesObj) {
  WeightFormat f = formatOf(formatName);
  py::dtype want = storageNumpyDtype(f);
  py::array data;
  if (want.equal(py::dtype::of<int8_t>()) && py::isinstance<py::array>(dataObj) &&
      py::reinterpret_borrow<py::array>(dataObj).dtype().equal(py::dtype::of<uint8_t>()))
    data = checked(dataObj, py::dtype::of<uint8_t>(), "data"); // the same bytes
  else
    data = checked(dataObj, want, "data");
  if (data.ndim() < 1)
    throw py::value_error("data: expected stored rows [..., row elements], got a scalar");
  std::vector<int64_t> shape = shapeOf(data);
  int64_t stored = shape.back();
  int64_t k = stored;
  if (isBlockFormat(f)) {
    int64_t blockBytes = storedRowElements(f, kQuantBlock);
    if (stored % blockBytes != 0)
      throw py::value_error("data: rows of " + std::to_string(stored) + " bytes are not whole " +
                            formatName + " blocks of " + std::to_string(blockBytes) + " bytes");
    k = stored / blockBytes * kQuantBlock;
  }
  std::vector<int64_t> leading(shape.begin(), shape.end() - 1);
  int64_t rows = numElements(leading);
  const float *scales = nullptr;
  py::array scaleArray;
  if (hasRowScales(f)) {
    if (scalesObj.is_none())
      throw py::value_error("scales: int8 weights need their scales (one float32 per row)");
    scaleArray = checked(scalesObj, py::dtype::of<float>(), "scales");
    if (shapeOf(scaleArray) != leading)
      throw py::value_error("scales: expected shape " + shapeText(leading) +
                            " (one per row of data " + shapeText(shape) + "), got " +
                            shapeText(shapeOf(scaleArray)));
    scales = static_cast<const float *>(scaleArray.data());
  } else if (!scalesObj.is_none()) {
    throw py::value_error("scales: " + formatName + " has no row scales");
  }
  std::vector<int64_t> outShape = leading;
  outShape.push_back(k);
  py::array_t<float> out(outShape);
  const auto *src = static_cast<const uint8_t *>(data.data());
  float *dst = out.mutable_data();
  size_t rowBytes = size_t(stored) * data.itemsize();
  {
    py::gil_scoped_release release;
    for (int64_t r = 0; r < rows; ++r)
      dequantizeRow(f, src + r * rowBytes, scales ? scales[r] : 0.0f, k, dst + r * k);
  }
  return out;
}

/// ([(name, array)] in file order, metadata); the arrays are read-only
/// views of the mapping, which their base (a capsule) keeps alive.
py::tuple loadSafetensors(const std::string &path) {
  std::shared_ptr<SafetensorsFile> file;
  Status s;
  {
    py::gil_scoped_release release;
    s = SafetensorsFile::open(path, file);
  }
  if (!s.ok())
    throw py::value_error(s.error);
  auto *holder = new std::shared_ptr<SafetensorsFile>(file);
  py::capsule base(holder, [](void *p) { delete static_cast<std::shared_ptr<SafetensorsFile> *>(p); });
  py::list tensors;
  for (const SafetensorsTensor &t : file->tensors()) {
    // A zero-size tensor may point at the end of the mapping; numpy never
    // reads it.
    py::array a(numpyDtypeOf(t.dtype), t.shape, {}, t.data, base);
    a.attr("setflags")(py::arg("write") = false);
    tensors.append(py::make_tuple(t.name, a));
  }
  return py::make_tuple(tensors, file->metadata());
}

void saveSafetensors(const std::string &path, const py::list &tensors,
                     const std::map<std::string, std::string> &metadata) {
  std::vector<SafetensorsTensor> out;
  std::vector<py::array> keep;
  for (const py::handle &item : tensors) {
    auto pair = item.cast<py::tuple>();
    std::string name = pair[0].cast<std::string>();
    py::handle obj = pair[1];
    std::string what = "tensor '" + name + "'";
    if (!py::isinstance<py::array>(obj))
      throw py::type_error(what + ": expected a numpy array, got '" +
                           std::string(py::str(obj.get_type().attr("__name__"))) + "'");
    py::array a = py::reinterpret_borrow<py::array>(obj);
    SafetensorsDType dtype;
    bool known = false;
    for (SafetensorsDType t : {SafetensorsDType::F32, SafetensorsDType::BF16,
                               SafetensorsDType::F16, SafetensorsDType::I8, SafetensorsDType::U8,
                               SafetensorsDType::I32, SafetensorsDType::I64})
      if (a.dtype().equal(numpyDtypeOf(t))) {
        dtype = t;
        known = true;
      }
    if (!known)
      throw py::type_error(what + ": dtype " + std::string(py::str(a.dtype())) +
                           " has no safetensors type (float32, uint16 = BF16 bits, float16, "
                           "int8, uint8, int32, int64)");
    a = checked(obj, a.dtype(), what);
    keep.push_back(a);
    out.push_back({name, dtype, shapeOf(a), a.data(), size_t(a.nbytes())});
  }
  Status s;
  {
    py::gil_scoped_release release;
    s = writeSafetensors(path, out, metadata);
  }
  if (!s.ok())
    throw py::value_error(s.error);
}

} // namespace

void bindQuantization(py::module_ &m) {
  m.def("quantize", &quantize, py::arg("w"), py::arg("format"),
        "(data, scales or None) of float32 w [..., K] in `format` (moe::quantizeRows).");
  m.def("dequantize", &dequantize, py::arg("data"), py::arg("format"),
        py::arg("scales") = py::none(), "float32 [..., K] of stored rows (moe::dequantizeRow).");
  m.def("load_safetensors", &loadSafetensors, py::arg("path"),
        "([(name, read-only array view)], metadata) of a mapped safetensors file.");
  m.def("save_safetensors", &saveSafetensors, py::arg("path"), py::arg("tensors"),
        py::arg("metadata"), "Writes [(name, array)] and the metadata as a safetensors file.");
}
