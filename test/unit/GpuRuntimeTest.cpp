//===- GpuRuntimeTest.cpp - the CUDA runtime path, without a GPU ----------===//
//
// Three layers of testing, none needing a GPU:
//  - the launch-description parser (docs/gpu-launch.md): every line kind,
//    the T-dependent grid and scratch sizes, every malformed-line class;
//  - no driver (MOE_LIBCUDA pointing nowhere): every C entry point fails
//    with MOE_ERR_DEVICE or a named misuse, never a crash;
//  - a fake driver (FakeCudaDriver.cpp, loaded through MOE_LIBCUDA) that
//    runs a few named kernels on host memory: data flow, launch order,
//    grids and parameters for several T, scratch zero-filled per call,
//    driver errors reported with their name and string, and results left
//    untouched by every failure.
//
//===----------------------------------------------------------------------===//

#include "CudaDriver.h"
#include "GpuLaunch.h"
#include "moe_runtime_cuda.h"

#include <gtest/gtest.h>

#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

using namespace moe::gpu;

namespace {

// --- the parser ------------------------------------------------------------

const char *kFullDescription = R"(# written by moe-compile --target=nvptx
moe-gpu-launch 1
entry mixp
chip sm_90a

arg x in bf16 2 T 4096
arg router_w in bf16 2 4096 8
arg y out f32 2 T 4096   # trailing comment
scratch counts 0 32 1 1 0
scratch perm 2 0 1 4 0
kernel moe_gating grid 1 0 4 1 0 0 1 1 1 0 0 1 1 1 0 block 128 1 1 smem 0 args x router_w perm T
kernel moe_gemm grid 1 0 128 1 0 0 14336 128 1 0 0 8 1 1 0 block 128 2 1 smem 98304 args x perm y counts i64:14336 i64:-1
)";

LaunchDescription parseOk(const std::string &text) {
  LaunchDescription d;
  std::string error;
  EXPECT_TRUE(parseLaunchDescription(text, d, error)) << error;
  return d;
}

TEST(GpuLaunchParser, ParsesEveryLineKind) {
  LaunchDescription d = parseOk(kFullDescription);
  EXPECT_EQ(d.version, 1);
  EXPECT_EQ(d.entry, "mixp");
  EXPECT_EQ(d.chip, "sm_90a");
  EXPECT_EQ(d.chipNumber, 90);
  ASSERT_EQ(d.args.size(), 3u);
  EXPECT_EQ(d.args[0].name, "x");
  EXPECT_FALSE(d.args[0].isOutput);
  EXPECT_EQ(d.args[0].sig.dtype, MOE_BF16);
  EXPECT_EQ(d.args[0].sig.shape, (std::vector<int64_t>{-1, 4096}));
  EXPECT_EQ(d.args[1].sig.shape, (std::vector<int64_t>{4096, 8}));
  EXPECT_TRUE(d.args[2].isOutput);
  EXPECT_EQ(d.args[2].sig.dtype, MOE_F32);
  EXPECT_EQ(d.args[2].line, 8);
  EXPECT_EQ(d.numInputs(), 2);
  EXPECT_EQ(d.inputSigs().size(), 2u);
  ASSERT_EQ(d.outputSigs().size(), 1u);
  EXPECT_EQ(d.outputSigs()[0].shape, (std::vector<int64_t>{-1, 4096}));

  ASSERT_EQ(d.scratch.size(), 2u);
  EXPECT_EQ(d.scratch[1].name, "perm");
  EXPECT_EQ(d.scratch[1].bytes.a, 2);
  EXPECT_EQ(d.scratch[1].bytes.m, 4);

  ASSERT_EQ(d.kernels.size(), 2u);
  const KernelLaunch &gemm = d.kernels[1];
  EXPECT_EQ(gemm.symbol, "moe_gemm");
  EXPECT_EQ(gemm.line, 12);
  EXPECT_EQ(gemm.block[0], 128);
  EXPECT_EQ(gemm.block[1], 2);
  EXPECT_EQ(gemm.sharedBytes, 98304);
  ASSERT_EQ(gemm.params.size(), 6u);
  EXPECT_EQ(gemm.params[0].kind, ArgRef::Argument);
  EXPECT_EQ(gemm.params[0].index, 0);
  EXPECT_EQ(gemm.params[1].kind, ArgRef::Scratch);
  EXPECT_EQ(gemm.params[1].index, 1);
  EXPECT_EQ(gemm.params[2].kind, ArgRef::Argument);
  EXPECT_EQ(gemm.params[2].index, 2);
  EXPECT_EQ(gemm.params[3].kind, ArgRef::Scratch);
  EXPECT_EQ(gemm.params[3].index, 0);
  EXPECT_EQ(gemm.params[4].kind, ArgRef::Constant);
  EXPECT_EQ(gemm.params[4].value, 14336);
  EXPECT_EQ(gemm.params[5].value, -1);
  EXPECT_EQ(d.kernels[0].params[3].kind, ArgRef::Tokens);
}

/// ceil((a*T + b) / d) * m + c by counting, independent of the runtime's
/// integer arithmetic.
int64_t bruteForce(const SizeExpr &e, int64_t tokens) {
  int64_t n = e.a * tokens + e.b;
  int64_t q = n >= 0 ? 0 : -(-n / e.d) - 1;
  while (q * e.d < n)
    ++q;
  return q * e.m + e.c;
}

TEST(GpuLaunchParser, SizeExpressionsFollowTheTokenCount) {
  const SizeExpr exprs[] = {
      {1, 0, 128, 1, 0},   // one block per 128 tokens
      {2, 7, 8, 3, 1},     // every coefficient in play
      {0, 5, 1, 1, 0},     // a constant
      {1, -3, 4, 1, 0},    // a negative offset: 0 until T > 3
      {8, 0, 1, 4, 256},   // bytes of a per-(token, k) i32 buffer plus a header
      {1, 127, 128, 64, 0} // (T + 127) / 128 tiles of 64 rows
  };
  for (const SizeExpr &e : exprs)
    for (int64_t t : {4, 0, 1, 7, 8, 9, 127, 128, 129, 4096}) {
      int64_t v;
      std::string error;
      ASSERT_TRUE(e.evaluate(t, v, error)) << e.str() << ": " << error;
      EXPECT_EQ(v, bruteForce(e, t)) << e.str() << " at T = " << t;
    }
  int64_t v;
  std::string error;
  // Spot values, written out.
  EXPECT_TRUE((SizeExpr{1, 0, 128, 1, 0}).evaluate(129, v, error));
  EXPECT_EQ(v, 2);
  EXPECT_TRUE((SizeExpr{2, 7, 8, 3, 1}).evaluate(4, v, error)); // ceil(15/8)*3+1
  EXPECT_EQ(v, 7);
  EXPECT_TRUE((SizeExpr{1, -3, 4, 1, 0}).evaluate(1, v, error)); // ceil(-2/4) = 0
  EXPECT_EQ(v, 0);
  // A negative value and an overflow are errors that say so.
  EXPECT_FALSE((SizeExpr{0, -5, 1, 1, 0}).evaluate(3, v, error));
  EXPECT_NE(error.find("is negative for T = 3"), std::string::npos) << error;
  EXPECT_FALSE((SizeExpr{INT64_MAX / 2, 0, 1, 1, 0}).evaluate(4, v, error));
  EXPECT_NE(error.find("overflows for T = 4"), std::string::npos) << error;
}

