//===- moe-quantize.cpp - quantize the weights of a safetensors file -------===//
//
//   moe-quantize in.safetensors -o out.safetensors --format=q4_0 [--tensors=REGEX]
//
// Quantizes the selected tensors (default: every F32/BF16/F16 tensor of
// rank >= 2; --tensors: those whose whole name matches the POSIX extended
// regex) to --format, row by row (rows = all leading dims, K = the last
// dim), through moe::quantizeRows, the quantizer moec.quantize uses too.
// The output has every tensor of the input, in its order, each selected one
// replaced under the same name by its stored form (docs/quantization.md):
//   bf16, f16    BF16 / F16, shape unchanged
//   int8         I8, shape unchanged, plus "<name>.scales": F32 [leading dims]
//   q8_0, q4_0   I8 bytes, shape [..., K/32 * 34] / [..., K/32 * 18]
// and the metadata of the input plus "<name>.format": "<format>" for each,
// which moec.load_safetensors(...).quantized(name) and other loaders read.
//
//===----------------------------------------------------------------------===//

#include "moe/Support/Quant.h"
#include "moe/Support/Safetensors.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Regex.h"
#include "llvm/Support/raw_ostream.h"

#include <cstring>
#include <set>

using namespace moe;

static llvm::cl::OptionCategory quantizeCategory("moe-quantize options");
static llvm::cl::opt<std::string> inputFile(llvm::cl::Positional, llvm::cl::Required,
                                            llvm::cl::desc("<input .safetensors>"),
                                            llvm::cl::cat(quantizeCategory));
static llvm::cl::opt<std::string> outputFile("o", llvm::cl::desc("output .safetensors"),
                                             llvm::cl::Required,
                                             llvm::cl::cat(quantizeCategory));
static llvm::cl::opt<std::string>
    formatName("format", llvm::cl::desc("bf16 | f16 | int8 | q8_0 | q4_0"), llvm::cl::Required,
               llvm::cl::cat(quantizeCategory));
static llvm::cl::opt<std::string> tensorsRegex(
    "tensors",
    llvm::cl::desc("quantize the tensors whose whole name matches this POSIX extended regex "
                   "(default: every F32/BF16/F16 tensor of rank >= 2)"),
    llvm::cl::init(""), llvm::cl::cat(quantizeCategory));
static llvm::cl::opt<bool> quiet("quiet", llvm::cl::desc("print nothing on success"),
                                 llvm::cl::init(false), llvm::cl::cat(quantizeCategory));

