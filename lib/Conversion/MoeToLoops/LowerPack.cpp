//===- LowerPack.cpp - packed weights: moe.pack and their slices ----------===//
//
// moe.pack becomes a 64-byte-aligned buffer of the packed shape filled row
// by row (the padding zeroed); it runs once, in an entry's _prepare
// function. A tensor.extract_slice of a buffer (how a run entry reads a
// packed weight) becomes a memref.subview: the kernels then index the
// logical weight through the packed row stride, with no copy.
//
//===----------------------------------------------------------------------===//

#include "LoweringUtils.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOELOWERPACK
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe::lowering;
namespace mdl = mlir::moe;

namespace {
/// Bytes of a cache line: the vector copies move one line at a time.
constexpr int64_t kLineBytes = 64;

struct LowerPackPass : public mlir::moe::impl::MoeLowerPackBase<LowerPackPass> {
  void runOnOperation() override {
    SmallVector<mdl::PackOp> packs;
    SmallVector<tensor::ExtractSliceOp> slices;
    getOperation().walk([&](Operation *op) {
      if (auto pack = dyn_cast<mdl::PackOp>(op))
        packs.push_back(pack);
      else if (auto slice = dyn_cast<tensor::ExtractSliceOp>(op))
        slices.push_back(slice);
    });
    for (mdl::PackOp op : packs) {
      lowerPack(op);
      ++numPacks;
    }
    for (tensor::ExtractSliceOp op : slices) {
      lowerSlice(op);
      ++numSlices;
    }
  }

  /// packed[i..., c] = c < C ? source[i..., c] : 0, one loop per dim.
  void lowerPack(mdl::PackOp op) {
    OpBuilder b(op);
    Location loc = op.getLoc();
    Value src = getBuffer(b, loc, op.getSource());
    Value dst = allocFor(b, loc, op.getPacked().getType(), ValueRange{});
    auto srcType = cast<MemRefType>(src.getType());
    const int64_t rank = srcType.getRank(), cols = srcType.getShape().back();
    const int64_t stride = op.getLayout().getRowStride();
    SmallVector<Value> idx;
    std::function<void(OpBuilder &, Location, int64_t)> nest = [&](OpBuilder &lb, Location l,
                                                                   int64_t d) {
      if (d == rank - 1) {
        // Whole 64-byte lines as vectors, then the row's tail and the
        // padding element by element.
        const int64_t kLine = kLineBytes / (srcType.getElementTypeBitWidth() / 8);
        const int64_t lines = cols / kLine;
        auto vecType = VectorType::get({kLine}, srcType.getElementType());
        if (lines > 0)
          scf::ForOp::create(
              lb, l, cIndex(lb, l, 0), cIndex(lb, l, lines * kLine), cIndex(lb, l, kLine),
              ValueRange{}, [&](OpBuilder &cb, Location cl, Value c, ValueRange) {
                SmallVector<Value> at(idx);
                at.push_back(c);
                vector::StoreOp::create(cb, cl, vector::LoadOp::create(cb, cl, vecType, src, at),
                                        dst, at);
                scf::YieldOp::create(cb, cl);
              });
        emitFor(lb, l, cIndex(lb, l, lines * kLine), cIndex(lb, l, cols), [&](OpBuilder &cb, Location cl, Value c) {
          SmallVector<Value> at(idx);
          at.push_back(c);
          memref::StoreOp::create(cb, cl, memref::LoadOp::create(cb, cl, src, at), dst, at);
        });
        emitFor(lb, l, cIndex(lb, l, cols), cIndex(lb, l, stride), [&](OpBuilder &cb, Location cl, Value c) {
          SmallVector<Value> at(idx);
          at.push_back(c);
          Type et = srcType.getElementType();
          Value zero = arith::ConstantOp::create(cb, cl, et, cb.getZeroAttr(et));
          memref::StoreOp::create(cb, cl, zero, dst, at);
        });
        return;
      }
      scf::ForOp loop = emitFor(lb, l, cIndex(lb, l, 0), cIndex(lb, l, srcType.getDimSize(d)),
                                [&](OpBuilder &ib, Location il, Value i) {
                                  idx.push_back(i);
                                  nest(ib, il, d + 1);
                                  idx.pop_back();
                                });
      // The outermost dimension (a bank's experts, a matrix's rows) is
      // split over the pool: the rows are independent.
      if (d == 0)
        markThreadPoolLoop(loop);
    };
    nest(b, loc, 0);
    op.getPacked().replaceAllUsesWith(asTensor(b, loc, dst, op.getPacked().getType()));
    op.erase();
  }

  /// A static slice of a buffer: its strided view.
  void lowerSlice(tensor::ExtractSliceOp op) {
    OpBuilder b(op);
    Location loc = op.getLoc();
    Value src = getBuffer(b, loc, op.getSource());
    Value view = memref::SubViewOp::create(b, loc, src, op.getMixedOffsets(), op.getMixedSizes(),
                                           op.getMixedStrides());
    op.getResult().replaceAllUsesWith(asTensor(b, loc, view, op.getType()));
    op.erase();
  }
};
} // namespace