TEST(GpuLaunchParser, GridsAndScratchForPrefillAndDecode) {
  LaunchDescription d = parseOk(kFullDescription);
  uint32_t grid[3];
  std::string error;
  // Gating: one block per 4 tokens.
  ASSERT_TRUE(evaluateGrid(d.kernels[0], 4096, grid, error)) << error;
  EXPECT_EQ(grid[0], 1024u);
  ASSERT_TRUE(evaluateGrid(d.kernels[0], 5, grid, error)) << error;
  EXPECT_EQ(grid[0], 2u);
  // GEMM: ceil(T/128) x ceil(14336/128) x 8.
  ASSERT_TRUE(evaluateGrid(d.kernels[1], 4096, grid, error)) << error;
  EXPECT_EQ(grid[0], 32u);
  EXPECT_EQ(grid[1], 112u);
  EXPECT_EQ(grid[2], 8u);
  ASSERT_TRUE(evaluateGrid(d.kernels[1], 8, grid, error)) << error;
  EXPECT_EQ(grid[0], 1u);
  ASSERT_TRUE(evaluateGrid(d.kernels[1], 0, grid, error)) << error;
  EXPECT_EQ(grid[0], 0u); // no tokens: the launch is skipped
  int64_t bytes;
  ASSERT_TRUE(d.scratch[1].bytes.evaluate(4096, bytes, error));
  EXPECT_EQ(bytes, 2 * 4096 * 4);
  ASSERT_TRUE(d.scratch[0].bytes.evaluate(4096, bytes, error));
  EXPECT_EQ(bytes, 32);

  // CUDA's grid limits: y and z at most 65535.
  KernelLaunch tall = d.kernels[0];
  tall.grid[1] = SizeExpr{1, 0, 1, 1, 0};
  EXPECT_TRUE(evaluateGrid(tall, 65535, grid, error));
  EXPECT_FALSE(evaluateGrid(tall, 65536, grid, error));
  EXPECT_NE(error.find("grid y = 65536 for T = 65536 exceeds the CUDA limit 65535"),
            std::string::npos)
      << error;
  EXPECT_NE(error.find("kernel 'moe_gating' (line 11)"), std::string::npos) << error;
}

struct Malformed {
  const char *name;
  std::string text;
  int line;
  const char *expected;
};

const std::string kHead = "moe-gpu-launch 1\nentry main\nchip sm_90\n"; // lines 1-3
const std::string kArgs = "arg x in f32 2 T 4\narg y out f32 2 T 4\n";     // lines 4-5
const std::string kKernel =
    "kernel k grid 1 0 128 1 0 0 1 1 1 0 0 1 1 1 0 block 128 1 1 smem 0 args x y T\n";

TEST(GpuLaunchParser, StatusLineNamesTheErrorCodeBuffer) {
  moe::gpu::LaunchDescription desc;
  std::string error;
  std::string text = kHead + kArgs + "scratch a 1 0 1 4 0\nscratch st 0 4 1 1 0\nstatus st\n" +
                     kKernel;
  ASSERT_TRUE(moe::gpu::parseLaunchDescription(text, desc, error, "")) << error;
  EXPECT_EQ(desc.statusScratch, 1);
  ASSERT_TRUE(moe::gpu::parseLaunchDescription(kHead + kArgs + kKernel, desc, error, "")) << error;
  EXPECT_EQ(desc.statusScratch, -1);
}

