// RUN: moe-opt %s --split-input-file "--moe-gpu-map-loops=block-size=32" | FileCheck %s
// RUN: moe-opt %s --split-input-file "--moe-gpu-map-loops=block-size=32 report=true" -o /dev/null 2>&1 | FileCheck %s --check-prefix=REPORT

// moe-gpu-map-loops on the host-level code the CPU lowerings leave (written
// by hand here, in the buffer ABI's form): every piece of work becomes a
// kernel, a block forall holding its thread forall.
//  - the moe.gpu.parallel loop: one iteration per thread, ceil(T / 32)
//    blocks of 32 (block-size), the last block's excess threads exiting
//    early; the row scratch only it uses moves into the thread (private);
//  - the serial scan and the status initialisation: single-thread kernels;
//  - the status-guarded output copy: an elementwise copy kernel that reads
//    the status on the device and skips the copy when it is not 0;
//  - the status slot, read by the host for the return, becomes a device
//    buffer (freed before the return) and its host read is marked
//    moe.gpu.host_sync.

// REPORT: remark: mapped to the GPU: 1 parallel loop kernel(s), 1 copy kernel(s), 2 single-thread kernel(s)

// CHECK-LABEL: func.func @host_loops(
// CHECK-SAME:      %[[X:[a-z0-9_]+]]: memref<?x8xf32>, %[[OUT:[a-z0-9_]+]]: memref<?x8xf32>
// CHECK:         %[[STATUS:[a-z0-9_]+]] = memref.alloc() {moe.status} : memref<i32>
// CHECK-NOT:     memref.alloca
//   The status initialisation: one thread.
// CHECK:         scf.forall (%{{.*}}) in (%{{.*}}) {
// CHECK-NEXT:      scf.forall (%{{.*}}) in (1) {
// CHECK-NEXT:        memref.store %{{.*}}, %[[STATUS]][] : memref<i32>
// CHECK:         } {mapping = [#gpu.block<x>], moe.gpu.grid = [array<i64: 0, 1, 1, 1, 0>], moe.gpu.kernel = "serial"}
// CHECK:         %[[T:[a-z0-9_]+]] = memref.dim %[[X]], %{{.*}} : memref<?x8xf32>
// CHECK:         %[[SQ:[a-z0-9_]+]] = memref.alloc(%[[T]]) : memref<?x8xf32>
//   The parallel loop: thread b * 32 + t runs iteration b * 32 + t < T.
// CHECK:         %[[GRID:[a-z0-9_]+]] = arith.ceildivui %{{.*}}, %{{.*}} : index
// CHECK:         scf.forall (%[[B:[a-z0-9_]+]]) in (%[[GRID]]) {
// CHECK-NEXT:      scf.forall (%[[TID:[a-z0-9_]+]]) in (32) {
// CHECK:             %[[BASE:[a-z0-9_]+]] = arith.muli %[[B]], %{{.*}} : index
// CHECK:             %[[LANE:[a-z0-9_]+]] = arith.addi %[[BASE]], %[[TID]] : index
// CHECK:             %[[I:[a-z0-9_]+]] = arith.addi %{{.*}}, %[[LANE]] : index
// CHECK:             %[[IN:[a-z0-9_]+]] = arith.cmpi ult, %[[I]], %[[T]] : index
// CHECK:             scf.if %[[IN]] {
// CHECK-NEXT:          %[[ROW:[a-z0-9_]+]] = memref.alloca() : memref<8xf32>
// CHECK:                 memref.load %[[X]][%[[I]], %{{.*}}] : memref<?x8xf32>
// CHECK:                 memref.store %{{.*}}, %[[ROW]][%{{.*}}] : memref<8xf32>
// CHECK:                 memref.store %{{.*}}, %[[SQ]][%[[I]], %{{.*}}] : memref<?x8xf32>
// CHECK:           } {mapping = [#gpu.thread<x>]}
// CHECK-NEXT:    } {mapping = [#gpu.block<x>], moe.gpu.grid = [array<i64: 1, 0, 32, 1, 0>], moe.gpu.kernel = "parallel"}
//   The scan: one thread runs the whole loop.
// CHECK:         scf.forall (%{{.*}}) in (%{{.*}}) {
// CHECK-NEXT:      scf.forall (%{{.*}}) in (1) {
// CHECK-NEXT:        scf.for %{{.*}} = %{{.*}} to %[[T]] step
// CHECK:         } {mapping = [#gpu.block<x>], moe.gpu.grid = [array<i64: 0, 1, 1, 1, 0>], moe.gpu.kernel = "serial"}
//   The host's read of the status, for the return.
// CHECK:         %[[RESULT:[a-z0-9_]+]] = memref.load %[[STATUS]][] {moe.gpu.host_sync} : memref<i32>
//   The guarded copy: the guard is recomputed in each block, uniform.
// CHECK:         scf.forall (%{{.*}}) in (%{{.*}}) {
// CHECK-NEXT:      %[[ST:[a-z0-9_]+]] = memref.load %[[STATUS]][] : memref<i32>
// CHECK-NEXT:      %{{.*}} = arith.constant 0 : i32
// CHECK-NEXT:      %[[OK:[a-z0-9_]+]] = arith.cmpi eq, %[[ST]], %{{.*}} : i32
// CHECK-NEXT:      scf.if %[[OK]] {
// CHECK-NEXT:        scf.forall (%{{.*}}) in (32) {
// CHECK:                 %[[V:[a-z0-9_]+]] = memref.load %[[SQ]][%{{.*}}, %{{.*}}] : memref<?x8xf32>
// CHECK-NEXT:            memref.store %[[V]], %[[OUT]][%{{.*}}, %{{.*}}] : memref<?x8xf32>
// CHECK:         } {mapping = [#gpu.block<x>], moe.gpu.grid = [array<i64: 8, 0, 32, 1, 0>], moe.gpu.kernel = "copy"}
// CHECK-NOT:     memref.copy
// CHECK:         memref.dealloc %[[SQ]]
// CHECK-NEXT:    memref.dealloc %[[STATUS]]
// CHECK-NEXT:    return %[[RESULT]] : i32
func.func @host_loops(%x: memref<?x8xf32>, %out: memref<?x8xf32>) -> i32 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %ok = arith.constant 0 : i32
  %status = memref.alloca() {moe.status} : memref<i32>
  memref.store %ok, %status[] : memref<i32>
  %t = memref.dim %x, %c0 : memref<?x8xf32>
  %sq = memref.alloc(%t) : memref<?x8xf32>
  %row = memref.alloca() : memref<8xf32>
  scf.for %i = %c0 to %t step %c1 {
    scf.for %j = %c0 to %c8 step %c1 {
      %v = memref.load %x[%i, %j] : memref<?x8xf32>
      %w = arith.mulf %v, %v : f32
      memref.store %w, %row[%j] : memref<8xf32>
    }
    scf.for %j = %c0 to %c8 step %c1 {
      %w = memref.load %row[%j] : memref<8xf32>
      memref.store %w, %sq[%i, %j] : memref<?x8xf32>
    }
  } {moe.gpu.parallel}
  scf.for %i = %c1 to %t step %c1 {
    %p = arith.subi %i, %c1 : index
    %a = memref.load %sq[%p, %c0] : memref<?x8xf32>
    %b = memref.load %sq[%i, %c0] : memref<?x8xf32>
    %s = arith.addf %a, %b : f32
    memref.store %s, %sq[%i, %c0] : memref<?x8xf32>
  }
  %st = memref.load %status[] : memref<i32>
  %fine = arith.cmpi eq, %st, %ok : i32
  scf.if %fine {
    memref.copy %sq, %out : memref<?x8xf32> to memref<?x8xf32>
  }
  memref.dealloc %sq : memref<?x8xf32>
  return %st : i32
}

