//===- GpuLaunch.cpp - parse the GPU launch description -------------------===//
//
// Format: docs/gpu-launch.md (version 1). Line based, whitespace-separated
// tokens, '#' starts a comment. The lines come in a fixed order (header,
// entry, chip, arg*, scratch*, status?, kernel+), so a reordered or truncated file is
// caught here rather than as a wrong launch on the device.
//
//===----------------------------------------------------------------------===//

#include "GpuLaunch.h"

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <map>
#include <sstream>

namespace moe::gpu {

namespace {

bool parseInt(const std::string &token, int64_t &value) {
  if (token.empty())
    return false;
  errno = 0;
  char *end = nullptr;
  long long v = std::strtoll(token.c_str(), &end, 10);
  if (errno || *end || end == token.c_str())
    return false;
  value = v;
  return true;
}

/// Ceiling division for any sign of the numerator (d >= 1): C++ division
/// truncates toward zero, which is the ceiling for a negative numerator.
int64_t ceilDiv(int64_t n, int64_t d) {
  int64_t q = n / d;
  return (n % d != 0 && n > 0) ? q + 1 : q;
}

std::string quoted(const std::string &s) { return "'" + s + "'"; }

enum class Section { Header, Entry, Chip, Args, Scratch, Kernels };

const char *expectedAt(Section s) {
  switch (s) {
  case Section::Header:
    return "the header 'moe-gpu-launch 1'";
  case Section::Entry:
    return "'entry <entry-name>'";
  case Section::Chip:
    return "'chip <sm_XX>'";
  case Section::Args:
    return "an 'arg', 'scratch' or 'kernel' line";
  case Section::Scratch:
    return "a 'scratch', 'status' or 'kernel' line";
  case Section::Kernels:
    return "a 'kernel' line";
  }
  return "?";
}

class Parser {
public:
  Parser(LaunchDescription &out, std::string &error, const std::string &source)
      : out(out), error(error), prefix(source.empty() ? "" : source + ":") {}

  bool run(std::string_view text);

private:
  bool line(const std::vector<std::string> &tokens);
  bool argLine(const std::vector<std::string> &tokens);
  bool scratchLine(const std::vector<std::string> &tokens);
  bool statusLine(const std::vector<std::string> &tokens);
  bool kernelLine(const std::vector<std::string> &tokens);
  bool expr(const std::vector<std::string> &tokens, size_t at, const std::string &what,
            SizeExpr &e);
  bool checkName(const std::string &name, const char *kind);
  bool err(const std::string &message) {
    error = prefix + "line " + std::to_string(lineNo) + ": " + message;
    return false;
  }

