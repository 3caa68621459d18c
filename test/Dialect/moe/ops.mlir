// RUN: moe-opt %s | moe-opt | FileCheck %s
// RUN: moe-opt %s --mlir-print-op-generic | moe-opt | FileCheck %s

// Round trip of every moe op, attribute and option, in the custom and the
// generic form. T is static in some functions and dynamic (`?`) in others.

//===----------------------------------------------------------------------===//
// Routers
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @topk_router_plain(
// CHECK:         %{{.*}}, %{{.*}} = moe.topk_router softmax %{{.*}}, %{{.*}} {k = 2 : i64} : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
func.func @topk_router_plain(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>)
    -> (tensor<16x2xi32>, tensor<16x2xf32>) {
  %ids, %w = moe.topk_router softmax %x, %gate {k = 2}
      : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return %ids, %w : tensor<16x2xi32>, tensor<16x2xf32>
}

// CHECK-LABEL: func.func @topk_router_all_options(
// CHECK:         moe.topk_router sigmoid %{{.*}}, %{{.*}} bias %{{.*}} {k = 3 : i64, renormalize, scaling_factor = 2.500000e+00 : f32} : tensor<?x64xf32>, tensor<8x64xf32>, tensor<8xf32> -> tensor<?x3xi32>, tensor<?x3xf32>
func.func @topk_router_all_options(%x: tensor<?x64xf32>, %gate: tensor<8x64xf32>,
                                   %bias: tensor<8xf32>)
    -> (tensor<?x3xi32>, tensor<?x3xf32>) {
  %ids, %w = moe.topk_router sigmoid %x, %gate bias %bias
      {k = 3, renormalize, scaling_factor = 2.5 : f32}
      : tensor<?x64xf32>, tensor<8x64xf32>, tensor<8xf32> -> tensor<?x3xi32>, tensor<?x3xf32>
  return %ids, %w : tensor<?x3xi32>, tensor<?x3xf32>
}

// The default scaling_factor (1.0) is elided when printed.
// CHECK-LABEL: func.func @topk_router_default_scale(
// CHECK:         moe.topk_router softmax %{{.*}}, %{{.*}} {k = 1 : i64} : tensor<4x64xf32>, tensor<8x64xf32> -> tensor<4x1xi32>, tensor<4x1xf32>
func.func @topk_router_default_scale(%x: tensor<4x64xf32>, %gate: tensor<8x64xf32>)
    -> (tensor<4x1xi32>, tensor<4x1xf32>) {
  %ids, %w = moe.topk_router softmax %x, %gate {k = 1, scaling_factor = 1.0 : f32}
      : tensor<4x64xf32>, tensor<8x64xf32> -> tensor<4x1xi32>, tensor<4x1xf32>
  return %ids, %w : tensor<4x1xi32>, tensor<4x1xf32>
}

// CHECK-LABEL: func.func @topk_router_bias_only(
// CHECK:         moe.topk_router softmax %{{.*}}, %{{.*}} bias %{{.*}} {k = 8 : i64} : tensor<16x64xf32>, tensor<8x64xf32>, tensor<8xf32> -> tensor<16x8xi32>, tensor<16x8xf32>
func.func @topk_router_bias_only(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>,
                                 %bias: tensor<8xf32>)
    -> (tensor<16x8xi32>, tensor<16x8xf32>) {
  %ids, %w = moe.topk_router softmax %x, %gate bias %bias {k = 8}
      : tensor<16x64xf32>, tensor<8x64xf32>, tensor<8xf32> -> tensor<16x8xi32>, tensor<16x8xf32>
  return %ids, %w : tensor<16x8xi32>, tensor<16x8xf32>
}

// CHECK-LABEL: func.func @grouped_topk_router_plain(
// CHECK:         moe.grouped_topk_router softmax %{{.*}}, %{{.*}} {k = 2 : i64, num_groups = 4 : i64, topk_groups = 1 : i64} : tensor<16x64xf32>, tensor<16x64xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
func.func @grouped_topk_router_plain(%x: tensor<16x64xf32>, %gate: tensor<16x64xf32>)
    -> (tensor<16x2xi32>, tensor<16x2xf32>) {
  %ids, %w = moe.grouped_topk_router softmax %x, %gate
      {k = 2, num_groups = 4, topk_groups = 1}
      : tensor<16x64xf32>, tensor<16x64xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return %ids, %w : tensor<16x2xi32>, tensor<16x2xf32>
}

// CHECK-LABEL: func.func @grouped_topk_router_all_options(
// CHECK:         moe.grouped_topk_router sigmoid %{{.*}}, %{{.*}} bias %{{.*}} {k = 4 : i64, num_groups = 4 : i64, renormalize, scaling_factor = 2.500000e+00 : f32, topk_groups = 2 : i64} : tensor<?x64xf32>, tensor<16x64xf32>, tensor<16xf32> -> tensor<?x4xi32>, tensor<?x4xf32>
func.func @grouped_topk_router_all_options(%x: tensor<?x64xf32>, %gate: tensor<16x64xf32>,
                                           %bias: tensor<16xf32>)
    -> (tensor<?x4xi32>, tensor<?x4xf32>) {
  %ids, %w = moe.grouped_topk_router sigmoid %x, %gate bias %bias
      {k = 4, num_groups = 4, topk_groups = 2, renormalize, scaling_factor = 2.5 : f32}
      : tensor<?x64xf32>, tensor<16x64xf32>, tensor<16xf32> -> tensor<?x4xi32>, tensor<?x4xf32>
  return %ids, %w : tensor<?x4xi32>, tensor<?x4xf32>
}

// CHECK-LABEL: func.func @topp_router_plain(
// CHECK:         moe.topp_router %{{.*}}, %{{.*}} {max_k = 4 : i64, threshold = 6.000000e-01 : f32} : tensor<16x64xf32>, tensor<10x64xf32> -> tensor<16x4xi32>, tensor<16x4xf32>
func.func @topp_router_plain(%x: tensor<16x64xf32>, %gate: tensor<10x64xf32>)
    -> (tensor<16x4xi32>, tensor<16x4xf32>) {
  %ids, %w = moe.topp_router %x, %gate {threshold = 0.6 : f32, max_k = 4}
      : tensor<16x64xf32>, tensor<10x64xf32> -> tensor<16x4xi32>, tensor<16x4xf32>
  return %ids, %w : tensor<16x4xi32>, tensor<16x4xf32>
}

// threshold = 1.0 is the inclusive upper bound of (0, 1].
// CHECK-LABEL: func.func @topp_router_all_options(
// CHECK:         moe.topp_router %{{.*}}, %{{.*}} {max_k = 10 : i64, renormalize, scaling_factor = 5.000000e-01 : f32, threshold = 1.000000e+00 : f32} : tensor<?x64xf32>, tensor<10x64xf32> -> tensor<?x10xi32>, tensor<?x10xf32>
func.func @topp_router_all_options(%x: tensor<?x64xf32>, %gate: tensor<10x64xf32>)
    -> (tensor<?x10xi32>, tensor<?x10xf32>) {
  %ids, %w = moe.topp_router %x, %gate
      {threshold = 1.0 : f32, max_k = 10, renormalize, scaling_factor = 0.5 : f32}
      : tensor<?x64xf32>, tensor<10x64xf32> -> tensor<?x10xi32>, tensor<?x10xf32>
  return %ids, %w : tensor<?x10xi32>, tensor<?x10xf32>
}

// CHECK-LABEL: func.func @relu_router_plain(
// CHECK:         moe.relu_router %{{.*}}, %{{.*}} : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x8xi32>, tensor<16x8xf32>
func.func @relu_router_plain(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>)
    -> (tensor<16x8xi32>, tensor<16x8xf32>) {
  %ids, %w = moe.relu_router %x, %gate
      : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x8xi32>, tensor<16x8xf32>
  return %ids, %w : tensor<16x8xi32>, tensor<16x8xf32>
}

// K < E keeps only the K largest positive logits.
// CHECK-LABEL: func.func @relu_router_scaled(
// CHECK:         moe.relu_router %{{.*}}, %{{.*}} {scaling_factor = 3.000000e+00 : f32} : tensor<?x64xf32>, tensor<8x64xf32> -> tensor<?x3xi32>, tensor<?x3xf32>
func.func @relu_router_scaled(%x: tensor<?x64xf32>, %gate: tensor<8x64xf32>)
    -> (tensor<?x3xi32>, tensor<?x3xf32>) {
  %ids, %w = moe.relu_router %x, %gate {scaling_factor = 3.0 : f32}
      : tensor<?x64xf32>, tensor<8x64xf32> -> tensor<?x3xi32>, tensor<?x3xf32>
  return %ids, %w : tensor<?x3xi32>, tensor<?x3xf32>
}

// CHECK-LABEL: func.func @expert_choice_router_softmax(
// CHECK:         moe.expert_choice_router softmax %{{.*}}, %{{.*}} {capacity = 4 : i64} : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x8xi32>, tensor<16x8xf32>
func.func @expert_choice_router_softmax(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>)
    -> (tensor<16x8xi32>, tensor<16x8xf32>) {
  %ids, %w = moe.expert_choice_router softmax %x, %gate {capacity = 4}
      : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x8xi32>, tensor<16x8xf32>
  return %ids, %w : tensor<16x8xi32>, tensor<16x8xf32>
}

// A capacity above T is allowed (an expert takes min(capacity, T) tokens).
// CHECK-LABEL: func.func @expert_choice_router_sigmoid(
// CHECK:         moe.expert_choice_router sigmoid %{{.*}}, %{{.*}} {capacity = 32 : i64, scaling_factor = 2.000000e+00 : f32} : tensor<?x64xf32>, tensor<8x64xf32> -> tensor<?x8xi32>, tensor<?x8xf32>
func.func @expert_choice_router_sigmoid(%x: tensor<?x64xf32>, %gate: tensor<8x64xf32>)
    -> (tensor<?x8xi32>, tensor<?x8xf32>) {
  %ids, %w = moe.expert_choice_router sigmoid %x, %gate {capacity = 32, scaling_factor = 2.0 : f32}
      : tensor<?x64xf32>, tensor<8x64xf32> -> tensor<?x8xi32>, tensor<?x8xf32>
  return %ids, %w : tensor<?x8xi32>, tensor<?x8xf32>
}

// CHECK-LABEL: func.func @hash_router_i32(
// CHECK:         moe.hash_router %{{.*}} {num_experts = 8 : i64} : tensor<16xi32> -> tensor<16x1xi32>, tensor<16x1xf32>
func.func @hash_router_i32(%tok: tensor<16xi32>) -> (tensor<16x1xi32>, tensor<16x1xf32>) {
  %ids, %w = moe.hash_router %tok {num_experts = 8}
      : tensor<16xi32> -> tensor<16x1xi32>, tensor<16x1xf32>
  return %ids, %w : tensor<16x1xi32>, tensor<16x1xf32>
}

// Attributes with a dialect prefix are discardable attributes of that
// dialect: every moe op keeps them (only unprefixed unknown names are errors).
// CHECK-LABEL: func.func @prefixed_attributes(
// CHECK:         moe.hash_router %{{.*}} {foo.tag = "kept", moe.note = 1 : i64, num_experts = 8 : i64}
func.func @prefixed_attributes(%tok: tensor<16xi32>) -> (tensor<16x1xi32>, tensor<16x1xf32>) {
  %ids, %w = moe.hash_router %tok {num_experts = 8, moe.note = 1, foo.tag = "kept"}
      : tensor<16xi32> -> tensor<16x1xi32>, tensor<16x1xf32>
  return %ids, %w : tensor<16x1xi32>, tensor<16x1xf32>
}

// CHECK-LABEL: func.func @hash_router_i64(
// CHECK:         moe.hash_router %{{.*}} {num_experts = 3 : i64} : tensor<?xi64> -> tensor<?x1xi32>, tensor<?x1xf32>
func.func @hash_router_i64(%tok: tensor<?xi64>) -> (tensor<?x1xi32>, tensor<?x1xf32>) {
  %ids, %w = moe.hash_router %tok {num_experts = 3}
      : tensor<?xi64> -> tensor<?x1xi32>, tensor<?x1xf32>
  return %ids, %w : tensor<?x1xi32>, tensor<?x1xf32>
}

// CHECK-LABEL: func.func @capacity_drop(
// CHECK:         %[[IDS:.*]], %[[W:.*]] = moe.topk_router softmax
// CHECK:         moe.capacity_drop %[[IDS]], %[[W]] {capacity_factor = 1.250000e+00 : f32, num_experts = 8 : i64} : tensor<16x2xi32>, tensor<16x2xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
func.func @capacity_drop(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>)
    -> (tensor<16x2xi32>, tensor<16x2xf32>) {
  %ids0, %w0 = moe.topk_router softmax %x, %gate {k = 2}
      : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  %ids, %w = moe.capacity_drop %ids0, %w0 {num_experts = 8, capacity_factor = 1.25 : f32}
      : tensor<16x2xi32>, tensor<16x2xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return %ids, %w : tensor<16x2xi32>, tensor<16x2xf32>
}

// Routing from outside (function arguments), dynamic T.
// CHECK-LABEL: func.func @capacity_drop_dynamic(
// CHECK-SAME:    %[[IDS:.*]]: tensor<?x1xi32>, %[[W:.*]]: tensor<?x1xf32>)
// CHECK:         moe.capacity_drop %[[IDS]], %[[W]] {capacity_factor = 5.000000e-01 : f32, num_experts = 4 : i64} : tensor<?x1xi32>, tensor<?x1xf32> -> tensor<?x1xi32>, tensor<?x1xf32>
func.func @capacity_drop_dynamic(%ids0: tensor<?x1xi32>, %w0: tensor<?x1xf32>)
    -> (tensor<?x1xi32>, tensor<?x1xf32>) {
  %ids, %w = moe.capacity_drop %ids0, %w0 {num_experts = 4, capacity_factor = 0.5 : f32}
      : tensor<?x1xi32>, tensor<?x1xf32> -> tensor<?x1xi32>, tensor<?x1xf32>
  return %ids, %w : tensor<?x1xi32>, tensor<?x1xf32>
}

// CHECK-LABEL: func.func @capacity_reroute(
// CHECK:         %[[IDS:.*]], %[[W:.*]] = moe.topk_router softmax
// CHECK:         %[[S:.*]] = moe.router_scores sigmoid %{{.*}}, %{{.*}} : tensor<?x64xf32>, tensor<8x64xf32> -> tensor<?x8xf32>
// CHECK:         moe.capacity_reroute %[[IDS]], %[[W]], %[[S]] {capacity_factor = 1.250000e+00 : f32} : tensor<?x2xi32>, tensor<?x2xf32>, tensor<?x8xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
func.func @capacity_reroute(%x: tensor<?x64xf32>, %gate: tensor<8x64xf32>)
    -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %ids0, %w0 = moe.topk_router softmax %x, %gate {k = 2}
      : tensor<?x64xf32>, tensor<8x64xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  %s = moe.router_scores sigmoid %x, %gate : tensor<?x64xf32>, tensor<8x64xf32> -> tensor<?x8xf32>
  %ids, %w = moe.capacity_reroute %ids0, %w0, %s {capacity_factor = 1.25 : f32}
      : tensor<?x2xi32>, tensor<?x2xf32>, tensor<?x8xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  return %ids, %w : tensor<?x2xi32>, tensor<?x2xf32>
}

