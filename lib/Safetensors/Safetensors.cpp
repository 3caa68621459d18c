//===- Safetensors.cpp - read and write .safetensors files -----------------===//
#include "moe/Support/Safetensors.h"

#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <set>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace moe {

namespace {
struct DTypeInfo {
  SafetensorsDType dtype;
  const char *name;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {SafetensorsDType::F32, "F32", 4}, {SafetensorsDType::BF16, "BF16", 2},
    {SafetensorsDType::F16, "F16", 2}, {SafetensorsDType::I8, "I8", 1},
    {SafetensorsDType::U8, "U8", 1},   {SafetensorsDType::I32, "I32", 4},
    {SafetensorsDType::I64, "I64", 8},
};
// The reference implementation refuses headers above 100 MB; so do we (a
// corrupt length would otherwise make us parse gigabytes of tensor data).
constexpr uint64_t kMaxHeaderBytes = 100u << 20;
} // namespace

const char *safetensorsDTypeName(SafetensorsDType t) {
  for (const DTypeInfo &d : kDTypes)
    if (d.dtype == t)
      return d.name;
  return "?";
}

bool parseSafetensorsDType(const std::string &name, SafetensorsDType &out) {
  for (const DTypeInfo &d : kDTypes)
    if (name == d.name) {
      out = d.dtype;
      return true;
    }
  return false;
}

size_t safetensorsDTypeSize(SafetensorsDType t) {
  for (const DTypeInfo &d : kDTypes)
    if (d.dtype == t)
      return d.size;
  return 0;
}

bool toDType(SafetensorsDType t, DType &out) {
  switch (t) {
  case SafetensorsDType::F32:
    out = DType::F32;
    return true;
  case SafetensorsDType::BF16:
    out = DType::BF16;
    return true;
  case SafetensorsDType::F16:
    out = DType::F16;
    return true;
  case SafetensorsDType::I8:
    out = DType::I8;
    return true;
  case SafetensorsDType::I32:
    out = DType::I32;
    return true;
  case SafetensorsDType::I64:
    out = DType::I64;
    return true;
  case SafetensorsDType::U8:
    return false;
  }
  return false;
}

bool fromDType(DType t, SafetensorsDType &out) {
  for (SafetensorsDType s : {SafetensorsDType::F32, SafetensorsDType::BF16, SafetensorsDType::F16,
                             SafetensorsDType::I8, SafetensorsDType::I32, SafetensorsDType::I64}) {
    DType d;
    if (toDType(s, d) && d == t) {
      out = s;
      return true;
    }
  }
  return false;
}

