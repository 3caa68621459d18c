// RUN: moe-opt %s --split-input-file --verify-diagnostics --moe-buffer-abi | FileCheck %s

// moe-buffer-abi runs after one-shot-bufferize: memref results become
// trailing out-parameters, the function returns the i32 of its `moe.status`
// slot (0 = success), the outputs are copied only while it is 0, and every
// heap buffer of the function is freed before each return.

// CHECK-LABEL: func.func @two_results(
// CHECK-SAME:      %[[X:[a-z0-9_]+]]: memref<?x64xf32>, %[[OUT_A:[a-z0-9_]+]]: memref<?x64xf32>, %[[OUT_B:[a-z0-9_]+]]: memref<4xf32>) -> i32
// CHECK-SAME:      attributes {llvm.emit_c_interface}
// CHECK:         %[[SLOT:.*]] = memref.alloca() {moe.status} : memref<i32>
// CHECK:         %[[A:.*]] = memref.alloc(%{{.*}}) : memref<?x64xf32>
// CHECK:         %[[B:.*]] = memref.alloc() : memref<4xf32>
// CHECK:         %[[STATUS:.*]] = memref.load %[[SLOT]][] : memref<i32>
// CHECK:         %[[OK:.*]] = arith.cmpi eq, %[[STATUS]], %{{.*}} : i32
// CHECK:         scf.if %[[OK]] {
// CHECK-NEXT:      memref.copy %[[A]], %[[OUT_A]]
// CHECK-NEXT:      memref.copy %[[B]], %[[OUT_B]]
// CHECK:         }
// CHECK-NEXT:    memref.dealloc %[[A]] : memref<?x64xf32>
// CHECK-NEXT:    memref.dealloc %[[B]] : memref<4xf32>
// CHECK-NEXT:    return %[[STATUS]] : i32
func.func @two_results(%x: memref<?x64xf32>) -> (memref<?x64xf32>, memref<4xf32>) {
  %slot = memref.alloca() {moe.status} : memref<i32>
  %c0 = arith.constant 0 : index
  %n = memref.dim %x, %c0 : memref<?x64xf32>
  %a = memref.alloc(%n) : memref<?x64xf32>
  memref.copy %x, %a : memref<?x64xf32> to memref<?x64xf32>
  %b = memref.alloc() : memref<4xf32>
  return %a, %b : memref<?x64xf32>, memref<4xf32>
}

// Every return gets the status check, the copy and the frees; a returned
// argument is copied from its buffer directly; a function without a status
// slot (no checks) gets one; a buffer in a GPU memory space (a kernel's) is
// not freed. External declarations are left alone.
// CHECK-LABEL: func.func private @external(memref<4xf32>) -> memref<4xf32>
// CHECK-NOT:     llvm.emit_c_interface
func.func private @external(memref<4xf32>) -> memref<4xf32>

// CHECK-LABEL: func.func @two_returns(
// CHECK-SAME:      %{{.*}}: memref<i1>, %[[A:[a-z0-9_]+]]: memref<4xf32>, %[[B:[a-z0-9_]+]]: memref<4xf32>, %[[OUT:[a-z0-9_]+]]: memref<4xf32>) -> i32
// CHECK:         %[[SLOT:.*]] = memref.alloca() {moe.status} : memref<i32>
// CHECK:         %[[TMP:.*]] = memref.alloc() : memref<8xf32>
// CHECK:         cf.cond_br
// CHECK:       ^bb1:
// CHECK:         %[[S1:.*]] = memref.load %[[SLOT]][] : memref<i32>
// CHECK:         scf.if
// CHECK-NEXT:      memref.copy %[[A]], %[[OUT]]
// CHECK:         memref.dealloc %[[TMP]]
// CHECK-NOT:     memref.dealloc
// CHECK:         return %[[S1]] : i32
// CHECK:       ^bb2:
// CHECK:         %[[S2:.*]] = memref.load %[[SLOT]][] : memref<i32>
// CHECK:         scf.if
// CHECK-NEXT:      memref.copy %[[B]], %[[OUT]]
// CHECK:         memref.dealloc %[[TMP]]
// CHECK-NOT:     memref.dealloc
// CHECK:         return %[[S2]] : i32
func.func @two_returns(%flag: memref<i1>, %a: memref<4xf32>, %b: memref<4xf32>) -> memref<4xf32> {
  %tmp = memref.alloc() : memref<8xf32>
  %shared = memref.alloc() : memref<8xf32, #gpu.address_space<workgroup>>
  %c = memref.load %flag[] : memref<i1>
  cf.cond_br %c, ^a, ^b
^a:
  return %a : memref<4xf32>
^b:
  return %b : memref<4xf32>
}

// -----

// Tensors left: the pass runs after bufferization.
// expected-error @+1 {{moe-buffer-abi runs after bufferization: expected memref arguments and results, got 'tensor<4xf32>'}}
func.func @not_bufferized(%x: tensor<4xf32>) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}

// -----

// A heap buffer allocated per iteration cannot be freed at the returns.
func.func @alloc_in_loop(%x: memref<4xf32>) -> memref<4xf32> {
  %c0 = arith.constant 0 : index
  %c4 = arith.constant 4 : index
  %c1 = arith.constant 1 : index
  scf.for %i = %c0 to %c4 step %c1 {
    // expected-error @+1 {{temporary buffer allocated inside a loop or branch}}
    %t = memref.alloc() : memref<4xf32>
  }
  return %x : memref<4xf32>
}