namespace {

[[noreturn]] void fail(const std::string &message) {
  llvm::errs() << "moe-quantize: error: " << message << "\n";
  std::exit(1);
}

std::string shapeText(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

bool isFloat(SafetensorsDType t) {
  return t == SafetensorsDType::F32 || t == SafetensorsDType::BF16 ||
         t == SafetensorsDType::F16;
}

/// One quantized tensor: the stored rows and, for int8, the scales.
struct Quantized {
  std::vector<uint8_t> data;
  std::vector<float> scales;
  std::vector<int64_t> shape, scaleShape;
};

/// The values of `t` (F32, BF16 or F16) as floats.
std::vector<float> floatsOf(const SafetensorsTensor &t) {
  std::vector<float> v(size_t(t.numel()));
  const auto *bytes = static_cast<const uint8_t *>(t.data);
  for (size_t i = 0; i < v.size(); ++i) {
    if (t.dtype == SafetensorsDType::F32) {
      std::memcpy(&v[i], bytes + 4 * i, 4);
      continue;
    }
    uint16_t h;
    std::memcpy(&h, bytes + 2 * i, 2);
    v[i] = t.dtype == SafetensorsDType::BF16 ? bf16ToFloat(h) : f16ToFloat(h);
  }
  return v;
}

Quantized quantize(const std::string &file, const SafetensorsTensor &t, WeightFormat format) {
  std::string where = "'" + file + "': tensor '" + t.name + "'";
  if (!isFloat(t.dtype))
    fail(where + " is " + safetensorsDTypeName(t.dtype) +
         ", not a float tensor (F32, BF16, F16): only those can be quantized");
  if (t.shape.empty())
    fail(where + " is a scalar: quantization needs rows of K values (rank >= 1)");
  int64_t k = t.shape.back();
  if (isBlockFormat(format) && k % kQuantBlock != 0)
    fail(where + " has K = " + std::to_string(k) + " (its last dimension), not a multiple of " +
         std::to_string(kQuantBlock) + " as " + weightFormatName(format) + " needs");
  Quantized q;
  q.shape = t.shape;
  q.shape.back() = storedRowElements(format, k);
  q.scaleShape.assign(t.shape.begin(), t.shape.end() - 1);
  int64_t rows = numElements(q.scaleShape);
  q.data.resize(size_t(numElements(q.shape)) * dtypeSize(storageDType(format)));
  if (hasRowScales(format))
    q.scales.resize(size_t(rows));
  std::vector<float> values = floatsOf(t);
  quantizeRows(format, values.data(), rows, k, q.data.data(),
               hasRowScales(format) ? q.scales.data() : nullptr);
  return q;
}

/// The tensors the user asked for, by name; errors for a selection that
/// cannot be right (no match, an already quantized tensor).
std::set<std::string> select(const SafetensorsFile &file) {
  std::set<std::string> names;
  std::optional<llvm::Regex> regex;
  if (!tensorsRegex.empty()) {
    regex.emplace("^(" + tensorsRegex + ")$"); // POSIX extended
    std::string why;
    if (!regex->isValid(why))
      fail("--tensors='" + tensorsRegex + "' is not a valid regex: " + why);
  }
  for (const SafetensorsTensor &t : file.tensors()) {
    bool wanted = regex ? regex->match(t.name)
                        : isFloat(t.dtype) && t.shape.size() >= 2;
    if (!wanted)
      continue;
    auto format = file.metadata().find(t.name + ".format");
    if (format != file.metadata().end())
      fail("'" + file.path() + "': tensor '" + t.name + "' is already quantized (" +
           format->second + ")");
    names.insert(t.name);
  }
  if (names.empty())
    fail("'" + file.path() + "': " +
         (regex ? "--tensors='" + tensorsRegex + "' matches no tensor"
                : std::string("no F32/BF16/F16 tensor of rank >= 2 to quantize")));
  return names;
}

} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  llvm::cl::HideUnrelatedOptions(quantizeCategory);
  llvm::cl::ParseCommandLineOptions(argc, argv,
                                    "moe-quantize: quantize the weights of a safetensors file\n");
  WeightFormat format;
  if (!parseWeightFormat(formatName, format) || format == WeightFormat::F32)
    fail("--format='" + formatName + "' is not one of bf16, f16, int8, q8_0, q4_0");
  std::shared_ptr<SafetensorsFile> file;
  if (Status s = SafetensorsFile::open(inputFile, file); !s.ok())
    fail(s.error);
  std::set<std::string> selected = select(*file);

  std::vector<Quantized> quantized; // owns what `out` points to
  quantized.reserve(selected.size());
  std::vector<SafetensorsTensor> out;
  std::map<std::string, std::string> metadata = file->metadata();
  SafetensorsDType stored;
  fromDType(storageDType(format), stored);
  for (const SafetensorsTensor &t : file->tensors()) {
    if (!selected.count(t.name)) {
      out.push_back(t);
      continue;
    }
    quantized.push_back(quantize(file->path(), t, format));
    const Quantized &q = quantized.back();
    out.push_back({t.name, stored, q.shape, q.data.data(), q.data.size()});
    if (hasRowScales(format)) {
      std::string scales = t.name + ".scales";
      if (file->find(scales))
        fail("'" + file->path() + "': tensor '" + scales + "' exists; it would hold the scales of '" +
             t.name + "'");
      out.push_back({scales, SafetensorsDType::F32, q.scaleShape, q.scales.data(),
                     q.scales.size() * sizeof(float)});
    }
    metadata[t.name + ".format"] = weightFormatName(format);
    if (!quiet)
      llvm::outs() << t.name << ": " << shapeText(t.shape) << " "
                   << safetensorsDTypeName(t.dtype) << " -> " << weightFormatName(format) << " "
                   << shapeText(q.shape) << " " << safetensorsDTypeName(stored) << " ("
                   << t.bytes << " -> " << q.data.size() + q.scales.size() * sizeof(float)
                   << " bytes)\n";
  }
  if (Status s = writeSafetensors(outputFile, out, metadata); !s.ok())
    fail(s.error);
  return 0;
}
