// RUN: moe-opt %s --split-input-file --verify-diagnostics --moe-expand-layers | FileCheck %s
// RUN: %if moe-pass-stats %{ moe-opt %s --split-input-file --verify-diagnostics --moe-expand-layers -mlir-pass-statistics -o /dev/null 2>&1 | FileCheck %s --check-prefix=STATS %}

// moe-expand-layers splits every moe.layer into moe.dispatch (counting sort
// of the (token, slot) pairs by expert, shared experts as always-taken slots
// K..K+S-1), one moe.grouped_ffn / moe.grouped_lora per bank (routed then
// shared, `first_expert` = the bank's first id in that order) chained
// through one [T*(K+S), H] accumulator, and moe.combine. The expert banks
// are erased once no layer uses them.

// Mixtral: 8 routed experts, K = 2, no shared experts.
// CHECK-LABEL: func.func @routed(
// CHECK-SAME:      %[[X:[a-z0-9_]+]]: tensor<16x64xf32>, %[[IDS:[a-z0-9_]+]]: tensor<16x2xi32>, %[[W:[a-z0-9_]+]]: tensor<16x2xf32>, %[[W1:[a-z0-9_]+]]: tensor<8x128x64xf32>, %[[W3:[a-z0-9_]+]]: tensor<8x128x64xf32>, %[[W2:[a-z0-9_]+]]: tensor<8x64x128xf32>)
// CHECK-NOT:     moe.remap_experts
// CHECK:         %[[OFF:[a-z0-9_]+]], %[[ROWS:[a-z0-9_]+]], %[[SLOTS:[a-z0-9_]+]] = moe.dispatch %[[IDS]] {num_experts = 8 : i64, num_shared = 0 : i64} : tensor<16x2xi32> -> tensor<9xi32>, tensor<32xi32>, tensor<16x2xi32>
// CHECK:         %[[ACC:.*]] = tensor.empty() : tensor<32x64xf32>
// CHECK:         %[[G:.*]] = moe.grouped_ffn swiglu %[[X]], %[[ROWS]], %[[OFF]] w1(%[[W1]] : tensor<8x128x64xf32>) w3(%[[W3]] : tensor<8x128x64xf32>) w2(%[[W2]] : tensor<8x64x128xf32>) into %[[ACC]] {first_expert = 0 : i64}
// CHECK:         %[[Y:.*]] = moe.combine %[[G]], %[[SLOTS]], %[[W]] : tensor<32x64xf32>, tensor<16x2xi32>, tensor<16x2xf32> -> tensor<16x64xf32>
// CHECK:         return %[[Y]]
// CHECK-NOT:     moe.layer
// CHECK-NOT:     moe.ffn_experts
func.func @routed(%x: tensor<16x64xf32>, %ids: tensor<16x2xi32>, %w: tensor<16x2xf32>,
                  %w1: tensor<8x128x64xf32>, %w3: tensor<8x128x64xf32>,
                  %w2: tensor<8x64x128xf32>) -> tensor<16x64xf32> {
  %experts = moe.ffn_experts swiglu w1(%w1 : tensor<8x128x64xf32>)
      w3(%w3 : tensor<8x128x64xf32>) w2(%w2 : tensor<8x64x128xf32>) -> !moe.experts<8, 64>
  %y = moe.layer %x, %ids, %w experts(%experts : !moe.experts<8, 64>)
      : tensor<16x64xf32>, tensor<16x2xi32>, tensor<16x2xf32> -> tensor<16x64xf32>
  return %y : tensor<16x64xf32>
}

