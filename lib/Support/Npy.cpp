//===- Npy.cpp - read and write NumPy .npy files ---------------------------===//
#include "moe/Support/Npy.h"

#include <cstring>
#include <fstream>
#include <sstream>

namespace moe {
using ref::DType;
using ref::Status;
using ref::Tensor;

static size_t elemSize(DType t) { return t == DType::I64 ? 8 : 4; }
static const char *descr(DType t) {
  return t == DType::F32 ? "<f4" : t == DType::I32 ? "<i4" : "<i8";
}

Status readNpy(const std::string &path, Tensor &out) {
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
  DType dtype;
  if (header.find("'<f4'") != std::string::npos)
    dtype = DType::F32;
  else if (header.find("'<i4'") != std::string::npos)
    dtype = DType::I32;
  else if (header.find("'<i8'") != std::string::npos)
    dtype = DType::I64;
  else
    return Status::failure("'" + path + "': only float32, int32 and int64 "
                           "little-endian arrays are supported; header: " + header);
  if (header.find("'fortran_order': False") == std::string::npos)
    return Status::failure("'" + path + "': Fortran-order arrays are not supported");
  size_t open = header.find('(', header.find("'shape'"));
  size_t close = header.find(')', open);
  if (open == std::string::npos || close == std::string::npos)
    return Status::failure("'" + path + "': no shape in header");
  std::vector<int64_t> shape;
  std::stringstream dims(header.substr(open + 1, close - open - 1));
  std::string item;
  while (std::getline(dims, item, ','))
    if (item.find_first_not_of(" ") != std::string::npos)
      shape.push_back(std::stoll(item));
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  std::vector<char> raw(size_t(n) * elemSize(dtype));
  if (!in.read(raw.data(), raw.size()))
    return Status::failure("'" + path + "': truncated data");
  Tensor t;
  t.dtype = dtype;
  t.shape = shape;
  if (dtype == DType::F32) {
    t.f.resize(n);
    std::memcpy(t.f.data(), raw.data(), raw.size());
  } else {
    t.i.resize(n);
    for (int64_t k = 0; k < n; ++k) {
      if (dtype == DType::I32) {
        int32_t v;
        std::memcpy(&v, raw.data() + 4 * k, 4);
        t.i[k] = v;
      } else {
        std::memcpy(&t.i[k], raw.data() + 8 * k, 8);
      }
    }
  }
  out = std::move(t);
  return Status::success();
}

Status writeNpy(const std::string &path, const Tensor &t) {
  std::string shape = "(";
  for (size_t d = 0; d < t.shape.size(); ++d)
    shape += std::to_string(t.shape[d]) + ",";
  if (t.shape.size() > 1)
    shape.pop_back();
  shape += ")";
  std::string header = std::string("{'descr': '") + descr(t.dtype) +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
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
  if (t.dtype == DType::F32) {
    out.write(reinterpret_cast<const char *>(t.f.data()), t.f.size() * 4);
  } else {
    for (int64_t v : t.i) {
      if (t.dtype == DType::I32) {
        int32_t w = int32_t(v);
        out.write(reinterpret_cast<const char *>(&w), 4);
      } else {
        out.write(reinterpret_cast<const char *>(&v), 8);
      }
    }
  }
  return out ? Status::success() : Status::failure("error writing '" + path + "'");
}
} // namespace moe