TEST(GpuLaunchParser, EveryMalformedLineIsNamedWithItsLineNumber) {
  const Malformed cases[] = {
      {"empty file", "", 1, "end of file: expected the header 'moe-gpu-launch 1'"},
      {"missing header", "entry main\n", 1, "expected the header 'moe-gpu-launch 1'"},
      {"header without version", "moe-gpu-launch\n", 1, "expected 'moe-gpu-launch <version>'"},
      {"version mismatch", "# c\nmoe-gpu-launch 2\n", 2,
       "unsupported launch format version 2: this runtime reads version 1"},
      {"missing entry", "moe-gpu-launch 1\nchip sm_90\n", 2,
       "expected 'entry <entry-name>', got 'chip'"},
      {"entry token count", "moe-gpu-launch 1\nentry a b\n", 2, "'entry' takes one operand"},
      {"bad chip", "moe-gpu-launch 1\nentry main\nchip gfx90a\n", 3,
       "expected a chip of the form sm_<NN>"},
      {"unknown keyword", kHead + "argument x in f32 1 T\n", 4, "unknown keyword 'argument'"},
      {"entry twice", kHead + "entry other\n", 4, "'entry' appears twice"},
      {"arg too short", kHead + "arg x in f32\n", 4, "'arg' expects '<name> <in|out>"},
      {"arg rank vs dims", kHead + "arg x in f32 2 T\n", 4,
       "argument 'x' has rank 2 so expects 2 dim(s), got 1"},
      {"bad dtype", kHead + "arg x in f64 1 T\n", 4,
       "expected an element type f32, bf16, f16 or i32, got 'f64'"},
      {"bad direction", kHead + "arg x inout f32 1 T\n", 4, "expected 'in' or 'out', got 'inout'"},
      {"bad rank", kHead + "arg x in f32 two T\n", 4, "expected a rank"},
      {"bad dim", kHead + "arg x in f32 1 N\n", 4, "dim #0: expected an integer >= 0 or T, got 'N'"},
      {"input after output", kHead + "arg y out f32 1 T\narg x in f32 1 T\n", 5,
       "input argument 'x' after an output"},
      {"duplicate name", kHead + "arg x in f32 1 T\nscratch x 0 4 1 1 0\n", 5,
       "scratch buffer name 'x' is already used"},
      {"reserved name", kHead + "arg T in f32 1 T\n", 4, "argument name 'T' is reserved"},
      {"scratch token count", kHead + kArgs + "scratch s 0 4 1 1\n", 6,
       "'scratch' expects '<name> <bytes: a b d m c>' (6 operands), got 5"},
      {"scratch d = 0", kHead + kArgs + "scratch s 1 0 0 1 0\n", 6,
       "scratch 's' size: the divisor d must be >= 1, got 0"},
      {"scratch not an integer", kHead + kArgs + "scratch s 1 0 x 1 0\n", 6,
       "expected five integers 'a b d m c'"},
      {"arg after scratch", kHead + "scratch s 0 4 1 1 0\n" + kArgs, 5,
       "'arg' lines come before every 'scratch' and 'kernel' line"},
      {"scratch after kernel", kHead + kArgs + kKernel + "scratch s 0 4 1 1 0\n", 7,
       "'scratch' lines come before every 'kernel' line"},
      {"no kernels", kHead + kArgs, 6, "expected at least one 'kernel' line"},
      {"status without operand", kHead + kArgs + "scratch s 0 4 1 1 0\nstatus\n", 7,
       "'status' takes one operand"},
      {"status names an argument", kHead + kArgs + "status x\n", 6,
       "'status' names 'x', which is not a scratch buffer declared above"},
      {"status buffer sized by T", kHead + kArgs + "scratch s 4 0 1 1 0\nstatus s\n", 7,
       "status buffer 's' must have a constant size of at least 4 bytes"},
      {"status buffer too small", kHead + kArgs + "scratch s 0 2 1 1 0\nstatus s\n", 7,
       "status buffer 's' must have a constant size of at least 4 bytes"},
      {"status twice", kHead + kArgs + "scratch s 0 4 1 1 0\nstatus s\nstatus s\n", 8,
       "'status' appears twice"},
      {"status line after kernel", kHead + kArgs + "scratch s 0 4 1 1 0\n" + kKernel + "status s\n", 8,
       "'status' comes before every 'kernel' line"},
      {"kernel too short", kHead + kArgs + "kernel k grid 1 0 1 1 0\n", 6, "at least 25 tokens"},
      {"kernel grid d = 0", kHead + kArgs +
       "kernel k grid 1 0 0 1 0 0 1 1 1 0 0 1 1 1 0 block 1 1 1 smem 0 args x\n", 6,
       "kernel 'k' grid x: the divisor d must be >= 1, got 0"},
      {"kernel missing block", kHead + kArgs +
       "kernel k grid 1 0 1 1 0 0 1 1 1 0 0 1 1 1 0 blocks 1 1 1 smem 0 args x\n", 6,
       "expected 'block' as token 19"},
      {"kernel too many threads", kHead + kArgs +
       "kernel k grid 1 0 1 1 0 0 1 1 1 0 0 1 1 1 0 block 64 32 1 smem 0 args x\n", 6,
       "a block of 2048 threads exceeds the CUDA limit of 1024"},
      {"kernel bad smem", kHead + kArgs +
       "kernel k grid 1 0 1 1 0 0 1 1 1 0 0 1 1 1 0 block 1 1 1 smem -4 args x\n", 6,
       "smem: expected a byte count"},
      {"unknown argref", kHead + kArgs +
       "kernel k grid 1 0 1 1 0 0 1 1 1 0 0 1 1 1 0 block 1 1 1 smem 0 args x nope\n", 6,
       "parameter #1: unknown name 'nope'"},
      {"bad constant", kHead + kArgs +
       "kernel k grid 1 0 1 1 0 0 1 1 1 0 0 1 1 1 0 block 1 1 1 smem 0 args i64:x\n", 6,
       "expected i64:<integer>, got 'i64:x'"},
  };
  for (const Malformed &c : cases) {
    LaunchDescription d;
    std::string error;
    EXPECT_FALSE(parseLaunchDescription(c.text, d, error)) << c.name;
    std::string prefix = "line " + std::to_string(c.line) + ": ";
    EXPECT_EQ(error.rfind(prefix, 0), 0u) << c.name << ": " << error;
    EXPECT_NE(error.find(c.expected), std::string::npos) << c.name << ": " << error;
  }
  // A named source is prefixed, as in compiler diagnostics.
  LaunchDescription d;
  std::string error;
  EXPECT_FALSE(parseLaunchDescription("moe-gpu-launch 3\n", d, error, "layer.launch"));
  EXPECT_EQ(error.rfind("layer.launch:line 1: unsupported launch format version 3", 0), 0u)
      << error;
  // The minimal valid file parses.
  EXPECT_TRUE(parseLaunchDescription(kHead + kArgs + kKernel, d, error)) << error;
}

// --- files and the driver --------------------------------------------------

std::string writeFile(const std::string &name, const std::string &text) {
  std::string path = ::testing::TempDir() + "/moe-gpu-test-" + std::to_string(getpid()) + "-" + name;
  FILE *f = std::fopen(path.c_str(), "w");
  EXPECT_TRUE(f);
  std::fputs(text.c_str(), f);
  std::fclose(f);
  return path;
}

// x [T,4] -> y = 3x [T,4], sum [4] = column sums of x (through zero-filled
// scratch), and a kernel that only runs when T > 0.
const char *kFakeLaunch = R"(moe-gpu-launch 1
entry fake
chip sm_90
arg x in f32 2 T 4
arg y out f32 2 T 4
arg sum out f32 1 4
scratch acc 0 16 1 1 0
kernel fake_scale grid 1 0 2 1 0 0 1 1 1 0 0 1 1 1 0 block 128 1 1 smem 0 args x y T i64:4 i64:3
kernel fake_accumulate grid 0 1 1 1 0 0 1 1 1 0 0 1 1 1 0 block 32 1 1 smem 65536 args x acc T i64:4
kernel fake_write_sum grid 0 1 1 1 0 0 1 1 1 0 0 1 1 1 0 block 4 1 1 smem 0 args acc sum i64:4
)";
const char *kFakePtx = R"(.version 8.0
.target sm_90
.address_size 64
.visible .entry fake_scale(.param .u64 a, .param .u64 b, .param .u64 c, .param .u64 d, .param .u64 e) { ret; }
.visible .entry fake_accumulate(.param .u64 a, .param .u64 b, .param .u64 c, .param .u64 d) { ret; }
.visible .entry fake_write_sum(.param .u64 a, .param .u64 b, .param .u64 c) { ret; }
)";

/// Every test starts without a loaded driver and restores MOE_LIBCUDA.
class GpuRuntime : public ::testing::Test {
protected:
  void SetUp() override {
    const char *old = std::getenv("MOE_LIBCUDA");
    hadOld = old != nullptr;
    if (old)
      oldValue = old;
    unloadCudaDriverForTesting();
    launchPath = writeFile("layer.launch", kFakeLaunch);
    ptxPath = writeFile("layer.ptx", kFakePtx);
  }
  void TearDown() override {
    unloadCudaDriverForTesting();
    if (hadOld)
      setenv("MOE_LIBCUDA", oldValue.c_str(), 1);
    else
      unsetenv("MOE_LIBCUDA");
  }
  bool hadOld = false;
  std::string oldValue, launchPath, ptxPath;
};