  LaunchDescription &out;
  std::string &error;
  std::string prefix;
  int lineNo = 0;
  Section section = Section::Header;
  std::map<std::string, ArgRef> names;
};

bool Parser::run(std::string_view text) {
  out = LaunchDescription();
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view raw = text.substr(pos, nl == std::string_view::npos ? text.npos : nl - pos);
    ++lineNo;
    if (size_t hash = raw.find('#'); hash != std::string_view::npos)
      raw = raw.substr(0, hash);
    std::istringstream in{std::string(raw)};
    std::vector<std::string> tokens;
    for (std::string t; in >> t;)
      tokens.push_back(t);
    if (!tokens.empty() && !line(tokens))
      return false;
    if (nl == std::string_view::npos)
      break;
    pos = nl + 1;
  }
  // End-of-file errors name the last line (the empty one after a final newline).
  if (section != Section::Kernels) {
    if (section == Section::Args || section == Section::Scratch)
      return err("end of file: expected at least one 'kernel' line");
    return err(std::string("end of file: expected ") + expectedAt(section));
  }
  return true;
}

bool Parser::line(const std::vector<std::string> &t) {
  const std::string &kw = t[0];
  switch (section) {
  case Section::Header: {
    if (kw != "moe-gpu-launch")
      return err("expected the header 'moe-gpu-launch " + std::to_string(kLaunchFormatVersion) +
                 "' as the first line, got " + quoted(kw) +
                 " (is this a launch description written by moe-compile --target=nvptx?)");
    int64_t v;
    if (t.size() != 2 || !parseInt(t[1], v))
      return err("expected 'moe-gpu-launch <version>' (one integer), got " +
                 std::to_string(t.size() - 1) + " operand(s)");
    if (v != kLaunchFormatVersion)
      return err("unsupported launch format version " + std::to_string(v) +
                 ": this runtime reads version " + std::to_string(kLaunchFormatVersion));
    out.version = int(v);
    section = Section::Entry;
    return true;
  }
  case Section::Entry:
    if (kw != "entry")
      return err(std::string("expected ") + expectedAt(section) + ", got " + quoted(kw));
    if (t.size() != 2)
      return err("'entry' takes one operand (the entry name), got " +
                 std::to_string(t.size() - 1));
    out.entry = t[1];
    section = Section::Chip;
    return true;
  case Section::Chip: {
    if (kw != "chip")
      return err(std::string("expected ") + expectedAt(section) + ", got " + quoted(kw));
    if (t.size() != 2)
      return err("'chip' takes one operand (e.g. sm_90), got " + std::to_string(t.size() - 1));
    const std::string &chip = t[1];
    int64_t number = 0;
    std::string digits = chip.size() > 3 ? chip.substr(3) : "";
    if (!digits.empty() && digits.back() == 'a')
      digits.pop_back();
    if (chip.rfind("sm_", 0) != 0 || !parseInt(digits, number) || number <= 0)
      return err("expected a chip of the form sm_<NN> (e.g. sm_90, sm_90a), got " + quoted(chip));
    out.chip = chip;
    out.chipNumber = int(number);
    section = Section::Args;
    return true;
  }
  case Section::Args:
  case Section::Scratch:
  case Section::Kernels:
    break;
  }
  if (kw == "arg") {
    if (section != Section::Args)
      return err("'arg' lines come before every 'scratch' and 'kernel' line");
    return argLine(t);
  }
  if (kw == "scratch") {
    if (section == Section::Kernels)
      return err("'scratch' lines come before every 'kernel' line");
    section = Section::Scratch;
    return scratchLine(t);
  }
  if (kw == "status") {
    if (section == Section::Kernels)
      return err("'status' comes before every 'kernel' line");
    return statusLine(t);
  }
  if (kw == "kernel") {
    section = Section::Kernels;
    return kernelLine(t);
  }
  if (kw == "moe-gpu-launch" || kw == "entry" || kw == "chip")
    return err(quoted(kw) + " appears twice (only once, at the top)");
  return err("unknown keyword " + quoted(kw) + ": expected " + expectedAt(section));
}

bool Parser::checkName(const std::string &name, const char *kind) {
  if (name == "T" || name.rfind("i64:", 0) == 0)
    return err(std::string(kind) + " name " + quoted(name) +
               " is reserved (T and i64:<int> are kernel argument references)");
  if (names.count(name))
    return err(std::string(kind) + " name " + quoted(name) +
               " is already used by an earlier 'arg' or 'scratch' line");
  return true;
}

bool Parser::argLine(const std::vector<std::string> &t) {
  // arg <name> <in|out> <dtype> <rank> <dim>...
  if (t.size() < 5)
    return err("'arg' expects '<name> <in|out> <f32|bf16|f16|i32> <rank> <dim>...', got " +
               std::to_string(t.size() - 1) + " operand(s)");
  LaunchArg a;
  a.name = t[1];
  a.line = lineNo;
  if (!checkName(a.name, "argument"))
    return false;
  if (t[2] != "in" && t[2] != "out")
    return err("argument " + quoted(a.name) + ": expected 'in' or 'out', got " + quoted(t[2]));
  a.isOutput = t[2] == "out";
  if (!a.isOutput && !out.args.empty() && out.args.back().isOutput)
    return err("input argument " + quoted(a.name) +
               " after an output: inputs come first, then outputs");
  a.sig.dtype = -1;
  for (int dt : {MOE_F32, MOE_BF16, MOE_F16, MOE_I32})
    if (t[3] == rt::dtypeName(dt))
      a.sig.dtype = dt;
  if (a.sig.dtype < 0)
    return err("argument " + quoted(a.name) + ": expected an element type f32, bf16, f16 or i32, got " +
               quoted(t[3]));
  int64_t rank;
  if (!parseInt(t[4], rank) || rank < 0)
    return err("argument " + quoted(a.name) + ": expected a rank (integer >= 0), got " +
               quoted(t[4]));
  if (int64_t(t.size()) != 5 + rank)
    return err("argument " + quoted(a.name) + " has rank " + std::to_string(rank) +
               " so expects " + std::to_string(rank) + " dim(s), got " +
               std::to_string(t.size() - 5));
  for (int64_t d = 0; d < rank; ++d) {
    const std::string &dim = t[5 + d];
    int64_t v;
    if (dim == "T")
      v = -1;
    else if (!parseInt(dim, v) || v < 0)
      return err("argument " + quoted(a.name) + " dim #" + std::to_string(d) +
                 ": expected an integer >= 0 or T, got " + quoted(dim));
    a.sig.shape.push_back(v);
  }
  names[a.name] = ArgRef{ArgRef::Argument, int(out.args.size()), 0};
  out.args.push_back(std::move(a));
  return true;
}

bool Parser::expr(const std::vector<std::string> &t, size_t at, const std::string &what,
                  SizeExpr &e) {
  int64_t v[5];
  for (int i = 0; i < 5; ++i)
    if (!parseInt(t[at + i], v[i]))
      return err(what + ": expected five integers 'a b d m c' meaning ceil((a*T + b) / d) * m + c, "
                        "got " + quoted(t[at + i]) + " as " + "abdmc"[i]);
  if (v[2] < 1)
    return err(what + ": the divisor d must be >= 1, got " + std::to_string(v[2]));
  e = SizeExpr{v[0], v[1], v[2], v[3], v[4]};
  return true;
}

bool Parser::scratchLine(const std::vector<std::string> &t) {
  // scratch <name> a b d m c
  if (t.size() != 7)
    return err("'scratch' expects '<name> <bytes: a b d m c>' (6 operands), got " +
               std::to_string(t.size() - 1));
  ScratchBuffer s;
  s.name = t[1];
  s.line = lineNo;
  if (!checkName(s.name, "scratch buffer"))
    return false;
  if (!expr(t, 2, "scratch " + quoted(s.name) + " size", s.bytes))
    return false;
  names[s.name] = ArgRef{ArgRef::Scratch, int(out.scratch.size()), 0};
  out.scratch.push_back(std::move(s));
  return true;
}

bool Parser::statusLine(const std::vector<std::string> &t) {
  // status <scratch-name>: where the kernels record their error code.
  if (t.size() != 2)
    return err("'status' takes one operand (a scratch buffer name), got " +
               std::to_string(t.size() - 1));
  if (out.statusScratch >= 0)
    return err("'status' appears twice (the kernels record errors in one buffer)");
  auto it = names.find(t[1]);
  if (it == names.end() || it->second.kind != ArgRef::Scratch)
    return err("'status' names " + quoted(t[1]) + ", which is not a scratch buffer declared above");
  const SizeExpr &bytes = out.scratch[size_t(it->second.index)].bytes;
  int64_t atNoTokens = 0;
  std::string ignored;
  if (bytes.a != 0 || !bytes.evaluate(0, atNoTokens, ignored) || atNoTokens < 4)
    return err("status buffer " + quoted(t[1]) +
               " must have a constant size of at least 4 bytes (one i32), got " + bytes.str());
  out.statusScratch = it->second.index;
  return true;
}

bool Parser::kernelLine(const std::vector<std::string> &t) {
  // kernel <sym> grid e e e block x y z smem n args <argref>...
  //   0      1    2  3-17   18  19-21  22  23  24  25...
  constexpr size_t kFixed = 25;
  const char *shape = "'kernel <ptx-symbol> grid <a b d m c> x3 block <x> <y> <z> smem <bytes> "
                      "args <argref>...'";
  if (t.size() < kFixed)
    return err(std::string("expected ") + shape + " (at least " + std::to_string(kFixed) +
               " tokens), got " + std::to_string(t.size()) + " tokens");
  KernelLaunch k;
  k.symbol = t[1];
  k.line = lineNo;
  std::string what = "kernel " + quoted(k.symbol);
  auto keyword = [&](size_t at, const char *kw) {
    if (t[at] == kw)
      return true;
    return err(what + ": expected '" + kw + "' as token " + std::to_string(at + 1) + " of " +
               shape + ", got " + quoted(t[at]));
  };
  if (!keyword(2, "grid"))
    return false;
  for (int i = 0; i < 3; ++i)
    if (!expr(t, 3 + 5 * i, what + " grid " + "xyz"[i], k.grid[i]))
      return false;
  if (!keyword(18, "block"))
    return false;
  int64_t threads = 1;
  for (int i = 0; i < 3; ++i) {
    if (!parseInt(t[19 + i], k.block[i]) || k.block[i] < 1 || k.block[i] > 1024)
      return err(what + " block " + "xyz"[i] + ": expected an integer in [1, 1024], got " +
                 quoted(t[19 + i]));
    threads *= k.block[i];
  }
  if (threads > 1024)
    return err(what + ": a block of " + std::to_string(threads) +
               " threads exceeds the CUDA limit of 1024");
  if (!keyword(22, "smem"))
    return false;
  if (!parseInt(t[23], k.sharedBytes) || k.sharedBytes < 0 || k.sharedBytes > INT32_MAX)
    return err(what + " smem: expected a byte count (integer >= 0), got " + quoted(t[23]));
  if (!keyword(24, "args"))
    return false;
  for (size_t i = kFixed; i < t.size(); ++i) {
    const std::string &ref = t[i];
    ArgRef r;
    if (ref == "T") {
      r.kind = ArgRef::Tokens;
    } else if (ref.rfind("i64:", 0) == 0) {
      r.kind = ArgRef::Constant;
      if (!parseInt(ref.substr(4), r.value))
        return err(what + " parameter #" + std::to_string(i - kFixed) +
                   ": expected i64:<integer>, got " + quoted(ref));
    } else if (auto it = names.find(ref); it != names.end()) {
      r = it->second;
    } else {
      return err(what + " parameter #" + std::to_string(i - kFixed) + ": unknown name " +
                 quoted(ref) + " (expected an 'arg' or 'scratch' name, T, or i64:<int>)");
    }
    k.params.push_back(r);
  }
  out.kernels.push_back(std::move(k));
  return true;
}

} // namespace

