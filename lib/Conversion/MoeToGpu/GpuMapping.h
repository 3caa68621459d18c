//===- GpuMapping.h - the block/thread-mapped stage of the GPU lowering -*- C++ -*-===//
//
// The mapped stage's contract, shared by the passes that build it
// (moe-gpu-map-*), the pass that runs it on the host (moe-gpu-to-host) and
// the pass that outlines it for the device (moe-gpu-outline):
//
//   scf.forall (%bx[, %by]) in (%gx[, %gy]) {        // one kernel launch
//     <uniform scalar code, reads only>               // same in every thread
//     %tile = memref.alloc() : memref<..., #gpu.address_space<workgroup>>
//     %acc  = memref.alloc() : memref<BSx..., #gpu.address_space<private>>
//     [scf.if %uniform {]                             // device-side early exit
//       scf.forall (%tx) in (BS) {                    // the block's threads
//         phase 1; gpu.barrier; phase 2 ...           // barriers only at the top
//       } {mapping = [#gpu.thread<x>]}                // level or in uniform scf.for
//     [}]
//   } {mapping = [#gpu.block<x>, ...], moe.gpu.kernel = "name",
//      moe.gpu.grid = [array<i64: a, b, d, m, c>, ...]}
//
// No SSA value defined in one barrier phase is used in another: what a
// thread keeps across a barrier lives in a private buffer whose first index
// is the thread id (per-thread storage), what threads share lives in
// workgroup memory. That makes host execution a plain loop split: each
// phase becomes `for tid in [0, BS)`.
//
// moe.gpu.grid gives each grid size as ceil((a*T + b) / d) * m + c of the
// token count T, which is what the launch description (docs/gpu-launch.md)
// records.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_CONVERSION_MOETOGPU_GPUMAPPING_H
#define MOE_LIB_CONVERSION_MOETOGPU_GPUMAPPING_H

#include "../MoeToLoops/LoweringUtils.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"

#include <array>
#include <optional>

namespace mlir::moe::gpumap {

constexpr llvm::StringLiteral kKernelAttr = "moe.gpu.kernel";
constexpr llvm::StringLiteral kGridAttr = "moe.gpu.grid";
/// Marks host-level ops whose results depend on device data (the skip
/// lowering's selected-token counts): fine for host execution, not for a
/// launch without host synchronisation, so the outliner rejects them.
constexpr llvm::StringLiteral kHostSyncAttr = "moe.gpu.host_sync";

/// a*T + b.
struct AffineT {
  int64_t a = 0, b = 0;
};
/// ceil((a*T + b) / d) * m + c.
using GridExpr = std::array<int64_t, 5>;

/// `v` as a*T + b, where T is the token count (every dynamic dimension of
/// an entry argument), or nullopt when it is not affine in T.
std::optional<AffineT> affineInT(Value v);
/// ceil(v / d) as a grid expression, or nullopt.
std::optional<GridExpr> ceilDivGrid(Value v, int64_t d);

/// ceil(a / d) for index values.
Value ceilDiv(OpBuilder &b, Location loc, Value a, int64_t d);

/// Builds one kernel: a block forall over `grid` (1 to 3 sizes) whose body
/// `body(builder, loc, blockIds)` fills. `exprs` (same length as grid, or
/// empty when a size is not affine in T) is recorded as moe.gpu.grid.
scf::ForallOp buildKernel(OpBuilder &b, Location loc, StringRef name, ValueRange grid,
                          ArrayRef<std::optional<GridExpr>> exprs,
                          function_ref<void(OpBuilder &, Location, ValueRange)> body);
/// The block's `threads` threads: `body(builder, loc, tid)`.
scf::ForallOp buildThreads(OpBuilder &b, Location loc, int64_t threads,
                           function_ref<void(OpBuilder &, Location, Value)> body);
/// memref.alloc of shared (workgroup) memory.
Value allocWorkgroup(OpBuilder &b, Location loc, ArrayRef<int64_t> shape, Type elem);
/// memref.alloc of per-thread storage: shape [threads, shape...] in the
/// private address space; always indexed with the thread id first.
Value allocPerThread(OpBuilder &b, Location loc, int64_t threads, ArrayRef<int64_t> shape,
                     Type elem);

bool isBlockForall(Operation *op);
bool isThreadForall(Operation *op);
bool isWorkgroup(MemRefType type);
bool isPrivate(MemRefType type);

/// A grid-stride loop: for (i = start; i < n; i += stride) body(i).
void emitStrided(OpBuilder &b, Location loc, Value start, Value n, Value stride,
                 function_ref<void(OpBuilder &, Location, Value)> body);

} // namespace mlir::moe::gpumap

#endif // MOE_LIB_CONVERSION_MOETOGPU_GPUMAPPING_H
