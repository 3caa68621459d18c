// RUN: moe-opt %s --split-input-file --verify-diagnostics --moe-call-slots | FileCheck %s

// moe-call-slots (tensor IR, before the lowerings): every public function
// with a body gets a `moe.status` i32 stack slot holding 0; the lowerings'
// checks record into it and moe-buffer-abi returns it. The signature is
// still the tensor one. (`error-details`: error-details.mlir.)

// CHECK-LABEL: func.func @router(
// CHECK-SAME:      %[[X:[a-z0-9_]+]]: tensor<?x64xf32>, %[[GATE:[a-z0-9_]+]]: tensor<8x64xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>)
// CHECK-NEXT:    %[[SLOT:.*]] = memref.alloca() {moe.status} : memref<i32>
// CHECK-NEXT:    %[[ZERO:.*]] = arith.constant 0 : i32
// CHECK-NEXT:    memref.store %[[ZERO]], %[[SLOT]][] : memref<i32>
// CHECK-NEXT:    moe.topk_router softmax %[[X]], %[[GATE]]
// CHECK-NOT:     moe.error_detail
func.func @router(%x: tensor<?x64xf32>, %gate: tensor<8x64xf32>)
    -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %ids, %w = moe.topk_router softmax %x, %gate {k = 2}
      : tensor<?x64xf32>, tensor<8x64xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  return %ids, %w : tensor<?x2xi32>, tensor<?x2xf32>
}

// External declarations are left alone.
// CHECK-LABEL: func.func private @external(tensor<4xf32>) -> tensor<4xf32>
func.func private @external(tensor<4xf32>) -> tensor<4xf32>

// -----

// Only ranked tensors have a buffer type.
// expected-error @+1 {{the moe buffer ABI handles ranked tensor arguments and results only, got 'index'}}
func.func @scalar_argument(%n: index, %x: tensor<4xf32>) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}

// -----

// expected-error @+1 {{the moe buffer ABI handles ranked tensor arguments and results only, got 'tensor<*xf32>'}}
func.func @unranked_result(%x: tensor<4xf32>) -> tensor<*xf32> {
  %u = tensor.cast %x : tensor<4xf32> to tensor<*xf32>
  return %u : tensor<*xf32>
}

// -----

func.func @entry(%x: tensor<4xf32>) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}
func.func @caller(%x: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{calls the entry function 'entry': calls between compiled moe entry points are not supported}}
  %y = func.call @entry(%x) : (tensor<4xf32>) -> tensor<4xf32>
  return %y : tensor<4xf32>
}
