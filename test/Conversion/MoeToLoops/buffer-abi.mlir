// RUN: moe-opt %s --split-input-file --verify-diagnostics --moe-buffer-abi | FileCheck %s

// moe-buffer-abi: tensor arguments become memrefs (bridged back to tensors
// for the still unconverted body), results become trailing out-parameter
// memrefs, the function returns the i32 status of a `moe.status` stack slot
// (0 = success), and the outputs are copied only while the status is 0.

// CHECK-LABEL: func.func @two_results(
// CHECK-SAME:      %[[X:[a-z0-9_]+]]: memref<?x64xf32>, %[[GATE:[a-z0-9_]+]]: memref<8x64xf32>, %[[OUT_IDS:[a-z0-9_]+]]: memref<?x2xi32>, %[[OUT_W:[a-z0-9_]+]]: memref<?x2xf32>) -> i32
// CHECK-SAME:      attributes {llvm.emit_c_interface}
// CHECK:         %[[XT:.*]] = builtin.unrealized_conversion_cast %[[X]] : memref<?x64xf32> to tensor<?x64xf32>
// CHECK:         %[[GT:.*]] = builtin.unrealized_conversion_cast %[[GATE]] : memref<8x64xf32> to tensor<8x64xf32>
// CHECK:         %[[SLOT:.*]] = memref.alloca() {moe.status} : memref<i32>
// CHECK:         %[[ZERO:.*]] = arith.constant 0 : i32
// CHECK:         memref.store %[[ZERO]], %[[SLOT]][] : memref<i32>
// CHECK:         %[[IDS:[a-z0-9_]+]], %[[W:[a-z0-9_]+]] = moe.topk_router softmax %[[XT]], %[[GT]]
// CHECK:         %[[STATUS:.*]] = memref.load %[[SLOT]][] : memref<i32>
// CHECK:         %[[OK:.*]] = arith.cmpi eq, %[[STATUS]], %{{.*}} : i32
// CHECK:         scf.if %[[OK]] {
// CHECK:           %[[IDS_BUF:.*]] = builtin.unrealized_conversion_cast %[[IDS]] : tensor<?x2xi32> to memref<?x2xi32>
// CHECK:           memref.copy %[[IDS_BUF]], %[[OUT_IDS]]
// CHECK:           %[[W_BUF:.*]] = builtin.unrealized_conversion_cast %[[W]] : tensor<?x2xf32> to memref<?x2xf32>
// CHECK:           memref.copy %[[W_BUF]], %[[OUT_W]]
// CHECK:         }
// CHECK:         return %[[STATUS]] : i32
func.func @two_results(%x: tensor<?x64xf32>, %gate: tensor<8x64xf32>)
    -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %ids, %w = moe.topk_router softmax %x, %gate {k = 2}
      : tensor<?x64xf32>, tensor<8x64xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  return %ids, %w : tensor<?x2xi32>, tensor<?x2xf32>
}

// Every return gets the status check and the copy; a returned argument is
// copied from its buffer directly. External declarations are left alone.
// CHECK-LABEL: func.func private @external(tensor<4xf32>) -> tensor<4xf32>
// CHECK-NOT:     llvm.emit_c_interface
func.func private @external(tensor<4xf32>) -> tensor<4xf32>

// CHECK-LABEL: func.func @two_returns(
// CHECK-SAME:      %{{.*}}: memref<i1>, %[[A:[a-z0-9_]+]]: memref<4xf32>, %[[B:[a-z0-9_]+]]: memref<4xf32>, %[[OUT:[a-z0-9_]+]]: memref<4xf32>) -> i32
// CHECK:         %[[SLOT:.*]] = memref.alloca() {moe.status} : memref<i32>
// CHECK:         cf.cond_br
// CHECK:       ^bb1:
// CHECK:         %[[S1:.*]] = memref.load %[[SLOT]][] : memref<i32>
// CHECK:         scf.if
// CHECK-NEXT:      memref.copy %[[A]], %[[OUT]]
// CHECK:         return %[[S1]] : i32
// CHECK:       ^bb2:
// CHECK:         %[[S2:.*]] = memref.load %[[SLOT]][] : memref<i32>
// CHECK:         scf.if
// CHECK-NEXT:      memref.copy %[[B]], %[[OUT]]
// CHECK:         return %[[S2]] : i32
func.func @two_returns(%flag: tensor<i1>, %a: tensor<4xf32>, %b: tensor<4xf32>) -> tensor<4xf32> {
  %c = tensor.extract %flag[] : tensor<i1>
  cf.cond_br %c, ^a, ^b
^a:
  return %a : tensor<4xf32>
^b:
  return %b : tensor<4xf32>
}

// -----

// Only ranked tensors have a buffer type.
// expected-error @+1 {{moe-buffer-abi handles ranked tensor arguments and results only, got 'index'}}
func.func @scalar_argument(%n: index, %x: tensor<4xf32>) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}

// -----

// expected-error @+1 {{moe-buffer-abi handles ranked tensor arguments and results only, got 'tensor<*xf32>'}}
func.func @unranked_result(%x: tensor<4xf32>) -> tensor<*xf32> {
  %u = tensor.cast %x : tensor<4xf32> to tensor<*xf32>
  return %u : tensor<*xf32>
}
