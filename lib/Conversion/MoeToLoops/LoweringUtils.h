//===- LoweringUtils.h - shared helpers of the loop-emitting passes -*- C++ -*-===//
//
// The moe lowerings emit scf/memref/vector code on buffers. Values that are
// still tensors between passes are bridged with bufferization.to_buffer /
// to_tensor, which one-shot-bufferize folds away; these helpers hide the
// bridge, the status slot, and the vector idioms
// (dot products, activations) every pass needs.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_CONVERSION_LOWERINGUTILS_H
#define MOE_LIB_CONVERSION_LOWERINGUTILS_H

#include "moe/Conversion/Passes.h"
#include "moe/IR/MoeOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Rewrite/FrozenRewritePatternSet.h"

namespace mlir::moe::lowering {

/// The name of the attribute marking the status slot made by moe-buffer-abi.
constexpr llvm::StringLiteral kStatusAttr = "moe.status";
/// Marks the error-detail slot that moe-buffer-abi makes with
/// `error-details` (the CPU pipeline): kErrorDetailSize i64s, the first
/// failed check's [code, token, slot, id, bound] (code 0: none yet). On
/// failure the entry function hands them to the runtime's
/// kErrorDetailFn, which puts them into the error message.
constexpr llvm::StringLiteral kErrorDetailAttr = "moe.error_detail";
constexpr int64_t kErrorDetailSize = 5;
constexpr llvm::StringLiteral kErrorDetailFn = "moe_rt_error_detail";
/// moe-outline-parallel calls `<prefix><body>(n, captured...)` for each
/// outlined loop; moe-lower-parallel-calls turns those calls into thread-pool
/// calls, finding the body by stripping the prefix.
constexpr llvm::StringLiteral kParallelMarkerPrefix = "__moe_parallel__";
/// Marks an scf.for whose iterations are independent (each writes only its
/// own elements and reads nothing another iteration writes). The CPU
/// pipeline ignores it; moe-gpu-map-loops maps such loops onto GPU blocks
/// and threads (the others become single-thread kernels).
constexpr llvm::StringLiteral kGpuParallelAttr = "moe.gpu.parallel";
/// Marks `loop` with kGpuParallelAttr and returns it.
scf::ForOp markParallel(scf::ForOp loop);
/// Marks `loop` (over [0, n) by 1, without results) with the dialect's
/// `moe.parallel` attribute: its iterations are independent work items that
/// moe-outline-parallel hands to the runtime's thread pool.
void markThreadPoolLoop(scf::ForOp loop);
/// Whether `loop` is marked by markThreadPoolLoop.
bool isThreadPoolLoop(scf::ForOp loop);
/// The CPU form of a kGpuParallelAttr loop over [0, n): split into
/// thread-pool items (markThreadPoolLoop) of `chunk` iterations. The
/// function-entry scratch allocas the loop uses (the per-iteration
/// workspace a GPU thread keeps private) get private copies per item, in an
/// alloca scope; the status slot stays shared. Leaves the loop alone (false)
/// when a scratch buffer is also used outside it or the loop does not start
/// at 0 with step 1.
bool chunkForThreadPool(scf::ForOp loop, int64_t chunk);

/// f32 lanes of the widest vector unit of the host: 16 with AVX-512F, 8
/// otherwise (AVX2 and SSE machines still get correct code: LLVM splits).
int64_t hostVectorWidth();
/// `requested` if positive, else hostVectorWidth().
int64_t resolveVectorWidth(int64_t requested);
/// Rows of an expert GEMM tile: the register block is rows x {w1, w3}
/// vector accumulators, so 8 rows with AVX-512's 32 vector registers and 4
/// with 16 (AVX2). `requested` wins if positive.
int64_t resolveRowTile(int64_t requested);

/// The memref type a tensor of `type` lowers to (identity layout).
MemRefType bufferTypeOf(Type tensorType);
/// The buffer behind a tensor value, to be read: the buffer a lowered op
/// wrote (looking through its bufferization.to_tensor), or a read-only
/// bufferization.to_buffer that one-shot-bufferize resolves.
Value getBuffer(OpBuilder &b, Location loc, Value tensor);
/// The buffer behind a tensor value, to be written in place: the buffer a
/// lowered op wrote, else a fresh copy (the tensor itself keeps its value).
Value getWritableBuffer(OpBuilder &b, Location loc, Value tensor);
/// The tensor a lowering hands on: `bufferization.to_tensor restrict` of the
/// buffer it allocated and wrote (the next lowering looks through it).
Value asTensor(OpBuilder &b, Location loc, Value buffer, Type tensorType);
/// memref.alloc for a tensor type; dynamic dims take `dynamicSizes`.
Value allocFor(OpBuilder &b, Location loc, Type tensorType,
               ValueRange dynamicSizes);
/// A stack buffer allocated once at the function entry (never in a loop).
Value entryAlloca(Operation *inFunc, MemRefType type);

/// The status slot of the enclosing function (made by moe-buffer-abi), or a
/// null Value when the function has none (then checks are not recorded).
Value statusSlot(Operation *inFunc);
/// Records `code` in the status slot when `failed` holds (i1). With
/// `detail` (token, slot, id, bound: index or integer values; -1 for one
/// that does not apply) and an error-detail slot in the function, the first
/// failed check also records them there, for the run-time message.
void recordError(OpBuilder &b, Location loc, Operation *inFunc, Value failed,
                 int32_t code, ValueRange detail = {});
/// The error-detail slot of the enclosing function, or a null Value.
Value errorDetailSlot(Operation *inFunc);
/// True for the entry-block buffers every part of one call shares (the
/// status and error-detail slots): never privatized per thread.
bool isCallSlot(Operation *op);

Value cIndex(OpBuilder &b, Location loc, int64_t v);
Value cF32(OpBuilder &b, Location loc, float v);
Value cI32(OpBuilder &b, Location loc, int32_t v);
Value cI64(OpBuilder &b, Location loc, int64_t v);
/// The runtime function `name(args) -> results` (a C symbol the compiled
/// code calls: MPI exchanges, micro-kernels), declared private in the
/// module on first use.
func::FuncOp declareRuntimeFunction(Operation *inModule, StringRef name, TypeRange args,
                                    TypeRange results);
Value dimOf(OpBuilder &b, Location loc, Value buffer, int64_t d);
Value toIndex(OpBuilder &b, Location loc, Value i32);
Value toI32(OpBuilder &b, Location loc, Value index);

/// A row of a buffer: all indices but the last.
struct RowRef {
  Value buffer;
  SmallVector<Value> prefix;
};

/// sums[r][w] = rows[r] · weights[w] over `len` contiguous elements: a
/// register block of rows x weights `width`-lane vector accumulators (each
/// loaded vector used by the whole block), one horizontal reduction each,
/// scalar tail. The elements are [offset, offset + len) of each row
/// (offset 0 when null).
SmallVector<SmallVector<Value>> emitDotTile(OpBuilder &b, Location loc,
                                            ArrayRef<RowRef> rows,
                                            ArrayRef<RowRef> weights,
                                            int64_t len, int64_t width,
                                            Value offset = {});

/// Sum over c < len of a[aPrefix..., c] * bv[bPrefix..., c] (a 1x1 tile).
Value emitDot(OpBuilder &b, Location loc, Value a, ValueRange aPrefix, Value bv,
              ValueRange bPrefix, int64_t len, int64_t width);

/// out[outRow, :] += w * src[srcRow, :] over `len` contiguous elements.
void emitAxpy(OpBuilder &b, Location loc, Value out, Value outRow, Value src,
              Value srcRow, Value w, int64_t len, int64_t width);

/// The activation (silu for swiglu, gelu for geglu) of an f32 or of an f32
/// vector, elementwise.
Value emitActivation(OpBuilder &b, Location loc, Activation act,
                     Value v);

/// Emits `for (i = lb; i < ub; ++i) body(i)` and returns the loop.
scf::ForOp emitFor(OpBuilder &b, Location loc, Value lb, Value ub,
             function_ref<void(OpBuilder &, Location, Value)> body);
/// Emits a loop carrying values; returns the final values.
ValueRange emitForWithArgs(
    OpBuilder &b, Location loc, Value lb, Value ub, ValueRange init,
    function_ref<SmallVector<Value>(OpBuilder &, Location, Value, ValueRange)>
        body);

/// scf.if with results: each builder returns the values its branch yields.
ValueRange emitIfElse(
    OpBuilder &b, Location loc, TypeRange types, Value cond,
    function_ref<SmallVector<Value>(OpBuilder &, Location)> thenBody,
    function_ref<SmallVector<Value>(OpBuilder &, Location)> elseBody);

/// scf.if with no results: `thenBody` or `elseBody` (each builds its region
/// before the yield this adds).
void emitIfThenElse(OpBuilder &b, Location loc, Value cond,
                    function_ref<void(OpBuilder &, Location)> thenBody,
                    function_ref<void(OpBuilder &, Location)> elseBody);

/// Scalar argmax over buf[0..n) skipping entries where `masked` (i1 buffer,
/// may be null) is set; returns (index as index, value). Ties: lower index.
std::pair<Value, Value> emitArgmax(OpBuilder &b, Location loc, Value buf,
                                   Value masked, int64_t n);

/// One moe.dispatch being lowered. The CPU (moe-lower-dispatch) and GPU
/// (moe-gpu-map-dispatch) lowerings emit the same counting sort and differ
/// only in how they run it (loops or kernels) and how they bump the
/// per-expert counters (plain or atomic updates), so the sort's pieces live
/// here.
struct DispatchLowering {
  DispatchOp op;
  Value ids;                    // [T, K] expert ids
  Value t;                      // T
  int64_t k, e, slots, total;   // K, E, K + S, E + S
  Value offsets, rows, slotRows; // the results' buffers

