// RUN: moe-opt %s --moe-call-slots "--moe-gpu-map-dispatch=block-size=64" %bufferize | FileCheck %s

// moe-gpu-map-dispatch: moe.dispatch as four kernels (block foralls, each
// holding its thread forall), none needing the host between them. The
// per-expert counters are a device buffer: cleared by one block, counted
// and then claimed with atomic adds by one thread per token, turned into
// the offsets by one thread. Token grids are ceil(T / 64) blocks of 64
// threads (block-size), recorded as moe.gpu.grid = ceil((1*T + 0) / 64).

// E = 8, K = 2, T dynamic.
// CHECK-LABEL: func.func @routed(
// CHECK-SAME:      %[[IDS:[a-z0-9_]+]]: memref<?x2xi32>, %{{.*}}: memref<9xi32>
// CHECK-NOT:     moe.dispatch
// CHECK:         %[[STATUS:[a-z0-9_]+]] = memref.alloca() {moe.status} : memref<i32>
// CHECK:         %[[T:[a-z0-9_]+]] = memref.dim %[[IDS]], %{{.*}} : memref<?x2xi32>
// CHECK:         %[[OFF:[a-z0-9_]+]] = memref.alloc() {{.*}} : memref<9xi32>
// CHECK:         %[[ROWS:[a-z0-9_]+]] = memref.alloc(%{{.*}}) {{.*}} : memref<?xi32>
// CHECK:         %[[SLOTS:[a-z0-9_]+]] = memref.alloc(%[[T]]) {{.*}} : memref<?x2xi32>
// CHECK:         %[[COUNT:[a-z0-9_]+]] = memref.alloc() {{.*}} : memref<8xi32>

//   1. zero: one block's threads clear the counters, strided by the block.
// CHECK:         scf.forall (%{{.*}}) in (%{{.*}}) {
// CHECK-NEXT:      scf.forall (%[[TZ:[a-z0-9_]+]]) in (64) {
// CHECK:             scf.for %[[E:[a-z0-9_]+]] = %[[TZ]] to %{{.*}} step %{{.*}} {
// CHECK:               memref.store %{{.*}}, %[[COUNT]][%[[E]]] : memref<8xi32>
// CHECK:           } {mapping = [#gpu.thread<x>]}
// CHECK-NEXT:    } {mapping = [#gpu.block<x>], moe.gpu.grid = [array<i64: 0, 1, 1, 1, 0>], moe.gpu.kernel = "dispatch_zero"}

//   2. count: thread b * 64 + t handles token b * 64 + t (guarded against T);
//   each valid id increments its counter atomically, a bad id records 1
//   (MOE_ERR_EXPERT_ID) in the status slot.
// CHECK:         %[[GRID:[a-z0-9_]+]] = arith.ceildivui %[[T]], %{{.*}} : index
// CHECK:         scf.forall (%[[B:[a-z0-9_]+]]) in (%[[GRID]]) {
// CHECK-NEXT:      scf.forall (%[[TC:[a-z0-9_]+]]) in (64) {
// CHECK:             %[[BASE:[a-z0-9_]+]] = arith.muli %[[B]], %{{.*}} : index
// CHECK:             %[[TOK:[a-z0-9_]+]] = arith.addi %[[BASE]], %[[TC]] : index
// CHECK:             %[[IN:[a-z0-9_]+]] = arith.cmpi ult, %[[TOK]], %[[T]] : index
// CHECK:             scf.if %[[IN]] {
// CHECK:               memref.load %[[IDS]][%[[TOK]], %{{.*}}] : memref<?x2xi32>
// CHECK:               memref.store %{{.*}}, %[[STATUS]][] : memref<i32>
// CHECK:               memref.atomic_rmw addi %{{.*}}, %[[COUNT]][%{{.*}}] : (i32, memref<8xi32>) -> i32
// CHECK:         } {mapping = [#gpu.block<x>], moe.gpu.grid = [array<i64: 1, 0, 64, 1, 0>], moe.gpu.kernel = "dispatch_count"}

//   3. prefix: a single thread scans the counts into the offsets and resets
//   each counter to its expert's first row.
// CHECK:         scf.forall (%{{.*}}) in (%{{.*}}) {
// CHECK-NEXT:      scf.forall (%{{.*}}) in (1) {
// CHECK:             scf.for %[[J:[a-z0-9_]+]] = {{.*}} iter_args(%[[SUM:[a-z0-9_]+]] = %{{.*}}) -> (i32) {
// CHECK:               memref.load %[[COUNT]][%[[J]]] : memref<8xi32>
// CHECK:               memref.store %[[SUM]], %[[OFF]][%[[J]]] : memref<9xi32>
// CHECK:               memref.store %[[SUM]], %[[COUNT]][%[[J]]] : memref<8xi32>
// CHECK:         } {mapping = [#gpu.block<x>], moe.gpu.grid = [array<i64: 0, 1, 1, 1, 0>], moe.gpu.kernel = "dispatch_prefix"}

//   4. scatter: each used slot claims its row with an atomic fetch-add on
//   its expert's cursor; unused slots get slot_rows -1.
// CHECK:         scf.forall (%{{.*}}) in (%{{.*}}) {
// CHECK-NEXT:      scf.forall (%{{.*}}) in (64) {
// CHECK:               %[[ROW:[a-z0-9_]+]] = memref.atomic_rmw addi %{{.*}}, %[[COUNT]][%{{.*}}] : (i32, memref<8xi32>) -> i32
// CHECK:               memref.store %{{.*}}, %[[ROWS]][%{{.*}}] : memref<?xi32>
// CHECK:               memref.store %[[ROW]], %[[SLOTS]][%{{.*}}, %{{.*}}] : memref<?x2xi32>
// CHECK:             } else {
// CHECK:               memref.store %{{.*}}, %[[SLOTS]][%{{.*}}, %{{.*}}] : memref<?x2xi32>
// CHECK:         } {mapping = [#gpu.block<x>], moe.gpu.grid = [array<i64: 1, 0, 64, 1, 0>], moe.gpu.kernel = "dispatch_scatter"}
// CHECK-NOT:     scf.forall
// CHECK:         return
func.func @routed(%ids: tensor<?x2xi32>) -> (tensor<9xi32>, tensor<?xi32>, tensor<?x2xi32>) {
  %offsets, %rows, %slot_rows = moe.dispatch %ids {num_experts = 8 : i64, num_shared = 0 : i64}
      : tensor<?x2xi32> -> tensor<9xi32>, tensor<?xi32>, tensor<?x2xi32>
  return %offsets, %rows, %slot_rows : tensor<9xi32>, tensor<?xi32>, tensor<?x2xi32>
}