bool SizeExpr::evaluate(int64_t tokens, int64_t &value, std::string &error) const {
  int64_t at, num, scaled;
  if (__builtin_mul_overflow(a, tokens, &at) || __builtin_add_overflow(at, b, &num) ||
      __builtin_mul_overflow(ceilDiv(num, d), m, &scaled) ||
      __builtin_add_overflow(scaled, c, &value)) {
    error = str() + " overflows for T = " + std::to_string(tokens);
    return false;
  }
  if (value < 0) {
    error = str() + " = " + std::to_string(value) + " is negative for T = " +
            std::to_string(tokens);
    return false;
  }
  return true;
}

std::string SizeExpr::str() const {
  return "ceil((" + std::to_string(a) + "*T + " + std::to_string(b) + ") / " +
         std::to_string(d) + ") * " + std::to_string(m) + " + " + std::to_string(c);
}

int LaunchDescription::numInputs() const {
  int n = 0;
  for (const LaunchArg &a : args)
    n += !a.isOutput;
  return n;
}

std::vector<rt::TensorSig> LaunchDescription::inputSigs() const {
  std::vector<rt::TensorSig> sigs;
  for (const LaunchArg &a : args)
    if (!a.isOutput)
      sigs.push_back(a.sig);
  return sigs;
}

