// RUN: moe-opt %s --split-input-file --verify-diagnostics --moe-finalize-buffers | FileCheck %s
// RUN: moe-opt %examples/mixtral.mlir --moe-fold-trivial-experts --moe-expand-layers --moe-buffer-abi --moe-lower-skips=vector-width=8 --moe-lower-routers=vector-width=8 --moe-lower-dispatch --moe-lower-grouped-experts=vector-width=8 --moe-lower-combine=vector-width=8 --moe-finalize-buffers | FileCheck %s --check-prefix=MIXTRAL

// moe-finalize-buffers folds the tensor <-> memref bridges (a tensor.dim of
// a bridged tensor reads the buffer's shape), erases the dead ones, fails if
// a moe op, a bridge or a tensor op is left, and frees every heap buffer of
// a function before each of its returns.

// CHECK-LABEL: func.func @bridges(
// CHECK-SAME:      %[[FLAG:[a-z0-9_]+]]: memref<i1>, %[[X:[a-z0-9_]+]]: memref<?x8xf32>, %[[OUT:[a-z0-9_]+]]: memref<?x8xf32>) -> i32
// CHECK-NOT:     builtin.unrealized_conversion_cast
// CHECK-NOT:     tensor.
// CHECK:         %[[N:.*]] = memref.dim %[[X]], %{{.*}} : memref<?x8xf32>
// CHECK:         %[[A:.*]] = memref.alloc(%[[N]]) : memref<?x8xf32>
// CHECK:         %[[B:.*]] = memref.alloc() : memref<4xi32>
// CHECK:         %[[S:.*]] = memref.alloca() : memref<4xi32>
// CHECK:         memref.copy %[[X]], %[[A]]
// CHECK:         cf.cond_br
// CHECK:       ^bb1:
//   cast<memref>(cast<tensor>(A)) is A itself
// CHECK-NEXT:    memref.copy %[[A]], %[[OUT]]
// CHECK-NEXT:    memref.dealloc %[[A]] : memref<?x8xf32>
// CHECK-NEXT:    memref.dealloc %[[B]] : memref<4xi32>
// CHECK-NEXT:    return
// CHECK:       ^bb2:
// CHECK-NEXT:    memref.dealloc %[[A]] : memref<?x8xf32>
// CHECK-NEXT:    memref.dealloc %[[B]] : memref<4xi32>
// CHECK-NEXT:    return
// CHECK-NOT:     memref.dealloc %[[S]]
// CHECK-NOT:     builtin.unrealized_conversion_cast
func.func @bridges(%flag: memref<i1>, %x: memref<?x8xf32>, %out: memref<?x8xf32>) -> i32 {
  %t = builtin.unrealized_conversion_cast %x : memref<?x8xf32> to tensor<?x8xf32>
  %c0 = arith.constant 0 : index
  %n = tensor.dim %t, %c0 : tensor<?x8xf32>
  %a = memref.alloc(%n) : memref<?x8xf32>
  %b = memref.alloc() : memref<4xi32>
  %s = memref.alloca() : memref<4xi32>
  memref.copy %x, %a : memref<?x8xf32> to memref<?x8xf32>
  %at = builtin.unrealized_conversion_cast %a : memref<?x8xf32> to tensor<?x8xf32>
  %bt = builtin.unrealized_conversion_cast %b : memref<4xi32> to tensor<4xi32>
  %am = builtin.unrealized_conversion_cast %at : tensor<?x8xf32> to memref<?x8xf32>
  %ok = arith.constant 0 : i32
  %c = memref.load %flag[] : memref<i1>
  cf.cond_br %c, ^a, ^b
^a:
  memref.copy %am, %out : memref<?x8xf32> to memref<?x8xf32>
  return %ok : i32
^b:
  return %ok : i32
}

// -----

// A moe op that no lowering handled.
func.func @moe_left(%x: tensor<4x64xf32>, %g: tensor<8x64xf32>) -> (tensor<4x2xi32>, tensor<4x2xf32>) {
  // expected-error @+1 {{'moe.topk_router' op was not lowered to buffers}}
  %ids, %w = moe.topk_router softmax %x, %g {k = 2}
      : tensor<4x64xf32>, tensor<8x64xf32> -> tensor<4x2xi32>, tensor<4x2xf32>
  return %ids, %w : tensor<4x2xi32>, tensor<4x2xf32>
}

// -----

