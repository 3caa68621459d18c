// RUN: moe-opt %s --moe-outline-parallel | FileCheck %s
// RUN: moe-opt %s --moe-outline-parallel --convert-scf-to-cf --convert-arith-to-llvm --finalize-memref-to-llvm --convert-func-to-llvm --reconcile-unrealized-casts --moe-lower-parallel-calls | FileCheck %s --check-prefix=LLVM

// The loop over work items marked moe.parallel becomes a private body
// function of (item, captured buffers) and a marker call with the trip count.
// (Constants are cloned into the body, so LLVM folds them; other free values
// are captured.)
// CHECK:       func.func private @tiles_par0(%[[I:.*]]: index, %[[V:.*]]: f32, %[[M:.*]]: memref<?xf32>)
// CHECK:         %[[ONE:.*]] = arith.constant 1.000000e+00 : f32
// CHECK:         %[[SUM:.*]] = arith.addf %[[V]], %[[ONE]] : f32
// CHECK:         memref.store %[[SUM]], %[[M]][%[[I]]]
// CHECK-LABEL: func.func @tiles(
// CHECK-SAME:    %[[OUT:.*]]: memref<?xf32>, %[[N:.*]]: index, %{{.*}}: f32)
// CHECK-NOT:     scf.for
// CHECK:         call @__moe_parallel__tiles_par0(%[[N]], %{{.*}}, %[[OUT]]) : (index, f32, memref<?xf32>) -> ()
// CHECK:       func.func private @__moe_parallel__tiles_par0(index, f32, memref<?xf32>)

// In the LLVM dialect the marker becomes a context struct, a trampoline over
// [begin, end) and a call into the runtime's thread pool.
// LLVM-LABEL: llvm.func @tiles(
// LLVM:         %[[CTX:.*]] = llvm.alloca %{{.*}} x !llvm.struct<(f32, ptr, ptr, i64, i64, i64)>
// LLVM:         llvm.store %{{.*}}, %{{.*}} : f32, !llvm.ptr
// LLVM:         %[[FN:.*]] = llvm.mlir.addressof @__moe_tramp__tiles_par0 : !llvm.ptr
// LLVM:         llvm.call @moe_rt_parallel_for(%{{.*}}, %[[FN]], %[[CTX]]) : (i64, !llvm.ptr, !llvm.ptr) -> ()
// LLVM-NOT:     __moe_parallel__
// LLVM:       llvm.func @moe_rt_parallel_for(i64, !llvm.ptr, !llvm.ptr)
// LLVM:       llvm.func internal @__moe_tramp__tiles_par0(%[[C:.*]]: !llvm.ptr, %[[B:.*]]: i64, %[[E:.*]]: i64)
// LLVM:         llvm.icmp "slt"
// LLVM:         llvm.call @tiles_par0(
func.func @tiles(%out: memref<?xf32>, %n: index, %v: f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %one = arith.constant 1.0 : f32
  scf.for %i = %c0 to %n step %c1 {
    %sum = arith.addf %v, %one : f32
    memref.store %sum, %out[%i] : memref<?xf32>
  } {moe.parallel}
  return
}
