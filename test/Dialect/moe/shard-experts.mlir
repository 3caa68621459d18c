// RUN: moe-opt %s --split-input-file --verify-diagnostics --moe-fold-trivial-experts --moe-expand-layers --moe-shard-experts="ranks=2" | FileCheck %s
// RUN: not moe-opt %s --split-input-file --moe-fold-trivial-experts --moe-expand-layers --moe-shard-experts="ranks=4 placement=3,3,0,1,2,0" 2>&1 | FileCheck %s --check-prefix=TABLE
// RUN: not moe-opt %s --split-input-file --moe-expand-layers --moe-shard-experts="ranks=2 placement=0,1" 2>&1 | FileCheck %s --check-prefix=BADTABLE
// RUN: not moe-opt %s --split-input-file --moe-expand-layers --moe-shard-experts="ranks=2 placement=5,0,0,0" 2>&1 | FileCheck %s --check-prefix=BADRANK
// RUN: not moe-opt %s --split-input-file --moe-expand-layers --moe-shard-experts="ranks=0" 2>&1 | FileCheck %s --check-prefix=BADRANKS

// moe-shard-experts: routing and moe.dispatch stay on each rank (its own
// tokens); moe.all_to_all sends every sorted row to its expert's rank; the
// grouped experts run on the received rows (recv_offsets leaves other
// ranks' experts empty); moe.all_to_all_combine brings the results back to
// the sorted rows; moe.combine is unchanged.

// 6 FFN experts + 2 zero experts (folded away: no traffic), 1 shared expert
// (placement -1: stays local), dynamic T.
// CHECK-LABEL: func.func @layer(
// CHECK-SAME:      %[[X:[a-z0-9_]+]]: tensor<?x32xf32>
// CHECK:         %[[OFF:[a-z0-9_]+]], %[[ROWS:[a-z0-9_]+]], %[[SLOTS:[a-z0-9_]+]] = moe.dispatch %{{.*}} {num_experts = 6 : i64, num_shared = 1 : i64}
// CHECK:         %[[RX:[a-z0-9_]+]], %[[RROWS:[a-z0-9_]+]], %[[ROFF:[a-z0-9_]+]], %[[PLAN:[a-z0-9_]+]] = moe.all_to_all %[[X]], %[[ROWS]], %[[OFF]] {placement = array<i32: 0, 0, 0, 1, 1, 1, -1>, ranks = 2 : i64} : tensor<?x32xf32>, tensor<?xi32>, tensor<8xi32> -> tensor<?x32xf32>, tensor<?xi32>, tensor<8xi32>, tensor<2x7xi32>
// CHECK:         %[[Q:.*]] = tensor.dim %[[RROWS]], %{{.*}} : tensor<?xi32>
// CHECK:         %[[ACC:.*]] = tensor.empty(%[[Q]]) : tensor<?x32xf32>
// CHECK:         %[[G0:.*]] = moe.grouped_ffn swiglu %[[RX]], %[[RROWS]], %[[ROFF]] {{.*}} into %[[ACC]] {first_expert = 0 : i64} : tensor<?x32xf32>, tensor<?xi32>, tensor<8xi32>, tensor<?x32xf32> -> tensor<?x32xf32>
// CHECK:         %[[G1:.*]] = moe.grouped_ffn gelu %[[RX]], %[[RROWS]], %[[ROFF]] {{.*}} into %[[G0]] {first_expert = 6 : i64}
// CHECK:         %[[BACK:.*]] = moe.all_to_all_combine %[[G1]], %[[RROWS]], %[[PLAN]], %[[OFF]] {placement = array<i32: 0, 0, 0, 1, 1, 1, -1>, ranks = 2 : i64} : tensor<?x32xf32>, tensor<?xi32>, tensor<2x7xi32>, tensor<8xi32> -> tensor<?x32xf32>
// CHECK:         moe.combine %[[BACK]], %[[SLOTS]]

