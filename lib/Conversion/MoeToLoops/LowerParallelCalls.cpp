//===- LowerParallelCalls.cpp - markers -> moe_rt_parallel_for ------------===//
//
//   llvm.call @__moe_parallel__B(%n, %a0, %a1, ...)
// becomes
//   %ctx = llvm.alloca !llvm.struct<(a0, a1, ...)>     (function entry)
//   store %a0.. into %ctx
//   llvm.call @moe_rt_parallel_for(%n, @__moe_tramp__B, %ctx)
// with the trampoline running B(i, a0, a1, ...) for i in [begin, end).
//
//===----------------------------------------------------------------------===//

#include "LoweringUtils.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "llvm/ADT/StringSet.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOELOWERPARALLELCALLS
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe::lowering;

namespace {
constexpr llvm::StringLiteral kRuntimeFn = "moe_rt_parallel_for";

struct LowerParallelCallsPass
    : public mlir::moe::impl::MoeLowerParallelCallsBase<LowerParallelCallsPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    auto ptrTy = LLVM::LLVMPointerType::get(ctx);
    auto i64 = IntegerType::get(ctx, 64);
    SmallVector<LLVM::CallOp> markers;
    module.walk([&](LLVM::CallOp call) {
      if (auto callee = call.getCallee(); callee && callee->starts_with(kParallelMarkerPrefix))
        markers.push_back(call);
    });
    if (markers.empty())
      return;

    OpBuilder mb = OpBuilder::atBlockEnd(module.getBody());
    auto runtimeFn = module.lookupSymbol<LLVM::LLVMFuncOp>(kRuntimeFn);
    if (!runtimeFn)
      runtimeFn = LLVM::LLVMFuncOp::create(
          mb, module.getLoc(), kRuntimeFn,
          LLVM::LLVMFunctionType::get(LLVM::LLVMVoidType::get(ctx), {i64, ptrTy, ptrTy}));

    llvm::StringSet<> markerNames;
    for (LLVM::CallOp call : markers) {
      StringRef markerName = *call.getCallee();
      markerNames.insert(markerName);
      StringRef bodyName = markerName.drop_front(kParallelMarkerPrefix.size());
      auto body = module.lookupSymbol<LLVM::LLVMFuncOp>(bodyName);
      if (!body) {
        call.emitOpError() << "no outlined body '" << bodyName << "'";
        return signalPassFailure();
      }
      Location loc = call.getLoc();
      SmallVector<Type> fieldTypes;
      for (Value v : call.getArgOperands().drop_front())
        fieldTypes.push_back(v.getType());
      auto structTy = LLVM::LLVMStructType::getLiteral(ctx, fieldTypes);

      // The trampoline, once per body.
      std::string trampName = ("__moe_tramp__" + bodyName).str();
      auto tramp = module.lookupSymbol<LLVM::LLVMFuncOp>(trampName);
      if (!tramp) {
        tramp = LLVM::LLVMFuncOp::create(
            mb, loc, trampName,
            LLVM::LLVMFunctionType::get(LLVM::LLVMVoidType::get(ctx), {ptrTy, i64, i64}));
        tramp.setLinkage(LLVM::Linkage::Internal);
        Block *entry = tramp.addEntryBlock(mb);
        Block *header = new Block(), *bodyBlock = new Block(), *exit = new Block();
        tramp.getBody().push_back(header);
        tramp.getBody().push_back(bodyBlock);
        tramp.getBody().push_back(exit);
        header->addArgument(i64, loc);
        OpBuilder b = OpBuilder::atBlockEnd(entry);
        Value ctxArg = entry->getArgument(0);
        SmallVector<Value> fields;
        for (auto [i, t] : llvm::enumerate(fieldTypes)) {
          Value p = LLVM::GEPOp::create(b, loc, ptrTy, structTy, ctxArg,
                                        ArrayRef<LLVM::GEPArg>{0, int32_t(i)});
          fields.push_back(LLVM::LoadOp::create(b, loc, t, p));
        }
        LLVM::BrOp::create(b, loc, ValueRange{entry->getArgument(1)}, header);
        b.setInsertionPointToEnd(header);
        Value iv = header->getArgument(0);
        Value more = LLVM::ICmpOp::create(b, loc, LLVM::ICmpPredicate::slt, iv,
                                          entry->getArgument(2));
        LLVM::CondBrOp::create(b, loc, more, bodyBlock, exit);
        b.setInsertionPointToEnd(bodyBlock);
        SmallVector<Value> args{iv};
        args.append(fields);
        LLVM::CallOp::create(b, loc, body, args);
        Value one = LLVM::ConstantOp::create(b, loc, i64, b.getI64IntegerAttr(1));
        LLVM::BrOp::create(b, loc, ValueRange{LLVM::AddOp::create(b, loc, iv, one)}, header);
        b.setInsertionPointToEnd(exit);
        LLVM::ReturnOp::create(b, loc, ValueRange{});
      }

      // The context, allocated once in the caller's entry block.
      auto caller = call->getParentOfType<LLVM::LLVMFuncOp>();
      OpBuilder eb = OpBuilder::atBlockBegin(&caller.getBody().front());
      Value one = LLVM::ConstantOp::create(eb, loc, i64, eb.getI64IntegerAttr(1));
      Value ctxPtr = LLVM::AllocaOp::create(eb, loc, ptrTy, structTy, one);
      OpBuilder b(call);
      for (auto [i, v] : llvm::enumerate(call.getArgOperands().drop_front())) {
        Value p = LLVM::GEPOp::create(b, loc, ptrTy, structTy, ctxPtr,
                                      ArrayRef<LLVM::GEPArg>{0, int32_t(i)});
        LLVM::StoreOp::create(b, loc, v, p);
      }
      Value fnPtr = LLVM::AddressOfOp::create(b, loc, ptrTy, tramp.getSymName());
      LLVM::CallOp::create(b, loc, runtimeFn,
                           ValueRange{call.getArgOperands()[0], fnPtr, ctxPtr});
      call.erase();
    }
    for (auto &name : markerNames)
      if (auto decl = module.lookupSymbol<LLVM::LLVMFuncOp>(name.getKey()))
        decl.erase();
  }
};
} // namespace