// Routing and scores from outside, static T.
// CHECK-LABEL: func.func @capacity_reroute_oracle(
// CHECK:         moe.capacity_reroute %{{.*}}, %{{.*}}, %{{.*}} {capacity_factor = 5.000000e-01 : f32} : tensor<16x1xi32>, tensor<16x1xf32>, tensor<16x4xf32> -> tensor<16x1xi32>, tensor<16x1xf32>
func.func @capacity_reroute_oracle(%ids0: tensor<16x1xi32>, %w0: tensor<16x1xf32>,
                                   %s: tensor<16x4xf32>) -> (tensor<16x1xi32>, tensor<16x1xf32>) {
  %ids, %w = moe.capacity_reroute %ids0, %w0, %s {capacity_factor = 0.5 : f32}
      : tensor<16x1xi32>, tensor<16x1xf32>, tensor<16x4xf32> -> tensor<16x1xi32>, tensor<16x1xf32>
  return %ids, %w : tensor<16x1xi32>, tensor<16x1xf32>
}

// CHECK-LABEL: func.func @compress_slots(
// CHECK:         %[[IDS:.*]], %[[W:.*]] = moe.topk_router softmax
// CHECK:         moe.compress_slots %[[IDS]], %[[W]] {compressed = array<i64: 0, 1, 0, 1>, keep = 1 : i64} : tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
// CHECK:         moe.layer
func.func @compress_slots(%x: tensor<?x64xf32>, %gate: tensor<4x64xf32>, %full: !moe.experts<4, 64>,
                          %small: !moe.experts<2, 64>) -> tensor<?x64xf32> {
  %ids0, %w0 = moe.topk_router softmax %x, %gate {k = 2}
      : tensor<?x64xf32>, tensor<4x64xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  %ids, %w = moe.compress_slots %ids0, %w0 {keep = 1, compressed = array<i64: 0, 1, 0, 1>}
      : tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  %y = moe.layer %x, %ids, %w experts(%full, %small : !moe.experts<4, 64>, !moe.experts<2, 64>)
      : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// keep = 0 (every slot compressed) and keep = K (none), routing from outside.
// CHECK-LABEL: func.func @compress_slots_bounds(
// CHECK:         moe.compress_slots %{{.*}}, %{{.*}} {compressed = array<i64: 0, 0, 0>, keep = 0 : i64} : tensor<16x3xi32>, tensor<16x3xf32> -> tensor<16x3xi32>, tensor<16x3xf32>
// CHECK:         moe.compress_slots %{{.*}}, %{{.*}} {compressed = array<i64: 2, 1, 0>, keep = 3 : i64}
func.func @compress_slots_bounds(%ids0: tensor<16x3xi32>, %w0: tensor<16x3xf32>)
    -> (tensor<16x3xi32>, tensor<16x3xi32>) {
  %a, %aw = moe.compress_slots %ids0, %w0 {keep = 0, compressed = array<i64: 0, 0, 0>}
      : tensor<16x3xi32>, tensor<16x3xf32> -> tensor<16x3xi32>, tensor<16x3xf32>
  %b, %bw = moe.compress_slots %ids0, %w0 {keep = 3, compressed = array<i64: 2, 1, 0>}
      : tensor<16x3xi32>, tensor<16x3xf32> -> tensor<16x3xi32>, tensor<16x3xf32>
  return %a, %b : tensor<16x3xi32>, tensor<16x3xi32>
}

// CHECK-LABEL: func.func @path_router(
// CHECK:         moe.path_router %{{.*}}, %{{.*}} : tensor<16x64xf32>, tensor<3x64xf32> -> tensor<16xi32>
// CHECK:         moe.path_router %{{.*}}, %{{.*}} : tensor<?x64xf32>, tensor<3x64xf32> -> tensor<?xi32>
func.func @path_router(%x: tensor<16x64xf32>, %xd: tensor<?x64xf32>, %gate: tensor<3x64xf32>)
    -> (tensor<16xi32>, tensor<?xi32>) {
  %p = moe.path_router %x, %gate : tensor<16x64xf32>, tensor<3x64xf32> -> tensor<16xi32>
  %pd = moe.path_router %xd, %gate : tensor<?x64xf32>, tensor<3x64xf32> -> tensor<?xi32>
  return %p, %pd : tensor<16xi32>, tensor<?xi32>
}

//===----------------------------------------------------------------------===//
// Experts
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @ffn_experts_gated(
// CHECK:         moe.ffn_experts swiglu w1(%{{.*}} : tensor<4x128x64xf32>) w3(%{{.*}} : tensor<4x128x64xf32>) w2(%{{.*}} : tensor<4x64x128xf32>) -> !moe.experts<4, 64>
// CHECK:         moe.ffn_experts geglu w1(%{{.*}} : tensor<4x128x64xf32>) w3(%{{.*}} : tensor<4x128x64xf32>) w2(%{{.*}} : tensor<4x64x128xf32>) -> !moe.experts<4, 64>
func.func @ffn_experts_gated(%w1: tensor<4x128x64xf32>, %w3: tensor<4x128x64xf32>,
                             %w2: tensor<4x64x128xf32>) {
  %a = moe.ffn_experts swiglu w1(%w1 : tensor<4x128x64xf32>)
      w3(%w3 : tensor<4x128x64xf32>) w2(%w2 : tensor<4x64x128xf32>) -> !moe.experts<4, 64>
  %b = moe.ffn_experts geglu w1(%w1 : tensor<4x128x64xf32>)
      w3(%w3 : tensor<4x128x64xf32>) w2(%w2 : tensor<4x64x128xf32>) -> !moe.experts<4, 64>
  return
}

// CHECK-LABEL: func.func @ffn_experts_plain(
// CHECK:         moe.ffn_experts gelu w1(%{{.*}} : tensor<2x32x16xf32>) w2(%{{.*}} : tensor<2x16x32xf32>) -> !moe.experts<2, 16>
// CHECK:         moe.ffn_experts relu w1(%{{.*}} : tensor<2x32x16xf32>) w2(%{{.*}} : tensor<2x16x32xf32>) -> !moe.experts<2, 16>
// CHECK:         moe.ffn_experts silu w1(%{{.*}} : tensor<2x32x16xf32>) w2(%{{.*}} : tensor<2x16x32xf32>) -> !moe.experts<2, 16>
func.func @ffn_experts_plain(%w1: tensor<2x32x16xf32>, %w2: tensor<2x16x32xf32>) {
  %a = moe.ffn_experts gelu w1(%w1 : tensor<2x32x16xf32>) w2(%w2 : tensor<2x16x32xf32>)
      -> !moe.experts<2, 16>
  %b = moe.ffn_experts relu w1(%w1 : tensor<2x32x16xf32>) w2(%w2 : tensor<2x16x32xf32>)
      -> !moe.experts<2, 16>
  %c = moe.ffn_experts silu w1(%w1 : tensor<2x32x16xf32>) w2(%w2 : tensor<2x16x32xf32>)
      -> !moe.experts<2, 16>
  return
}

// CHECK-LABEL: func.func @lora_experts_gated(
// CHECK:         moe.lora_experts swiglu base(w1 %{{.*}} : tensor<128x64xf32>, w3 %{{.*}} : tensor<128x64xf32>, w2 %{{.*}} : tensor<64x128xf32>) adapters(w1 %{{.*}}, %{{.*}} : tensor<4x8x64xf32>, tensor<4x128x8xf32>, w3 %{{.*}}, %{{.*}} : tensor<4x8x64xf32>, tensor<4x128x8xf32>, w2 %{{.*}}, %{{.*}} : tensor<4x8x128xf32>, tensor<4x64x8xf32>) {alpha = 1.600000e+01 : f32} -> !moe.experts<4, 64>
// CHECK:         moe.lora_experts geglu base(w1 %{{.*}} : tensor<128x64xf32>, w3 %{{.*}} : tensor<128x64xf32>, w2 %{{.*}} : tensor<64x128xf32>) adapters(w1 %{{.*}}, %{{.*}} : tensor<4x8x64xf32>, tensor<4x128x8xf32>, w3 %{{.*}}, %{{.*}} : tensor<4x8x64xf32>, tensor<4x128x8xf32>, w2 %{{.*}}, %{{.*}} : tensor<4x8x128xf32>, tensor<4x64x8xf32>) {alpha = -5.000000e-01 : f32} -> !moe.experts<4, 64>
func.func @lora_experts_gated(%w1: tensor<128x64xf32>, %w3: tensor<128x64xf32>,
                              %w2: tensor<64x128xf32>,
                              %a1: tensor<4x8x64xf32>, %b1: tensor<4x128x8xf32>,
                              %a3: tensor<4x8x64xf32>, %b3: tensor<4x128x8xf32>,
                              %a2: tensor<4x8x128xf32>, %b2: tensor<4x64x8xf32>) {
  %a = moe.lora_experts swiglu
      base(w1 %w1 : tensor<128x64xf32>, w3 %w3 : tensor<128x64xf32>, w2 %w2 : tensor<64x128xf32>)
      adapters(w1 %a1, %b1 : tensor<4x8x64xf32>, tensor<4x128x8xf32>,
               w3 %a3, %b3 : tensor<4x8x64xf32>, tensor<4x128x8xf32>,
               w2 %a2, %b2 : tensor<4x8x128xf32>, tensor<4x64x8xf32>)
      {alpha = 16.0 : f32} -> !moe.experts<4, 64>
  %b = moe.lora_experts geglu
      base(w1 %w1 : tensor<128x64xf32>, w3 %w3 : tensor<128x64xf32>, w2 %w2 : tensor<64x128xf32>)
      adapters(w1 %a1, %b1 : tensor<4x8x64xf32>, tensor<4x128x8xf32>,
               w3 %a3, %b3 : tensor<4x8x64xf32>, tensor<4x128x8xf32>,
               w2 %a2, %b2 : tensor<4x8x128xf32>, tensor<4x64x8xf32>)
      {alpha = -0.5 : f32} -> !moe.experts<4, 64>
  return
}

// CHECK-LABEL: func.func @lora_experts_plain(
// CHECK:         moe.lora_experts gelu base(w1 %{{.*}} : tensor<32x16xf32>, w2 %{{.*}} : tensor<16x32xf32>) adapters(w1 %{{.*}}, %{{.*}} : tensor<2x4x16xf32>, tensor<2x32x4xf32>, w2 %{{.*}}, %{{.*}} : tensor<2x4x32xf32>, tensor<2x16x4xf32>) {alpha = 8.000000e+00 : f32} -> !moe.experts<2, 16>
// CHECK:         moe.lora_experts relu base(w1 %{{.*}} : tensor<32x16xf32>, w2 %{{.*}} : tensor<16x32xf32>) adapters(w1 %{{.*}}, %{{.*}} : tensor<2x4x16xf32>, tensor<2x32x4xf32>, w2 %{{.*}}, %{{.*}} : tensor<2x4x32xf32>, tensor<2x16x4xf32>) {alpha = 0.000000e+00 : f32} -> !moe.experts<2, 16>
// CHECK:         moe.lora_experts silu base(w1 %{{.*}} : tensor<32x16xf32>, w2 %{{.*}} : tensor<16x32xf32>) adapters(w1 %{{.*}}, %{{.*}} : tensor<2x4x16xf32>, tensor<2x32x4xf32>, w2 %{{.*}}, %{{.*}} : tensor<2x4x32xf32>, tensor<2x16x4xf32>) {alpha = 1.000000e+00 : f32} -> !moe.experts<2, 16>
func.func @lora_experts_plain(%w1: tensor<32x16xf32>, %w2: tensor<16x32xf32>,
                              %a1: tensor<2x4x16xf32>, %b1: tensor<2x32x4xf32>,
                              %a2: tensor<2x4x32xf32>, %b2: tensor<2x16x4xf32>) {
  %a = moe.lora_experts gelu
      base(w1 %w1 : tensor<32x16xf32>, w2 %w2 : tensor<16x32xf32>)
      adapters(w1 %a1, %b1 : tensor<2x4x16xf32>, tensor<2x32x4xf32>,
               w2 %a2, %b2 : tensor<2x4x32xf32>, tensor<2x16x4xf32>)
      {alpha = 8.0 : f32} -> !moe.experts<2, 16>
  %b = moe.lora_experts relu
      base(w1 %w1 : tensor<32x16xf32>, w2 %w2 : tensor<16x32xf32>)
      adapters(w1 %a1, %b1 : tensor<2x4x16xf32>, tensor<2x32x4xf32>,
               w2 %a2, %b2 : tensor<2x4x32xf32>, tensor<2x16x4xf32>)
      {alpha = 0.0 : f32} -> !moe.experts<2, 16>
  %c = moe.lora_experts silu
      base(w1 %w1 : tensor<32x16xf32>, w2 %w2 : tensor<16x32xf32>)
      adapters(w1 %a1, %b1 : tensor<2x4x16xf32>, tensor<2x32x4xf32>,
               w2 %a2, %b2 : tensor<2x4x32xf32>, tensor<2x16x4xf32>)
      {alpha = 1.0 : f32} -> !moe.experts<2, 16>
  return
}

// CHECK-LABEL: func.func @zero_copy_const_experts(
// CHECK:         moe.zero_experts : !moe.experts<1, 64>
// CHECK:         moe.copy_experts : !moe.experts<3, 64>
// CHECK:         moe.const_experts %{{.*}} : tensor<2x64xf32> -> !moe.experts<2, 64>
func.func @zero_copy_const_experts(%values: tensor<2x64xf32>) {
  %zero = moe.zero_experts : !moe.experts<1, 64>
  %copy = moe.copy_experts : !moe.experts<3, 64>
  %const = moe.const_experts %values : tensor<2x64xf32> -> !moe.experts<2, 64>
  return
}

// The experts type as a function argument and result.
// CHECK-LABEL: func.func @experts_type(
// CHECK-SAME:    %{{.*}}: !moe.experts<16, 4096>) -> !moe.experts<16, 4096>
func.func @experts_type(%e: !moe.experts<16, 4096>) -> !moe.experts<16, 4096> {
  return %e : !moe.experts<16, 4096>
}

//===----------------------------------------------------------------------===//
// Layer and dense FFN
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @layer_one_bank(
// CHECK:         %[[E:.*]] = moe.ffn_experts swiglu
// CHECK:         moe.layer %{{.*}}, %{{.*}}, %{{.*}} experts(%[[E]] : !moe.experts<8, 64>) : tensor<16x64xf32>, tensor<16x2xi32>, tensor<16x2xf32> -> tensor<16x64xf32>
func.func @layer_one_bank(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>,
                          %w1: tensor<8x128x64xf32>, %w3: tensor<8x128x64xf32>,
                          %w2: tensor<8x64x128xf32>) -> tensor<16x64xf32> {
  %ids, %w = moe.topk_router softmax %x, %gate {k = 2, renormalize}
      : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  %experts = moe.ffn_experts swiglu w1(%w1 : tensor<8x128x64xf32>)
      w3(%w3 : tensor<8x128x64xf32>) w2(%w2 : tensor<8x64x128xf32>) -> !moe.experts<8, 64>
  %y = moe.layer %x, %ids, %w experts(%experts : !moe.experts<8, 64>)
      : tensor<16x64xf32>, tensor<16x2xi32>, tensor<16x2xf32> -> tensor<16x64xf32>
  return %y : tensor<16x64xf32>
}

// Several banks of every kind in one table, routing from outside, dynamic T.
// CHECK-LABEL: func.func @layer_several_banks(
// CHECK:         %[[FFN:.*]] = moe.ffn_experts gelu
// CHECK:         %[[ZERO:.*]] = moe.zero_experts : !moe.experts<1, 64>
// CHECK:         %[[COPY:.*]] = moe.copy_experts : !moe.experts<1, 64>
// CHECK:         %[[CONST:.*]] = moe.const_experts
// CHECK:         moe.layer %{{.*}}, %{{.*}}, %{{.*}} experts(%[[FFN]], %[[ZERO]], %[[COPY]], %[[CONST]] : !moe.experts<4, 64>, !moe.experts<1, 64>, !moe.experts<1, 64>, !moe.experts<2, 64>) : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
func.func @layer_several_banks(%x: tensor<?x64xf32>, %ids: tensor<?x2xi32>, %w: tensor<?x2xf32>,
                               %w1: tensor<4x128x64xf32>, %w2: tensor<4x64x128xf32>,
                               %consts: tensor<2x64xf32>) -> tensor<?x64xf32> {
  %ffn = moe.ffn_experts gelu w1(%w1 : tensor<4x128x64xf32>) w2(%w2 : tensor<4x64x128xf32>)
      -> !moe.experts<4, 64>
  %zero = moe.zero_experts : !moe.experts<1, 64>
  %copy = moe.copy_experts : !moe.experts<1, 64>
  %const = moe.const_experts %consts : tensor<2x64xf32> -> !moe.experts<2, 64>
  %y = moe.layer %x, %ids, %w
      experts(%ffn, %zero, %copy, %const : !moe.experts<4, 64>, !moe.experts<1, 64>,
                                           !moe.experts<1, 64>, !moe.experts<2, 64>)
      : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// Routed and shared banks; the routing's E (16) is the routed table's size.
// CHECK-LABEL: func.func @layer_shared(
// CHECK:         %[[R:.*]] = moe.ffn_experts swiglu {{.*}} -> !moe.experts<16, 64>
// CHECK:         %[[S0:.*]] = moe.ffn_experts silu {{.*}} -> !moe.experts<2, 64>
// CHECK:         %[[S1:.*]] = moe.copy_experts : !moe.experts<1, 64>
// CHECK:         moe.layer %{{.*}}, %{{.*}}, %{{.*}} experts(%[[R]] : !moe.experts<16, 64>) shared(%[[S0]], %[[S1]] : !moe.experts<2, 64>, !moe.experts<1, 64>) : tensor<16x64xf32>, tensor<16x4xi32>, tensor<16x4xf32> -> tensor<16x64xf32>
func.func @layer_shared(%x: tensor<16x64xf32>, %gate: tensor<16x64xf32>, %bias: tensor<16xf32>,
                        %w1: tensor<16x32x64xf32>, %w3: tensor<16x32x64xf32>,
                        %w2: tensor<16x64x32xf32>,
                        %s1: tensor<2x64x64xf32>, %s2: tensor<2x64x64xf32>)
    -> tensor<16x64xf32> {
  %ids, %w = moe.grouped_topk_router sigmoid %x, %gate bias %bias
      {k = 4, num_groups = 4, topk_groups = 2, renormalize, scaling_factor = 2.5 : f32}
      : tensor<16x64xf32>, tensor<16x64xf32>, tensor<16xf32> -> tensor<16x4xi32>, tensor<16x4xf32>
  %routed = moe.ffn_experts swiglu w1(%w1 : tensor<16x32x64xf32>)
      w3(%w3 : tensor<16x32x64xf32>) w2(%w2 : tensor<16x64x32xf32>) -> !moe.experts<16, 64>
  %shared = moe.ffn_experts silu w1(%s1 : tensor<2x64x64xf32>) w2(%s2 : tensor<2x64x64xf32>)
      -> !moe.experts<2, 64>
  %copy = moe.copy_experts : !moe.experts<1, 64>
  %y = moe.layer %x, %ids, %w experts(%routed : !moe.experts<16, 64>)
      shared(%shared, %copy : !moe.experts<2, 64>, !moe.experts<1, 64>)
      : tensor<16x64xf32>, tensor<16x4xi32>, tensor<16x4xf32> -> tensor<16x64xf32>
  return %y : tensor<16x64xf32>
}

// A layer routed by capacity_drop after a hash router (E from num_experts).
// CHECK-LABEL: func.func @layer_hash_capacity(
// CHECK:         moe.hash_router
// CHECK:         moe.capacity_drop
// CHECK:         moe.layer %{{.*}}, %{{.*}}, %{{.*}} experts(%{{.*}}, %{{.*}} : !moe.experts<2, 64>, !moe.experts<2, 64>) : tensor<?x64xf32>, tensor<?x1xi32>, tensor<?x1xf32> -> tensor<?x64xf32>
func.func @layer_hash_capacity(%x: tensor<?x64xf32>, %tok: tensor<?xi64>,
                               %w1: tensor<2x32x64xf32>, %w2: tensor<2x64x32xf32>)
    -> tensor<?x64xf32> {
  %ids0, %w0 = moe.hash_router %tok {num_experts = 4}
      : tensor<?xi64> -> tensor<?x1xi32>, tensor<?x1xf32>
  %ids, %w = moe.capacity_drop %ids0, %w0 {num_experts = 4, capacity_factor = 2.0 : f32}
      : tensor<?x1xi32>, tensor<?x1xf32> -> tensor<?x1xi32>, tensor<?x1xf32>
  %a = moe.ffn_experts relu w1(%w1 : tensor<2x32x64xf32>) w2(%w2 : tensor<2x64x32xf32>)
      -> !moe.experts<2, 64>
  %b = moe.zero_experts : !moe.experts<2, 64>
  %y = moe.layer %x, %ids, %w experts(%a, %b : !moe.experts<2, 64>, !moe.experts<2, 64>)
      : tensor<?x64xf32>, tensor<?x1xi32>, tensor<?x1xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// CHECK-LABEL: func.func @ffn(
// CHECK:         moe.ffn swiglu %{{.*}} w1(%{{.*}} : tensor<128x64xf32>) w3(%{{.*}} : tensor<128x64xf32>) w2(%{{.*}} : tensor<64x128xf32>) : tensor<16x64xf32> -> tensor<16x64xf32>
// CHECK:         moe.ffn geglu %{{.*}} w1(%{{.*}} : tensor<128x64xf32>) w3(%{{.*}} : tensor<128x64xf32>) w2(%{{.*}} : tensor<64x128xf32>) : tensor<16x64xf32> -> tensor<16x64xf32>
// CHECK:         moe.ffn gelu %{{.*}} w1(%{{.*}} : tensor<128x64xf32>) w2(%{{.*}} : tensor<64x128xf32>) : tensor<16x64xf32> -> tensor<16x64xf32>
// CHECK:         moe.ffn relu %{{.*}} w1(%{{.*}} : tensor<128x64xf32>) w2(%{{.*}} : tensor<64x128xf32>) : tensor<16x64xf32> -> tensor<16x64xf32>
// CHECK:         moe.ffn silu %{{.*}} w1(%{{.*}} : tensor<128x64xf32>) w2(%{{.*}} : tensor<64x128xf32>) : tensor<?x64xf32> -> tensor<?x64xf32>
func.func @ffn(%x: tensor<16x64xf32>, %xd: tensor<?x64xf32>, %w1: tensor<128x64xf32>,
               %w3: tensor<128x64xf32>, %w2: tensor<64x128xf32>) {
  %a = moe.ffn swiglu %x w1(%w1 : tensor<128x64xf32>) w3(%w3 : tensor<128x64xf32>)
      w2(%w2 : tensor<64x128xf32>) : tensor<16x64xf32> -> tensor<16x64xf32>
  %b = moe.ffn geglu %x w1(%w1 : tensor<128x64xf32>) w3(%w3 : tensor<128x64xf32>)
      w2(%w2 : tensor<64x128xf32>) : tensor<16x64xf32> -> tensor<16x64xf32>
  %c = moe.ffn gelu %x w1(%w1 : tensor<128x64xf32>) w2(%w2 : tensor<64x128xf32>)
      : tensor<16x64xf32> -> tensor<16x64xf32>
  %d = moe.ffn relu %x w1(%w1 : tensor<128x64xf32>) w2(%w2 : tensor<64x128xf32>)
      : tensor<16x64xf32> -> tensor<16x64xf32>
  %e = moe.ffn silu %xd w1(%w1 : tensor<128x64xf32>) w2(%w2 : tensor<64x128xf32>)
      : tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

// A dense FFN in low-precision formats round-trips its format, activation
// precision and int8 scales.
// CHECK-LABEL: func.func @ffn_formats(
// CHECK:         moe.ffn swiglu %{{.*}} w1(%{{.*}} : tensor<128x36xi8>) w3(%{{.*}} : tensor<128x36xi8>) w2(%{{.*}} : tensor<64x72xi8>) format q4_0 activations q8_0 : tensor<?x64xf32> -> tensor<?x64xf32>
// CHECK:         moe.ffn relu %{{.*}} w1(%{{.*}} : tensor<128x64xi8>) w2(%{{.*}} : tensor<64x128xi8>) format int8 scales(%{{.*}}, %{{.*}} : tensor<128xf32>, tensor<64xf32>) : tensor<?x64xf32> -> tensor<?x64xf32>
// CHECK:         moe.ffn gelu %{{.*}} w1(%{{.*}} : tensor<128x64xbf16>) w2(%{{.*}} : tensor<64x128xbf16>) format bf16 activations bf16 : tensor<?x64xf32> -> tensor<?x64xf32>
func.func @ffn_formats(%x: tensor<?x64xf32>, %q1: tensor<128x36xi8>, %q3: tensor<128x36xi8>,
                       %q2: tensor<64x72xi8>, %i1: tensor<128x64xi8>, %i2: tensor<64x128xi8>,
                       %s1: tensor<128xf32>, %s2: tensor<64xf32>, %b1: tensor<128x64xbf16>,
                       %b2: tensor<64x128xbf16>) {
  %a = moe.ffn swiglu %x w1(%q1 : tensor<128x36xi8>) w3(%q3 : tensor<128x36xi8>)
      w2(%q2 : tensor<64x72xi8>) format q4_0 activations q8_0
      : tensor<?x64xf32> -> tensor<?x64xf32>
  %b = moe.ffn relu %x w1(%i1 : tensor<128x64xi8>) w2(%i2 : tensor<64x128xi8>) format int8
      scales(%s1, %s2 : tensor<128xf32>, tensor<64xf32>) : tensor<?x64xf32> -> tensor<?x64xf32>
  %c = moe.ffn gelu %x w1(%b1 : tensor<128x64xbf16>) w2(%b2 : tensor<64x128xbf16>) format bf16
      activations bf16 : tensor<?x64xf32> -> tensor<?x64xf32>
  return
}

//===----------------------------------------------------------------------===//
// Skips
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @skip_block_capacity(
// CHECK:         moe.skip_block %{{.*}}, %{{.*}} {capacity_fraction = 5.000000e-01 : f32} : tensor<16x64xf32>, tensor<64xf32> -> tensor<16x64xf32> {
// CHECK-NEXT:    ^bb0(%[[XS:.*]]: tensor<?x64xf32>):
// CHECK-NEXT:      %[[F:.*]] = moe.ffn swiglu %[[XS]]
// CHECK-NEXT:      moe.yield %[[F]] : tensor<?x64xf32>
// CHECK-NEXT:    }
func.func @skip_block_capacity(%x: tensor<16x64xf32>, %router: tensor<64xf32>,
                               %w1: tensor<128x64xf32>, %w3: tensor<128x64xf32>,
                               %w2: tensor<64x128xf32>) -> tensor<16x64xf32> {
  %y = moe.skip_block %x, %router {capacity_fraction = 0.5 : f32}
      : tensor<16x64xf32>, tensor<64xf32> -> tensor<16x64xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    %f = moe.ffn swiglu %xs w1(%w1 : tensor<128x64xf32>) w3(%w3 : tensor<128x64xf32>)
        w2(%w2 : tensor<64x128xf32>) : tensor<?x64xf32> -> tensor<?x64xf32>
    moe.yield %f : tensor<?x64xf32>
  }
  return %y : tensor<16x64xf32>
}

// Mixture-of-Depths: capacity_fraction with scale_by_score around a layer.
// CHECK-LABEL: func.func @skip_block_capacity_scaled(
// CHECK:         moe.skip_block %{{.*}}, %{{.*}} {capacity_fraction = 1.000000e+00 : f32, scale_by_score} : tensor<?x64xf32>, tensor<64xf32> -> tensor<?x64xf32> {
// CHECK-NEXT:    ^bb0(%[[XS:.*]]: tensor<?x64xf32>):
// CHECK-NEXT:      %[[IDS:.*]], %[[W:.*]] = moe.topk_router softmax %[[XS]]
// CHECK-NEXT:      %[[E:.*]] = moe.ffn_experts swiglu
// CHECK-NEXT:      %[[F:.*]] = moe.layer %[[XS]], %[[IDS]], %[[W]] experts(%[[E]] : !moe.experts<4, 64>) : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
// CHECK-NEXT:      moe.yield %[[F]] : tensor<?x64xf32>
// CHECK-NEXT:    }
func.func @skip_block_capacity_scaled(%x: tensor<?x64xf32>, %router: tensor<64xf32>,
                                      %gate: tensor<4x64xf32>, %w1: tensor<4x128x64xf32>,
                                      %w3: tensor<4x128x64xf32>, %w2: tensor<4x64x128xf32>)
    -> tensor<?x64xf32> {
  %y = moe.skip_block %x, %router {capacity_fraction = 1.0 : f32, scale_by_score}
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

// CHECK-LABEL: func.func @skip_block_threshold(
// CHECK:         moe.skip_block %{{.*}}, %{{.*}} {threshold = 2.500000e-01 : f32} : tensor<16x64xf32>, tensor<64xf32> -> tensor<16x64xf32> {
// CHECK-NEXT:    ^bb0(%[[XS:.*]]: tensor<?x64xf32>):
// CHECK-NEXT:      moe.yield %[[XS]] : tensor<?x64xf32>
// CHECK-NEXT:    }
func.func @skip_block_threshold(%x: tensor<16x64xf32>, %router: tensor<64xf32>)
    -> tensor<16x64xf32> {
  %y = moe.skip_block %x, %router {threshold = 0.25 : f32}
      : tensor<16x64xf32>, tensor<64xf32> -> tensor<16x64xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    moe.yield %xs : tensor<?x64xf32>
  }
  return %y : tensor<16x64xf32>
}

// A negative threshold is allowed (scores are unbounded logits).
// CHECK-LABEL: func.func @skip_block_threshold_scaled(
// CHECK:         moe.skip_block %{{.*}}, %{{.*}} {scale_by_score, threshold = -1.500000e+00 : f32} : tensor<?x64xf32>, tensor<64xf32> -> tensor<?x64xf32> {
// CHECK-NEXT:    ^bb0(%[[XS:.*]]: tensor<?x64xf32>):
// CHECK-NEXT:      %[[F:.*]] = moe.ffn relu %[[XS]]
// CHECK-NEXT:      moe.yield %[[F]] : tensor<?x64xf32>
// CHECK-NEXT:    }
func.func @skip_block_threshold_scaled(%x: tensor<?x64xf32>, %router: tensor<64xf32>,
                                       %w1: tensor<32x64xf32>, %w2: tensor<64x32xf32>)
    -> tensor<?x64xf32> {
  %y = moe.skip_block %x, %router {threshold = -1.5 : f32, scale_by_score}
      : tensor<?x64xf32>, tensor<64xf32> -> tensor<?x64xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    %f = moe.ffn relu %xs w1(%w1 : tensor<32x64xf32>) w2(%w2 : tensor<64x32xf32>)
        : tensor<?x64xf32> -> tensor<?x64xf32>
    moe.yield %f : tensor<?x64xf32>
  }
  return %y : tensor<?x64xf32>
}

// One branch; the paths are an input.
// CHECK-LABEL: func.func @path_select_one_branch(
// CHECK:         moe.path_select %{{.*}}, %{{.*}} : tensor<16x64xf32>, tensor<16xi32> -> tensor<16x64xf32> {
// CHECK-NEXT:    ^bb0(%[[XS:.*]]: tensor<?x64xf32>):
// CHECK-NEXT:      %[[F:.*]] = moe.ffn gelu %[[XS]]
// CHECK-NEXT:      moe.yield %[[F]] : tensor<?x64xf32>
// CHECK-NEXT:    }
// CHECK-NEXT:    return
func.func @path_select_one_branch(%x: tensor<16x64xf32>, %paths: tensor<16xi32>,
                                  %w1: tensor<32x64xf32>, %w2: tensor<64x32xf32>)
    -> tensor<16x64xf32> {
  %y = moe.path_select %x, %paths : tensor<16x64xf32>, tensor<16xi32> -> tensor<16x64xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    %f = moe.ffn gelu %xs w1(%w1 : tensor<32x64xf32>) w2(%w2 : tensor<64x32xf32>)
        : tensor<?x64xf32> -> tensor<?x64xf32>
    moe.yield %f : tensor<?x64xf32>
  }
  return %y : tensor<16x64xf32>
}

// Two branches (Duo-LLM: small, big) chosen by a path_router over 3 paths.
// CHECK-LABEL: func.func @path_select_two_branches(
// CHECK:         %[[P:.*]] = moe.path_router %{{.*}}, %{{.*}} : tensor<?x64xf32>, tensor<3x64xf32> -> tensor<?xi32>
// CHECK:         moe.path_select %{{.*}}, %[[P]] : tensor<?x64xf32>, tensor<?xi32> -> tensor<?x64xf32> {
// CHECK-NEXT:    ^bb0(%[[XS:.*]]: tensor<?x64xf32>):
// CHECK-NEXT:      %[[F:.*]] = moe.ffn swiglu %[[XS]] w1(%{{.*}} : tensor<32x64xf32>)
// CHECK-NEXT:      moe.yield %[[F]] : tensor<?x64xf32>
// CHECK-NEXT:    }, {
// CHECK-NEXT:    ^bb0(%[[XB:.*]]: tensor<?x64xf32>):
// CHECK-NEXT:      %[[G:.*]] = moe.ffn swiglu %[[XB]] w1(%{{.*}} : tensor<128x64xf32>)
// CHECK-NEXT:      moe.yield %[[G]] : tensor<?x64xf32>
// CHECK-NEXT:    }
func.func @path_select_two_branches(%x: tensor<?x64xf32>, %r: tensor<3x64xf32>,
                                    %s1: tensor<32x64xf32>, %s3: tensor<32x64xf32>,
                                    %s2: tensor<64x32xf32>,
                                    %b1: tensor<128x64xf32>, %b3: tensor<128x64xf32>,
                                    %b2: tensor<64x128xf32>) -> tensor<?x64xf32> {
  %p = moe.path_router %x, %r : tensor<?x64xf32>, tensor<3x64xf32> -> tensor<?xi32>
  %y = moe.path_select %x, %p : tensor<?x64xf32>, tensor<?xi32> -> tensor<?x64xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    %f = moe.ffn swiglu %xs w1(%s1 : tensor<32x64xf32>) w3(%s3 : tensor<32x64xf32>)
        w2(%s2 : tensor<64x32xf32>) : tensor<?x64xf32> -> tensor<?x64xf32>
    moe.yield %f : tensor<?x64xf32>
  }, {
  ^bb0(%xb: tensor<?x64xf32>):
    %f = moe.ffn swiglu %xb w1(%b1 : tensor<128x64xf32>) w3(%b3 : tensor<128x64xf32>)
        w2(%b2 : tensor<64x128xf32>) : tensor<?x64xf32> -> tensor<?x64xf32>
    moe.yield %f : tensor<?x64xf32>
  }
  return %y : tensor<?x64xf32>
}

// Expert parallelism: the forward and reverse exchanges of moe-shard-experts.
// CHECK-LABEL: func.func @all_to_all
// CHECK:         %{{.*}}, %[[RR:.*]], %[[RO:.*]], %[[PLAN:.*]] = moe.all_to_all %{{.*}}, %{{.*}}, %{{.*}} {placement = array<i32: 0, 1, -1>, ranks = 2 : i64} : tensor<?x8xf32>, tensor<?xi32>, tensor<4xi32> -> tensor<?x8xf32>, tensor<?xi32>, tensor<4xi32>, tensor<2x3xi32>
// CHECK:         moe.all_to_all_combine %{{.*}}, %[[RR]], %[[PLAN]], %{{.*}} {placement = array<i32: 0, 1, -1>, ranks = 2 : i64} : tensor<?x8xf32>, tensor<?xi32>, tensor<2x3xi32>, tensor<4xi32> -> tensor<?x8xf32>
func.func @all_to_all(%x: tensor<?x8xf32>, %rows: tensor<?xi32>, %off: tensor<4xi32>,
                      %out: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %rx, %rr, %ro, %plan = moe.all_to_all %x, %rows, %off {ranks = 2, placement = array<i32: 0, 1, -1>}
      : tensor<?x8xf32>, tensor<?xi32>, tensor<4xi32> -> tensor<?x8xf32>, tensor<?xi32>, tensor<4xi32>, tensor<2x3xi32>
  %y = moe.all_to_all_combine %out, %rr, %plan, %off {ranks = 2, placement = array<i32: 0, 1, -1>}
      : tensor<?x8xf32>, tensor<?xi32>, tensor<2x3xi32>, tensor<4xi32> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

//===----------------------------------------------------------------------===//
// Prepared weights
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @pack_bank(
// CHECK:         moe.pack %{{.*}} layout(#moe.pack_layout<row_stride = 80>) : tensor<4x32x64xf32> -> tensor<4x32x80xf32>
// CHECK:         moe.pack %{{.*}} layout(#moe.pack_layout<row_stride = 64>) : tensor<8x64xf32> -> tensor<8x64xf32>
func.func @pack_bank(%w: tensor<4x32x64xf32>, %g: tensor<8x64xf32>)
    -> (tensor<4x32x80xf32>, tensor<8x64xf32>) {
  %p = moe.pack %w layout(#moe.pack_layout<row_stride = 80>) : tensor<4x32x64xf32> -> tensor<4x32x80xf32>
  %q = moe.pack %g layout(#moe.pack_layout<row_stride = 64>) : tensor<8x64xf32> -> tensor<8x64xf32>
  return %p, %q : tensor<4x32x80xf32>, tensor<8x64xf32>
}

//===----------------------------------------------------------------------===//
// Expert weights in low-precision formats
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @ffn_experts_formats(
// CHECK:         moe.ffn_experts swiglu w1(%{{.*}} : tensor<4x64x64xbf16>) w3(%{{.*}} : tensor<4x64x64xbf16>) w2(%{{.*}} : tensor<4x64x64xbf16>) format bf16 activations bf16 -> !moe.experts<4, 64>
// CHECK:         moe.ffn_experts gelu w1(%{{.*}} : tensor<4x64x64xi8>) w2(%{{.*}} : tensor<4x64x64xi8>) format int8 scales(%{{.*}}, %{{.*}} : tensor<4x64xf32>, tensor<4x64xf32>) -> !moe.experts<4, 64>
// CHECK:         moe.ffn_experts silu w1(%{{.*}} : tensor<4x64x36xi8>) w2(%{{.*}} : tensor<4x64x36xi8>) format q4_0 activations q8_0 -> !moe.experts<4, 64>
// CHECK:         moe.ffn_experts relu w1(%{{.*}} : tensor<4x64x68xi8>) w2(%{{.*}} : tensor<4x64x68xi8>) format q8_0 -> !moe.experts<4, 64>
// CHECK:         moe.ffn_experts relu w1(%{{.*}} : tensor<4x64x64xf16>) w2(%{{.*}} : tensor<4x64x64xf16>) format f16 -> !moe.experts<4, 64>
func.func @ffn_experts_formats(%b1: tensor<4x64x64xbf16>, %i1: tensor<4x64x64xi8>,
                               %s: tensor<4x64xf32>, %q4: tensor<4x64x36xi8>,
                               %q8: tensor<4x64x68xi8>, %h: tensor<4x64x64xf16>) {
  %a = moe.ffn_experts swiglu w1(%b1 : tensor<4x64x64xbf16>) w3(%b1 : tensor<4x64x64xbf16>)
      w2(%b1 : tensor<4x64x64xbf16>) format bf16 activations bf16 -> !moe.experts<4, 64>
  %b = moe.ffn_experts gelu w1(%i1 : tensor<4x64x64xi8>) w2(%i1 : tensor<4x64x64xi8>)
      format int8 scales(%s, %s : tensor<4x64xf32>, tensor<4x64xf32>) -> !moe.experts<4, 64>
  %c = moe.ffn_experts silu w1(%q4 : tensor<4x64x36xi8>) w2(%q4 : tensor<4x64x36xi8>)
      format q4_0 activations q8_0 -> !moe.experts<4, 64>
  %d = moe.ffn_experts relu w1(%q8 : tensor<4x64x68xi8>) w2(%q8 : tensor<4x64x68xi8>)
      format q8_0 -> !moe.experts<4, 64>
  %e = moe.ffn_experts relu w1(%h : tensor<4x64x64xf16>) w2(%h : tensor<4x64x64xf16>)
      format f16 -> !moe.experts<4, 64>
  return
}

// SkipDecode: the exit layer of each token from its position, the paths of
// layer 1 from it.
// CHECK-LABEL: func.func @early_exit_layer(
// CHECK:         %[[E:.*]] = moe.exit_layers %{{.*}} {decay_positions = 64 : i64, max_exit = 4 : i64, min_exit = 2 : i64} : tensor<?xi32> -> tensor<?xi32>
// CHECK:         %[[P:.*]] = moe.exit_paths %[[E]] {layer = 1 : i64} : tensor<?xi32> -> tensor<?xi32>
// CHECK:         moe.path_select %{{.*}}, %[[P]] : tensor<?x64xf32>, tensor<?xi32> -> tensor<?x64xf32> {
func.func @early_exit_layer(%x: tensor<?x64xf32>, %pos: tensor<?xi32>,
                            %w1: tensor<32x64xf32>, %w2: tensor<64x32xf32>)
    -> tensor<?x64xf32> {
  %e = moe.exit_layers %pos {max_exit = 4, min_exit = 2, decay_positions = 64}
      : tensor<?xi32> -> tensor<?xi32>
  %p = moe.exit_paths %e {layer = 1} : tensor<?xi32> -> tensor<?xi32>
  %y = moe.path_select %x, %p : tensor<?x64xf32>, tensor<?xi32> -> tensor<?x64xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    %f = moe.ffn gelu %xs w1(%w1 : tensor<32x64xf32>) w2(%w2 : tensor<64x32xf32>)
        : tensor<?x64xf32> -> tensor<?x64xf32>
    moe.yield %f : tensor<?x64xf32>
  }
  return %y : tensor<?x64xf32>
}

// ACT: two layers, each a dense FFN residual branch, with halting units.
// CHECK-LABEL: func.func @halting_stack_two_layers(
// CHECK:         %{{.*}}, %{{.*}} = moe.halting_stack %{{.*}}, %{{.*}}, %{{.*}} {epsilon = 0.00999999977 : f32} : tensor<?x64xf32>, tensor<2x64xf32>, tensor<2xf32> -> tensor<?x64xf32>, tensor<?xi32> {
// CHECK:         moe.yield
// CHECK:         }, {
func.func @halting_stack_two_layers(%x: tensor<?x64xf32>, %hw: tensor<2x64xf32>, %hb: tensor<2xf32>,
                                    %w1: tensor<32x64xf32>, %w2: tensor<64x32xf32>)
    -> (tensor<?x64xf32>, tensor<?xi32>) {
  %y, %n = moe.halting_stack %x, %hw, %hb {epsilon = 0.01 : f32}
      : tensor<?x64xf32>, tensor<2x64xf32>, tensor<2xf32> -> tensor<?x64xf32>, tensor<?xi32> {
  ^bb0(%xs: tensor<?x64xf32>):
    %f = moe.ffn gelu %xs w1(%w1 : tensor<32x64xf32>) w2(%w2 : tensor<64x32xf32>)
        : tensor<?x64xf32> -> tensor<?x64xf32>
    moe.yield %f : tensor<?x64xf32>
  }, {
  ^bb0(%xb: tensor<?x64xf32>):
    %f = moe.ffn gelu %xb w1(%w1 : tensor<32x64xf32>) w2(%w2 : tensor<64x32xf32>)
        : tensor<?x64xf32> -> tensor<?x64xf32>
    moe.yield %f : tensor<?x64xf32>
  }
  return %y, %n : tensor<?x64xf32>, tensor<?xi32>
}
