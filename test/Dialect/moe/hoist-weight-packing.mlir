// RUN: moe-opt %s --split-input-file --moe-hoist-weight-packing | FileCheck %s
// RUN: moe-opt %s --split-input-file --moe-hoist-weight-packing="keep-unprepared" | FileCheck %s --check-prefix=KEEP
// RUN: moe-opt %s --split-input-file --moe-hoist-weight-packing="pad-rows=false" | FileCheck %s --check-prefix=NOPAD
// RUN: moe-opt %s --split-input-file --moe-hoist-weight-packing="report" -o /dev/null 2>&1 | FileCheck %s --check-prefix=REPORT

// moe-hoist-weight-packing: the static-shaped arguments (weights) go to
// @<entry>_prepare, which packs each one (moe.pack); the entry keeps its
// activations and takes the packed buffers after them. FFN expert weights
// get rows padded to an odd number of 64-byte lines (H = 64: 4 lines -> 5,
// 80 floats; I = 128: 8 lines -> 9, 144 floats); the router gate is copied
// as it is, and the entry reads it directly (no slice).

// CHECK-LABEL: func.func @main_prepare(
// CHECK-SAME:      %[[G:.*]]: tensor<8x64xf32>, %[[W1:.*]]: tensor<8x128x64xf32>, %[[W3:.*]]: tensor<8x128x64xf32>, %[[W2:.*]]: tensor<8x64x128xf32>)
// CHECK-SAME:      -> (tensor<8x64xf32>, tensor<8x128x80xf32>, tensor<8x128x80xf32>, tensor<8x64x144xf32>)
// CHECK:         %[[PG:.*]] = moe.pack %[[G]] layout(#moe.pack_layout<row_stride = 64>) : tensor<8x64xf32> -> tensor<8x64xf32>
// CHECK:         %[[P1:.*]] = moe.pack %[[W1]] layout(#moe.pack_layout<row_stride = 80>) : tensor<8x128x64xf32> -> tensor<8x128x80xf32>
// CHECK:         %[[P3:.*]] = moe.pack %[[W3]] layout(#moe.pack_layout<row_stride = 80>)
// CHECK:         %[[P2:.*]] = moe.pack %[[W2]] layout(#moe.pack_layout<row_stride = 144>) : tensor<8x64x128xf32> -> tensor<8x64x144xf32>
// CHECK:         return %[[PG]], %[[P1]], %[[P3]], %[[P2]]
// CHECK-LABEL: func.func @main(
// CHECK-SAME:      %[[X:.*]]: tensor<?x64xf32>, %[[RG:.*]]: tensor<8x64xf32>, %[[R1:.*]]: tensor<8x128x80xf32>, %[[R3:.*]]: tensor<8x128x80xf32>, %[[R2:.*]]: tensor<8x64x144xf32>) -> tensor<?x64xf32>
// CHECK-DAG:     %[[V1:.*]] = tensor.extract_slice %[[R1]][0, 0, 0] [8, 128, 64] [1, 1, 1]
// CHECK-DAG:     %[[V3:.*]] = tensor.extract_slice %[[R3]][0, 0, 0] [8, 128, 64] [1, 1, 1]
// CHECK-DAG:     %[[V2:.*]] = tensor.extract_slice %[[R2]][0, 0, 0] [8, 64, 128] [1, 1, 1]
// CHECK:         moe.topk_router softmax %[[X]], %[[RG]]
// CHECK:         moe.ffn_experts swiglu w1(%[[V1]] : tensor<8x128x64xf32>) w3(%[[V3]] : tensor<8x128x64xf32>) w2(%[[V2]] : tensor<8x64x128xf32>)

// KEEP-LABEL: func.func @main(
// KEEP-SAME:      %{{.*}}: tensor<?x64xf32>, %{{.*}}: tensor<8x64xf32>, %{{.*}}: tensor<8x128x64xf32>, %{{.*}}: tensor<8x128x64xf32>, %{{.*}}: tensor<8x64x128xf32>)
// KEEP-NOT:     moe.pack
// KEEP-LABEL: func.func @main_prepare(
// KEEP-LABEL: func.func @main_run(
// KEEP-SAME:      tensor<?x64xf32>, %{{.*}}: tensor<8x64xf32>, %{{.*}}: tensor<8x128x80xf32>