// An FFN bank (ids 0-3), a LoRA bank (ids 4-6) and 2 shared experts (7-8):
// E = 7, S = 2, so offsets [E + S + 1], rows [T * (K + S)], slot_rows
// [T, K + S]; the shared bank runs in the same grouped chain (first_expert 7).
// CHECK-LABEL: func.func @banks_and_shared(
// CHECK-SAME:      %[[X:[a-z0-9_]+]]: tensor<16x64xf32>, %[[IDS:[a-z0-9_]+]]: tensor<16x2xi32>, %[[W:[a-z0-9_]+]]: tensor<16x2xf32>
// CHECK-SAME:      %[[LW1:[a-z0-9_]+]]: tensor<32x64xf32>, %[[LW2:[a-z0-9_]+]]: tensor<64x32xf32>, %[[A1:[a-z0-9_]+]]: tensor<3x4x64xf32>, %[[B1:[a-z0-9_]+]]: tensor<3x32x4xf32>, %[[A2:[a-z0-9_]+]]: tensor<3x4x32xf32>, %[[B2:[a-z0-9_]+]]: tensor<3x64x4xf32>
// CHECK-SAME:      %[[S1:[a-z0-9_]+]]: tensor<2x16x64xf32>, %[[S2:[a-z0-9_]+]]: tensor<2x64x16xf32>)
// CHECK:         %[[OFF:[a-z0-9_]+]], %[[ROWS:[a-z0-9_]+]], %[[SLOTS:[a-z0-9_]+]] = moe.dispatch %[[IDS]] {num_experts = 7 : i64, num_shared = 2 : i64} : tensor<16x2xi32> -> tensor<10xi32>, tensor<64xi32>, tensor<16x4xi32>
// CHECK:         %[[ACC:.*]] = tensor.empty() : tensor<64x64xf32>
// CHECK:         %[[G0:.*]] = moe.grouped_ffn swiglu %[[X]], %[[ROWS]], %[[OFF]] {{.*}} into %[[ACC]] {first_expert = 0 : i64}
// CHECK:         %[[G1:.*]] = moe.grouped_lora silu %[[X]], %[[ROWS]], %[[OFF]] base(w1 %[[LW1]] : tensor<32x64xf32> w2 %[[LW2]] : tensor<64x32xf32>) adapters(w1 %[[A1]], %[[B1]] : {{.*}} w2 %[[A2]], %[[B2]] : {{.*}}) into %[[G0]] {alpha = 8.000000e+00 : f32, first_expert = 4 : i64}
// CHECK:         %[[G2:.*]] = moe.grouped_ffn gelu %[[X]], %[[ROWS]], %[[OFF]] w1(%[[S1]] : tensor<2x16x64xf32>) w2(%[[S2]] : tensor<2x64x16xf32>) into %[[G1]] {first_expert = 7 : i64}
// CHECK:         %[[Y:.*]] = moe.combine %[[G2]], %[[SLOTS]], %[[W]] : tensor<64x64xf32>, tensor<16x4xi32>, tensor<16x2xf32> -> tensor<16x64xf32>
// CHECK:         return %[[Y]]
// CHECK-NOT:     moe.lora_experts
func.func @banks_and_shared(%x: tensor<16x64xf32>, %ids: tensor<16x2xi32>, %w: tensor<16x2xf32>,
                            %w1: tensor<4x32x64xf32>, %w3: tensor<4x32x64xf32>, %w2: tensor<4x64x32xf32>,
                            %lw1: tensor<32x64xf32>, %lw2: tensor<64x32xf32>,
                            %a1: tensor<3x4x64xf32>, %b1: tensor<3x32x4xf32>,
                            %a2: tensor<3x4x32xf32>, %b2: tensor<3x64x4xf32>,
                            %s1: tensor<2x16x64xf32>, %s2: tensor<2x64x16xf32>) -> tensor<16x64xf32> {
  %ffn = moe.ffn_experts swiglu w1(%w1 : tensor<4x32x64xf32>) w3(%w3 : tensor<4x32x64xf32>)
      w2(%w2 : tensor<4x64x32xf32>) -> !moe.experts<4, 64>
  %lora = moe.lora_experts silu base(w1 %lw1 : tensor<32x64xf32>, w2 %lw2 : tensor<64x32xf32>)
      adapters(w1 %a1, %b1 : tensor<3x4x64xf32>, tensor<3x32x4xf32>,
               w2 %a2, %b2 : tensor<3x4x32xf32>, tensor<3x64x4xf32>)
      {alpha = 8.0 : f32} -> !moe.experts<3, 64>
  %shared = moe.ffn_experts gelu w1(%s1 : tensor<2x16x64xf32>) w2(%s2 : tensor<2x64x16xf32>)
      -> !moe.experts<2, 64>
  %y = moe.layer %x, %ids, %w experts(%ffn, %lora : !moe.experts<4, 64>, !moe.experts<3, 64>)
      shared(%shared : !moe.experts<2, 64>)
      : tensor<16x64xf32>, tensor<16x2xi32>, tensor<16x2xf32> -> tensor<16x64xf32>
  return %y : tensor<16x64xf32>
}

