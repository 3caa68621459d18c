//===- Npy.cpp - read and write NumPy .npy files ---------------------------===//
#include "moe/Support/Npy.h"

#include <cstring>
#include <fstream>
#include <sstream>

namespace moe {

const char *npyDescr(DType t) {
  switch (t) {
  case DType::F32:
    return "<f4";
  case DType::I32:
    return "<i4";
  case DType::I64:
    return "<i8";
  case DType::BF16:
    return "<u2"; // numpy has no bfloat16: the raw bits
  case DType::F16:
    return "<f2";
  case DType::I8:
    return "|i1";
  }
  return "?";
}

std::string npyHeaderDict(DType dtype, const std::vector<int64_t> &shape) {
  std::string dims = "(";
  for (int64_t d : shape)
    dims += std::to_string(d) + ",";
  if (shape.size() > 1)
    dims.pop_back(); // (3,) for rank 1, (3,4) otherwise
  dims += ")";
  return std::string("{'descr': '") + npyDescr(dtype) +
         "', 'fortran_order': False, 'shape': " + dims + ", }";
}

Status readNpy(const std::string &path, NpyArray &out) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return Status::failure("cannot open '" + path + "'");
  char magic[8];
  if (!in.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0)
    return Status::failure("'" + path + "' is not a .npy file");
  uint32_t headerLen = 0;
  if (magic[6] == 1) {
    unsigned char b[2];
    in.read(reinterpret_cast<char *>(b), 2);
    headerLen = b[0] | (b[1] << 8);
  } else {
    unsigned char b[4];
    in.read(reinterpret_cast<char *>(b), 4);
    headerLen = b[0] | (b[1] << 8) | (b[2] << 16) | (uint32_t(b[3]) << 24);
  }
  std::string header(headerLen, '\0');
  if (!in.read(header.data(), headerLen))
    return Status::failure("'" + path + "': truncated header");
  NpyArray array;
  bool known = false;
  for (DType t : {DType::F32, DType::I32, DType::I64, DType::BF16, DType::F16, DType::I8})
    if (header.find(std::string("'") + npyDescr(t) + "'") != std::string::npos) {
      array.dtype = t;
      known = true;
      break;
    }
  if (!known)
    return Status::failure("'" + path + "': only float32, float16, int8, int32, int64 and uint16 (bf16) "
                           "little-endian arrays are supported; header: " + header);
  if (header.find("'fortran_order': False") == std::string::npos)
    return Status::failure("'" + path + "': Fortran-order arrays are not supported");
  size_t open = header.find('(', header.find("'shape'"));
  size_t close = header.find(')', open);
  if (open == std::string::npos || close == std::string::npos)
    return Status::failure("'" + path + "': no shape in header");
  std::stringstream dims(header.substr(open + 1, close - open - 1));
  std::string item;
  while (std::getline(dims, item, ','))
    if (item.find_first_not_of(" ") != std::string::npos)
      array.shape.push_back(std::stoll(item));
  array.data.resize(size_t(numElements(array.shape)) * dtypeSize(array.dtype));
  if (!in.read(reinterpret_cast<char *>(array.data.data()), array.data.size()))
    return Status::failure("'" + path + "': truncated data");
  out = std::move(array);
  return Status::success();
}

Status writeNpy(const std::string &path, DType dtype, const std::vector<int64_t> &shape,
                const void *data, size_t bytes) {
  std::string header = npyHeaderDict(dtype, shape);
  // Pad so that the data starts on a 64-byte boundary, as numpy does.
  size_t total = 10 + header.size() + 1;
  header += std::string((64 - total % 64) % 64, ' ') + "\n";
  std::ofstream out(path, std::ios::binary);
  if (!out)
    return Status::failure("cannot write '" + path + "'");
  out.write("\x93NUMPY\x01\x00", 8);
  uint16_t len = uint16_t(header.size());
  char lenBytes[2] = {char(len & 0xff), char(len >> 8)};
  out.write(lenBytes, 2);
  out.write(header.data(), header.size());
  out.write(static_cast<const char *>(data), std::streamsize(bytes));
  return out ? Status::success() : Status::failure("error writing '" + path + "'");
}

Status readNpy(const std::string &path, Tensor &out) {
  NpyArray array;
  Status s = readNpy(path, array);
  if (!s.ok())
    return s;
  int64_t n = numElements(array.shape);
  Tensor t;
  t.dtype = array.dtype;
  t.shape = array.shape;
  if (t.dtype == DType::F32) {
    t.f.resize(n);
    std::memcpy(t.f.data(), array.data.data(), array.data.size());
  } else {
    t.i.resize(n);
    for (int64_t k = 0; k < n; ++k)
      t.i[k] = loadIntElement(t.dtype, array.data.data(), k);
  }
  out = std::move(t);
  return Status::success();
}

Status writeNpy(const std::string &path, const Tensor &t) {
  if (t.dtype == DType::F32)
    return writeNpy(path, t.dtype, t.shape, t.f.data(), t.f.size() * 4);
  std::vector<unsigned char> bytes(t.i.size() * dtypeSize(t.dtype));
  for (size_t k = 0; k < t.i.size(); ++k)
    storeIntElement(t.dtype, bytes.data(), int64_t(k), t.i[k]);
  return writeNpy(path, t.dtype, t.shape, bytes.data(), bytes.size());
}

} // namespace moe