// NOPAD-LABEL: func.func @main_prepare(
// NOPAD:         moe.pack %{{.*}} layout(#moe.pack_layout<row_stride = 64>) : tensor<8x128x64xf32> -> tensor<8x128x64xf32>
// NOPAD-LABEL: func.func @main(
// NOPAD-NOT:     tensor.extract_slice

// REPORT: remark: split into @main_prepare and @main: 4 weight arguments, 4 packed (3 with padded rows), 0 ops hoisted
func.func @main(%x: tensor<?x64xf32>, %gate: tensor<8x64xf32>,
                %w1: tensor<8x128x64xf32>, %w3: tensor<8x128x64xf32>,
                %w2: tensor<8x64x128xf32>) -> tensor<?x64xf32> {
  %ids, %w = moe.topk_router softmax %x, %gate {k = 2, renormalize}
      : tensor<?x64xf32>, tensor<8x64xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  %experts = moe.ffn_experts swiglu w1(%w1 : tensor<8x128x64xf32>)
      w3(%w3 : tensor<8x128x64xf32>) w2(%w2 : tensor<8x64x128xf32>) -> !moe.experts<8, 64>
  %y = moe.layer %x, %ids, %w experts(%experts : !moe.experts<8, 64>)
      : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// Ops that depend only on weights move into the prepare function; the
// activations keep their order (x first, ids after the weights), and a
// weight used both as an FFN weight and otherwise is not padded. The
// weight only the hoisted op reads is not a prepared buffer.

// CHECK-LABEL: func.func @hoisted_prepare(
// CHECK-SAME:      %[[A:.*]]: tensor<64x32xf32>, %[[B:.*]]: tensor<32x64xf32>)
// CHECK-SAME:      -> (tensor<32x80xf32>, tensor<64x32xf32>)
// CHECK:         %[[T:.*]] = arith.addf %[[A]], %[[A]]
// CHECK:         moe.pack %[[B]] layout(#moe.pack_layout<row_stride = 80>)
// CHECK:         moe.pack %[[T]] layout(#moe.pack_layout<row_stride = 32>)
// CHECK-LABEL: func.func @hoisted(
// CHECK-SAME:      %{{.*}}: tensor<?x64xf32>, %{{.*}}: tensor<?xi32>, %{{.*}}: tensor<32x80xf32>, %{{.*}}: tensor<64x32xf32>)
// CHECK-NOT:     arith.addf
// REPORT: remark: split into @hoisted_prepare and @hoisted: 2 weight arguments, 2 packed (1 with padded rows), 1 ops hoisted
func.func @hoisted(%x: tensor<?x64xf32>, %a: tensor<64x32xf32>, %b: tensor<32x64xf32>,
                   %ids: tensor<?xi32>) -> (tensor<?x64xf32>, tensor<64x32xf32>) {
  %t = arith.addf %a, %a : tensor<64x32xf32>
  %y = moe.ffn relu %x w1(%b : tensor<32x64xf32>) w2(%t : tensor<64x32xf32>)
      : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y, %t : tensor<?x64xf32>, tensor<64x32xf32>
}

// -----

// Argument attributes stay with their arguments: the weights' move to the
// prepare function, the activations' stay on the run entry.

// CHECK-LABEL: func.func @attrs_prepare(
// CHECK-SAME:      %{{.*}}: tensor<4x64xf32> {moe.note = "c"}) -> tensor<4x64xf32>
// CHECK-LABEL: func.func @attrs(
// CHECK-SAME:      %{{.*}}: tensor<?x64xf32>, %{{.*}}: tensor<?x2xi32> {moe.random_range = array<i64: -1, 4>}, %{{.*}}: tensor<?x2xf32>, %{{.*}}: tensor<4x64xf32>) -> tensor<?x64xf32>
func.func @attrs(%x: tensor<?x64xf32>, %ids: tensor<?x2xi32> {moe.random_range = array<i64: -1, 4>},
                 %w: tensor<?x2xf32>, %c: tensor<4x64xf32> {moe.note = "c"}) -> tensor<?x64xf32> {
  %e = moe.const_experts %c : tensor<4x64xf32> -> !moe.experts<4, 64>
  %y = moe.layer %x, %ids, %w experts(%e : !moe.experts<4, 64>)
      : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
