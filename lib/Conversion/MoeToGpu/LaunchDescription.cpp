//===- LaunchDescription.cpp - the .launch file of an outlined layer ------===//
//
// Reads the host side of the entry function after moe-gpu-outline and
// gpu-kernel-outlining (allocations, gpu.launch_func in order) and writes
// the text format of docs/gpu-launch.md. Every grid size must be
// ceil((a*T + b) / d) * m + c of the token count and every scalar kernel
// argument T or a constant; anything else is reported at its location.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/GpuLaunch.h"
#include "moe/Support/Tensor.h"

#include "GpuMapping.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/Support/FormatVariadic.h"

using namespace mlir;
using namespace mlir::moe::gpumap;

namespace {

std::optional<GridExpr> gridExprOf(Value v) {
  if (auto c = getConstantIntValue(v))
    return GridExpr{0, *c, 1, 1, 0};
  Operation *def = v.getDefiningOp();
  if (!def)
    return std::nullopt;
  if (auto add = dyn_cast<arith::AddIOp>(def)) {
    for (int i = 0; i < 2; ++i)
      if (auto c = getConstantIntValue(add->getOperand(1 - i)))
        if (auto e = gridExprOf(add->getOperand(i))) {
          (*e)[4] += *c;
          return e;
        }
    return std::nullopt;
  }
  if (isa<arith::CeilDivUIOp, arith::CeilDivSIOp>(def)) {
    auto d = getConstantIntValue(def->getOperand(1));
    auto aff = affineInT(def->getOperand(0));
    if (!d || !aff || *d < 1)
      return std::nullopt;
    return GridExpr{aff->a, aff->b, *d, 1, 0};
  }
  if (auto aff = affineInT(v))
    return GridExpr{aff->a, aff->b, 1, 1, 0};
  return std::nullopt;
}

std::string exprText(const GridExpr &e) {
  return llvm::formatv("{0} {1} {2} {3} {4}", e[0], e[1], e[2], e[3], e[4]).str();
}

/// The element type's name in a launch description: the runtime parses it
/// with the same names (moe_dtype) the rest of the project uses.
std::optional<std::string> elementName(Type t) {
  std::optional<::moe::DType> dtype;
  if (t.isF32())
    dtype = ::moe::DType::F32;
  else if (t.isBF16())
    dtype = ::moe::DType::BF16;
  else if (t.isF16())
    dtype = ::moe::DType::F16;
  else if (t.isInteger(32))
    dtype = ::moe::DType::I32;
  if (!dtype)
    return std::nullopt;
  return std::string(::moe::dtypeName(*dtype));
}

} // namespace

LogicalResult (::moe::writeLaunchDescription)(ModuleOp module, StringRef entry, StringRef chip,
                                          unsigned numInputs, llvm::raw_ostream &os) {
  auto func = module.lookupSymbol<func::FuncOp>(entry);
  if (!func)
    return module.emitError() << "no function '" << entry << "' to describe";
  std::string text;
  llvm::raw_string_ostream out(text);
  out << "moe-gpu-launch 1\n";
  out << "entry " << entry << "\n";
  out << "chip " << chip << "\n";
  llvm::DenseMap<Value, std::string> names;
  for (BlockArgument arg : func.getArguments()) {
    auto type = dyn_cast<MemRefType>(arg.getType());
    auto elem = type ? elementName(type.getElementType()) : std::nullopt;
    if (!elem)
      return func.emitOpError() << "argument #" << arg.getArgNumber()
                                << " is not a f32/bf16/f16/i32 buffer: " << arg.getType();
    bool input = arg.getArgNumber() < numInputs;
    std::string name = (input ? "in" : "out") +
                       std::to_string(input ? arg.getArgNumber() : arg.getArgNumber() - numInputs);
    names[arg] = name;
    out << "arg " << name << (input ? " in " : " out ") << *elem << " " << type.getRank();
    for (int64_t d : type.getShape())
      out << " " << (ShapedType::isDynamic(d) ? std::string("T") : std::to_string(d));
    out << "\n";
  }
  // Device scratch: every buffer the host allocates.
  std::string statusName;
  unsigned scratchCount = 0;
  for (auto alloc : func.getBody().getOps<memref::AllocOp>()) {
    MemRefType type = alloc.getType();
    int64_t elemBytes = type.getElementTypeBitWidth() / 8;
    if (type.getElementType().isInteger(1))
      elemBytes = 1;
    int64_t staticCount = elemBytes;
    for (int64_t d : type.getShape())
      if (!ShapedType::isDynamic(d))
        staticCount *= d;
    GridExpr bytes{0, 1, 1, staticCount, 0};
    if (type.getNumDynamicDims() > 1)
      return alloc.emitOpError() << "device buffer with more than one dynamic dimension";
    if (type.getNumDynamicDims() == 1) {
      auto aff = affineInT(alloc.getDynamicSizes()[0]);
      if (!aff)
        return alloc.emitOpError() << "device buffer whose size is not affine in the token count T";
      bytes = GridExpr{aff->a, aff->b, 1, staticCount, 0};
    }
    std::string name = "s" + std::to_string(scratchCount++);
    names[alloc.getResult()] = name;
    if (alloc->hasAttr(mlir::moe::lowering::kStatusAttr))
      statusName = name;
    out << "scratch " << name << " " << exprText(bytes) << "\n";
  }
  if (!statusName.empty())
    out << "status " << statusName << "\n";
  // Kernels, in order.
  WalkResult bad = func.walk([&](gpu::LaunchFuncOp launch) {
    out << "kernel " << launch.getKernelName().getValue() << " grid";
    for (Value g : {launch.getGridSizeX(), launch.getGridSizeY(), launch.getGridSizeZ()}) {
      auto e = gridExprOf(g);
      if (!e) {
        launch.emitOpError() << "has a grid size that is not ceil((a*T + b) / d) * m + c of the token count";
        return WalkResult::interrupt();
      }
      out << " " << exprText(*e);
    }
    out << " block";
    for (Value v : {launch.getBlockSizeX(), launch.getBlockSizeY(), launch.getBlockSizeZ()}) {
      auto c = getConstantIntValue(v);
      if (!c) {
        launch.emitOpError() << "has a block size that is not a constant";
        return WalkResult::interrupt();
      }
      out << " " << *c;
    }
    out << " smem 0 args";
    for (Value v : launch.getKernelOperands()) {
      Value base = v;
      while (auto cast = base.getDefiningOp<memref::ReinterpretCastOp>())
        base = cast.getSource();
      if (isa<MemRefType>(base.getType())) {
        auto it = names.find(base);
        if (it == names.end()) {
          launch.emitOpError() << "passes a buffer that is neither an argument nor a device buffer";
          return WalkResult::interrupt();
        }
        out << " " << it->second;
        continue;
      }
      auto aff = affineInT(v);
      if (aff && aff->a == 1 && aff->b == 0) {
        out << " T";
      } else if (aff && aff->a == 0) {
        out << " i64:" << aff->b;
      } else {
        launch.emitOpError() << "passes a scalar that is neither T nor a constant";
        return WalkResult::interrupt();
      }
    }
    out << "\n";
    return WalkResult::advance();
  });
  if (bad.wasInterrupted())
    return failure();
  os << text;
  return success();
}
