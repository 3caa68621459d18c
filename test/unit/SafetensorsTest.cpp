//===- SafetensorsTest.cpp - the safetensors reader and writer -------------===//
//
// Files written by the writer read back bit for bit; hand-made headers
// exercise every malformed case, each of which must be an error naming the
// file (and the tensor, where there is one), never a crash.
//
//===----------------------------------------------------------------------===//
#include "moe/Support/Safetensors.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <unistd.h>

using namespace moe;

namespace {

std::string tempPath(const std::string &tag) {
  return (testing::TempDir() + "/moe_st_" + tag + "_" + std::to_string(getpid()) +
          ".safetensors");
}

/// A file of the 8-byte length of `header`, `header` and `data` (or a given
/// length instead of the header's own).
std::string rawFile(const std::string &tag, const std::string &header, const std::string &data,
                    int64_t lengthOverride = -1) {
  std::string path = tempPath(tag);
  std::ofstream out(path, std::ios::binary);
  uint64_t n = lengthOverride >= 0 ? uint64_t(lengthOverride) : header.size();
  for (int i = 0; i < 8; ++i)
    out.put(char(n >> (8 * i)));
  out << header << data;
  return path;
}

/// The error of opening `path` (empty when it opens).
std::string openError(const std::string &path) {
  std::shared_ptr<SafetensorsFile> file;
  Status s = SafetensorsFile::open(path, file);
  std::remove(path.c_str());
  return s.error;
}

TEST(Safetensors, WritesAndMapsEveryDType) {
  std::vector<float> f32 = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, -8.5f};
  std::vector<uint16_t> bf16 = {0x3f80, 0xc000, 0x7f80};
  std::vector<uint16_t> f16 = {0x3c00, 0xbc00};
  std::vector<int8_t> i8 = {-127, 0, 5, 127, -1};
  std::vector<uint8_t> u8 = {0, 255, 17};
  std::vector<int32_t> i32 = {-7, 1 << 30};
  std::vector<int64_t> i64 = {int64_t(1) << 40};
  std::vector<SafetensorsTensor> tensors = {
      {"w.f32", SafetensorsDType::F32, {2, 3}, f32.data(), 24},
      {"w.bf16", SafetensorsDType::BF16, {3}, bf16.data(), 6},
      {"w.f16", SafetensorsDType::F16, {1, 2}, f16.data(), 4},
      {"w.i8", SafetensorsDType::I8, {5}, i8.data(), 5},
      {"w.u8", SafetensorsDType::U8, {3, 1}, u8.data(), 3},
      {"w.i32", SafetensorsDType::I32, {2}, i32.data(), 8},
      {"scalar.i64", SafetensorsDType::I64, {}, i64.data(), 8},
      {"empty", SafetensorsDType::F32, {0, 4}, nullptr, 0},
  };
  std::string path = tempPath("roundtrip");
  ASSERT_TRUE(writeSafetensors(path, tensors, {{"w.i8.format", "int8"}, {"k", "v"}}).ok());

  std::shared_ptr<SafetensorsFile> file;
  Status s = SafetensorsFile::open(path, file);
  ASSERT_TRUE(s.ok()) << s.error;
  EXPECT_EQ(file->tensors().size(), tensors.size());
  EXPECT_EQ(file->metadata().at("w.i8.format"), "int8");
  EXPECT_EQ(file->metadata().at("k"), "v");
  for (const SafetensorsTensor &want : tensors) {
    const SafetensorsTensor *got = file->find(want.name);
    ASSERT_NE(got, nullptr) << want.name;
    EXPECT_EQ(got->dtype, want.dtype) << want.name;
    EXPECT_EQ(got->shape, want.shape) << want.name;
    ASSERT_EQ(got->bytes, want.bytes) << want.name;
    if (want.bytes)
      EXPECT_EQ(std::memcmp(got->data, want.data, want.bytes), 0) << want.name;
  }
  // The header is padded to 8 bytes: the first tensor's data is aligned.
  EXPECT_EQ(reinterpret_cast<uintptr_t>(file->tensors()[0].data) % 8, 0u);
  const SafetensorsTensor *t = nullptr;
  EXPECT_TRUE(file->get("w.f32", SafetensorsDType::F32, {2, 3}, t).ok());
  EXPECT_EQ(t, file->find("w.f32"));
  EXPECT_EQ(file->get("nope", SafetensorsDType::F32, {}, t).error,
            "'" + path + "': tensor 'nope' not found");
  EXPECT_EQ(file->get("w.f32", SafetensorsDType::BF16, {}, t).error,
            "'" + path + "': tensor 'w.f32' is F32, expected BF16");
  EXPECT_EQ(file->get("w.f32", SafetensorsDType::F32, {3, 2}, t).error,
            "'" + path + "': tensor 'w.f32' has shape [2, 3], expected [3, 2]");
  std::remove(path.c_str());
}