// -----

// A loop whose result the host needs (a data-dependent size) stays on the
// host, marked moe.gpu.host_sync; the parallel loop over that size gets a
// grid that is not affine in T, so no moe.gpu.grid.
// REPORT: remark: mapped to the GPU: 1 parallel loop kernel(s), 0 copy kernel(s), 0 single-thread kernel(s)
// CHECK-LABEL: func.func @data_dependent_size(
// CHECK:         %[[N:[a-z0-9_]+]] = scf.for {{.*}} -> (index) {
// CHECK:         } {moe.gpu.host_sync}
// CHECK:         %[[SEL:[a-z0-9_]+]] = memref.alloc(%[[N]]) : memref<?xi32>
// CHECK:         scf.forall
// CHECK:               memref.store %{{.*}}, %[[SEL]][%{{.*}}] : memref<?xi32>
// CHECK:         } {mapping = [#gpu.block<x>], moe.gpu.kernel = "parallel"}
func.func @data_dependent_size(%ids: memref<?xi32>) -> i32 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %zero = arith.constant 0 : i32
  %one = arith.constant 1 : i32
  %t = memref.dim %ids, %c0 : memref<?xi32>
  %n = scf.for %i = %c0 to %t step %c1 iter_args(%acc = %c0) -> (index) {
    %v = memref.load %ids[%i] : memref<?xi32>
    %pos = arith.cmpi sgt, %v, %zero : i32
    %inc = arith.select %pos, %c1, %c0 : index
    %next = arith.addi %acc, %inc : index
    scf.yield %next : index
  }
  %sel = memref.alloc(%n) : memref<?xi32>
  scf.for %i = %c0 to %n step %c1 {
    memref.store %one, %sel[%i] : memref<?xi32>
  } {moe.gpu.parallel}
  memref.dealloc %sel : memref<?xi32>
  return %zero : i32
}