// Dynamic T (DeepSeek: 16 routed, 2 shared, K = 4): the sorted buffer has
// T * (K + S) = T * 6 rows, from tensor.dim of the hidden state.
// CHECK-LABEL: func.func @dynamic_tokens(
// CHECK-SAME:      %[[X:[a-z0-9_]+]]: tensor<?x64xf32>
// CHECK:         %[[OFF:[a-z0-9_]+]], %[[ROWS:[a-z0-9_]+]], %[[SLOTS:[a-z0-9_]+]] = moe.dispatch %{{.*}} {num_experts = 16 : i64, num_shared = 2 : i64} : tensor<?x4xi32> -> tensor<19xi32>, tensor<?xi32>, tensor<?x6xi32>
// CHECK:         %[[T:.*]] = tensor.dim %[[X]], %{{.*}} : tensor<?x64xf32>
// CHECK:         %[[SIX:.*]] = arith.constant 6 : index
// CHECK:         %[[N:.*]] = arith.muli %[[T]], %[[SIX]] : index
// CHECK:         %[[ACC:.*]] = tensor.empty(%[[N]]) : tensor<?x64xf32>
// CHECK:         %[[G0:.*]] = moe.grouped_ffn swiglu %[[X]], %[[ROWS]], %[[OFF]] {{.*}} into %[[ACC]] {first_expert = 0 : i64}
// CHECK:         %[[G1:.*]] = moe.grouped_ffn swiglu %[[X]], %[[ROWS]], %[[OFF]] {{.*}} into %[[G0]] {first_expert = 16 : i64}
// CHECK:         moe.combine %[[G1]], %[[SLOTS]], %{{.*}} : tensor<?x64xf32>, tensor<?x6xi32>, tensor<?x4xf32> -> tensor<?x64xf32>
func.func @dynamic_tokens(%x: tensor<?x64xf32>, %gate: tensor<16x64xf32>, %bias: tensor<16xf32>,
                          %w1: tensor<16x32x64xf32>, %w3: tensor<16x32x64xf32>, %w2: tensor<16x64x32xf32>,
                          %s1: tensor<2x64x64xf32>, %s3: tensor<2x64x64xf32>, %s2: tensor<2x64x64xf32>)
    -> tensor<?x64xf32> {
  %ids, %w = moe.grouped_topk_router sigmoid %x, %gate bias %bias
      {k = 4, num_groups = 4, topk_groups = 2, renormalize, scaling_factor = 2.5 : f32}
      : tensor<?x64xf32>, tensor<16x64xf32>, tensor<16xf32> -> tensor<?x4xi32>, tensor<?x4xf32>
  %routed = moe.ffn_experts swiglu w1(%w1 : tensor<16x32x64xf32>)
      w3(%w3 : tensor<16x32x64xf32>) w2(%w2 : tensor<16x64x32xf32>) -> !moe.experts<16, 64>
  %shared = moe.ffn_experts swiglu w1(%s1 : tensor<2x64x64xf32>)
      w3(%s3 : tensor<2x64x64xf32>) w2(%s2 : tensor<2x64x64xf32>) -> !moe.experts<2, 64>
  %y = moe.layer %x, %ids, %w experts(%routed : !moe.experts<16, 64>)
      shared(%shared : !moe.experts<2, 64>)
      : tensor<?x64xf32>, tensor<?x4xi32>, tensor<?x4xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// Zero experts left in the table (moe-fold-trivial-experts not run) are
// never dispatched: their ids are remapped to -1 first, they get no grouped
// op, and the next bank's first_expert still counts them (ids 0-1 FFN,
// 2-3 zero, 4-5 FFN).
// CHECK-LABEL: func.func @zero_left(
// CHECK-SAME:      %[[X:[a-z0-9_]+]]: tensor<16x64xf32>, %[[IDS:[a-z0-9_]+]]: tensor<16x2xi32>, %[[W:[a-z0-9_]+]]: tensor<16x2xf32>
// CHECK:         %[[RIDS:[a-z0-9_]+]], %[[RW:[a-z0-9_]+]] = moe.remap_experts %[[IDS]], %[[W]] {map = array<i64: 0, 1, -1, -1, 4, 5>}
// CHECK:         %[[OFF:[a-z0-9_]+]], %[[ROWS:[a-z0-9_]+]], %[[SLOTS:[a-z0-9_]+]] = moe.dispatch %[[RIDS]] {num_experts = 6 : i64, num_shared = 0 : i64}
// CHECK:         %[[G0:.*]] = moe.grouped_ffn relu {{.*}} {first_expert = 0 : i64}
// CHECK-NOT:     moe.grouped_ffn
// CHECK:         %[[G1:.*]] = moe.grouped_ffn silu {{.*}} into %[[G0]] {first_expert = 4 : i64}
// CHECK:         moe.combine %[[G1]], %[[SLOTS]], %[[RW]]
// CHECK-NOT:     moe.zero_experts
func.func @zero_left(%x: tensor<16x64xf32>, %ids: tensor<16x2xi32>, %w: tensor<16x2xf32>,
                     %w1: tensor<2x32x64xf32>, %w2: tensor<2x64x32xf32>,
                     %v1: tensor<2x32x64xf32>, %v2: tensor<2x64x32xf32>) -> tensor<16x64xf32> {
  %a = moe.ffn_experts relu w1(%w1 : tensor<2x32x64xf32>) w2(%w2 : tensor<2x64x32xf32>)
      -> !moe.experts<2, 64>
  %zero = moe.zero_experts : !moe.experts<2, 64>
  %b = moe.ffn_experts silu w1(%v1 : tensor<2x32x64xf32>) w2(%v2 : tensor<2x64x32xf32>)
      -> !moe.experts<2, 64>
  %y = moe.layer %x, %ids, %w
      experts(%a, %zero, %b : !moe.experts<2, 64>, !moe.experts<2, 64>, !moe.experts<2, 64>)
      : tensor<16x64xf32>, tensor<16x2xi32>, tensor<16x2xf32> -> tensor<16x64xf32>
  return %y : tensor<16x64xf32>
}

// A layer nested in a skip_block region is expanded in place.
// CHECK-LABEL: func.func @nested(
// CHECK:         moe.skip_block
// CHECK:           moe.dispatch
// CHECK:           moe.grouped_ffn
// CHECK:           %[[Y:.*]] = moe.combine
// CHECK:           moe.yield %[[Y]]
// CHECK-NOT:     moe.layer
func.func @nested(%x: tensor<?x64xf32>, %router: tensor<64xf32>, %gate: tensor<4x64xf32>,
                  %w1: tensor<4x128x64xf32>, %w3: tensor<4x128x64xf32>, %w2: tensor<4x64x128xf32>)
    -> tensor<?x64xf32> {
  %y = moe.skip_block %x, %router {capacity_fraction = 0.5 : f32, scale_by_score}
      : tensor<?x64xf32>, tensor<64xf32> -> tensor<?x64xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    %ids, %w = moe.topk_router softmax %xs, %gate {k = 2, renormalize}
        : tensor<?x64xf32>, tensor<4x64xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
    %e = moe.ffn_experts swiglu w1(%w1 : tensor<4x128x64xf32>)
        w3(%w3 : tensor<4x128x64xf32>) w2(%w2 : tensor<4x64x128xf32>) -> !moe.experts<4, 64>
    %f = moe.layer %xs, %ids, %w experts(%e : !moe.experts<4, 64>)
        : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
    moe.yield %f : tensor<?x64xf32>
  }
  return %y : tensor<?x64xf32>
}

