//===- QuantizedFfn.cpp - FFN banks in low-precision formats --------------===//
//
// Why micro-kernels here, when FP32 banks get loops emitted op by op: each
// format needs its own unpacking (nibbles, block scales, 16-bit floats) and
// its best instructions differ by ISA (vdpbf16ps, vpdpbusd, F16C), which is
// the IREE micro-kernel case: the compiler keeps the work decomposition
// (phases, items, threads, blocking for the caches) and calls one small
// named kernel per item, picked from the target (microKernelIsa). The
// kernels live in the runtime (runtime/src/ukernels, moe_ukernels.h), which
// the compiled code links anyway for its thread pool.
//
// Phase A: items (expert, block of w1/w3 rows) compute mid[p, i] =
// act(w1[i] . x[rows[p]]) (* w3[i] . x[rows[p]]) for every row p of the
// expert. Phase B: items (expert, block of w2 rows) compute
// out[p, j] = w2[j] . mid[p]. Empty experts cost one comparison per item.
//
//===----------------------------------------------------------------------===//

#include "QuantizedFfn.h"
#include "BlockedFfnEmitter.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "llvm/TargetParser/Host.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::lowering;

namespace {

bool hostHas(const llvm::StringMap<bool> &features, std::initializer_list<const char *> names) {
  for (const char *n : names) {
    auto it = features.find(n);
    if (it == features.end() || !it->second)
      return false;
  }
  return true;
}

Type ptrType(OpBuilder &b) { return LLVM::LLVMPointerType::get(b.getContext()); }

Value toI64(OpBuilder &b, Location loc, Value index) {
  return arith::IndexCastOp::create(b, loc, b.getI64Type(), index);
}

/// A buffer's address, strides and element size, for passing it to C.
struct RawView {
  Value base;            // aligned pointer of the allocation, as index
  Value offset;          // the view's offset, in elements
  SmallVector<Value> strides;
  int64_t elementBytes;

  static RawView of(OpBuilder &b, Location loc, Value view) {
    auto type = cast<MemRefType>(view.getType());
    auto meta = memref::ExtractStridedMetadataOp::create(b, loc, view);
    RawView r;
    r.base = memref::ExtractAlignedPointerAsIndexOp::create(b, loc, view);
    r.offset = meta.getOffset();
    r.strides.assign(meta.getStrides().begin(), meta.getStrides().end());
    r.elementBytes = type.getElementTypeBitWidth() / 8;
    return r;
  }

  /// The address of the element `elements` past the view's first.
  Value address(OpBuilder &b, Location loc, Value elements) const {
    Value e = arith::AddIOp::create(b, loc, offset, elements);
    Value byteOffset = arith::MulIOp::create(b, loc, e, cIndex(b, loc, elementBytes));
    Value addr = arith::AddIOp::create(b, loc, base, byteOffset);
    return LLVM::IntToPtrOp::create(b, loc, ptrType(b), toI64(b, loc, addr));
  }
  /// The address of the slice [i] of the outermost dimension (an expert's
  /// matrix, a row).
  Value addressOfSlice(OpBuilder &b, Location loc, Value i) const {
    return address(b, loc, arith::MulIOp::create(b, loc, i, strides[0]));
  }
  /// The byte stride between the rows of a weight ([N, rows, K] or a
  /// dense [rows, K]), as i64.
  Value rowByteStride(OpBuilder &b, Location loc) const {
    return byteStride(b, loc, unsigned(strides.size() - 2));
  }
  /// The byte stride of dimension d, as i64.
  Value byteStride(OpBuilder &b, Location loc, unsigned d) const {
    return toI64(b, loc, arith::MulIOp::create(b, loc, strides[d], cIndex(b, loc, elementBytes)));
  }
};

/// Rows of `rows` weight rows of `rowBytes` each (times `mats` matrices)
/// per item: about `blockBytes`, a multiple of 16, equal blocks.
int64_t weightRowBlock(int64_t rows, int64_t rowBytes, int64_t mats, int64_t blockBytes) {
  int64_t maxRows = std::max<int64_t>(16, blockBytes / std::max<int64_t>(1, rowBytes * mats));
  int64_t blocks = (rows + maxRows - 1) / maxRows;
  int64_t block = ((rows + blocks - 1) / blocks + 15) / 16 * 16;
  return std::min(rows, block);
}

/// Rows of an amx up item: a quarter of the expert's. The amx up kernel
/// packs its m tokens into tiles once per item (m x H values, as much work
/// as the products of a few dozen weight rows), so L2-sized items (64 rows
/// of H = 1024) would repeat that packing inter / 64 times per expert; its
/// tile loop reuses weights per 16 rows whatever the item's size.
int64_t amxUpRowBlock(int64_t inter) {
  int64_t quarter = ((inter + 3) / 4 + 15) / 16 * 16;
  return std::min(inter, quarter);
}

class QuantizedFfnEmitter {
public:
  QuantizedFfnEmitter(const QuantizedFfnConfig &cfg, const QuantizedFfnOperands &ops)
      : cfg(cfg), ops(ops) {}

