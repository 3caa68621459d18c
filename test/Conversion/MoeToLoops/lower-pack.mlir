// RUN: moe-opt %s --split-input-file --moe-call-slots --moe-lower-pack %bufferize | FileCheck %s

// moe.pack: a 64-byte-aligned buffer of the packed shape; each row's whole
// lines copied as vectors, the rest of the row element by element, the
// padding zeroed; the outermost loop runs on the thread pool.

// CHECK-LABEL: func.func @w_prepare(
// CHECK-SAME:      %[[W:.*]]: memref<4x40xf32>, %[[OUT:.*]]: memref<4x48xf32>) -> i32
// CHECK:         %[[P:.*]] = memref.alloc() {alignment = 64 : i64} : memref<4x48xf32>
// CHECK:         scf.for %[[R:.*]] = %{{.*}} to %c4 step %{{.*}} {
// CHECK:           scf.for %[[C:.*]] = %{{.*}} to %c32 step %c16 {
// CHECK:             %[[V:.*]] = vector.load %[[W]][%[[R]], %[[C]]] : memref<4x40xf32>, vector<16xf32>
// CHECK:             vector.store %[[V]], %[[P]][%[[R]], %[[C]]] : memref<4x48xf32>, vector<16xf32>
// CHECK:           scf.for %[[T:.*]] = %c32{{.*}} to %c40 step %{{.*}} {
// CHECK:             memref.load %[[W]][%[[R]], %[[T]]]
// CHECK:             memref.store %{{.*}}, %[[P]][%[[R]], %[[T]]]
// CHECK:           scf.for %[[Z:.*]] = %c40{{.*}} to %c48 step %{{.*}} {
// CHECK:             %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK:             memref.store %[[ZERO]], %[[P]][%[[R]], %[[Z]]]
// CHECK:         } {moe.parallel}
// CHECK-NOT:     moe.pack
// CHECK:         memref.copy %[[P]], %[[OUT]]
func.func @w_prepare(%w: tensor<4x40xf32>) -> tensor<4x48xf32> {
  %p = moe.pack %w layout(#moe.pack_layout<row_stride = 48>) : tensor<4x40xf32> -> tensor<4x48xf32>
  return %p : tensor<4x48xf32>
}

// -----

// A weight read from its packed buffer: a strided view, no copy.

// CHECK-LABEL: func.func @w_run(
// CHECK-SAME:      %[[P:.*]]: memref<4x48xf32>
// CHECK:         %[[V:.*]] = memref.subview %[[P]][0, 0] [4, 40] [1, 1] : memref<4x48xf32> to memref<4x40xf32, strided<[48, 1]>>
// CHECK:         memref.copy %[[V]], %{{.*}} : memref<4x40xf32, strided<[48, 1]>> to memref<4x40xf32>
// CHECK-NOT:     tensor.extract_slice
func.func @w_run(%p: tensor<4x48xf32>) -> tensor<4x40xf32> {
  %w = tensor.extract_slice %p[0, 0] [4, 40] [1, 1] : tensor<4x48xf32> to tensor<4x40xf32>
  return %w : tensor<4x40xf32>
}