// A tensor op left behind.
func.func @tensor_left(%x: memref<4xf32>) -> i32 {
  // expected-error @+1 {{'tensor.empty' op was not lowered to buffers}}
  %e = tensor.empty() : tensor<4xf32>
  %m = builtin.unrealized_conversion_cast %e : tensor<4xf32> to memref<4xf32>
  memref.copy %m, %x : memref<4xf32> to memref<4xf32>
  %c0 = arith.constant 0 : i32
  return %c0 : i32
}

// -----

// Temporaries must be function-level allocations (freed at the returns).
func.func @alloc_in_loop(%n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  scf.for %i = %c0 to %n step %c1 {
    // expected-error @+1 {{temporary buffer allocated inside a loop or branch}}
    %a = memref.alloc() : memref<4xf32>
  }
  return
}

// Mixtral after every lowering: no bridge or tensor is left, and each of
// the 7 heap buffers (ids, weights, offsets, rows, slot_rows, the sorted
// expert outputs, the combined output) is freed after the output copy.
// MIXTRAL-LABEL: func.func @main(
// MIXTRAL-SAME:      %[[OUT:[a-z0-9_]+]]: memref<?x64xf32>) -> i32
// MIXTRAL-NOT:   unrealized_conversion_cast
// MIXTRAL-NOT:   tensor
// MIXTRAL:       %[[IDS:[a-z0-9_]+]] = memref.alloc(%{{.*}}) {{.*}} : memref<?x2xi32>
// MIXTRAL:       %[[W:[a-z0-9_]+]] = memref.alloc(%{{.*}}) {{.*}} : memref<?x2xf32>
// MIXTRAL:       %[[OFF:[a-z0-9_]+]] = memref.alloc() {{.*}} : memref<9xi32>
// MIXTRAL:       %[[ROWS:[a-z0-9_]+]] = memref.alloc(%{{.*}}) {{.*}} : memref<?xi32>
// MIXTRAL:       %[[SLOTS:[a-z0-9_]+]] = memref.alloc(%{{.*}}) {{.*}} : memref<?x2xi32>
// MIXTRAL:       %[[SORTED:[a-z0-9_]+]] = memref.alloc(%{{.*}}) {{.*}} : memref<?x64xf32>
// MIXTRAL:       %[[MID:[a-z0-9_]+]] = memref.alloc(%{{.*}}) {{.*}} : memref<?x128xf32>
// MIXTRAL:       %[[TOFF:[a-z0-9_]+]] = memref.alloc() {{.*}} : memref<9xindex>
// MIXTRAL:       %[[PX:[a-z0-9_]+]] = memref.alloc(%{{.*}}) {{.*}} : memref<?x64x8xf32>
// MIXTRAL:       %[[PMID:[a-z0-9_]+]] = memref.alloc(%{{.*}}) {{.*}} : memref<?x128x8xf32>
// MIXTRAL:       %[[Y:[a-z0-9_]+]] = memref.alloc(%{{.*}}) {{.*}} : memref<?x64xf32>
// MIXTRAL-NOT:   memref.alloc(
// MIXTRAL:       %[[STATUS:.*]] = memref.load %{{.*}}[] : memref<i32>
// MIXTRAL:       scf.if %{{.*}} {
// MIXTRAL-NEXT:    memref.copy %[[Y]], %[[OUT]]
// MIXTRAL-NEXT:  }
// MIXTRAL-NEXT:  memref.dealloc %[[IDS]]
// MIXTRAL-NEXT:  memref.dealloc %[[W]]
// MIXTRAL-NEXT:  memref.dealloc %[[OFF]]
// MIXTRAL-NEXT:  memref.dealloc %[[ROWS]]
// MIXTRAL-NEXT:  memref.dealloc %[[SLOTS]]
// MIXTRAL-NEXT:  memref.dealloc %[[SORTED]]
// MIXTRAL-NEXT:  memref.dealloc %[[MID]]
// MIXTRAL-NEXT:  memref.dealloc %[[TOFF]]
// MIXTRAL-NEXT:  memref.dealloc %[[PX]]
// MIXTRAL-NEXT:  memref.dealloc %[[PMID]]
// MIXTRAL-NEXT:  memref.dealloc %[[Y]]
// MIXTRAL-NEXT:  return %[[STATUS]] : i32
// MIXTRAL-NOT:   unrealized_conversion_cast