  void emit(OpBuilder &b, Location loc) {
    inFunc = b.getInsertionBlock()->getParentOp();
    Value numRows = dimOf(b, loc, dense() ? ops.x : ops.rows, 0);
    auto midType = MemRefType::get({ShapedType::kDynamic, ops.inter}, b.getF32Type());
    mid = memref::AllocOp::create(b, loc, midType, ValueRange{numRows}, b.getI64IntegerAttr(64));
    emitPhaseA(b, loc);
    emitPhaseB(b, loc);
  }

private:
  int64_t storedRowBytes(int64_t k) const {
    return storedRowElements(ops.format, k) *
           (cast<MemRefType>(ops.w1.getType()).getElementTypeBitWidth() / 8);
  }

  /// Runs `body(g, n0, n1, r0, m)` for the items (expert g, weight rows
  /// [n0, n1) of `rows` in blocks of `block`) whose expert has rows.
  void emitItems(OpBuilder &b, Location loc, int64_t rows, int64_t block,
                 function_ref<void(OpBuilder &, Location, Value, Value, Value, Value, Value)> body) {
    int64_t blocks = (rows + block - 1) / block;
    ffn::emitItems(b, loc, ops.numGroups, blocks, cfg.parallel,
                   [&](OpBuilder &ib, Location l, Value g, Value blk) {
                     auto [r0, r1] = groupRange(ib, l, g);
                     Value any = arith::CmpIOp::create(ib, l, arith::CmpIPredicate::ult, r0, r1);
                     ffn::emitWhen(ib, l, any, [&](OpBuilder &wb, Location wl) {
                       Value n0 = arith::MulIOp::create(wb, wl, blk, cIndex(wb, wl, block));
                       Value n1 = arith::MinUIOp::create(
                           wb, wl, arith::AddIOp::create(wb, wl, n0, cIndex(wb, wl, block)),
                           cIndex(wb, wl, rows));
                       Value m = arith::SubIOp::create(wb, wl, r1, r0);
                       body(wb, wl, g, n0, n1, r0, m);
                     });
                   });
  }

  /// A dense FFN: one group, the tokens 0..T in order (no rows/offsets).
  bool dense() const { return !ops.rows; }

  std::pair<Value, Value> groupRange(OpBuilder &b, Location loc, Value g) const {
    if (dense())
      return {cIndex(b, loc, 0), dimOf(b, loc, ops.x, 0)};
    Value id = arith::AddIOp::create(b, loc, g, cIndex(b, loc, ops.firstExpert));
    Value next = arith::AddIOp::create(b, loc, id, cIndex(b, loc, 1));
    return {toIndex(b, loc, memref::LoadOp::create(b, loc, ops.offsets, ValueRange{id})),
            toIndex(b, loc, memref::LoadOp::create(b, loc, ops.offsets, ValueRange{next}))};
  }

  /// The expert's int8 row scales, or a null pointer.
  Value scalesOf(OpBuilder &b, Location loc, Value scales, Value g) const {
    if (!scales)
      return LLVM::ZeroOp::create(b, loc, ptrType(b));
    return RawView::of(b, loc, scales).addressOfSlice(b, loc, g);
  }

  std::string kernelName(StringRef phase) const {
    // The format's IR name is the symbols' (moe_ukernels.h).
    return ("moe_uk_ffn_" + phase + "_" + stringifyWeightFormat(ops.format) + "_" + cfg.isa).str();
  }