namespace {

std::string shapeText(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

/// n x the product of `shape`, or false on overflow of 2^62.
bool byteSize(const std::vector<int64_t> &shape, size_t elementSize, uint64_t &out) {
  unsigned __int128 n = elementSize;
  for (int64_t d : shape) {
    n *= uint64_t(d);
    if (n > (uint64_t(1) << 62))
      return false;
  }
  out = uint64_t(n);
  return true;
}

/// A non-negative integer of the JSON (shape dims, offsets).
bool asSize(const llvm::json::Value &v, int64_t &out) {
  std::optional<int64_t> i = v.getAsInteger();
  if (!i || *i < 0)
    return false;
  out = *i;
  return true;
}

struct Entry {
  SafetensorsTensor tensor;
  uint64_t begin = 0, end = 0;
};

/// One tensor's header entry; `where` is "'<file>': tensor '<name>'".
Status parseEntry(const std::string &where, const llvm::json::Object &obj, Entry &entry) {
  for (const auto &kv : obj)
    if (kv.first != "dtype" && kv.first != "shape" && kv.first != "data_offsets")
      return Status::failure(where + ": unknown field '" + kv.first.str() +
                             "' (expected dtype, shape, data_offsets)");
  std::optional<llvm::StringRef> dtype = obj.getString("dtype");
  if (!dtype)
    return Status::failure(where + ": 'dtype' is missing or not a string");
  if (!parseSafetensorsDType(dtype->str(), entry.tensor.dtype))
    return Status::failure(where + ": unsupported dtype '" + dtype->str() +
                           "' (supported: F32, BF16, F16, I8, U8, I32, I64)");
  const llvm::json::Array *shape = obj.getArray("shape");
  if (!shape)
    return Status::failure(where + ": 'shape' is missing or not an array");
  for (const llvm::json::Value &d : *shape) {
    int64_t n;
    if (!asSize(d, n))
      return Status::failure(where + ": 'shape' must hold non-negative integers");
    entry.tensor.shape.push_back(n);
  }
  const llvm::json::Array *offsets = obj.getArray("data_offsets");
  int64_t begin, end;
  if (!offsets || offsets->size() != 2 || !asSize((*offsets)[0], begin) ||
      !asSize((*offsets)[1], end))
    return Status::failure(where + ": 'data_offsets' must be [begin, end] (non-negative integers)");
  if (begin > end)
    return Status::failure(where + ": data_offsets [" + std::to_string(begin) + ", " +
                           std::to_string(end) + "] end before they begin");
  entry.begin = uint64_t(begin);
  entry.end = uint64_t(end);
  uint64_t expected;
  if (!byteSize(entry.tensor.shape, safetensorsDTypeSize(entry.tensor.dtype), expected))
    return Status::failure(where + ": shape " + shapeText(entry.tensor.shape) + " is too large");
  if (expected != entry.end - entry.begin)
    return Status::failure(where + ": shape " + shapeText(entry.tensor.shape) + " of " +
                           dtype->str() + " is " + std::to_string(expected) +
                           " bytes but data_offsets span " +
                           std::to_string(entry.end - entry.begin));
  return Status::success();
}

Status parseMetadata(const std::string &file, const llvm::json::Value &v,
                     std::map<std::string, std::string> &out) {
  const llvm::json::Object *obj = v.getAsObject();
  if (!obj)
    return Status::failure(file + ": '__metadata__' must be an object of strings");
  for (const auto &kv : *obj) {
    std::optional<llvm::StringRef> s = kv.second.getAsString();
    if (!s)
      return Status::failure(file + ": '__metadata__' value of '" + kv.first.str() +
                             "' is not a string");
    out[kv.first.str()] = s->str();
  }
  return Status::success();
}

/// The first key that the top-level object of `text` (valid JSON) holds
/// twice, or "". llvm::json keeps one of them silently; a tensor dropped
/// that way would surface later as a missing weight, or not at all.
std::optional<std::string> duplicateTopLevelKey(llvm::StringRef text) {
  std::set<std::string> keys;
  int depth = 0;
  bool expectKey = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '"') {
      size_t end = i + 1;
      while (end < text.size() && text[end] != '"')
        end += text[end] == '\\' ? 2 : 1;
      if (depth == 1 && expectKey) {
        // Decode the key as JSON does (escapes included).
        llvm::Expected<llvm::json::Value> key = llvm::json::parse(text.slice(i, end + 1));
        std::optional<llvm::StringRef> name;
        if (key)
          name = key->getAsString();
        else
          llvm::consumeError(key.takeError());
        if (name && !keys.insert(name->str()).second)
          return name->str();
        expectKey = false;
      }
      i = end;
    } else if (c == '{' || c == '[') {
      expectKey = ++depth == 1 && c == '{';
    } else if (c == '}' || c == ']') {
      --depth;
    } else if (c == ',' && depth == 1) {
      expectKey = true;
    }
  }
  return std::nullopt;
}