// An explicit table for the 6 dispatched experts (numbered after folding).
// TABLE:         moe.all_to_all {{.*}}placement = array<i32: 3, 3, 0, 1, 2, 0, -1>, ranks = 4 : i64{{.*}}tensor<4x7xi32>
// TABLE:         moe.all_to_all_combine
func.func @layer(%x: tensor<?x32xf32>, %ids: tensor<?x2xi32>, %w: tensor<?x2xf32>,
                 %w1: tensor<6x16x32xf32>, %w3: tensor<6x16x32xf32>, %w2: tensor<6x32x16xf32>,
                 %s1: tensor<1x16x32xf32>, %s2: tensor<1x32x16xf32>) -> tensor<?x32xf32> {
  %ffn = moe.ffn_experts swiglu w1(%w1 : tensor<6x16x32xf32>) w3(%w3 : tensor<6x16x32xf32>)
      w2(%w2 : tensor<6x32x16xf32>) -> !moe.experts<6, 32>
  %zero = moe.zero_experts : !moe.experts<2, 32>
  %shared = moe.ffn_experts gelu w1(%s1 : tensor<1x16x32xf32>) w2(%s2 : tensor<1x32x16xf32>)
      -> !moe.experts<1, 32>
  %y = moe.layer %x, %ids, %w experts(%ffn, %zero : !moe.experts<6, 32>, !moe.experts<2, 32>)
      shared(%shared : !moe.experts<1, 32>)
      : tensor<?x32xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// A table with the wrong length names the count the dispatch has.
// BADTABLE: error: moe-shard-experts: 'placement' has 2 entries but the dispatch routes 4 experts
// BADRANK: error: moe-shard-experts: expert 0 is placed on rank 5, outside [0, 2)
// Default placement: contiguous blocks of 2.
// CHECK-LABEL: func.func @table(
// CHECK:         moe.all_to_all {{.*}}placement = array<i32: 0, 0, 1, 1>, ranks = 2 : i64
func.func @table(%x: tensor<8x16xf32>, %ids: tensor<8x1xi32>, %w: tensor<8x1xf32>,
                 %w1: tensor<4x8x16xf32>, %w2: tensor<4x16x8xf32>) -> tensor<8x16xf32> {
  %ffn = moe.ffn_experts relu w1(%w1 : tensor<4x8x16xf32>) w2(%w2 : tensor<4x16x8xf32>)
      -> !moe.experts<4, 16>
  %y = moe.layer %x, %ids, %w experts(%ffn : !moe.experts<4, 16>)
      : tensor<8x16xf32>, tensor<8x1xi32>, tensor<8x1xf32> -> tensor<8x16xf32>
  return %y : tensor<8x16xf32>
}

// -----

// Capacity drop counts slots over the whole batch: sharding the tokens
// would drop others, so the pass refuses.
// BADRANKS: error: moe-shard-experts: 'ranks' must be in [1, 2^31), got 0
func.func @capacity(%gate: tensor<4x16xf32>, %x: tensor<8x16xf32>,
                    %w1: tensor<4x8x16xf32>, %w2: tensor<4x16x8xf32>) -> tensor<8x16xf32> {
  %ids, %w = moe.topk_router softmax %x, %gate {k = 1}
      : tensor<8x16xf32>, tensor<4x16xf32> -> tensor<8x1xi32>, tensor<8x1xf32>
  // expected-error @+1 {{cannot shard tokens over ranks: 'moe.capacity_drop' drops slots over a capacity counted over the whole batch}}
  %cids, %cw = moe.capacity_drop %ids, %w {num_experts = 4, capacity_factor = 1.0 : f32}
      : tensor<8x1xi32>, tensor<8x1xf32> -> tensor<8x1xi32>, tensor<8x1xf32>
  %ffn = moe.ffn_experts relu w1(%w1 : tensor<4x8x16xf32>) w2(%w2 : tensor<4x16x8xf32>)
      -> !moe.experts<4, 16>
  %y = moe.layer %x, %cids, %cw experts(%ffn : !moe.experts<4, 16>)
      : tensor<8x16xf32>, tensor<8x1xi32>, tensor<8x1xf32> -> tensor<8x16xf32>
  return %y : tensor<8x16xf32>
}