// Statistics of the first chunk (each chunk has its own report): 5 layers
// expanded, 2 + 2 shared experts fused into the grouped computation.
// STATS-LABEL: Pass statistics report
// STATS:       MoeExpandLayers
// STATS-NEXT:    (S) 5 layers-expanded
// STATS-NEXT:    (S) 4 shared-experts-fused

// -----

// Copy experts must be folded into element-wise terms first.
func.func @copy_not_folded(%x: tensor<16x64xf32>, %ids: tensor<16x2xi32>, %w: tensor<16x2xf32>,
                           %w1: tensor<2x32x64xf32>, %w2: tensor<2x64x32xf32>) -> tensor<16x64xf32> {
  %a = moe.ffn_experts relu w1(%w1 : tensor<2x32x64xf32>) w2(%w2 : tensor<2x64x32xf32>)
      -> !moe.experts<2, 64>
  %copy = moe.copy_experts : !moe.experts<1, 64>
  // expected-error @+1 {{'moe.layer' op copy/constant experts must be folded first (run -moe-fold-trivial-experts)}}
  %y = moe.layer %x, %ids, %w experts(%a, %copy : !moe.experts<2, 64>, !moe.experts<1, 64>)
      : tensor<16x64xf32>, tensor<16x2xi32>, tensor<16x2xf32> -> tensor<16x64xf32>
  return %y : tensor<16x64xf32>
}