TEST(Safetensors, ReadsAFileOfTheReferenceWriter) {
  // Bytes as huggingface's safetensors.numpy.save_file writes them for
  // {"a": np.array([[1, 2]], np.float32)} (header padded with spaces).
  std::string header = R"({"a":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  float data[2] = {1.0f, 2.0f};
  std::string path =
      rawFile("reference", header, std::string(reinterpret_cast<char *>(data), 8));
  std::shared_ptr<SafetensorsFile> file;
  ASSERT_TRUE(SafetensorsFile::open(path, file).ok());
  ASSERT_EQ(file->tensors().size(), 1u);
  const float *p = static_cast<const float *>(file->tensors()[0].data);
  EXPECT_EQ(p[0], 1.0f);
  EXPECT_EQ(p[1], 2.0f);
  EXPECT_TRUE(file->metadata().empty());
  std::remove(path.c_str());
}

struct Malformed {
  const char *tag;
  std::string header;
  std::string data;
  int64_t length; // -1: the header's own
  std::string error; // after "'<path>': "
};

TEST(Safetensors, RejectsMalformedFilesWithClearErrors) {
  const std::string f8(8, '\0'), f16(16, '\0');
  auto one = [](const std::string &dtype, const std::string &shape, const std::string &offs) {
    return R"({"w":{"dtype":")" + dtype + R"(","shape":)" + shape + R"(,"data_offsets":)" +
           offs + "}}";
  };
  std::vector<Malformed> cases = {
      {"biglen", "{}", "", 1ll << 40,
       "header length 1099511627776 exceeds the limit of 104857600"},
      {"longlen", "{}", "", 100, "header length 100 exceeds the 2 bytes after it (truncated file?)"},
      {"json", "{\"w\": ", "", -1, "the header is not valid JSON: "},
      {"array", "[1, 2]", "", -1, "the header is not a JSON object"},
      {"entry", R"({"w": 3})", "", -1, "tensor 'w': the entry is not a JSON object"},
      {"dtype", one("F64", "[1]", "[0,8]"), f8, -1,
       "tensor 'w': unsupported dtype 'F64' (supported: F32, BF16, F16, I8, U8, I32, I64)"},
      {"nodtype", R"({"w":{"shape":[2],"data_offsets":[0,8]}})", f8, -1,
       "tensor 'w': 'dtype' is missing or not a string"},
      {"noshape", R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", f8, -1,
       "tensor 'w': 'shape' is missing or not an array"},
      {"negdim", one("F32", "[-2]", "[0,8]"), f8, -1,
       "tensor 'w': 'shape' must hold non-negative integers"},
      {"offsets", one("F32", "[2]", "[0]"), f8, -1,
       "tensor 'w': 'data_offsets' must be [begin, end] (non-negative integers)"},
      {"misordered", one("F32", "[2]", "[8,0]"), f8, -1,
       "tensor 'w': data_offsets [8, 0] end before they begin"},
      {"size", one("F32", "[3]", "[0,8]"), f8, -1,
       "tensor 'w': shape [3] of F32 is 12 bytes but data_offsets span 8"},
      {"huge", one("F32", "[4611686018427387904, 4]", "[0,8]"), f8, -1,
       "tensor 'w': shape [4611686018427387904, 4] is too large"},
      {"truncated", one("F32", "[4]", "[0,16]"), f8, -1,
       "tensor 'w': data_offsets end at 16, past the 8 bytes of data (truncated file?)"},
      {"overlap",
       R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
       R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
       f16, -1, "tensor 'b': data_offsets [4, 12] overlap tensor 'a'"},
      {"gap", one("F32", "[2]", "[8,16]"), f16, -1,
       "tensor 'w': data_offsets begin at 8, leaving a gap after byte 0"},
      {"trailing", one("F32", "[2]", "[0,8]"), f16, -1,
       "the tensors cover 8 of the 16 data bytes (trailing bytes)"},
      {"duplicate",
       R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
       R"("w":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
       f16, -1, "tensor 'w' appears twice in the header"},
      {"escaped",
       R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
       R"("\u0077":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
       f16, -1, "tensor 'w' appears twice in the header"},
      {"metadata", R"({"__metadata__":{"k":3}})", "", -1,
       "'__metadata__' value of 'k' is not a string"},
      {"metaobj", R"({"__metadata__":[]})", "", -1, "'__metadata__' must be an object of strings"},
      {"field", R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})", f8, -1,
       "tensor 'w': unknown field 'x' (expected dtype, shape, data_offsets)"},
      {"noname", R"({"":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", f8, -1,
       "a tensor has an empty name"},
  };
  for (const Malformed &c : cases) {
    std::string path = rawFile(c.tag, c.header, c.data, c.length);
    std::string error = openError(path);
    std::string prefix = "'" + path + "': " + c.error;
    EXPECT_EQ(error.substr(0, prefix.size()), prefix) << c.tag << ": " << error;
  }
}

