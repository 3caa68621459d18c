//===- Safetensors.h - read and write .safetensors files --------*- C++ -*-===//
//
// The safetensors format (huggingface/safetensors): an 8-byte little-endian
// header length N, N bytes of JSON
//   {"<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
//    ..., "__metadata__": {"<key>": "<value>", ...}}
// then the tensors' bytes (offsets relative to the end of the header).
//
// SafetensorsFile maps a file read-only and exposes its tensors as views
// (no copy): weights of any size load in the time of one mmap, and pages are
// read when the compiled code touches them. The header is parsed with
// llvm::json, so this lives in its own library (MoeSafetensors), not in
// MoeSupport, which links no LLVM. Every malformed file is an error naming
// the file and, where there is one, the tensor; nothing is read outside the
// mapping.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_SUPPORT_SAFETENSORS_H
#define MOE_SUPPORT_SAFETENSORS_H

#include "moe/Support/Tensor.h"

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace moe {

/// The element types we read and write, by their safetensors names.
enum class SafetensorsDType { F32, BF16, F16, I8, U8, I32, I64 };

/// "F32", "BF16", "F16", "I8", "U8", "I32", "I64".
const char *safetensorsDTypeName(SafetensorsDType t);
/// Parses one of the names above; false for any other.
bool parseSafetensorsDType(const std::string &name, SafetensorsDType &out);
size_t safetensorsDTypeSize(SafetensorsDType t);
/// The moe::DType holding the same values (U8 has none: false).
bool toDType(SafetensorsDType t, DType &out);
/// The safetensors name of a moe::DType's storage (I8 for DType::I8).
bool fromDType(DType t, SafetensorsDType &out);

/// One tensor of a file (a view into its mapping), or one to write.
struct SafetensorsTensor {
  std::string name;
  SafetensorsDType dtype = SafetensorsDType::F32;
  std::vector<int64_t> shape;
  const void *data = nullptr; // not aligned beyond one byte in general
  size_t bytes = 0;
  int64_t numel() const { return numElements(shape); }
};

/// A parsed safetensors image: the tensors in the order of their data and
/// the metadata. `data` of each tensor points into the image.
struct SafetensorsContents {
  std::vector<SafetensorsTensor> tensors;
  std::map<std::string, std::string> metadata;
};

/// Parses and validates a whole safetensors image of `size` bytes at
/// `image` (`what` names it in errors, e.g. the path): header length,
/// JSON, dtypes, shapes (shape x dtype size == byte range, no overflow),
/// offsets (begin <= end, inside the data, no overlap, no gap, covering it
/// all), duplicate or empty names, metadata of strings only.
Status parseSafetensors(const uint8_t *image, size_t size, const std::string &what,
                        SafetensorsContents &out);

/// A file mapped read-only. Views stay valid while the object lives.
class SafetensorsFile {
public:
  static Status open(const std::string &path, std::shared_ptr<SafetensorsFile> &out);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile &) = delete;
  SafetensorsFile &operator=(const SafetensorsFile &) = delete;

  const std::string &path() const { return path_; }
  const std::vector<SafetensorsTensor> &tensors() const { return contents_.tensors; }
  const std::map<std::string, std::string> &metadata() const { return contents_.metadata; }
  /// The tensor named `name`, or nullptr.
  const SafetensorsTensor *find(const std::string &name) const;
  /// Like find(), but an error naming the file and the tensor when it is
  /// missing or its dtype/shape differ from the expected ones (an empty
  /// `shape` accepts any).
  Status get(const std::string &name, SafetensorsDType dtype, const std::vector<int64_t> &shape,
             const SafetensorsTensor *&out) const;

private:
  SafetensorsFile() = default;
  std::string path_;
  void *mapping_ = nullptr;
  size_t mappedBytes_ = 0;
  SafetensorsContents contents_;
};

/// Writes `tensors` (data in the order given, the header padded with spaces
/// to a multiple of 8 bytes so that every tensor of a file whose tensors are
/// multiples of 8 bytes stays 8-byte aligned) and `metadata`. Checks names
/// (non-empty, unique, not "__metadata__") and that each tensor's bytes
/// match its shape and dtype. The file is written to a temporary name and
/// renamed, so a failed write leaves no partial file.
Status writeSafetensors(const std::string &path, const std::vector<SafetensorsTensor> &tensors,
                        const std::map<std::string, std::string> &metadata = {});

} // namespace moe

#endif // MOE_SUPPORT_SAFETENSORS_H