// -----

// So must constant experts.
func.func @const_not_folded(%x: tensor<16x64xf32>, %ids: tensor<16x2xi32>, %w: tensor<16x2xf32>,
                            %w1: tensor<2x32x64xf32>, %w2: tensor<2x64x32xf32>,
                            %c: tensor<3x64xf32>) -> tensor<16x64xf32> {
  %a = moe.ffn_experts relu w1(%w1 : tensor<2x32x64xf32>) w2(%w2 : tensor<2x64x32xf32>)
      -> !moe.experts<2, 64>
  %const = moe.const_experts %c : tensor<3x64xf32> -> !moe.experts<3, 64>
  // expected-error @+1 {{copy/constant experts must be folded first}}
  %y = moe.layer %x, %ids, %w experts(%const, %a : !moe.experts<3, 64>, !moe.experts<2, 64>)
      : tensor<16x64xf32>, tensor<16x2xi32>, tensor<16x2xf32> -> tensor<16x64xf32>
  return %y : tensor<16x64xf32>
}

// -----

// Shared experts must be FFN or LoRA experts (here a zero expert).
func.func @trivial_shared(%x: tensor<16x64xf32>, %ids: tensor<16x2xi32>, %w: tensor<16x2xf32>,
                          %w1: tensor<2x32x64xf32>, %w2: tensor<2x64x32xf32>) -> tensor<16x64xf32> {
  %a = moe.ffn_experts relu w1(%w1 : tensor<2x32x64xf32>) w2(%w2 : tensor<2x64x32xf32>)
      -> !moe.experts<2, 64>
  %zero = moe.zero_experts : !moe.experts<1, 64>
  // expected-error @+1 {{shared experts must be FFN or LoRA experts}}
  %y = moe.layer %x, %ids, %w experts(%a : !moe.experts<2, 64>) shared(%zero : !moe.experts<1, 64>)
      : tensor<16x64xf32>, tensor<16x2xi32>, tensor<16x2xf32> -> tensor<16x64xf32>
  return %y : tensor<16x64xf32>
}