/// The entries sorted by their data must tile [0, dataBytes) exactly.
Status checkLayout(const std::string &file, std::vector<Entry> &entries, uint64_t dataBytes) {
  std::sort(entries.begin(), entries.end(), [](const Entry &a, const Entry &b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t at = 0;
  const Entry *previous = nullptr;
  for (const Entry &e : entries) {
    std::string where = file + ": tensor '" + e.tensor.name + "'";
    if (e.end > dataBytes)
      return Status::failure(where + ": data_offsets end at " + std::to_string(e.end) +
                             ", past the " + std::to_string(dataBytes) +
                             " bytes of data (truncated file?)");
    if (e.begin < at)
      return Status::failure(where + ": data_offsets [" + std::to_string(e.begin) + ", " +
                             std::to_string(e.end) + "] overlap tensor '" +
                             previous->tensor.name + "'");
    if (e.begin > at)
      return Status::failure(where + ": data_offsets begin at " + std::to_string(e.begin) +
                             ", leaving a gap after byte " + std::to_string(at));
    at = e.end;
    previous = &e;
  }
  if (at != dataBytes)
    return Status::failure(file + ": the tensors cover " + std::to_string(at) + " of the " +
                           std::to_string(dataBytes) + " data bytes (trailing bytes)");
  return Status::success();
}

} // namespace

Status parseSafetensors(const uint8_t *image, size_t size, const std::string &what,
                        SafetensorsContents &out) {
  std::string file = "'" + what + "'";
  if (size < 8)
    return Status::failure(file + ": " + std::to_string(size) +
                           " bytes, too short for the 8-byte header length");
  uint64_t headerBytes = 0;
  for (int i = 7; i >= 0; --i)
    headerBytes = headerBytes << 8 | image[i];
  if (headerBytes > kMaxHeaderBytes)
    return Status::failure(file + ": header length " + std::to_string(headerBytes) +
                           " exceeds the limit of " + std::to_string(kMaxHeaderBytes));
  if (headerBytes > size - 8)
    return Status::failure(file + ": header length " + std::to_string(headerBytes) +
                           " exceeds the " + std::to_string(size - 8) +
                           " bytes after it (truncated file?)");
  llvm::StringRef text(reinterpret_cast<const char *>(image + 8), headerBytes);
  llvm::Expected<llvm::json::Value> json = llvm::json::parse(text);
  if (!json)
    return Status::failure(file + ": the header is not valid JSON: " +
                           llvm::toString(json.takeError()));
  const llvm::json::Object *top = json->getAsObject();
  if (!top)
    return Status::failure(file + ": the header is not a JSON object");
  if (std::optional<std::string> name = duplicateTopLevelKey(text))
    return Status::failure(file + ": tensor '" + *name + "' appears twice in the header");

  SafetensorsContents contents;
  std::vector<Entry> entries;
  for (const auto &kv : *top) {
    std::string name = kv.first.str();
    if (name == "__metadata__") {
      if (Status s = parseMetadata(file, kv.second, contents.metadata); !s.ok())
        return s;
      continue;
    }
    std::string where = file + ": tensor '" + name + "'";
    if (name.empty())
      return Status::failure(file + ": a tensor has an empty name");
    const llvm::json::Object *obj = kv.second.getAsObject();
    if (!obj)
      return Status::failure(where + ": the entry is not a JSON object");
    Entry entry;
    entry.tensor.name = name;
    if (Status s = parseEntry(where, *obj, entry); !s.ok())
      return s;
    entries.push_back(std::move(entry));
  }
  const uint8_t *data = image + 8 + headerBytes;
  if (Status s = checkLayout(file, entries, size - 8 - headerBytes); !s.ok())
    return s;
  for (Entry &e : entries) {
    e.tensor.data = data + e.begin;
    e.tensor.bytes = e.end - e.begin;
    contents.tensors.push_back(std::move(e.tensor));
  }
  out = std::move(contents);
  return Status::success();
}

Status SafetensorsFile::open(const std::string &path, std::shared_ptr<SafetensorsFile> &out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return Status::failure("cannot open '" + path + "': " + std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::failure("'" + path + "' is not a regular file");
  }
  std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  size_t size = size_t(st.st_size);
  const uint8_t *image = nullptr;
  if (size > 0) {
    void *m = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      return Status::failure("cannot map '" + path + "': " + std::strerror(err));
    }
    file->mapping_ = m;
    file->mappedBytes_ = size;
    image = static_cast<const uint8_t *>(m);
  }
  ::close(fd); // the mapping keeps the file
  static const uint8_t empty[1] = {0};
  if (Status s = parseSafetensors(image ? image : empty, size, path, file->contents_); !s.ok())
    return s;
  out = std::move(file);
  return Status::success();
}

SafetensorsFile::~SafetensorsFile() {
  if (mapping_)
    munmap(mapping_, mappedBytes_);
}