  void emitPhaseA(OpBuilder &b, Location loc) {
    int64_t mats = ops.w3 ? 2 : 1;
    int64_t block = weightRowBlock(ops.inter, storedRowBytes(ops.h), mats, cfg.blockBytes);
    if (cfg.isa == "amx" && ops.format == WeightFormat::bf16)
      block = std::max(block, amxUpRowBlock(ops.inter));
    emitItems(b, loc, ops.inter, block,
              [&](OpBuilder &ib, Location l, Value g, Value n0, Value n1, Value r0, Value m) {
                RawView x = RawView::of(ib, l, ops.x), w1 = RawView::of(ib, l, ops.w1);
                RawView md = RawView::of(ib, l, mid);
                Value rows = dense() ? LLVM::ZeroOp::create(ib, l, ptrType(ib)).getResult()
                                     : RawView::of(ib, l, ops.rows).address(ib, l, r0);
                Value w3 = ops.w3 ? RawView::of(ib, l, ops.w3).addressOfSlice(ib, l, g)
                                  : LLVM::ZeroOp::create(ib, l, ptrType(ib)).getResult();
                SmallVector<Value> args = {
                    x.address(ib, l, cIndex(ib, l, 0)), x.byteStride(ib, l, 0),
                    rows, toI64(ib, l, m), w1.addressOfSlice(ib, l, g), w3,
                    w1.rowByteStride(ib, l), scalesOf(ib, l, ops.s1, g),
                    scalesOf(ib, l, ops.s3, g), toI64(ib, l, n0), toI64(ib, l, n1),
                    cI64(ib, l, ops.h), cI32(ib, l, int32_t(ops.act)),
                    cI32(ib, l, int32_t(ops.precision)), md.addressOfSlice(ib, l, r0),
                    cI64(ib, l, ops.inter)};
                // The kernel's strides are in elements: ldx of f32 rows.
                args[1] = arith::DivUIOp::create(ib, l, args[1], cI64(ib, l, 4));
                call(ib, l, kernelName("up"), args);
              });
  }

  void emitPhaseB(OpBuilder &b, Location loc) {
    int64_t block = weightRowBlock(ops.h, storedRowBytes(ops.inter), 1, cfg.blockBytes);
    emitItems(b, loc, ops.h, block,
              [&](OpBuilder &ib, Location l, Value g, Value n0, Value n1, Value r0, Value m) {
                RawView md = RawView::of(ib, l, mid), w2 = RawView::of(ib, l, ops.w2);
                RawView out = RawView::of(ib, l, ops.out);
                SmallVector<Value> args = {
                    md.addressOfSlice(ib, l, r0), cI64(ib, l, ops.inter), toI64(ib, l, m),
                    w2.addressOfSlice(ib, l, g), w2.rowByteStride(ib, l),
                    scalesOf(ib, l, ops.s2, g), toI64(ib, l, n0), toI64(ib, l, n1),
                    cI64(ib, l, ops.inter), cI32(ib, l, int32_t(ops.precision)),
                    out.addressOfSlice(ib, l, r0),
                    arith::DivUIOp::create(ib, l, out.byteStride(ib, l, 0), cI64(ib, l, 4))};
                call(ib, l, kernelName("down"), args);
              });
  }

  void call(OpBuilder &b, Location loc, StringRef name, ValueRange args) const {
    func::FuncOp fn = declareRuntimeFunction(inFunc, name, args.getTypes(), {});
    func::CallOp::create(b, loc, fn, args);
  }

  const QuantizedFfnConfig &cfg;
  const QuantizedFfnOperands &ops;
  Operation *inFunc = nullptr;
  Value mid;
};

} // namespace

std::string mlir::moe::lowering::microKernelIsa(WeightFormat format, StringRef requested,
                                                int64_t vectorWidth) {
  if (!requested.empty())
    return requested.str();
  llvm::StringMap<bool> f = llvm::sys::getHostCPUFeatures();
  if (vectorWidth >= 16 && hostHas(f, {"avx512f", "avx512bw", "avx512vl", "avx512dq"})) {
    // AMX tiles for bf16 where the CPU has them: the kernels themselves fall
    // back to vdpbf16ps for experts of few rows and when the OS refuses the
    // tile state (moe_ukernels.h, isa amx).
    if (format == WeightFormat::bf16 && hostHas(f, {"avx512bf16", "avx512vnni", "amx-tile", "amx-bf16"}))
      return "amx";
    if (format == WeightFormat::bf16 && hostHas(f, {"avx512bf16"}))
      return "avx512bf16";
    if ((format == WeightFormat::int8 || format == WeightFormat::q8_0 ||
         format == WeightFormat::q4_0) &&
        hostHas(f, {"avx512vnni"}))
      return "avx512vnni";
    return "avx512";
  }
  if (vectorWidth >= 8 && hostHas(f, {"avx2", "fma", "f16c"}))
    return "avx2";
  return "generic";
}

void mlir::moe::lowering::emitQuantizedFfn(OpBuilder &b, Location loc,
                                           const QuantizedFfnConfig &cfg,
                                           const QuantizedFfnOperands &ops) {
  QuantizedFfnEmitter(cfg, ops).emit(b, loc);
}
