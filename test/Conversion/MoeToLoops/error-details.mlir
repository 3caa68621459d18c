// RUN: moe-opt %s --moe-call-slots=error-details=true --moe-lower-skips %bufferize | FileCheck %s
// RUN: moe-opt %s --moe-call-slots --moe-lower-skips %bufferize | FileCheck %s --check-prefix=OFF

// moe-call-slots' error-details (the CPU pipeline): next to the status
// slot, a `moe.error_detail` slot holds the first failed check's [code,
// token, slot, id, bound]; a lowering's check stores them there unless a
// detail is already recorded, and a failing call hands them to the runtime
// (moe_rt_error_detail) on the caller's thread, for the error message.
// Shown on path_select's path check (token, no slot: -1, path, P = 1).

// CHECK-LABEL: func.func @paths(
// CHECK:         %[[STATUS:.*]] = memref.alloca() {moe.status} : memref<i32>
// CHECK:         %[[DETAIL:.*]] = memref.alloca() {moe.error_detail} : memref<5xi64>
// CHECK:         %[[NONE:.*]] = arith.constant 0 : i64
// CHECK:         memref.store %[[NONE]], %[[DETAIL]][%{{.*}}] : memref<5xi64>
// CHECK:         scf.for %[[T:.*]] = %{{.*}} to %{{.*}} step
// CHECK:           %[[P:.*]] = memref.load %{{.*}}[%[[T]]] : memref<?xi32>
// CHECK:           %[[NO_SLOT:.*]] = arith.constant -1 : index
// CHECK:           %[[NUM_PATHS:.*]] = arith.constant 1 : index
// CHECK:           scf.if %{{.*}} {
// CHECK:             memref.store %{{.*}}, %[[STATUS]][] : memref<i32>
// CHECK:             %[[RECORDED:.*]] = memref.load %[[DETAIL]][%{{.*}}] : memref<5xi64>
// CHECK:             %[[FIRST:.*]] = arith.cmpi eq, %[[RECORDED]], %{{.*}} : i64
// CHECK:             scf.if %[[FIRST]] {
// CHECK:               %[[CODE:.*]] = arith.constant 3 : i64
// CHECK:               %[[TOKEN:.*]] = arith.index_cast %[[T]] : index to i64
// CHECK:               %[[SLOT:.*]] = arith.index_cast %[[NO_SLOT]] : index to i64
// CHECK:               %[[ID:.*]] = arith.extsi %[[P]] : i32 to i64
// CHECK:               %[[BOUND:.*]] = arith.index_cast %[[NUM_PATHS]] : index to i64
// CHECK:               memref.store %[[CODE]], %[[DETAIL]]
// CHECK:               memref.store %[[TOKEN]], %[[DETAIL]]
// CHECK:               memref.store %[[SLOT]], %[[DETAIL]]
// CHECK:               memref.store %[[ID]], %[[DETAIL]]
// CHECK:               memref.store %[[BOUND]], %[[DETAIL]]
// CHECK:         %[[S:.*]] = memref.load %[[STATUS]][] : memref<i32>
// CHECK:         %[[FAILED:.*]] = arith.cmpi ne, %[[S]], %{{.*}} : i32
// CHECK:         scf.if %[[FAILED]] {
// CHECK-COUNT-5:   memref.load %[[DETAIL]][%{{.*}}] : memref<5xi64>
// CHECK:           func.call @moe_rt_error_detail(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) : (i64, i64, i64, i64, i64) -> ()
// CHECK:         }
// CHECK:         return %[[S]] : i32
// CHECK:       func.func private @moe_rt_error_detail(i64, i64, i64, i64, i64)

// Without the option (the GPU pipeline) nothing of it.
// OFF-NOT: moe.error_detail
// OFF-NOT: moe_rt_error_detail
func.func @paths(%x: tensor<?x16xf32>, %p: tensor<?xi32>) -> tensor<?x16xf32> {
  %y = moe.path_select %x, %p : tensor<?x16xf32>, tensor<?xi32> -> tensor<?x16xf32> {
  ^bb0(%b: tensor<?x16xf32>):
    moe.yield %b : tensor<?x16xf32>
  }
  return %y : tensor<?x16xf32>
}