std::vector<rt::TensorSig> LaunchDescription::outputSigs() const {
  std::vector<rt::TensorSig> sigs;
  for (const LaunchArg &a : args)
    if (a.isOutput)
      sigs.push_back(a.sig);
  return sigs;
}

bool parseLaunchDescription(std::string_view text, LaunchDescription &out, std::string &error,
                            const std::string &source) {
  return Parser(out, error, source).run(text);
}

bool evaluateGrid(const KernelLaunch &kernel, int64_t tokens, uint32_t grid[3],
                  std::string &error) {
  static constexpr int64_t kLimit[3] = {INT32_MAX, 65535, 65535};
  for (int i = 0; i < 3; ++i) {
    int64_t v;
    std::string why;
    if (!kernel.grid[i].evaluate(tokens, v, why)) {
      error = "kernel '" + kernel.symbol + "' (line " + std::to_string(kernel.line) + ") grid " +
              "xyz"[i] + ": " + why;
      return false;
    }
    if (v > kLimit[i]) {
      error = "kernel '" + kernel.symbol + "' (line " + std::to_string(kernel.line) + ") grid " +
              "xyz"[i] + " = " + std::to_string(v) + " for T = " + std::to_string(tokens) +
              " exceeds the CUDA limit " + std::to_string(kLimit[i]);
      return false;
    }
    grid[i] = uint32_t(v);
  }
  return true;
}

} // namespace moe::gpu