  /// Reads the sizes and allocates the results' buffers before `op`.
  DispatchLowering(OpBuilder &b, DispatchOp op);

  /// The expert of slot s of token t (an i32; -1 when unused or invalid;
  /// slots >= K are the shared experts E + (s - K)). With `check`, an id
  /// outside [-1, E) records MOE_ERR_EXPERT_ID.
  Value expertOf(OpBuilder &b, Location loc, Value token, Value s, bool check) const;
  /// For every slot of `token`: `used(builder, loc, slot, expert)` when the
  /// slot's expert is used, else `unused(builder, loc, slot)` (if given).
  void forEachSlot(OpBuilder &b, Location loc, Value token, bool check,
                   function_ref<void(OpBuilder &, Location, Value, Value)> used,
                   function_ref<void(OpBuilder &, Location, Value)> unused = nullptr) const;
  /// offsets = the exclusive prefix sum of the E + S counts in `cursor`
  /// (and offsets[E + S] the total); each cursor becomes its expert's first
  /// row. `zero` is the index 0 the loop starts from.
  void emitPrefixSum(OpBuilder &b, Location loc, Value cursor, Value zero) const;
  /// Scatters the used slots of `token`: the row `claimRow(builder, loc,
  /// expert)` returns (an i32, taken from the expert's cursor) gets the
  /// token, and slot_rows records it (-1 for unused slots).
  void scatterToken(OpBuilder &b, Location loc, Value token,
                    function_ref<Value(OpBuilder &, Location, Value)> claimRow) const;
  /// Replaces the op's results with (tensor views of) the buffers.
  void replaceOp(RewriterBase &rewriter);
};

//===----------------------------------------------------------------------===//
// Lowerings as rewrite patterns (include/moe/Conversion/*/Patterns.h).
//===----------------------------------------------------------------------===//

/// Replaces `op`'s results with tensor views (asTensor) of `buffers`, one
/// per result, through `rewriter`.
void replaceOpWithBuffers(RewriterBase &rewriter, Operation *op,
                          ValueRange buffers);

/// How many ops nested in `root` `pred` holds for.
int64_t countOps(Operation *root, function_ref<bool(Operation *)> pred);

/// Applies lowering patterns to the ops nested in `root` with
/// mlir::walkAndApplyPatterns: one post-order walk, each op rewritten at
/// most once, no folding or dead-code removal, so the lowerings run in the
/// order and produce the IR the hand-written walks did. The driver keeps no
/// worklist and installs no listener, which is what lets the shared emit
/// helpers build scratch buffers at the function entry (entryAlloca) and
/// move loops (chunkForThreadPool) with builders of their own. Every op
/// `isLowered` holds for that is still there afterwards (a pattern declined
/// it with notifyMatchFailure) is an error: failure.
LogicalResult applyLoweringPatterns(Operation *root,
                                    const FrozenRewritePatternSet &patterns,
                                    function_ref<bool(Operation *)> isLowered);
/// Reports every op nested in `root` that `isLowered` holds for as one
/// that could not be lowered; failure if there is one.
LogicalResult reportUnlowered(Operation *root, function_ref<bool(Operation *)> isLowered);

} // namespace mlir::moe::lowering

#endif // MOE_LIB_CONVERSION_LOWERINGUTILS_H