class NoDriver : public GpuRuntime {
protected:
  void SetUp() override {
    GpuRuntime::SetUp();
    setenv("MOE_LIBCUDA", "/nonexistent/libcuda.so.1", 1);
  }
};

TEST_F(NoDriver, AvailabilityAndOpenReportTheMissingDriver) {
  EXPECT_EQ(moe_cuda_available(), 0);
  std::string why = moe_last_error();
  EXPECT_NE(why.find("no CUDA driver: cannot load /nonexistent/libcuda.so.1"), std::string::npos)
      << why;
  moe_gpu_layer *layer = reinterpret_cast<moe_gpu_layer *>(0x1);
  EXPECT_EQ(moe_gpu_layer_open(ptxPath.c_str(), launchPath.c_str(), &layer), MOE_ERR_DEVICE);
  EXPECT_EQ(layer, nullptr);
  why = moe_last_error();
  EXPECT_NE(why.find("cannot run '" + ptxPath + "': no CUDA driver"), std::string::npos) << why;
  EXPECT_STREQ(moe_status_message(MOE_ERR_DEVICE),
               "no usable CUDA device: the driver (libcuda.so.1) is missing, finds no GPU, or "
               "reported an error");
}

TEST_F(NoDriver, DescriptionAndFilesAreCheckedBeforeTheDriver) {
  moe_gpu_layer *layer = nullptr;
  std::string bad = writeFile("bad.launch", "moe-gpu-launch 1\nentry main\nchip sm_90\nfoo\n");
  EXPECT_EQ(moe_gpu_layer_open(ptxPath.c_str(), bad.c_str(), &layer), MOE_ERR_LOAD);
  EXPECT_EQ(std::string(moe_last_error()),
            "malformed launch description: " + bad +
                ":line 4: unknown keyword 'foo': expected an 'arg', 'scratch' or 'kernel' line");
  EXPECT_EQ(moe_gpu_launch_check(bad.c_str()), MOE_ERR_LOAD);
  EXPECT_EQ(moe_gpu_launch_check(launchPath.c_str()), MOE_OK);
  EXPECT_STREQ(moe_last_error(), "");
  EXPECT_EQ(moe_gpu_launch_check("/nonexistent.launch"), MOE_ERR_LOAD);
  EXPECT_NE(std::string(moe_last_error()).find("cannot read the launch description"),
            std::string::npos);
  EXPECT_EQ(moe_gpu_layer_open("/nonexistent.ptx", launchPath.c_str(), &layer), MOE_ERR_LOAD);
  EXPECT_NE(std::string(moe_last_error()).find("cannot read the PTX '/nonexistent.ptx'"),
            std::string::npos);
  EXPECT_EQ(layer, nullptr);
}