const SafetensorsTensor *SafetensorsFile::find(const std::string &name) const {
  for (const SafetensorsTensor &t : contents_.tensors)
    if (t.name == name)
      return &t;
  return nullptr;
}

Status SafetensorsFile::get(const std::string &name, SafetensorsDType dtype,
                            const std::vector<int64_t> &shape,
                            const SafetensorsTensor *&out) const {
  const SafetensorsTensor *t = find(name);
  std::string where = "'" + path_ + "': tensor '" + name + "'";
  if (!t)
    return Status::failure(where + " not found");
  if (t->dtype != dtype)
    return Status::failure(where + " is " + safetensorsDTypeName(t->dtype) + ", expected " +
                           safetensorsDTypeName(dtype));
  if (!shape.empty() && t->shape != shape)
    return Status::failure(where + " has shape " + shapeText(t->shape) + ", expected " +
                           shapeText(shape));
  out = t;
  return Status::success();
}

namespace {

/// The header JSON of `tensors` laid out back to back.
Status headerFor(const std::string &path, const std::vector<SafetensorsTensor> &tensors,
                 const std::map<std::string, std::string> &metadata, std::string &out) {
  llvm::json::Object top;
  std::set<std::string> names;
  uint64_t at = 0;
  for (const SafetensorsTensor &t : tensors) {
    std::string where = "'" + path + "': tensor '" + t.name + "'";
    if (t.name.empty() || t.name == "__metadata__")
      return Status::failure("'" + path + "': invalid tensor name '" + t.name + "'");
    if (!names.insert(t.name).second)
      return Status::failure(where + " is given twice");
    uint64_t bytes;
    for (int64_t d : t.shape)
      if (d < 0)
        return Status::failure(where + ": negative dimension in " + shapeText(t.shape));
    if (!byteSize(t.shape, safetensorsDTypeSize(t.dtype), bytes) || bytes != t.bytes)
      return Status::failure(where + ": shape " + shapeText(t.shape) + " of " +
                             safetensorsDTypeName(t.dtype) + " does not match its " +
                             std::to_string(t.bytes) + " bytes");
    if (bytes && !t.data)
      return Status::failure(where + ": no data");
    llvm::json::Array shape;
    for (int64_t d : t.shape)
      shape.push_back(d);
    top[t.name] = llvm::json::Object{{"dtype", safetensorsDTypeName(t.dtype)},
                                     {"shape", std::move(shape)},
                                     {"data_offsets", llvm::json::Array{at, at + bytes}}};
    at += bytes;
  }
  if (!metadata.empty()) {
    llvm::json::Object meta;
    for (const auto &[k, v] : metadata)
      meta[k] = v;
    top["__metadata__"] = std::move(meta);
  }
  out = llvm::formatv("{0}", llvm::json::Value(std::move(top))).str();
  out.append((8 - out.size() % 8) % 8, ' ');
  return Status::success();
}

} // namespace

Status writeSafetensors(const std::string &path, const std::vector<SafetensorsTensor> &tensors,
                        const std::map<std::string, std::string> &metadata) {
  std::string header;
  if (Status s = headerFor(path, tensors, metadata, header); !s.ok())
    return s;
  std::string tmp = path + ".tmp" + std::to_string(getpid());
  FILE *f = std::fopen(tmp.c_str(), "wb");
  if (!f)
    return Status::failure("cannot write '" + path + "': " + std::strerror(errno));
  uint8_t length[8];
  for (int i = 0; i < 8; ++i)
    length[i] = uint8_t(uint64_t(header.size()) >> (8 * i));
  bool ok = std::fwrite(length, 1, 8, f) == 8 &&
            std::fwrite(header.data(), 1, header.size(), f) == header.size();
  for (const SafetensorsTensor &t : tensors)
    ok = ok && (t.bytes == 0 || std::fwrite(t.data, 1, t.bytes, f) == t.bytes);
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    std::remove(tmp.c_str());
    return Status::failure("cannot write '" + path + "': " + std::strerror(err));
  }
  return Status::success();
}

} // namespace moe