TEST(Safetensors, RejectsShortAndMissingFiles) {
  std::string path = tempPath("short");
  { std::ofstream(path, std::ios::binary) << "abc"; }
  EXPECT_EQ(openError(path), "'" + path + "': 3 bytes, too short for the 8-byte header length");
  path = tempPath("empty");
  { std::ofstream(path, std::ios::binary); }
  EXPECT_EQ(openError(path), "'" + path + "': 0 bytes, too short for the 8-byte header length");
  std::string missing = tempPath("missing");
  EXPECT_EQ(openError(missing), "cannot open '" + missing + "': No such file or directory");
  EXPECT_EQ(openError(testing::TempDir()), "'" + testing::TempDir() + "' is not a regular file");
}

TEST(Safetensors, WriterChecksItsTensors) {
  float data[4] = {};
  std::string path = tempPath("bad-write");
  auto writeError = [&](std::vector<SafetensorsTensor> tensors) {
    return writeSafetensors(path, tensors).error;
  };
  EXPECT_EQ(writeError({{"a", SafetensorsDType::F32, {2}, data, 8},
                        {"a", SafetensorsDType::F32, {2}, data, 8}}),
            "'" + path + "': tensor 'a' is given twice");
  EXPECT_EQ(writeError({{"a", SafetensorsDType::F32, {3}, data, 8}}),
            "'" + path + "': tensor 'a': shape [3] of F32 does not match its 8 bytes");
  EXPECT_EQ(writeError({{"__metadata__", SafetensorsDType::F32, {2}, data, 8}}),
            "'" + path + "': invalid tensor name '__metadata__'");
  EXPECT_EQ(writeError({{"a", SafetensorsDType::F32, {-1}, data, 8}}),
            "'" + path + "': tensor 'a': negative dimension in [-1]");
  // Nothing was written, not even a partial file.
  EXPECT_NE(access(path.c_str(), F_OK), 0);
  std::string dir = testing::TempDir() + "/no/such/dir/x.safetensors";
  EXPECT_EQ(writeSafetensors(dir, {{"a", SafetensorsDType::F32, {2}, data, 8}}).error,
            "cannot write '" + dir + "': No such file or directory");
}

TEST(Safetensors, DTypeNamesAndConversions) {
  for (const char *name : {"F32", "BF16", "F16", "I8", "U8", "I32", "I64"}) {
    SafetensorsDType t;
    ASSERT_TRUE(parseSafetensorsDType(name, t)) << name;
    EXPECT_STREQ(safetensorsDTypeName(t), name);
  }
  SafetensorsDType t;
  EXPECT_FALSE(parseSafetensorsDType("f32", t));
  DType d;
  EXPECT_TRUE(toDType(SafetensorsDType::I8, d));
  EXPECT_EQ(d, DType::I8);
  EXPECT_FALSE(toDType(SafetensorsDType::U8, d));
  EXPECT_TRUE(fromDType(DType::BF16, t));
  EXPECT_EQ(t, SafetensorsDType::BF16);
  EXPECT_EQ(safetensorsDTypeSize(SafetensorsDType::I64), 8u);
}

} // namespace