TEST_F(NoDriver, EveryEntryPointRejectsNullsWithoutCrashing) {
  moe_gpu_layer *layer = nullptr;
  EXPECT_EQ(moe_gpu_layer_open(nullptr, launchPath.c_str(), &layer), MOE_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(moe_gpu_layer_open(ptxPath.c_str(), nullptr, &layer), MOE_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(moe_gpu_layer_open(ptxPath.c_str(), launchPath.c_str(), nullptr),
            MOE_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(moe_gpu_launch_check(nullptr), MOE_ERR_INVALID_ARGUMENT);
  moe_gpu_layer_close(nullptr);
  EXPECT_EQ(moe_gpu_layer_num_args(nullptr), -1);
  EXPECT_EQ(moe_gpu_layer_num_results(nullptr), -1);
  EXPECT_EQ(moe_gpu_layer_arg(nullptr, 0, nullptr, nullptr, nullptr), MOE_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(moe_gpu_layer_result(nullptr, 0, nullptr, nullptr, nullptr),
            MOE_ERR_INVALID_ARGUMENT);
  EXPECT_STREQ(moe_gpu_layer_device(nullptr), "");
  EXPECT_EQ(moe_gpu_layer_arg_name(nullptr, 0), nullptr);
  float out[4] = {7, 7, 7, 7};
  int64_t shape[1] = {4};
  moe_tensor result{out, MOE_F32, 1, shape};
  EXPECT_EQ(moe_gpu_layer_run(nullptr, nullptr, 0, &result, 1), MOE_ERR_INVALID_ARGUMENT);
  EXPECT_STREQ(moe_last_error(), "moe_gpu_layer_run: null layer");
  EXPECT_EQ(out[0], 7.0f);
  uint64_t ptr = 0;
  EXPECT_EQ(moe_gpu_layer_launch(nullptr, 1, &ptr, 1, nullptr), MOE_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(moe_gpu_layer_reserve(nullptr, 8), MOE_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(moe_gpu_layer_stream(nullptr), nullptr);
  EXPECT_EQ(moe_gpu_layer_synchronize(nullptr), MOE_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(moe_gpu_alloc(nullptr, 16, &ptr), MOE_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(moe_gpu_free(nullptr, 0), MOE_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(moe_gpu_copy_to_device(nullptr, 0, out, 4), MOE_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(moe_gpu_copy_to_host(nullptr, out, 0, 4), MOE_ERR_INVALID_ARGUMENT);
}

// The machine's real driver (libcuda.so.1): either there is a GPU, or every
// path says there is none. On this project's CI machines there is none.
TEST_F(GpuRuntime, DefaultDriverIsReportedConsistently) {
  unsetenv("MOE_LIBCUDA");
  if (moe_cuda_available())
    GTEST_SKIP() << "a CUDA device is present";
  EXPECT_NE(std::string(moe_last_error()).find("libcuda.so.1"), std::string::npos)
      << moe_last_error();
  moe_gpu_layer *layer = nullptr;
  EXPECT_EQ(moe_gpu_layer_open(ptxPath.c_str(), launchPath.c_str(), &layer), MOE_ERR_DEVICE);
  EXPECT_EQ(layer, nullptr);
}

// The CUDA toolkit's stub libcuda, where installed: every symbol the runtime
// resolves must exist in the real library's exports (the _v2 names), and
// the stub's CUDA_ERROR_STUB_LIBRARY is reported as "no usable device".
TEST_F(GpuRuntime, ToolkitStubDriverResolvesEverySymbolAndReportsNoDevice) {
  const char *stub = "/usr/local/cuda/lib64/stubs/libcuda.so";
  if (access(stub, R_OK) != 0)
    GTEST_SKIP() << "no CUDA toolkit stub at " << stub;
  setenv("MOE_LIBCUDA", stub, 1);
  EXPECT_EQ(moe_cuda_available(), 0);
  EXPECT_STREQ(moe_last_error(),
               "the CUDA driver loaded but cuInit (initializing the driver) failed: "
               "CUDA_ERROR_STUB_LIBRARY (the CUDA stub library was loaded instead of the real "
               "driver)");
  moe_gpu_layer *layer = nullptr;
  EXPECT_EQ(moe_gpu_layer_open(ptxPath.c_str(), launchPath.c_str(), &layer), MOE_ERR_DEVICE);
  EXPECT_EQ(layer, nullptr);
}

// --- the fake driver ---------------------------------------------------------

class FakeDriver : public GpuRuntime {
protected:
  void SetUp() override {
    GpuRuntime::SetUp();
    // Held open by the test so its state (and hooks) outlive the runtime's
    // dlclose between tests.
    handle = dlopen(MOE_FAKE_LIBCUDA_PATH, RTLD_NOW | RTLD_LOCAL);
    ASSERT_TRUE(handle) << dlerror();
    failNext = reinterpret_cast<void (*)(const char *, int)>(dlsym(handle, "fake_cuda_fail_next"));
    driverLog = reinterpret_cast<const char *(*)()>(dlsym(handle, "fake_cuda_log"));
    liveResources = reinterpret_cast<int (*)()>(dlsym(handle, "fake_cuda_live_resources"));
    allocCalls = reinterpret_cast<int (*)()>(dlsym(handle, "fake_cuda_alloc_calls"));
    setCapability = reinterpret_cast<void (*)(int)>(dlsym(handle, "fake_cuda_set_capability"));
    reinterpret_cast<void (*)()>(dlsym(handle, "fake_cuda_reset"))();
    setenv("MOE_LIBCUDA", MOE_FAKE_LIBCUDA_PATH, 1);
  }
  void TearDown() override {
    if (layer)
      moe_gpu_layer_close(layer);
    EXPECT_EQ(liveResources(), 0) << "device memory, modules, streams or contexts leaked";
    GpuRuntime::TearDown();
    dlclose(handle);
  }
  void open() {
    ASSERT_EQ(moe_gpu_layer_open(ptxPath.c_str(), launchPath.c_str(), &layer), MOE_OK)
        << moe_last_error();
  }
  std::string log() { return driverLog(); }

  /// Runs at T tokens; x[t][j] = t + j/4.
  int run(int64_t tokens, std::vector<float> &y, std::vector<float> &sum) {
    x.assign(size_t(tokens * 4), 0);
    for (int64_t t = 0; t < tokens; ++t)
      for (int j = 0; j < 4; ++j)
        x[size_t(t * 4 + j)] = float(t) + float(j) / 4;
    xShape[0] = yShape[0] = tokens;
    moe_tensor in{x.data(), MOE_F32, 2, xShape};
    moe_tensor outs[2] = {{y.data(), MOE_F32, 2, yShape}, {sum.data(), MOE_F32, 1, sumShape}};
    return moe_gpu_layer_run(layer, &in, 1, outs, 2);
  }

  void *handle = nullptr;
  void (*failNext)(const char *, int) = nullptr;
  const char *(*driverLog)() = nullptr;
  int (*liveResources)() = nullptr;
  int (*allocCalls)() = nullptr;
  void (*setCapability)(int) = nullptr;
  moe_gpu_layer *layer = nullptr;
  std::vector<float> x;
  int64_t xShape[2] = {0, 4}, yShape[2] = {0, 4}, sumShape[1] = {4};
};

TEST_F(FakeDriver, RunsTheKernelsInOrderWithGridsAndParametersFromT) {
  ASSERT_EQ(moe_cuda_available(), 1) << moe_last_error();
  open();
  EXPECT_STREQ(moe_gpu_layer_device(layer), "Fake GPU (sm_90, 132 SMs)");
  EXPECT_EQ(moe_gpu_layer_num_args(layer), 1);
  EXPECT_EQ(moe_gpu_layer_num_results(layer), 2);
  moe_dtype dtype;
  int32_t rank;
  const int64_t *shape;
  ASSERT_EQ(moe_gpu_layer_result(layer, 1, &dtype, &rank, &shape), MOE_OK);
  EXPECT_EQ(dtype, MOE_F32);
  EXPECT_EQ(rank, 1);
  EXPECT_EQ(shape[0], 4);
  EXPECT_EQ(moe_gpu_layer_arg(layer, 1, &dtype, &rank, &shape), MOE_ERR_INVALID_ARGUMENT);
  EXPECT_STREQ(moe_gpu_layer_arg_name(layer, 0), "x");
  EXPECT_STREQ(moe_gpu_layer_result_name(layer, 1), "sum");
  EXPECT_EQ(moe_gpu_layer_arg_name(layer, 1), nullptr);
  EXPECT_EQ(moe_gpu_layer_result_name(layer, 2), nullptr);
  // 64 KiB of dynamic shared memory needs the opt-in attribute (8).
  EXPECT_EQ(log(), "attr fake_accumulate 8=65536\n");

  // Twice at T = 5, then T = 3 and T = 9: the sums are right only if the
  // scratch accumulator is zero-filled before every call.
  for (int64_t tokens : {5, 5, 3, 70}) {
    std::vector<float> y(size_t(tokens * 4), -1), sum(4, -1);
    ASSERT_EQ(run(tokens, y, sum), MOE_OK) << moe_last_error();
    for (size_t i = 0; i < y.size(); ++i)
      EXPECT_EQ(y[i], 3 * x[i]) << i;
    for (int j = 0; j < 4; ++j) {
      float expected = 0;
      for (int64_t t = 0; t < tokens; ++t)
        expected += float(t) + float(j) / 4;
      EXPECT_EQ(sum[size_t(j)], expected) << "T = " << tokens << ", column " << j;
    }
  }
  // The last call (T = 70): scratch zeroed, then the kernels in file order;
  // fake_scale has ceil(70/2) = 35 blocks and gets T and the constants.
  std::string calls = log();
  std::string last = calls.substr(calls.rfind("memset"));
  EXPECT_EQ(last, "memset 16\n"
                  "launch fake_scale grid 35,1,1 block 128,1,1 smem 0 ptr ptr 70 4 3\n"
                  "launch fake_accumulate grid 1,1,1 block 32,1,1 smem 65536 ptr ptr 70 4\n"
                  "launch fake_write_sum grid 1,1,1 block 4,1,1 smem 0 ptr ptr 4\n");
  // Buffers are reused: 3 arguments/results + 1 scratch allocated for T = 5
  // (256-byte granules), x and y grown once for T = 70 (1120 bytes).
  EXPECT_EQ(allocCalls(), 6);
}

TEST_F(FakeDriver, SixteenBitAndIntegerTensorsKeepTheirBytes) {
  // Three outputs of three element types: sizes come from the dtypes and T,
  // and each result lands in its own tensor (the staging offsets).
  launchPath = writeFile("copy.launch", R"(moe-gpu-launch 1
entry copy
chip sm_90
arg a in bf16 2 T 3
arg b in i32 2 T 2
arg c in f16 1 5
arg oa out bf16 2 T 3
arg ob out i32 2 T 2
arg oc out f16 1 5
kernel fake_copy_rows grid 0 1 1 1 0 0 1 1 1 0 0 1 1 1 0 block 1 1 1 smem 0 args a oa T i64:6
kernel fake_copy_rows grid 0 1 1 1 0 0 1 1 1 0 0 1 1 1 0 block 1 1 1 smem 0 args b ob T i64:8
kernel fake_copy_rows grid 0 1 1 1 0 0 1 1 1 0 0 1 1 1 0 block 1 1 1 smem 0 args c oc i64:1 i64:10
)");
  ptxPath = writeFile("copy.ptx", ".visible .entry fake_copy_rows() {}\n");
  open();
  const int64_t tokens = 7;
  std::vector<uint16_t> a(tokens * 3), oa(a.size(), 0xFFFF), c(5), oc(5, 0xFFFF);
  std::vector<int32_t> b(tokens * 2), ob(b.size(), -1);
  for (size_t i = 0; i < a.size(); ++i)
    a[i] = uint16_t(0x3F80 + i); // bf16 1.0, 1.0078125, ...
  for (size_t i = 0; i < b.size(); ++i)
    b[i] = int32_t(i) - 5;
  for (size_t i = 0; i < c.size(); ++i)
    c[i] = uint16_t(0x3C00 + i); // f16 1.0, ...
  int64_t aShape[2] = {tokens, 3}, bShape[2] = {tokens, 2}, cShape[1] = {5};
  moe_tensor args[3] = {{a.data(), MOE_BF16, 2, aShape},
                        {b.data(), MOE_I32, 2, bShape},
                        {c.data(), MOE_F16, 1, cShape}};
  moe_tensor outs[3] = {{oa.data(), MOE_BF16, 2, aShape},
                        {ob.data(), MOE_I32, 2, bShape},
                        {oc.data(), MOE_F16, 1, cShape}};
  ASSERT_EQ(moe_gpu_layer_run(layer, args, 3, outs, 3), MOE_OK) << moe_last_error();
  EXPECT_EQ(oa, a);
  EXPECT_EQ(ob, b);
  EXPECT_EQ(oc, c);
  outs[2].dtype = MOE_BF16;
  EXPECT_EQ(moe_gpu_layer_run(layer, args, 3, outs, 3), MOE_ERR_SHAPE);
  EXPECT_STREQ(moe_last_error(),
               "result #2: output buffer has the wrong shape: expected [5] f16, got [5] bf16");
}

TEST_F(FakeDriver, NoTokensSkipsTheLaunchesWithEmptyGrids) {
  open();
  std::vector<float> y, sum(4, -1);
  ASSERT_EQ(run(0, y, sum), MOE_OK) << moe_last_error();
  EXPECT_EQ(sum, std::vector<float>(4, 0.0f));
  std::string calls = log();
  EXPECT_EQ(calls.find("launch fake_scale"), std::string::npos) << calls;
  EXPECT_NE(calls.find("launch fake_accumulate grid 1,1,1"), std::string::npos) << calls;
}

TEST_F(FakeDriver, BadTensorsAreRejectedLikeTheCpuPathAndOutputsStayUntouched) {
  open();
  std::vector<float> in(8, 1), y(8, -1), sum(4, -1);
  int64_t inShape[2] = {2, 4}, goodY[2] = {2, 4}, badY[2] = {3, 4}, sumShape4[1] = {4};
  moe_tensor arg{in.data(), MOE_F32, 2, inShape};
  moe_tensor outs[2] = {{y.data(), MOE_F32, 2, badY}, {sum.data(), MOE_F32, 1, sumShape4}};
  EXPECT_EQ(moe_gpu_layer_run(layer, &arg, 1, outs, 2), MOE_ERR_SHAPE);
  EXPECT_STREQ(moe_last_error(),
               "result #0: output buffer has the wrong shape: expected [2, 4] f32, got [3, 4] f32");
  outs[0].shape = goodY;
  arg.dtype = MOE_BF16;
  EXPECT_EQ(moe_gpu_layer_run(layer, &arg, 1, outs, 2), MOE_ERR_SHAPE);
  EXPECT_STREQ(moe_last_error(), "argument #0: expected element type f32, got bf16");
  arg.dtype = MOE_F32;
  EXPECT_EQ(moe_gpu_layer_run(layer, &arg, 1, outs, 1), MOE_ERR_INVALID_ARGUMENT);
  EXPECT_STREQ(moe_last_error(), "'fake' returns 2 results, got 1 result buffers");
  EXPECT_EQ(moe_gpu_layer_run(layer, nullptr, 1, outs, 2), MOE_ERR_INVALID_ARGUMENT);
  arg.data = nullptr;
  EXPECT_EQ(moe_gpu_layer_run(layer, &arg, 1, outs, 2), MOE_ERR_INVALID_ARGUMENT);
  EXPECT_STREQ(moe_last_error(), "argument #0 is a null pointer");
  EXPECT_EQ(y, std::vector<float>(8, -1));
  EXPECT_EQ(sum, std::vector<float>(4, -1));
  EXPECT_EQ(log().find("launch"), std::string::npos) << "nothing may reach the device";
}

TEST_F(FakeDriver, DriverErrorsNameTheCallTheTaskAndTheDriverMessage) {
  open();
  struct Injection {
    const char *api;
    int code;
    const char *expected;
  } injections[] = {
      {"cuMemAlloc", 2,
       "cuMemAlloc (allocating 256 bytes for argument 'x') failed: CUDA_ERROR_OUT_OF_MEMORY "
       "(out of memory)"},
      {"cuMemcpyHtoDAsync", 1, "cuMemcpyHtoDAsync (copying input 'x' to the device) failed: "
                               "CUDA_ERROR_INVALID_VALUE (invalid argument)"},
      {"cuMemsetD8Async", 1, "zero-filling scratch buffer 'acc'"},
      {"cuLaunchKernel", 1,
       "cuLaunchKernel (launching kernel 'fake_scale' (line 8) with grid 1x1x1 for T = 2) failed"},
      {"cuMemcpyDtoHAsync", 1, "copying result 'y' to the host"},
      {"cuStreamSynchronize", 700,
       "failed: CUDA_ERROR_ILLEGAL_ADDRESS (an illegal memory access was encountered)"},
      {"cuCtxSetCurrent", 1, "making the layer's context current"},
  };
  for (const Injection &inj : injections) {
    failNext(inj.api, inj.code);
    std::vector<float> y(8, -1), sum(4, -1);
    EXPECT_EQ(run(2, y, sum), MOE_ERR_DEVICE) << inj.api;
    EXPECT_NE(std::string(moe_last_error()).find(inj.expected), std::string::npos)
        << inj.api << ": " << moe_last_error();
    EXPECT_EQ(y, std::vector<float>(8, -1)) << inj.api;
    EXPECT_EQ(sum, std::vector<float>(4, -1)) << inj.api;
    if (std::string(inj.api) == "cuMemAlloc") {
      // The layer still works after a failed call.
      ASSERT_EQ(run(2, y, sum), MOE_OK) << moe_last_error();
      EXPECT_EQ(y[5], 3 * x[5]);
    }
  }
}

TEST_F(FakeDriver, AFaultingKernelLeavesTheOutputsUntouched) {
  launchPath = writeFile("fault.launch", std::string(kFakeLaunch) +
                                             "kernel fake_fault grid 0 1 1 1 0 0 1 1 1 0 0 1 1 1 "
                                             "0 block 1 1 1 smem 0 args y\n");
  ptxPath = writeFile("fault.ptx", std::string(kFakePtx) + ".visible .entry fake_fault() {}\n");
  open();
  std::vector<float> y(8, -1), sum(4, -1);
  EXPECT_EQ(run(2, y, sum), MOE_ERR_DEVICE);
  EXPECT_NE(std::string(moe_last_error())
                .find("cuStreamSynchronize (waiting for the kernels of 'fake' (an error here is "
                      "usually a fault inside a kernel)) failed: CUDA_ERROR_ILLEGAL_ADDRESS"),
            std::string::npos)
      << moe_last_error();
  EXPECT_EQ(y, std::vector<float>(8, -1));
  EXPECT_EQ(sum, std::vector<float>(4, -1));
}

// The compiler's launch files name a status scratch buffer in which the
// kernels record a run-time error (docs/gpu-launch.md): the runtime reads it
// back with the results and reports it, outputs untouched.
TEST_F(FakeDriver, AKernelReportedErrorIsReturnedAndTheOutputsStayUntouched) {
  std::string launch = std::string(kFakeLaunch);
  launch.insert(launch.find("kernel fake_scale"), "scratch st 0 4 1 1 0\nstatus st\n");
  ptxPath = writeFile("status.ptx", std::string(kFakePtx) +
                                        ".visible .entry fake_set_status() {}\n");
  for (int code : {0, int(MOE_ERR_EXPERT_ID), int(MOE_ERR_NONFINITE_SCORE)}) {
    launchPath = writeFile("status.launch",
                           launch + "kernel fake_set_status grid 0 1 1 1 0 0 1 1 1 0 0 1 1 1 0 "
                                    "block 1 1 1 smem 0 args st i64:" +
                               std::to_string(code) + "\n");
    open();
    std::vector<float> y(8, -1), sum(4, -1);
    int status = run(2, y, sum);
    EXPECT_EQ(status, code) << moe_last_error();
    if (code == 0) {
      EXPECT_EQ(y[5], 3 * x[5]);
    } else {
      EXPECT_NE(std::string(moe_last_error()).find("the kernels of 'fake' reported error " +
                                                   std::to_string(code) + ": " +
                                                   moe_status_message(code)),
                std::string::npos)
          << moe_last_error();
      EXPECT_EQ(y, std::vector<float>(8, -1));
      EXPECT_EQ(sum, std::vector<float>(4, -1));
    }
    moe_gpu_layer_close(layer);
    layer = nullptr;
  }
}

TEST_F(FakeDriver, OpenFailuresReportTheJitLogMissingKernelsAndChipMismatch) {
  moe_gpu_layer *failed = reinterpret_cast<moe_gpu_layer *>(0x1);
  std::string badPtx = writeFile("bad.ptx", std::string(kFakePtx) + "FAKE_SYNTAX_ERROR\n");
  EXPECT_EQ(moe_gpu_layer_open(badPtx.c_str(), launchPath.c_str(), &failed), MOE_ERR_DEVICE);
  EXPECT_EQ(failed, nullptr);
  std::string why = moe_last_error();
  EXPECT_NE(why.find("cuModuleLoadDataEx (loading the PTX of " + badPtx +
                     ") failed: CUDA_ERROR_INVALID_PTX (a PTX JIT compilation failed)\n"
                     "JIT error log:\nptxas fatal: fake syntax error on line 3"),
            std::string::npos)
      << why;

  std::string partialPtx = writeFile("partial.ptx", ".visible .entry fake_scale() {}\n");
  EXPECT_EQ(moe_gpu_layer_open(partialPtx.c_str(), launchPath.c_str(), &failed), MOE_ERR_DEVICE);
  why = moe_last_error();
  EXPECT_NE(why.find("cuModuleGetFunction (finding kernel 'fake_accumulate' (line 9 of " +
                     launchPath + ") in " + partialPtx +
                     ") failed: CUDA_ERROR_NOT_FOUND (named symbol not found)"),
            std::string::npos)
      << why;

  setCapability(80);
  EXPECT_EQ(moe_gpu_layer_open(ptxPath.c_str(), launchPath.c_str(), &failed), MOE_ERR_DEVICE);
  EXPECT_STREQ(moe_last_error(), "the layer was compiled for sm_90 but device 0 is Fake GPU "
                                 "(sm_80, 132 SMs); recompile with --chip=sm_80");
  setCapability(100);
  std::string archSpecific = writeFile("a.launch", std::string(kFakeLaunch).replace(
                                                       std::string(kFakeLaunch).find("sm_90"), 5,
                                                       "sm_90a"));
  EXPECT_EQ(moe_gpu_layer_open(ptxPath.c_str(), archSpecific.c_str(), &failed), MOE_ERR_DEVICE);
  EXPECT_NE(std::string(moe_last_error()).find("compiled for sm_90a but device 0 is Fake GPU (sm_100"),
            std::string::npos);
  open(); // plain sm_90 PTX runs on a newer device
  for (const char *api : {"cuDevicePrimaryCtxRetain", "cuStreamCreate", "cuFuncSetAttribute"}) {
    failNext(api, 1);
    EXPECT_EQ(moe_gpu_layer_open(ptxPath.c_str(), launchPath.c_str(), &failed), MOE_ERR_DEVICE);
    EXPECT_EQ(std::string(moe_last_error()).rfind(api, 0), 0u) << moe_last_error();
  }
  // TearDown checks that none of the failed opens leaked.
}

TEST_F(FakeDriver, DriverWithoutDeviceIsUnavailable) {
  failNext("cuInit", 100);
  EXPECT_EQ(moe_cuda_available(), 0);
  EXPECT_STREQ(moe_last_error(),
               "the CUDA driver loaded but cuInit (initializing the driver) failed: "
               "CUDA_ERROR_NO_DEVICE (no CUDA-capable device is detected): this machine has no "
               "NVIDIA GPU");
  EXPECT_EQ(moe_cuda_available(), 1) << "a later call tries again";
}

TEST_F(FakeDriver, DevicePointerLaunchForCallersManagingMemory) {
  open();
  const int64_t tokens = 3;
  std::vector<float> host(12);
  for (size_t i = 0; i < host.size(); ++i)
    host[i] = float(i);
  uint64_t buffers[3] = {0, 0, 0};
  ASSERT_EQ(moe_gpu_alloc(layer, 48, &buffers[0]), MOE_OK);
  ASSERT_EQ(moe_gpu_alloc(layer, 48, &buffers[1]), MOE_OK);
  ASSERT_EQ(moe_gpu_alloc(layer, 16, &buffers[2]), MOE_OK);
  ASSERT_EQ(moe_gpu_copy_to_device(layer, buffers[0], host.data(), 48), MOE_OK);
  EXPECT_EQ(moe_gpu_layer_reserve(layer, 4096), MOE_OK);
  int allocsBefore = allocCalls();
  for (int repeat = 0; repeat < 2; ++repeat)
    ASSERT_EQ(moe_gpu_layer_launch(layer, tokens, buffers, 3, nullptr), MOE_OK)
        << moe_last_error();
  EXPECT_EQ(allocCalls(), allocsBefore) << "a reserved layer allocates nothing when launching";
  ASSERT_EQ(moe_gpu_layer_synchronize(layer), MOE_OK);
  std::vector<float> y(12), sum(4);
  ASSERT_EQ(moe_gpu_copy_to_host(layer, y.data(), buffers[1], 48), MOE_OK);
  ASSERT_EQ(moe_gpu_copy_to_host(layer, sum.data(), buffers[2], 16), MOE_OK);
  for (size_t i = 0; i < 12; ++i)
    EXPECT_EQ(y[i], 3 * host[i]);
  EXPECT_EQ(sum[1], 1 + 5 + 9);
  EXPECT_NE(moe_gpu_layer_stream(layer), nullptr);

  EXPECT_EQ(moe_gpu_layer_launch(layer, tokens, buffers, 2, nullptr), MOE_ERR_INVALID_ARGUMENT);
  EXPECT_STREQ(moe_last_error(), "moe_gpu_layer_launch: 'fake' takes 3 device buffers (inputs "
                                 "then outputs), got 2");
  EXPECT_EQ(moe_gpu_layer_launch(layer, -1, buffers, 3, nullptr), MOE_ERR_INVALID_ARGUMENT);
  uint64_t withNull[3] = {buffers[0], 0, buffers[2]};
  EXPECT_EQ(moe_gpu_layer_launch(layer, tokens, withNull, 3, nullptr), MOE_ERR_INVALID_ARGUMENT);
  EXPECT_STREQ(moe_last_error(), "moe_gpu_layer_launch: device buffer #1 ('y') is null");
  failNext("cuMemcpyDtoH", 1);
  EXPECT_EQ(moe_gpu_copy_to_host(layer, y.data(), buffers[1], 48), MOE_ERR_DEVICE);
  EXPECT_NE(std::string(moe_last_error()).find("cuMemcpyDtoH (copying 48 bytes to the host)"),
            std::string::npos);
  for (uint64_t b : buffers)
    EXPECT_EQ(moe_gpu_free(layer, b), MOE_OK);
}

// --- a real GPU, when there is one ------------------------------------------

// test/unit/gpu-smoke: a small layer in real PTX (from smoke.ll via llc), so
// the runtime can be checked on a GPU without the compiler's PTX.
std::string smokeFile(const char *name) { return std::string(MOE_GPU_SMOKE_DIR) + "/" + name; }

TEST(RealGpu, SmokePtxAssemblesWithPtxas) {
  const char *ptxas = "/usr/local/cuda/bin/ptxas";
  if (access(ptxas, X_OK) != 0)
    GTEST_SKIP() << "no ptxas at " << ptxas;
  std::string cmd = std::string(ptxas) + " -arch=sm_90 " + smokeFile("smoke.ptx") + " -o /dev/null";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  EXPECT_EQ(moe_gpu_launch_check(smokeFile("smoke.launch").c_str()), MOE_OK) << moe_last_error();
}

TEST(RealGpu, SmokeLayerRunsOnTheDevice) {
  if (!moe_cuda_available())
    GTEST_SKIP() << "no CUDA device: " << moe_last_error();
  moe_gpu_layer *layer = nullptr;
  ASSERT_EQ(moe_gpu_layer_open(smokeFile("smoke.ptx").c_str(), smokeFile("smoke.launch").c_str(),
                               &layer),
            MOE_OK)
      << moe_last_error();
  for (int64_t tokens : {1, 1000, 4096, 7}) {
    std::vector<float> x(size_t(tokens * 4)), y(x.size(), -1), sum(4, -1);
    for (size_t i = 0; i < x.size(); ++i)
      x[i] = float(i % 97) / 8 - 6;
    int64_t xShape[2] = {tokens, 4}, sumShape[1] = {4};
    moe_tensor in{x.data(), MOE_F32, 2, xShape};
    moe_tensor outs[2] = {{y.data(), MOE_F32, 2, xShape}, {sum.data(), MOE_F32, 1, sumShape}};
    ASSERT_EQ(moe_gpu_layer_run(layer, &in, 1, outs, 2), MOE_OK) << moe_last_error();
    for (size_t i = 0; i < x.size(); ++i)
      ASSERT_EQ(y[i], 3 * x[i]) << "T = " << tokens << ", element " << i;
    for (int j = 0; j < 4; ++j) {
      double expected = 0;
      for (int64_t t = 0; t < tokens; ++t)
        expected += x[size_t(t * 4 + j)];
      // Multiples of 1/8 below 2^20 in magnitude: every order of the
      // atomic adds gives the exact sum.
      EXPECT_EQ(double(sum[size_t(j)]), expected) << "T = " << tokens << ", column " << j;
    }
  }
  moe_gpu_layer_close(layer);
}

} // namespace
