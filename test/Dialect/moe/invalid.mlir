// RUN: moe-opt %s --split-input-file --verify-diagnostics

// One case per verifier rule of the moe dialect (MoeOps.cpp, ExpertsType::verify
// and the ODS constraints of MoeOps.td), in the order of MoeOps.td.

//===----------------------------------------------------------------------===//
// !moe.experts
//===----------------------------------------------------------------------===//

// expected-error @+1 {{expert bank must hold at least one expert, got count 0}}
func.func @experts_count_zero(%e: !moe.experts<0, 64>) {
  return
}

// -----

// expected-error @+1 {{expert hidden size must be positive, got -1}}
func.func @experts_hidden_negative(%e: !moe.experts<4, -1>) {
  return
}

// -----

func.func @experts_hidden_zero() {
  // expected-error @+1 {{expert hidden size must be positive, got 0}}
  %z = moe.zero_experts : !moe.experts<4, 0>
  return
}

//===----------------------------------------------------------------------===//
// ODS constraints: element types, ranks, attributes, enums
//===----------------------------------------------------------------------===//

// -----

func.func @router_ids_not_i32(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.topk_router' op result #0 must be 2D tensor of 32-bit signless integer values, but got 'tensor<16x2xi64>'}}
  %ids, %w = moe.topk_router softmax %x, %gate {k = 2}
      : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x2xi64>, tensor<16x2xf32>
  return
}

// -----

func.func @router_weights_not_f32(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.topk_router' op result #1 must be 2D tensor of 32-bit float values, but got 'tensor<16x2xf16>'}}
  %ids, %w = moe.topk_router softmax %x, %gate {k = 2}
      : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x2xi32>, tensor<16x2xf16>
  return
}

// -----

func.func @router_ids_wrong_rank(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.relu_router' op result #0 must be 2D tensor of 32-bit signless integer values, but got 'tensor<16xi32>'}}
  %ids, %w = moe.relu_router %x, %gate
      : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16xi32>, tensor<16x8xf32>
  return
}

// -----

func.func @hidden_not_f32(%x: tensor<16x64xf16>, %gate: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.topk_router' op operand #0 must be 2D tensor of 32-bit float values, but got 'tensor<16x64xf16>'}}
  %ids, %w = moe.topk_router softmax %x, %gate {k = 2}
      : tensor<16x64xf16>, tensor<8x64xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @hidden_wrong_rank(%x: tensor<2x16x64xf32>, %gate: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.topp_router' op operand #0 must be 2D tensor of 32-bit float values, but got 'tensor<2x16x64xf32>'}}
  %ids, %w = moe.topp_router %x, %gate {threshold = 0.5 : f32, max_k = 2}
      : tensor<2x16x64xf32>, tensor<8x64xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @gate_wrong_rank(%x: tensor<16x64xf32>, %gate: tensor<8x64x1xf32>) {
  // expected-error @+1 {{'moe.expert_choice_router' op operand #1 must be 2D tensor of 32-bit float values, but got 'tensor<8x64x1xf32>'}}
  %ids, %w = moe.expert_choice_router softmax %x, %gate {capacity = 4}
      : tensor<16x64xf32>, tensor<8x64x1xf32> -> tensor<16x8xi32>, tensor<16x8xf32>
  return
}

// -----

func.func @bias_wrong_rank(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>, %bias: tensor<1x8xf32>) {
  // expected-error @+1 {{'moe.topk_router' op operand #2 must be 1D tensor of 32-bit float values, but got 'tensor<1x8xf32>'}}
  %ids, %w = moe.topk_router softmax %x, %gate bias %bias {k = 2}
      : tensor<16x64xf32>, tensor<8x64xf32>, tensor<1x8xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @hash_token_ids_i16(%tok: tensor<16xi16>) {
  // expected-error @+1 {{'moe.hash_router' op operand #0 must be 1D tensor of 32-bit signless integer or 64-bit signless integer values, but got 'tensor<16xi16>'}}
  %ids, %w = moe.hash_router %tok {num_experts = 8}
      : tensor<16xi16> -> tensor<16x1xi32>, tensor<16x1xf32>
  return
}

// -----

func.func @hash_token_ids_float(%tok: tensor<16xf32>) {
  // expected-error @+1 {{'moe.hash_router' op operand #0 must be 1D tensor of 32-bit signless integer or 64-bit signless integer values, but got 'tensor<16xf32>'}}
  %ids, %w = moe.hash_router %tok {num_experts = 8}
      : tensor<16xf32> -> tensor<16x1xi32>, tensor<16x1xf32>
  return
}

// -----

func.func @capacity_drop_in_ids_not_i32(%ids0: tensor<16x1xi64>, %w0: tensor<16x1xf32>) {
  // expected-error @+1 {{'moe.capacity_drop' op operand #0 must be 2D tensor of 32-bit signless integer values, but got 'tensor<16x1xi64>'}}
  %ids, %w = moe.capacity_drop %ids0, %w0 {num_experts = 8, capacity_factor = 1.0 : f32}
      : tensor<16x1xi64>, tensor<16x1xf32> -> tensor<16x1xi32>, tensor<16x1xf32>
  return
}

// -----

func.func @path_router_paths_i64(%x: tensor<16x64xf32>, %gate: tensor<3x64xf32>) {
  // expected-error @+1 {{'moe.path_router' op result #0 must be 1D tensor of 32-bit signless integer values, but got 'tensor<16xi64>'}}
  %p = moe.path_router %x, %gate : tensor<16x64xf32>, tensor<3x64xf32> -> tensor<16xi64>
  return
}

// -----

func.func @ffn_experts_bank_rank2(%w1: tensor<128x64xf32>, %w2: tensor<4x64x128xf32>) {
  // expected-error @+1 {{'moe.ffn_experts' op operand #0 must be 3D tensor of 32-bit float or bfloat16 type or 16-bit float or 8-bit signless integer values, but got 'tensor<128x64xf32>'}}
  %e = moe.ffn_experts gelu w1(%w1 : tensor<128x64xf32>) w2(%w2 : tensor<4x64x128xf32>)
      -> !moe.experts<4, 64>
  return
}

// -----

func.func @ffn_weight_rank3(%x: tensor<16x64xf32>, %w1: tensor<1x128x64xf32>, %w2: tensor<64x128xf32>) {
  // expected-error @+1 {{'moe.ffn' op operand #1 must be 2D tensor of 32-bit float or bfloat16 type or 16-bit float or 8-bit signless integer values, but got 'tensor<1x128x64xf32>'}}
  %y = moe.ffn gelu %x w1(%w1 : tensor<1x128x64xf32>) w2(%w2 : tensor<64x128xf32>)
      : tensor<16x64xf32> -> tensor<16x64xf32>
  return
}

// -----

func.func @layer_ids_rank1(%x: tensor<16x64xf32>, %ids: tensor<16xi32>, %w: tensor<16x1xf32>,
                           %e: !moe.experts<4, 64>) {
  // expected-error @+1 {{'moe.layer' op operand #1 must be 2D tensor of 32-bit signless integer values, but got 'tensor<16xi32>'}}
  %y = moe.layer %x, %ids, %w experts(%e : !moe.experts<4, 64>)
      : tensor<16x64xf32>, tensor<16xi32>, tensor<16x1xf32> -> tensor<16x64xf32>
  return
}

// -----

func.func @skip_block_router_rank2(%x: tensor<16x64xf32>, %r: tensor<1x64xf32>) {
  // expected-error @+1 {{'moe.skip_block' op operand #1 must be 1D tensor of 32-bit float values, but got 'tensor<1x64xf32>'}}
  %y = moe.skip_block %x, %r {threshold = 0.0 : f32}
      : tensor<16x64xf32>, tensor<1x64xf32> -> tensor<16x64xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    moe.yield %xs : tensor<?x64xf32>
  }
  return
}

// -----

func.func @path_select_paths_i64(%x: tensor<16x64xf32>, %p: tensor<16xi64>) {
  // expected-error @+1 {{'moe.path_select' op operand #1 must be 1D tensor of 32-bit signless integer values, but got 'tensor<16xi64>'}}
  %y = moe.path_select %x, %p : tensor<16x64xf32>, tensor<16xi64> -> tensor<16x64xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    moe.yield %xs : tensor<?x64xf32>
  }
  return
}

// -----

func.func @router_missing_k(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.topk_router' op requires attribute 'k'}}
  %ids, %w = moe.topk_router softmax %x, %gate
      : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @router_unknown_scoring(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>) {
  // expected-error @+2 {{expected ::mlir::moe::Scoring to be one of: softmax, sigmoid}}
  // expected-error @+1 {{failed to parse Moe_ScoringAttr parameter 'value'}}
  %ids, %w = moe.topk_router relu %x, %gate {k = 2}
      : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @unknown_activation(%w1: tensor<4x128x64xf32>, %w2: tensor<4x64x128xf32>) {
  // expected-error @+2 {{expected ::mlir::moe::Activation to be one of: swiglu, geglu, gelu, relu, silu}}
  // expected-error @+1 {{failed to parse Moe_ActivationAttr parameter 'value'}}
  %e = moe.ffn_experts tanh w1(%w1 : tensor<4x128x64xf32>) w2(%w2 : tensor<4x64x128xf32>)
      -> !moe.experts<4, 64>
  return
}

// -----

func.func @yield_outside_skip(%x: tensor<16x64xf32>) {
  // expected-error @+1 {{'moe.yield' op expects parent op to be one of 'moe.skip_block, moe.path_select, moe.halting_stack'}}
  moe.yield %x : tensor<16x64xf32>
}

// -----

func.func @skip_block_no_block(%x: tensor<16x64xf32>, %r: tensor<64xf32>) {
  // expected-error @+1 {{'moe.skip_block' op region #0 ('body') failed to verify constraint: region with 1 blocks}}
  %y = "moe.skip_block"(%x, %r) ({}) {threshold = 0.5 : f32}
      : (tensor<16x64xf32>, tensor<64xf32>) -> tensor<16x64xf32>
  return
}

//===----------------------------------------------------------------------===//
// Attributes the op does not define (Moe_KnownAttributesOnly): each of these
// parsed, verified and silently ran with the default before.
//===----------------------------------------------------------------------===//

// -----

func.func @attr_renormalise(%x: tensor<16x64xf32>, %gate: tensor<16x64xf32>) {
  // expected-error @+1 {{'moe.grouped_topk_router' op has no attribute 'renormalise' (did you mean 'renormalize'?)}}
  %ids, %w = moe.grouped_topk_router sigmoid %x, %gate {k = 4, num_groups = 4, topk_groups = 2, renormalise}
      : tensor<16x64xf32>, tensor<16x64xf32> -> tensor<16x4xi32>, tensor<16x4xf32>
  return
}

// -----

func.func @attr_scale(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.topk_router' op has no attribute 'scale' (did you mean 'scaling_factor'?)}}
  %ids, %w = moe.topk_router softmax %x, %gate {k = 2, scale = 2.5 : f32}
      : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @attr_scale_by_scores(%x: tensor<16x64xf32>, %router: tensor<64xf32>) -> tensor<16x64xf32> {
  // expected-error @+1 {{'moe.skip_block' op has no attribute 'scale_by_scores' (did you mean 'scale_by_score'?)}}
  %y = moe.skip_block %x, %router {threshold = 0.5 : f32, scale_by_scores}
      : tensor<16x64xf32>, tensor<64xf32> -> tensor<16x64xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    moe.yield %xs : tensor<?x64xf32>
  }
  return %y : tensor<16x64xf32>
}

// -----

// Nothing close: the message lists what the op takes.
func.func @attr_unrelated(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.expert_choice_router' op has no attribute 'seed' (it takes capacity, scaling_factor, scoring; an attribute of another dialect is written with its prefix, as in 'mydialect.seed')}}
  %ids, %w = moe.expert_choice_router softmax %x, %gate {capacity = 4, seed = 7}
      : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x8xi32>, tensor<16x8xf32>
  return
}

// -----

func.func @attr_on_op_without_attributes() {
  // expected-error @+1 {{'moe.zero_experts' op has no attribute 'count' (it takes none; an attribute of another dialect is written with its prefix, as in 'mydialect.count')}}
  %z = moe.zero_experts {count = 4} : !moe.experts<4, 64>
  return
}

// -----

// The generic form reaches the same check (the attribute dictionary after
// the properties).
func.func @attr_generic_form(%t: tensor<16xi64>) {
  // expected-error @+1 {{'moe.hash_router' op has no attribute 'num_expert' (did you mean 'num_experts'?)}}
  %ids, %w = "moe.hash_router"(%t) <{num_experts = 4 : i64}> {num_expert = 8 : i64}
      : (tensor<16xi64>) -> (tensor<16x1xi32>, tensor<16x1xf32>)
  return
}

//===----------------------------------------------------------------------===//
// Rules shared by the gated routers (shown on moe.topk_router)
//===----------------------------------------------------------------------===//

// -----

func.func @router_dynamic_hidden_size(%x: tensor<16x?xf32>, %gate: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.topk_router' op hidden size H of 'hidden' must be static}}
  %ids, %w = moe.topk_router softmax %x, %gate {k = 2}
      : tensor<16x?xf32>, tensor<8x64xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @router_dynamic_gate(%x: tensor<16x64xf32>, %gate: tensor<?x64xf32>) {
  // expected-error @+1 {{'moe.topk_router' op 'gate' must have a static shape (weights are model properties), got 'tensor<?x64xf32>'}}
  %ids, %w = moe.topk_router softmax %x, %gate {k = 2}
      : tensor<16x64xf32>, tensor<?x64xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @router_no_experts(%x: tensor<16x64xf32>, %gate: tensor<0x64xf32>) {
  // expected-error @+1 {{'moe.expert_choice_router' op 'gate' must hold at least one expert (E >= 1), got E = 0}}
  %ids, %w = moe.expert_choice_router softmax %x, %gate {capacity = 4}
      : tensor<16x64xf32>, tensor<0x64xf32> -> tensor<16x0xi32>, tensor<16x0xf32>
  return
}

// -----

func.func @router_gate_hidden_mismatch(%x: tensor<16x64xf32>, %gate: tensor<8x32xf32>) {
  // expected-error @+1 {{'moe.topk_router' op H mismatch: 'hidden' has H = 64 but 'gate' has H = 32}}
  %ids, %w = moe.topk_router softmax %x, %gate {k = 2}
      : tensor<16x64xf32>, tensor<8x32xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @router_ids_weights_tokens(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.topk_router' op T mismatch: 'ids' has T = 16 but 'weights' has T = 8}}
  %ids, %w = moe.topk_router softmax %x, %gate {k = 2}
      : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x2xi32>, tensor<8x2xf32>
  return
}

// -----

func.func @router_ids_weights_slots(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.topk_router' op K mismatch: 'ids' has K = 2 but 'weights' has K = 3}}
  %ids, %w = moe.topk_router softmax %x, %gate {k = 2}
      : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x2xi32>, tensor<16x3xf32>
  return
}

// -----

func.func @router_dynamic_slots(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.topk_router' op slot count K of 'ids' must be static}}
  %ids, %w = moe.topk_router softmax %x, %gate {k = 2}
      : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x?xi32>, tensor<16x?xf32>
  return
}

// -----

func.func @router_hidden_ids_tokens(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.topk_router' op T mismatch: 'hidden' has T = 16 but 'ids' has T = 8}}
  %ids, %w = moe.topk_router softmax %x, %gate {k = 2}
      : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<8x2xi32>, tensor<8x2xf32>
  return
}

// -----

func.func @router_scaling_factor_zero(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.topk_router' op 'scaling_factor' must be positive and finite, got 0.000000e+00}}
  %ids, %w = moe.topk_router softmax %x, %gate {k = 2, scaling_factor = 0.0 : f32}
      : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @router_scaling_factor_inf(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.topk_router' op 'scaling_factor' must be positive and finite, got INF}}
  %ids, %w = moe.topk_router softmax %x, %gate {k = 2, scaling_factor = 0x7F800000 : f32}
      : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @router_dynamic_bias(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>, %bias: tensor<?xf32>) {
  // expected-error @+1 {{'moe.topk_router' op 'bias' must have a static shape (weights are model properties), got 'tensor<?xf32>'}}
  %ids, %w = moe.topk_router softmax %x, %gate bias %bias {k = 2}
      : tensor<16x64xf32>, tensor<8x64xf32>, tensor<?xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @router_bias_experts_mismatch(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>, %bias: tensor<4xf32>) {
  // expected-error @+1 {{'moe.topk_router' op E mismatch: 'gate' has E = 8 but 'bias' has E = 4}}
  %ids, %w = moe.topk_router softmax %x, %gate bias %bias {k = 2}
      : tensor<16x64xf32>, tensor<8x64xf32>, tensor<4xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

//===----------------------------------------------------------------------===//
// moe.topk_router
//===----------------------------------------------------------------------===//

// -----

func.func @topk_k_zero(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.topk_router' op 'k' = 0 must be in [1, E] with E = 8}}
  %ids, %w = moe.topk_router softmax %x, %gate {k = 0}
      : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x0xi32>, tensor<16x0xf32>
  return
}

// -----

func.func @topk_k_above_experts(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.topk_router' op 'k' = 9 must be in [1, E] with E = 8}}
  %ids, %w = moe.topk_router softmax %x, %gate {k = 9}
      : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x9xi32>, tensor<16x9xf32>
  return
}

// -----

func.func @topk_slots_not_k(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.topk_router' op result slot count K = 3 must equal k (2)}}
  %ids, %w = moe.topk_router softmax %x, %gate {k = 2}
      : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x3xi32>, tensor<16x3xf32>
  return
}

//===----------------------------------------------------------------------===//
// moe.grouped_topk_router
//===----------------------------------------------------------------------===//

// -----

func.func @grouped_bias_mismatch(%x: tensor<16x64xf32>, %gate: tensor<16x64xf32>, %bias: tensor<8xf32>) {
  // expected-error @+1 {{'moe.grouped_topk_router' op E mismatch: 'gate' has E = 16 but 'bias' has E = 8}}
  %ids, %w = moe.grouped_topk_router sigmoid %x, %gate bias %bias {k = 4, num_groups = 4, topk_groups = 2}
      : tensor<16x64xf32>, tensor<16x64xf32>, tensor<8xf32> -> tensor<16x4xi32>, tensor<16x4xf32>
  return
}

// -----

func.func @grouped_groups_not_dividing(%x: tensor<16x64xf32>, %gate: tensor<16x64xf32>) {
  // expected-error @+1 {{'moe.grouped_topk_router' op 'num_groups' = 3 must be positive and divide E = 16}}
  %ids, %w = moe.grouped_topk_router sigmoid %x, %gate {k = 4, num_groups = 3, topk_groups = 2}
      : tensor<16x64xf32>, tensor<16x64xf32> -> tensor<16x4xi32>, tensor<16x4xf32>
  return
}

// -----

func.func @grouped_groups_zero(%x: tensor<16x64xf32>, %gate: tensor<16x64xf32>) {
  // expected-error @+1 {{'moe.grouped_topk_router' op 'num_groups' = 0 must be positive and divide E = 16}}
  %ids, %w = moe.grouped_topk_router sigmoid %x, %gate {k = 4, num_groups = 0, topk_groups = 2}
      : tensor<16x64xf32>, tensor<16x64xf32> -> tensor<16x4xi32>, tensor<16x4xf32>
  return
}

// -----

func.func @grouped_topk_groups_zero(%x: tensor<16x64xf32>, %gate: tensor<16x64xf32>) {
  // expected-error @+1 {{'moe.grouped_topk_router' op 'topk_groups' = 0 must be in [1, num_groups] with num_groups = 4}}
  %ids, %w = moe.grouped_topk_router sigmoid %x, %gate {k = 4, num_groups = 4, topk_groups = 0}
      : tensor<16x64xf32>, tensor<16x64xf32> -> tensor<16x4xi32>, tensor<16x4xf32>
  return
}

// -----

func.func @grouped_topk_groups_above(%x: tensor<16x64xf32>, %gate: tensor<16x64xf32>) {
  // expected-error @+1 {{'moe.grouped_topk_router' op 'topk_groups' = 5 must be in [1, num_groups] with num_groups = 4}}
  %ids, %w = moe.grouped_topk_router sigmoid %x, %gate {k = 4, num_groups = 4, topk_groups = 5}
      : tensor<16x64xf32>, tensor<16x64xf32> -> tensor<16x4xi32>, tensor<16x4xf32>
  return
}

// -----

// k = 9 is at most E = 16 but above the 2 * 16 / 4 = 8 experts of the kept groups.
func.func @grouped_k_above_kept(%x: tensor<16x64xf32>, %gate: tensor<16x64xf32>) {
  // expected-error @+1 {{'moe.grouped_topk_router' op 'k' = 9 must be in [1, topk_groups * E / num_groups] with topk_groups * E / num_groups = 2 * 16 / 4 = 8}}
  %ids, %w = moe.grouped_topk_router sigmoid %x, %gate {k = 9, num_groups = 4, topk_groups = 2}
      : tensor<16x64xf32>, tensor<16x64xf32> -> tensor<16x9xi32>, tensor<16x9xf32>
  return
}

// -----

func.func @grouped_k_zero(%x: tensor<16x64xf32>, %gate: tensor<16x64xf32>) {
  // expected-error @+1 {{'moe.grouped_topk_router' op 'k' = 0 must be in [1, topk_groups * E / num_groups] with topk_groups * E / num_groups = 2 * 16 / 4 = 8}}
  %ids, %w = moe.grouped_topk_router sigmoid %x, %gate {k = 0, num_groups = 4, topk_groups = 2}
      : tensor<16x64xf32>, tensor<16x64xf32> -> tensor<16x0xi32>, tensor<16x0xf32>
  return
}

// -----

func.func @grouped_slots_not_k(%x: tensor<16x64xf32>, %gate: tensor<16x64xf32>) {
  // expected-error @+1 {{'moe.grouped_topk_router' op result slot count K = 2 must equal k (4)}}
  %ids, %w = moe.grouped_topk_router softmax %x, %gate {k = 4, num_groups = 4, topk_groups = 2}
      : tensor<16x64xf32>, tensor<16x64xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @grouped_scaling_factor_negative(%x: tensor<16x64xf32>, %gate: tensor<16x64xf32>) {
  // expected-error @+1 {{'moe.grouped_topk_router' op 'scaling_factor' must be positive and finite, got -2.500000e+00}}
  %ids, %w = moe.grouped_topk_router sigmoid %x, %gate
      {k = 4, num_groups = 4, topk_groups = 2, scaling_factor = -2.5 : f32}
      : tensor<16x64xf32>, tensor<16x64xf32> -> tensor<16x4xi32>, tensor<16x4xf32>
  return
}

//===----------------------------------------------------------------------===//
// moe.topp_router
//===----------------------------------------------------------------------===//

// -----

func.func @topp_threshold_zero(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.topp_router' op 'threshold' (top-p) must be in (0, 1], got 0.000000e+00}}
  %ids, %w = moe.topp_router %x, %gate {threshold = 0.0 : f32, max_k = 2}
      : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @topp_threshold_above_one(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.topp_router' op 'threshold' (top-p) must be in (0, 1], got 1.500000e+00}}
  %ids, %w = moe.topp_router %x, %gate {threshold = 1.5 : f32, max_k = 2}
      : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @topp_threshold_nan(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.topp_router' op 'threshold' (top-p) must be in (0, 1], got nan}}
  %ids, %w = moe.topp_router %x, %gate {threshold = 0x7FC00000 : f32, max_k = 2}
      : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @topp_max_k_zero(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.topp_router' op 'max_k' = 0 must be in [1, E] with E = 8}}
  %ids, %w = moe.topp_router %x, %gate {threshold = 0.5 : f32, max_k = 0}
      : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x0xi32>, tensor<16x0xf32>
  return
}

// -----

func.func @topp_max_k_above_experts(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.topp_router' op 'max_k' = 10 must be in [1, E] with E = 8}}
  %ids, %w = moe.topp_router %x, %gate {threshold = 0.5 : f32, max_k = 10}
      : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x10xi32>, tensor<16x10xf32>
  return
}

// -----

func.func @topp_slots_not_max_k(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.topp_router' op result slot count K = 2 must equal max_k (4)}}
  %ids, %w = moe.topp_router %x, %gate {threshold = 0.5 : f32, max_k = 4}
      : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @topp_hidden_ids_tokens(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.topp_router' op T mismatch: 'hidden' has T = 16 but 'ids' has T = 4}}
  %ids, %w = moe.topp_router %x, %gate {threshold = 0.5 : f32, max_k = 2}
      : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<4x2xi32>, tensor<4x2xf32>
  return
}

//===----------------------------------------------------------------------===//
// moe.relu_router
//===----------------------------------------------------------------------===//

// -----

func.func @relu_slots_above_experts(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.relu_router' op 'result slot count K' = 9 must be in [1, E] with E = 8}}
  %ids, %w = moe.relu_router %x, %gate
      : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x9xi32>, tensor<16x9xf32>
  return
}

// -----

func.func @relu_slots_zero(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.relu_router' op 'result slot count K' = 0 must be in [1, E] with E = 8}}
  %ids, %w = moe.relu_router %x, %gate
      : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x0xi32>, tensor<16x0xf32>
  return
}

// -----

func.func @relu_gate_hidden_mismatch(%x: tensor<16x64xf32>, %gate: tensor<8x16xf32>) {
  // expected-error @+1 {{'moe.relu_router' op H mismatch: 'hidden' has H = 64 but 'gate' has H = 16}}
  %ids, %w = moe.relu_router %x, %gate
      : tensor<16x64xf32>, tensor<8x16xf32> -> tensor<16x8xi32>, tensor<16x8xf32>
  return
}

// -----

func.func @relu_scaling_factor_nan(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.relu_router' op 'scaling_factor' must be positive and finite, got nan}}
  %ids, %w = moe.relu_router %x, %gate {scaling_factor = 0x7FC00000 : f32}
      : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x8xi32>, tensor<16x8xf32>
  return
}

//===----------------------------------------------------------------------===//
// moe.expert_choice_router
//===----------------------------------------------------------------------===//

// -----

func.func @expert_choice_capacity_zero(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.expert_choice_router' op 'capacity' (tokens per expert) must be positive, got 0}}
  %ids, %w = moe.expert_choice_router softmax %x, %gate {capacity = 0}
      : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x8xi32>, tensor<16x8xf32>
  return
}

// -----

func.func @expert_choice_capacity_negative(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.expert_choice_router' op 'capacity' (tokens per expert) must be positive, got -4}}
  %ids, %w = moe.expert_choice_router sigmoid %x, %gate {capacity = -4}
      : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x8xi32>, tensor<16x8xf32>
  return
}

// -----

func.func @expert_choice_slots_not_experts(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.expert_choice_router' op result slot count K = 2 must equal E, since a token may be taken by every expert (8)}}
  %ids, %w = moe.expert_choice_router softmax %x, %gate {capacity = 4}
      : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @expert_choice_hidden_dynamic(%x: tensor<?x?xf32>, %gate: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.expert_choice_router' op hidden size H of 'hidden' must be static}}
  %ids, %w = moe.expert_choice_router softmax %x, %gate {capacity = 4}
      : tensor<?x?xf32>, tensor<8x64xf32> -> tensor<?x8xi32>, tensor<?x8xf32>
  return
}

//===----------------------------------------------------------------------===//
// moe.hash_router
//===----------------------------------------------------------------------===//

// -----

func.func @hash_num_experts_zero(%tok: tensor<16xi32>) {
  // expected-error @+1 {{'moe.hash_router' op 'num_experts' must be positive, got 0}}
  %ids, %w = moe.hash_router %tok {num_experts = 0}
      : tensor<16xi32> -> tensor<16x1xi32>, tensor<16x1xf32>
  return
}

// -----

func.func @hash_num_experts_negative(%tok: tensor<16xi64>) {
  // expected-error @+1 {{'moe.hash_router' op 'num_experts' must be positive, got -8}}
  %ids, %w = moe.hash_router %tok {num_experts = -8}
      : tensor<16xi64> -> tensor<16x1xi32>, tensor<16x1xf32>
  return
}

// -----

func.func @hash_ids_weights_tokens(%tok: tensor<16xi32>) {
  // expected-error @+1 {{'moe.hash_router' op T mismatch: 'ids' has T = 16 but 'weights' has T = 15}}
  %ids, %w = moe.hash_router %tok {num_experts = 8}
      : tensor<16xi32> -> tensor<16x1xi32>, tensor<15x1xf32>
  return
}

// -----

func.func @hash_dynamic_slots(%tok: tensor<16xi32>) {
  // expected-error @+1 {{'moe.hash_router' op slot count K of 'ids' must be static}}
  %ids, %w = moe.hash_router %tok {num_experts = 8}
      : tensor<16xi32> -> tensor<16x?xi32>, tensor<16x?xf32>
  return
}

// -----

func.func @hash_token_ids_tokens(%tok: tensor<8xi32>) {
  // expected-error @+1 {{'moe.hash_router' op T mismatch: 'token_ids' has T = 8 but 'ids' has T = 16}}
  %ids, %w = moe.hash_router %tok {num_experts = 8}
      : tensor<8xi32> -> tensor<16x1xi32>, tensor<16x1xf32>
  return
}

// -----

func.func @hash_slots_not_one(%tok: tensor<?xi32>) {
  // expected-error @+1 {{'moe.hash_router' op result slot count K = 2 must equal 1 (one expert per token) (1)}}
  %ids, %w = moe.hash_router %tok {num_experts = 8}
      : tensor<?xi32> -> tensor<?x2xi32>, tensor<?x2xf32>
  return
}

//===----------------------------------------------------------------------===//
// moe.capacity_drop
//===----------------------------------------------------------------------===//

// -----

func.func @capacity_drop_num_experts_zero(%ids0: tensor<16x2xi32>, %w0: tensor<16x2xf32>) {
  // expected-error @+1 {{'moe.capacity_drop' op 'num_experts' must be positive, got 0}}
  %ids, %w = moe.capacity_drop %ids0, %w0 {num_experts = 0, capacity_factor = 1.0 : f32}
      : tensor<16x2xi32>, tensor<16x2xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @capacity_drop_num_experts_negative(%ids0: tensor<16x2xi32>, %w0: tensor<16x2xf32>) {
  // expected-error @+1 {{'moe.capacity_drop' op 'num_experts' must be positive, got -1}}
  %ids, %w = moe.capacity_drop %ids0, %w0 {num_experts = -1, capacity_factor = 1.0 : f32}
      : tensor<16x2xi32>, tensor<16x2xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @capacity_drop_factor_zero(%ids0: tensor<16x2xi32>, %w0: tensor<16x2xf32>) {
  // expected-error @+1 {{'moe.capacity_drop' op 'capacity_factor' must be positive and finite, got 0.000000e+00}}
  %ids, %w = moe.capacity_drop %ids0, %w0 {num_experts = 8, capacity_factor = 0.0 : f32}
      : tensor<16x2xi32>, tensor<16x2xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @capacity_drop_factor_inf(%ids0: tensor<16x2xi32>, %w0: tensor<16x2xf32>) {
  // expected-error @+1 {{'moe.capacity_drop' op 'capacity_factor' must be positive and finite, got INF}}
  %ids, %w = moe.capacity_drop %ids0, %w0 {num_experts = 8, capacity_factor = 0x7F800000 : f32}
      : tensor<16x2xi32>, tensor<16x2xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @capacity_drop_in_routing_tokens(%ids0: tensor<16x2xi32>, %w0: tensor<8x2xf32>) {
  // expected-error @+1 {{'moe.capacity_drop' op T mismatch: 'in_ids' has T = 16 but 'in_weights' has T = 8}}
  %ids, %w = moe.capacity_drop %ids0, %w0 {num_experts = 8, capacity_factor = 1.0 : f32}
      : tensor<16x2xi32>, tensor<8x2xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @capacity_drop_in_dynamic_slots(%ids0: tensor<16x?xi32>, %w0: tensor<16x?xf32>) {
  // expected-error @+1 {{'moe.capacity_drop' op slot count K of 'in_ids' must be static}}
  %ids, %w = moe.capacity_drop %ids0, %w0 {num_experts = 8, capacity_factor = 1.0 : f32}
      : tensor<16x?xi32>, tensor<16x?xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @capacity_drop_out_routing_slots(%ids0: tensor<16x2xi32>, %w0: tensor<16x2xf32>) {
  // expected-error @+1 {{'moe.capacity_drop' op K mismatch: 'ids' has K = 2 but 'weights' has K = 1}}
  %ids, %w = moe.capacity_drop %ids0, %w0 {num_experts = 8, capacity_factor = 1.0 : f32}
      : tensor<16x2xi32>, tensor<16x2xf32> -> tensor<16x2xi32>, tensor<16x1xf32>
  return
}

// -----

func.func @capacity_drop_tokens_changed(%ids0: tensor<16x2xi32>, %w0: tensor<16x2xf32>) {
  // expected-error @+1 {{'moe.capacity_drop' op T mismatch: 'in_ids' has T = 16 but 'ids' has T = 32}}
  %ids, %w = moe.capacity_drop %ids0, %w0 {num_experts = 8, capacity_factor = 1.0 : f32}
      : tensor<16x2xi32>, tensor<16x2xf32> -> tensor<32x2xi32>, tensor<32x2xf32>
  return
}

// -----

func.func @capacity_drop_slots_changed(%ids0: tensor<?x2xi32>, %w0: tensor<?x2xf32>) {
  // expected-error @+1 {{'moe.capacity_drop' op K mismatch: 'in_ids' has K = 2 but 'ids' has K = 1}}
  %ids, %w = moe.capacity_drop %ids0, %w0 {num_experts = 8, capacity_factor = 1.0 : f32}
      : tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x1xi32>, tensor<?x1xf32>
  return
}

// -----

func.func @capacity_drop_experts_vs_router(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>) {
  %ids0, %w0 = moe.topk_router softmax %x, %gate {k = 1}
      : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x1xi32>, tensor<16x1xf32>
  // expected-error @+1 {{'moe.capacity_drop' op 'num_experts' = 4 but the incoming routing chooses among 8 experts}}
  %ids, %w = moe.capacity_drop %ids0, %w0 {num_experts = 4, capacity_factor = 1.0 : f32}
      : tensor<16x1xi32>, tensor<16x1xf32> -> tensor<16x1xi32>, tensor<16x1xf32>
  return
}

// -----

func.func @capacity_drop_experts_vs_hash(%tok: tensor<16xi64>) {
  %ids0, %w0 = moe.hash_router %tok {num_experts = 6}
      : tensor<16xi64> -> tensor<16x1xi32>, tensor<16x1xf32>
  // expected-error @+1 {{'moe.capacity_drop' op 'num_experts' = 8 but the incoming routing chooses among 6 experts}}
  %ids, %w = moe.capacity_drop %ids0, %w0 {num_experts = 8, capacity_factor = 1.0 : f32}
      : tensor<16x1xi32>, tensor<16x1xf32> -> tensor<16x1xi32>, tensor<16x1xf32>
  return
}

//===----------------------------------------------------------------------===//
// moe.path_router
//===----------------------------------------------------------------------===//

// -----

//===----------------------------------------------------------------------===//
// moe.router_scores
//===----------------------------------------------------------------------===//

// -----

func.func @router_scores_dynamic_h(%x: tensor<16x?xf32>, %gate: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.router_scores' op hidden size H of 'hidden' must be static}}
  %s = moe.router_scores softmax %x, %gate : tensor<16x?xf32>, tensor<8x64xf32> -> tensor<16x8xf32>
  return
}

// -----

func.func @router_scores_dynamic_gate(%x: tensor<16x64xf32>, %gate: tensor<?x64xf32>) {
  // expected-error @+1 {{'moe.router_scores' op 'gate' must have a static shape (weights are model properties), got 'tensor<?x64xf32>'}}
  %s = moe.router_scores softmax %x, %gate : tensor<16x64xf32>, tensor<?x64xf32> -> tensor<16x8xf32>
  return
}

// -----

func.func @router_scores_no_experts(%x: tensor<16x64xf32>, %gate: tensor<0x64xf32>) {
  // expected-error @+1 {{'moe.router_scores' op 'gate' must hold at least one expert (E >= 1), got E = 0}}
  %s = moe.router_scores softmax %x, %gate : tensor<16x64xf32>, tensor<0x64xf32> -> tensor<16x0xf32>
  return
}

// -----

func.func @router_scores_hidden_mismatch(%x: tensor<16x32xf32>, %gate: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.router_scores' op H mismatch: 'hidden' has H = 32 but 'gate' has H = 64}}
  %s = moe.router_scores softmax %x, %gate : tensor<16x32xf32>, tensor<8x64xf32> -> tensor<16x8xf32>
  return
}

// -----

func.func @router_scores_tokens(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.router_scores' op T mismatch: 'hidden' has T = 16 but 'scores' has T = 8}}
  %s = moe.router_scores softmax %x, %gate : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<8x8xf32>
  return
}

// -----

func.func @router_scores_static_tokens_over_dynamic(%x: tensor<?x64xf32>, %gate: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.router_scores' op T of result 'scores' must be dynamic like 'hidden' (T = ?)}}
  %s = moe.router_scores softmax %x, %gate : tensor<?x64xf32>, tensor<8x64xf32> -> tensor<4x8xf32>
  return
}

// -----

func.func @router_scores_experts(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.router_scores' op E mismatch: 'gate' has E = 8 but 'scores' has E = 4}}
  %s = moe.router_scores softmax %x, %gate : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x4xf32>
  return
}

// -----

func.func @router_scores_i32(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>) {
  // expected-error @+1 {{'moe.router_scores' op result #0 must be 2D tensor of 32-bit float values, but got 'tensor<16x8xi32>'}}
  %s = moe.router_scores softmax %x, %gate : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x8xi32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.capacity_reroute
//===----------------------------------------------------------------------===//

// -----

func.func @capacity_reroute_factor_zero(%ids0: tensor<16x2xi32>, %w0: tensor<16x2xf32>, %s: tensor<16x8xf32>) {
  // expected-error @+1 {{'moe.capacity_reroute' op 'capacity_factor' must be positive and finite, got 0.000000e+00}}
  %ids, %w = moe.capacity_reroute %ids0, %w0, %s {capacity_factor = 0.0 : f32}
      : tensor<16x2xi32>, tensor<16x2xf32>, tensor<16x8xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @capacity_reroute_factor_nan(%ids0: tensor<16x2xi32>, %w0: tensor<16x2xf32>, %s: tensor<16x8xf32>) {
  // expected-error @+1 {{'moe.capacity_reroute' op 'capacity_factor' must be positive and finite, got nan}}
  %ids, %w = moe.capacity_reroute %ids0, %w0, %s {capacity_factor = 0x7FC00000 : f32}
      : tensor<16x2xi32>, tensor<16x2xf32>, tensor<16x8xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @capacity_reroute_in_routing_slots(%ids0: tensor<16x2xi32>, %w0: tensor<16x1xf32>, %s: tensor<16x8xf32>) {
  // expected-error @+1 {{'moe.capacity_reroute' op K mismatch: 'in_ids' has K = 2 but 'in_weights' has K = 1}}
  %ids, %w = moe.capacity_reroute %ids0, %w0, %s {capacity_factor = 1.0 : f32}
      : tensor<16x2xi32>, tensor<16x1xf32>, tensor<16x8xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @capacity_reroute_dynamic_slots(%ids0: tensor<16x?xi32>, %w0: tensor<16x?xf32>, %s: tensor<16x8xf32>) {
  // expected-error @+1 {{'moe.capacity_reroute' op slot count K of 'in_ids' must be static}}
  %ids, %w = moe.capacity_reroute %ids0, %w0, %s {capacity_factor = 1.0 : f32}
      : tensor<16x?xi32>, tensor<16x?xf32>, tensor<16x8xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @capacity_reroute_out_slots(%ids0: tensor<16x2xi32>, %w0: tensor<16x2xf32>, %s: tensor<16x8xf32>) {
  // expected-error @+1 {{'moe.capacity_reroute' op K mismatch: 'in_ids' has K = 2 but 'ids' has K = 1}}
  %ids, %w = moe.capacity_reroute %ids0, %w0, %s {capacity_factor = 1.0 : f32}
      : tensor<16x2xi32>, tensor<16x2xf32>, tensor<16x8xf32> -> tensor<16x1xi32>, tensor<16x1xf32>
  return
}

// -----

func.func @capacity_reroute_out_tokens(%ids0: tensor<?x2xi32>, %w0: tensor<?x2xf32>, %s: tensor<?x8xf32>) {
  // expected-error @+1 {{'moe.capacity_reroute' op T of result 'ids' must be dynamic like 'in_ids' (T = ?)}}
  %ids, %w = moe.capacity_reroute %ids0, %w0, %s {capacity_factor = 1.0 : f32}
      : tensor<?x2xi32>, tensor<?x2xf32>, tensor<?x8xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @capacity_reroute_score_tokens(%ids0: tensor<16x2xi32>, %w0: tensor<16x2xf32>, %s: tensor<8x8xf32>) {
  // expected-error @+1 {{'moe.capacity_reroute' op T mismatch: 'in_ids' has T = 16 but 'scores' has T = 8}}
  %ids, %w = moe.capacity_reroute %ids0, %w0, %s {capacity_factor = 1.0 : f32}
      : tensor<16x2xi32>, tensor<16x2xf32>, tensor<8x8xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @capacity_reroute_dynamic_experts(%ids0: tensor<16x2xi32>, %w0: tensor<16x2xf32>, %s: tensor<16x?xf32>) {
  // expected-error @+1 {{'moe.capacity_reroute' op expert count E of 'scores' must be static}}
  %ids, %w = moe.capacity_reroute %ids0, %w0, %s {capacity_factor = 1.0 : f32}
      : tensor<16x2xi32>, tensor<16x2xf32>, tensor<16x?xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @capacity_reroute_no_experts(%ids0: tensor<16x2xi32>, %w0: tensor<16x2xf32>, %s: tensor<16x0xf32>) {
  // expected-error @+1 {{'moe.capacity_reroute' op 'scores' must hold at least one expert (E >= 1), got E = 0}}
  %ids, %w = moe.capacity_reroute %ids0, %w0, %s {capacity_factor = 1.0 : f32}
      : tensor<16x2xi32>, tensor<16x2xf32>, tensor<16x0xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @capacity_reroute_experts_vs_router(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>, %s: tensor<16x4xf32>) {
  %ids0, %w0 = moe.topk_router softmax %x, %gate {k = 2}
      : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  // expected-error @+1 {{'moe.capacity_reroute' op 'scores' has E = 4 but the incoming routing chooses among 8 experts}}
  %ids, %w = moe.capacity_reroute %ids0, %w0, %s {capacity_factor = 1.0 : f32}
      : tensor<16x2xi32>, tensor<16x2xf32>, tensor<16x4xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @capacity_reroute_scores_i32(%ids0: tensor<16x2xi32>, %w0: tensor<16x2xf32>, %s: tensor<16x8xi32>) {
  // expected-error @+1 {{'moe.capacity_reroute' op operand #2 must be 2D tensor of 32-bit float values, but got 'tensor<16x8xi32>'}}
  %ids, %w = moe.capacity_reroute %ids0, %w0, %s {capacity_factor = 1.0 : f32}
      : tensor<16x2xi32>, tensor<16x2xf32>, tensor<16x8xi32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.compress_slots
//===----------------------------------------------------------------------===//

// -----

func.func @compress_slots_empty_map(%ids0: tensor<16x2xi32>, %w0: tensor<16x2xf32>) {
  // expected-error @+1 {{'moe.compress_slots' op 'compressed' must map at least one full expert}}
  %ids, %w = moe.compress_slots %ids0, %w0 {keep = 1, compressed = array<i64>}
      : tensor<16x2xi32>, tensor<16x2xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @compress_slots_negative_index(%ids0: tensor<16x2xi32>, %w0: tensor<16x2xf32>) {
  // expected-error @+1 {{'moe.compress_slots' op 'compressed'[2] = -1 must be a compressed expert index >= 0}}
  %ids, %w = moe.compress_slots %ids0, %w0 {keep = 1, compressed = array<i64: 0, 1, -1, 3>}
      : tensor<16x2xi32>, tensor<16x2xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @compress_slots_index_beyond_i32(%ids0: tensor<16x2xi32>, %w0: tensor<16x2xf32>) {
  // expected-error @+1 {{'moe.compress_slots' op 'compressed'[1] = 2147483645 gives the stand-in id E + 2147483645 (E = 4), beyond the i32 range of expert ids}}
  %ids, %w = moe.compress_slots %ids0, %w0 {keep = 1, compressed = array<i64: 0, 2147483645, 2, 3>}
      : tensor<16x2xi32>, tensor<16x2xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @compress_slots_keep_above_k(%ids0: tensor<16x2xi32>, %w0: tensor<16x2xf32>) {
  // expected-error @+1 {{'moe.compress_slots' op 'keep' = 3 must be in [0, K] with K = 2}}
  %ids, %w = moe.compress_slots %ids0, %w0 {keep = 3, compressed = array<i64: 0, 1, 2, 3>}
      : tensor<16x2xi32>, tensor<16x2xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @compress_slots_keep_negative(%ids0: tensor<16x2xi32>, %w0: tensor<16x2xf32>) {
  // expected-error @+1 {{'moe.compress_slots' op 'keep' = -1 must be in [0, K] with K = 2}}
  %ids, %w = moe.compress_slots %ids0, %w0 {keep = -1, compressed = array<i64: 0, 1, 2, 3>}
      : tensor<16x2xi32>, tensor<16x2xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @compress_slots_in_routing(%ids0: tensor<16x2xi32>, %w0: tensor<8x2xf32>) {
  // expected-error @+1 {{'moe.compress_slots' op T mismatch: 'in_ids' has T = 16 but 'in_weights' has T = 8}}
  %ids, %w = moe.compress_slots %ids0, %w0 {keep = 1, compressed = array<i64: 0, 1>}
      : tensor<16x2xi32>, tensor<8x2xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @compress_slots_dynamic_slots(%ids0: tensor<16x?xi32>, %w0: tensor<16x?xf32>) {
  // expected-error @+1 {{'moe.compress_slots' op slot count K of 'in_ids' must be static}}
  %ids, %w = moe.compress_slots %ids0, %w0 {keep = 1, compressed = array<i64: 0, 1>}
      : tensor<16x?xi32>, tensor<16x?xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @compress_slots_out_slots(%ids0: tensor<16x2xi32>, %w0: tensor<16x2xf32>) {
  // expected-error @+1 {{'moe.compress_slots' op K mismatch: 'in_ids' has K = 2 but 'ids' has K = 1}}
  %ids, %w = moe.compress_slots %ids0, %w0 {keep = 1, compressed = array<i64: 0, 1>}
      : tensor<16x2xi32>, tensor<16x2xf32> -> tensor<16x1xi32>, tensor<16x1xf32>
  return
}

// -----

func.func @compress_slots_out_tokens(%ids0: tensor<16x2xi32>, %w0: tensor<16x2xf32>) {
  // expected-error @+1 {{'moe.compress_slots' op T mismatch: 'in_ids' has T = 16 but 'ids' has T = 4}}
  %ids, %w = moe.compress_slots %ids0, %w0 {keep = 1, compressed = array<i64: 0, 1>}
      : tensor<16x2xi32>, tensor<16x2xf32> -> tensor<4x2xi32>, tensor<4x2xf32>
  return
}

// -----

func.func @compress_slots_experts_vs_router(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>) {
  %ids0, %w0 = moe.topk_router softmax %x, %gate {k = 2}
      : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  // expected-error @+1 {{'moe.compress_slots' op 'compressed' maps 4 full experts but the incoming routing chooses among 8 experts}}
  %ids, %w = moe.compress_slots %ids0, %w0 {keep = 1, compressed = array<i64: 0, 1, 2, 3>}
      : tensor<16x2xi32>, tensor<16x2xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @layer_compress_slots_table(%x: tensor<16x64xf32>, %ids0: tensor<16x2xi32>,
    %w0: tensor<16x2xf32>, %full: !moe.experts<4, 64>, %small: !moe.experts<4, 64>) {
  %ids, %w = moe.compress_slots %ids0, %w0 {keep = 1, compressed = array<i64: 0, 0, 1, 1>}
      : tensor<16x2xi32>, tensor<16x2xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  // expected-error @+1 {{'moe.layer' op routing chooses among 6 experts but the expert table holds 8}}
  %y = moe.layer %x, %ids, %w experts(%full, %small : !moe.experts<4, 64>, !moe.experts<4, 64>)
      : tensor<16x64xf32>, tensor<16x2xi32>, tensor<16x2xf32> -> tensor<16x64xf32>
  return
}

// -----

func.func @layer_capacity_reroute_experts_mismatch(%x: tensor<16x64xf32>, %ids0: tensor<16x1xi32>,
    %w0: tensor<16x1xf32>, %s: tensor<16x8xf32>, %e: !moe.experts<4, 64>) {
  %ids, %w = moe.capacity_reroute %ids0, %w0, %s {capacity_factor = 1.0 : f32}
      : tensor<16x1xi32>, tensor<16x1xf32>, tensor<16x8xf32> -> tensor<16x1xi32>, tensor<16x1xf32>
  // expected-error @+1 {{'moe.layer' op routing chooses among 8 experts but the expert table holds 4}}
  %y = moe.layer %x, %ids, %w experts(%e : !moe.experts<4, 64>)
      : tensor<16x64xf32>, tensor<16x1xi32>, tensor<16x1xf32> -> tensor<16x64xf32>
  return
}

// -----

func.func @path_router_dynamic_hidden_size(%x: tensor<16x?xf32>, %gate: tensor<3x64xf32>) {
  // expected-error @+1 {{'moe.path_router' op hidden size H of 'hidden' must be static}}
  %p = moe.path_router %x, %gate : tensor<16x?xf32>, tensor<3x64xf32> -> tensor<16xi32>
  return
}

// -----

func.func @path_router_dynamic_gate(%x: tensor<16x64xf32>, %gate: tensor<?x64xf32>) {
  // expected-error @+1 {{'moe.path_router' op 'gate' must have a static shape (weights are model properties), got 'tensor<?x64xf32>'}}
  %p = moe.path_router %x, %gate : tensor<16x64xf32>, tensor<?x64xf32> -> tensor<16xi32>
  return
}

// -----

func.func @path_router_no_paths(%x: tensor<16x64xf32>, %gate: tensor<0x64xf32>) {
  // expected-error @+1 {{'moe.path_router' op 'gate' must hold at least one path (P >= 1), got P = 0}}
  %p = moe.path_router %x, %gate : tensor<16x64xf32>, tensor<0x64xf32> -> tensor<16xi32>
  return
}

// -----

func.func @path_router_hidden_mismatch(%x: tensor<16x64xf32>, %gate: tensor<3x32xf32>) {
  // expected-error @+1 {{'moe.path_router' op H mismatch: 'hidden' has H = 64 but 'gate' has H = 32}}
  %p = moe.path_router %x, %gate : tensor<16x64xf32>, tensor<3x32xf32> -> tensor<16xi32>
  return
}

// -----

func.func @path_router_tokens_mismatch(%x: tensor<16x64xf32>, %gate: tensor<3x64xf32>) {
  // expected-error @+1 {{'moe.path_router' op T mismatch: 'hidden' has T = 16 but 'paths' has T = 8}}
  %p = moe.path_router %x, %gate : tensor<16x64xf32>, tensor<3x64xf32> -> tensor<8xi32>
  return
}

//===----------------------------------------------------------------------===//
// moe.ffn_experts
//===----------------------------------------------------------------------===//

// -----

func.func @ffn_experts_dynamic_w1(%w1: tensor<4x?x64xf32>, %w2: tensor<4x64x128xf32>) {
  // expected-error @+1 {{'moe.ffn_experts' op 'w1' must have a static shape (weights are model properties), got 'tensor<4x?x64xf32>'}}
  %e = moe.ffn_experts gelu w1(%w1 : tensor<4x?x64xf32>) w2(%w2 : tensor<4x64x128xf32>)
      -> !moe.experts<4, 64>
  return
}

// -----

func.func @ffn_experts_swiglu_without_w3(%w1: tensor<4x128x64xf32>, %w2: tensor<4x64x128xf32>) {
  // expected-error @+1 {{'moe.ffn_experts' op gated activation 'swiglu' requires 'w3'}}
  %e = moe.ffn_experts swiglu w1(%w1 : tensor<4x128x64xf32>) w2(%w2 : tensor<4x64x128xf32>)
      -> !moe.experts<4, 64>
  return
}

// -----

func.func @ffn_experts_geglu_without_w3(%w1: tensor<4x128x64xf32>, %w2: tensor<4x64x128xf32>) {
  // expected-error @+1 {{'moe.ffn_experts' op gated activation 'geglu' requires 'w3'}}
  %e = moe.ffn_experts geglu w1(%w1 : tensor<4x128x64xf32>) w2(%w2 : tensor<4x64x128xf32>)
      -> !moe.experts<4, 64>
  return
}

// -----

func.func @ffn_experts_gelu_with_w3(%w1: tensor<4x128x64xf32>, %w3: tensor<4x128x64xf32>,
                                    %w2: tensor<4x64x128xf32>) {
  // expected-error @+1 {{'moe.ffn_experts' op plain activation 'gelu' takes no 'w3'}}
  %e = moe.ffn_experts gelu w1(%w1 : tensor<4x128x64xf32>) w3(%w3 : tensor<4x128x64xf32>)
      w2(%w2 : tensor<4x64x128xf32>) -> !moe.experts<4, 64>
  return
}

// -----

func.func @ffn_experts_count_mismatch(%w1: tensor<4x128x64xf32>, %w2: tensor<4x64x128xf32>) {
  // expected-error @+1 {{'moe.ffn_experts' op 'w1' holds 4 experts but the result type says 8}}
  %e = moe.ffn_experts relu w1(%w1 : tensor<4x128x64xf32>) w2(%w2 : tensor<4x64x128xf32>)
      -> !moe.experts<8, 64>
  return
}

// -----

func.func @ffn_experts_w1_hidden_mismatch(%w1: tensor<4x128x32xf32>, %w2: tensor<4x64x128xf32>) {
  // expected-error @+1 {{'moe.ffn_experts' op 'w1' must be [N, I, H] = [4, 128, 64], got [4, 128, 32]}}
  %e = moe.ffn_experts silu w1(%w1 : tensor<4x128x32xf32>) w2(%w2 : tensor<4x64x128xf32>)
      -> !moe.experts<4, 64>
  return
}

// -----

func.func @ffn_experts_w2_count_mismatch(%w1: tensor<4x128x64xf32>, %w2: tensor<2x64x128xf32>) {
  // expected-error @+1 {{'moe.ffn_experts' op 'w2' holds 2 experts but the result type says 4}}
  %e = moe.ffn_experts gelu w1(%w1 : tensor<4x128x64xf32>) w2(%w2 : tensor<2x64x128xf32>)
      -> !moe.experts<4, 64>
  return
}

// -----

func.func @ffn_experts_w2_intermediate_mismatch(%w1: tensor<4x128x64xf32>, %w2: tensor<4x64x96xf32>) {
  // expected-error @+1 {{'moe.ffn_experts' op 'w2' must be [N, H, I] = [4, 64, 128], got [4, 64, 96]}}
  %e = moe.ffn_experts gelu w1(%w1 : tensor<4x128x64xf32>) w2(%w2 : tensor<4x64x96xf32>)
      -> !moe.experts<4, 64>
  return
}

// -----

func.func @ffn_experts_dynamic_w2(%w1: tensor<4x128x64xf32>, %w2: tensor<?x64x128xf32>) {
  // expected-error @+1 {{'moe.ffn_experts' op 'w2' must have a static shape (weights are model properties), got 'tensor<?x64x128xf32>'}}
  %e = moe.ffn_experts gelu w1(%w1 : tensor<4x128x64xf32>) w2(%w2 : tensor<?x64x128xf32>)
      -> !moe.experts<4, 64>
  return
}

// -----

func.func @ffn_experts_w3_mismatch(%w1: tensor<4x128x64xf32>, %w3: tensor<4x64x64xf32>,
                                   %w2: tensor<4x64x128xf32>) {
  // expected-error @+1 {{'moe.ffn_experts' op 'w3' must be [N, I, H] = [4, 128, 64], got [4, 64, 64]}}
  %e = moe.ffn_experts swiglu w1(%w1 : tensor<4x128x64xf32>) w3(%w3 : tensor<4x64x64xf32>)
      w2(%w2 : tensor<4x64x128xf32>) -> !moe.experts<4, 64>
  return
}

// -----

func.func @ffn_experts_w3_count_mismatch(%w1: tensor<4x128x64xf32>, %w3: tensor<3x128x64xf32>,
                                         %w2: tensor<4x64x128xf32>) {
  // expected-error @+1 {{'moe.ffn_experts' op 'w3' holds 3 experts but the result type says 4}}
  %e = moe.ffn_experts geglu w1(%w1 : tensor<4x128x64xf32>) w3(%w3 : tensor<3x128x64xf32>)
      w2(%w2 : tensor<4x64x128xf32>) -> !moe.experts<4, 64>
  return
}

// -----

func.func @ffn_experts_format_element_type(%w1: tensor<4x64x64xf32>, %w2: tensor<4x64x64xf32>) {
  // expected-error @+1 {{'moe.ffn_experts' op 'w1' of a bf16 bank must hold 'bf16', got 'f32'}}
  %e = moe.ffn_experts gelu w1(%w1 : tensor<4x64x64xf32>) w2(%w2 : tensor<4x64x64xf32>)
      format bf16 -> !moe.experts<4, 64>
  return
}

// -----

func.func @ffn_experts_block_format_k(%w1: tensor<4x64x18xi8>, %w2: tensor<4x48x36xi8>) {
  // expected-error @+1 {{'moe.ffn_experts' op q4_0 weights need H (48) to be a multiple of 32, the block size}}
  %e = moe.ffn_experts gelu w1(%w1 : tensor<4x64x18xi8>) w2(%w2 : tensor<4x48x36xi8>)
      format q4_0 -> !moe.experts<4, 48>
  return
}

// -----

func.func @ffn_experts_block_format_shape(%w1: tensor<4x64x36xi8>, %w2: tensor<4x64x64xi8>) {
  // expected-error @+1 {{'moe.ffn_experts' op 'w2' of a q4_0 bank must be [N, H, stored(I)] = [4, 64, 36], got [4, 64, 64]}}
  %e = moe.ffn_experts gelu w1(%w1 : tensor<4x64x36xi8>) w2(%w2 : tensor<4x64x64xi8>)
      format q4_0 -> !moe.experts<4, 64>
  return
}

// -----

func.func @ffn_experts_scales_not_int8(%w1: tensor<4x64x64xbf16>, %w2: tensor<4x64x64xbf16>,
                                       %s: tensor<4x64xf32>) {
  // expected-error @+1 {{'moe.ffn_experts' op scales are only for int8 weights, not bf16}}
  %e = moe.ffn_experts gelu w1(%w1 : tensor<4x64x64xbf16>) w2(%w2 : tensor<4x64x64xbf16>)
      format bf16 scales(%s, %s : tensor<4x64xf32>, tensor<4x64xf32>) -> !moe.experts<4, 64>
  return
}

// -----

func.func @ffn_experts_int8_scales_count(%w1: tensor<4x64x64xi8>, %w2: tensor<4x64x64xi8>,
                                         %s: tensor<4x64xf32>) {
  // expected-error @+1 {{'moe.ffn_experts' op int8 weights need 2 scales (one [N, rows] f32 tensor per weight), got 1}}
  %e = moe.ffn_experts gelu w1(%w1 : tensor<4x64x64xi8>) w2(%w2 : tensor<4x64x64xi8>)
      format int8 scales(%s : tensor<4x64xf32>) -> !moe.experts<4, 64>
  return
}

// -----

func.func @ffn_experts_int8_scales_shape(%w1: tensor<4x128x64xi8>, %w2: tensor<4x64x128xi8>,
                                         %s1: tensor<4x64xf32>, %s2: tensor<4x64xf32>) {
  // expected-error @+1 {{'moe.ffn_experts' op the scales of 'w1' must be [N, rows] = [4, 128], got [4, 64]}}
  %e = moe.ffn_experts gelu w1(%w1 : tensor<4x128x64xi8>) w2(%w2 : tensor<4x64x128xi8>)
      format int8 scales(%s1, %s2 : tensor<4x64xf32>, tensor<4x64xf32>) -> !moe.experts<4, 64>
  return
}

// -----

func.func @ffn_experts_bf16_activations(%w1: tensor<4x64x64xf16>, %w2: tensor<4x64x64xf16>) {
  // expected-error @+1 {{'moe.ffn_experts' op bf16 activations need bf16 weights, not f16}}
  %e = moe.ffn_experts gelu w1(%w1 : tensor<4x64x64xf16>) w2(%w2 : tensor<4x64x64xf16>)
      format f16 activations bf16 -> !moe.experts<4, 64>
  return
}

// -----

func.func @ffn_experts_q8_activations_format(%w1: tensor<4x64x64xbf16>, %w2: tensor<4x64x64xbf16>) {
  // expected-error @+1 {{'moe.ffn_experts' op q8_0 activations need int8, q8_0 or q4_0 weights, not bf16}}
  %e = moe.ffn_experts gelu w1(%w1 : tensor<4x64x64xbf16>) w2(%w2 : tensor<4x64x64xbf16>)
      format bf16 activations q8_0 -> !moe.experts<4, 64>
  return
}

// -----

func.func @ffn_experts_q8_activations_blocks(%w1: tensor<4x40x64xi8>, %w2: tensor<4x64x40xi8>,
                                             %s1: tensor<4x40xf32>, %s2: tensor<4x64xf32>) {
  // expected-error @+1 {{'moe.ffn_experts' op q8_0 activations need H (64) and I (40) to be multiples of 32}}
  %e = moe.ffn_experts gelu w1(%w1 : tensor<4x40x64xi8>) w2(%w2 : tensor<4x64x40xi8>)
      format int8 activations q8_0 scales(%s1, %s2 : tensor<4x40xf32>, tensor<4x64xf32>)
      -> !moe.experts<4, 64>
  return
}

// -----

// A dense moe.ffn in a low-precision format: the banks' rules without the
// expert dimension.
func.func @ffn_dense_format_element_type(%x: tensor<?x64xf32>, %w1: tensor<64x64xf32>,
                                         %w2: tensor<64x64xf32>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'moe.ffn' op 'w1' of a bf16 ffn must hold 'bf16', got 'f32'}}
  %y = moe.ffn gelu %x w1(%w1 : tensor<64x64xf32>) w2(%w2 : tensor<64x64xf32>) format bf16
      : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

func.func @ffn_dense_block_format_shape(%x: tensor<?x64xf32>, %w1: tensor<128x36xi8>,
                                        %w2: tensor<64x64xi8>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'moe.ffn' op 'w2' of a q4_0 ffn must be [H, stored(I)] = [64, 72], got [64, 64]}}
  %y = moe.ffn gelu %x w1(%w1 : tensor<128x36xi8>) w2(%w2 : tensor<64x64xi8>) format q4_0
      : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

func.func @ffn_dense_int8_scales_count(%x: tensor<?x64xf32>, %w1: tensor<128x64xi8>,
                                       %w3: tensor<128x64xi8>, %w2: tensor<64x128xi8>,
                                       %s: tensor<128xf32>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'moe.ffn' op int8 weights need 3 scales (one [rows] f32 tensor per weight), got 2}}
  %y = moe.ffn swiglu %x w1(%w1 : tensor<128x64xi8>) w3(%w3 : tensor<128x64xi8>)
      w2(%w2 : tensor<64x128xi8>) format int8 scales(%s, %s : tensor<128xf32>, tensor<128xf32>)
      : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

func.func @ffn_dense_int8_scales_shape(%x: tensor<?x64xf32>, %w1: tensor<128x64xi8>,
                                       %w2: tensor<64x128xi8>, %s1: tensor<64xf32>,
                                       %s2: tensor<64xf32>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'moe.ffn' op the scales of 'w1' must be [rows] = [128], got [64]}}
  %y = moe.ffn gelu %x w1(%w1 : tensor<128x64xi8>) w2(%w2 : tensor<64x128xi8>) format int8
      scales(%s1, %s2 : tensor<64xf32>, tensor<64xf32>) : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

func.func @ffn_dense_q8_activations_format(%x: tensor<?x64xf32>, %w1: tensor<64x64xf16>,
                                           %w2: tensor<64x64xf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'moe.ffn' op q8_0 activations need int8, q8_0 or q4_0 weights, not f16}}
  %y = moe.ffn gelu %x w1(%w1 : tensor<64x64xf16>) w2(%w2 : tensor<64x64xf16>) format f16
      activations q8_0 : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

//===----------------------------------------------------------------------===//
// moe.lora_experts
//===----------------------------------------------------------------------===//

// -----

func.func @lora_dynamic_w1(%w1: tensor<?x16xf32>, %w2: tensor<16x32xf32>,
                           %a1: tensor<2x4x16xf32>, %b1: tensor<2x32x4xf32>,
                           %a2: tensor<2x4x32xf32>, %b2: tensor<2x16x4xf32>) {
  // expected-error @+1 {{'moe.lora_experts' op 'w1' must have a static shape (weights are model properties), got 'tensor<?x16xf32>'}}
  %e = moe.lora_experts gelu base(w1 %w1 : tensor<?x16xf32>, w2 %w2 : tensor<16x32xf32>)
      adapters(w1 %a1, %b1 : tensor<2x4x16xf32>, tensor<2x32x4xf32>,
               w2 %a2, %b2 : tensor<2x4x32xf32>, tensor<2x16x4xf32>)
      {alpha = 8.0 : f32} -> !moe.experts<2, 16>
  return
}

// -----

func.func @lora_dynamic_a1(%w1: tensor<32x16xf32>, %w2: tensor<16x32xf32>,
                           %a1: tensor<2x?x16xf32>, %b1: tensor<2x32x4xf32>,
                           %a2: tensor<2x4x32xf32>, %b2: tensor<2x16x4xf32>) {
  // expected-error @+1 {{'moe.lora_experts' op 'a1' must have a static shape (weights are model properties), got 'tensor<2x?x16xf32>'}}
  %e = moe.lora_experts gelu base(w1 %w1 : tensor<32x16xf32>, w2 %w2 : tensor<16x32xf32>)
      adapters(w1 %a1, %b1 : tensor<2x?x16xf32>, tensor<2x32x4xf32>,
               w2 %a2, %b2 : tensor<2x4x32xf32>, tensor<2x16x4xf32>)
      {alpha = 8.0 : f32} -> !moe.experts<2, 16>
  return
}

// -----

func.func @lora_gated_without_w3(%w1: tensor<32x16xf32>, %w2: tensor<16x32xf32>,
                                 %a1: tensor<2x4x16xf32>, %b1: tensor<2x32x4xf32>,
                                 %a2: tensor<2x4x32xf32>, %b2: tensor<2x16x4xf32>) {
  // expected-error @+1 {{'moe.lora_experts' op gated activation 'swiglu' requires 'w3'}}
  %e = moe.lora_experts swiglu base(w1 %w1 : tensor<32x16xf32>, w2 %w2 : tensor<16x32xf32>)
      adapters(w1 %a1, %b1 : tensor<2x4x16xf32>, tensor<2x32x4xf32>,
               w2 %a2, %b2 : tensor<2x4x32xf32>, tensor<2x16x4xf32>)
      {alpha = 8.0 : f32} -> !moe.experts<2, 16>
  return
}

// -----

func.func @lora_plain_with_w3(%w1: tensor<32x16xf32>, %w3: tensor<32x16xf32>, %w2: tensor<16x32xf32>,
                              %a1: tensor<2x4x16xf32>, %b1: tensor<2x32x4xf32>,
                              %a3: tensor<2x4x16xf32>, %b3: tensor<2x32x4xf32>,
                              %a2: tensor<2x4x32xf32>, %b2: tensor<2x16x4xf32>) {
  // expected-error @+1 {{'moe.lora_experts' op plain activation 'relu' takes no 'w3'}}
  %e = moe.lora_experts relu
      base(w1 %w1 : tensor<32x16xf32>, w3 %w3 : tensor<32x16xf32>, w2 %w2 : tensor<16x32xf32>)
      adapters(w1 %a1, %b1 : tensor<2x4x16xf32>, tensor<2x32x4xf32>,
               w3 %a3, %b3 : tensor<2x4x16xf32>, tensor<2x32x4xf32>,
               w2 %a2, %b2 : tensor<2x4x32xf32>, tensor<2x16x4xf32>)
      {alpha = 8.0 : f32} -> !moe.experts<2, 16>
  return
}

// -----

func.func @lora_gated_without_w3_adapters(%w1: tensor<32x16xf32>, %w3: tensor<32x16xf32>,
                                          %w2: tensor<16x32xf32>,
                                          %a1: tensor<2x4x16xf32>, %b1: tensor<2x32x4xf32>,
                                          %a2: tensor<2x4x32xf32>, %b2: tensor<2x16x4xf32>) {
  // expected-error @+1 {{'moe.lora_experts' op gated activation 'geglu' requires 'w3 adapters'}}
  %e = moe.lora_experts geglu
      base(w1 %w1 : tensor<32x16xf32>, w3 %w3 : tensor<32x16xf32>, w2 %w2 : tensor<16x32xf32>)
      adapters(w1 %a1, %b1 : tensor<2x4x16xf32>, tensor<2x32x4xf32>,
               w2 %a2, %b2 : tensor<2x4x32xf32>, tensor<2x16x4xf32>)
      {alpha = 8.0 : f32} -> !moe.experts<2, 16>
  return
}

// -----

func.func @lora_plain_with_w3_adapters(%w1: tensor<32x16xf32>, %w2: tensor<16x32xf32>,
                                       %a1: tensor<2x4x16xf32>, %b1: tensor<2x32x4xf32>,
                                       %a3: tensor<2x4x16xf32>, %b3: tensor<2x32x4xf32>,
                                       %a2: tensor<2x4x32xf32>, %b2: tensor<2x16x4xf32>) {
  // expected-error @+1 {{'moe.lora_experts' op plain activation 'silu' takes no 'w3 adapters'}}
  %e = moe.lora_experts silu base(w1 %w1 : tensor<32x16xf32>, w2 %w2 : tensor<16x32xf32>)
      adapters(w1 %a1, %b1 : tensor<2x4x16xf32>, tensor<2x32x4xf32>,
               w3 %a3, %b3 : tensor<2x4x16xf32>, tensor<2x32x4xf32>,
               w2 %a2, %b2 : tensor<2x4x32xf32>, tensor<2x16x4xf32>)
      {alpha = 8.0 : f32} -> !moe.experts<2, 16>
  return
}

// -----

// Only the generic form can give one of the two w3 adapters.
func.func @lora_w3_adapter_a_without_b(%w1: tensor<32x16xf32>, %w3: tensor<32x16xf32>,
                                       %w2: tensor<16x32xf32>,
                                       %a1: tensor<2x4x16xf32>, %b1: tensor<2x32x4xf32>,
                                       %a3: tensor<2x4x16xf32>,
                                       %a2: tensor<2x4x32xf32>, %b2: tensor<2x16x4xf32>) {
  // expected-error @+1 {{'moe.lora_experts' op w3 adapters need both A and B}}
  %e = "moe.lora_experts"(%w1, %w3, %w2, %a1, %b1, %a3, %a2, %b2)
      <{activation = #moe<activation swiglu>, alpha = 8.0 : f32,
        operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 0, 1, 1>}>
      : (tensor<32x16xf32>, tensor<32x16xf32>, tensor<16x32xf32>, tensor<2x4x16xf32>,
         tensor<2x32x4xf32>, tensor<2x4x16xf32>, tensor<2x4x32xf32>, tensor<2x16x4xf32>)
      -> !moe.experts<2, 16>
  return
}

// -----

func.func @lora_w3_adapter_b_without_a(%w1: tensor<32x16xf32>, %w2: tensor<16x32xf32>,
                                       %a1: tensor<2x4x16xf32>, %b1: tensor<2x32x4xf32>,
                                       %b3: tensor<2x32x4xf32>,
                                       %a2: tensor<2x4x32xf32>, %b2: tensor<2x16x4xf32>) {
  // expected-error @+1 {{'moe.lora_experts' op w3 adapters need both A and B}}
  %e = "moe.lora_experts"(%w1, %w2, %a1, %b1, %b3, %a2, %b2)
      <{activation = #moe<activation gelu>, alpha = 8.0 : f32,
        operandSegmentSizes = array<i32: 1, 0, 1, 1, 1, 0, 1, 1, 1>}>
      : (tensor<32x16xf32>, tensor<16x32xf32>, tensor<2x4x16xf32>, tensor<2x32x4xf32>,
         tensor<2x32x4xf32>, tensor<2x4x32xf32>, tensor<2x16x4xf32>)
      -> !moe.experts<2, 16>
  return
}

// -----

func.func @lora_alpha_inf(%w1: tensor<32x16xf32>, %w2: tensor<16x32xf32>,
                          %a1: tensor<2x4x16xf32>, %b1: tensor<2x32x4xf32>,
                          %a2: tensor<2x4x32xf32>, %b2: tensor<2x16x4xf32>) {
  // expected-error @+1 {{'moe.lora_experts' op 'alpha' must be finite, got -INF}}
  %e = moe.lora_experts gelu base(w1 %w1 : tensor<32x16xf32>, w2 %w2 : tensor<16x32xf32>)
      adapters(w1 %a1, %b1 : tensor<2x4x16xf32>, tensor<2x32x4xf32>,
               w2 %a2, %b2 : tensor<2x4x32xf32>, tensor<2x16x4xf32>)
      {alpha = 0xFF800000 : f32} -> !moe.experts<2, 16>
  return
}

// -----

func.func @lora_rank_zero(%w1: tensor<32x16xf32>, %w2: tensor<16x32xf32>,
                          %a1: tensor<2x0x16xf32>, %b1: tensor<2x32x0xf32>,
                          %a2: tensor<2x0x32xf32>, %b2: tensor<2x16x0xf32>) {
  // expected-error @+1 {{'moe.lora_experts' op LoRA rank r must be positive, got 0}}
  %e = moe.lora_experts gelu base(w1 %w1 : tensor<32x16xf32>, w2 %w2 : tensor<16x32xf32>)
      adapters(w1 %a1, %b1 : tensor<2x0x16xf32>, tensor<2x32x0xf32>,
               w2 %a2, %b2 : tensor<2x0x32xf32>, tensor<2x16x0xf32>)
      {alpha = 8.0 : f32} -> !moe.experts<2, 16>
  return
}

// -----

func.func @lora_w1_hidden_mismatch(%w1: tensor<32x8xf32>, %w2: tensor<16x32xf32>,
                                   %a1: tensor<2x4x16xf32>, %b1: tensor<2x32x4xf32>,
                                   %a2: tensor<2x4x32xf32>, %b2: tensor<2x16x4xf32>) {
  // expected-error @+1 {{'moe.lora_experts' op 'w1' must be [I, H] = [32, 16], got [32, 8]}}
  %e = moe.lora_experts gelu base(w1 %w1 : tensor<32x8xf32>, w2 %w2 : tensor<16x32xf32>)
      adapters(w1 %a1, %b1 : tensor<2x4x16xf32>, tensor<2x32x4xf32>,
               w2 %a2, %b2 : tensor<2x4x32xf32>, tensor<2x16x4xf32>)
      {alpha = 8.0 : f32} -> !moe.experts<2, 16>
  return
}

// -----

func.func @lora_w2_mismatch(%w1: tensor<32x16xf32>, %w2: tensor<16x24xf32>,
                            %a1: tensor<2x4x16xf32>, %b1: tensor<2x32x4xf32>,
                            %a2: tensor<2x4x32xf32>, %b2: tensor<2x16x4xf32>) {
  // expected-error @+1 {{'moe.lora_experts' op 'w2' must be [H, I] = [16, 32], got [16, 24]}}
  %e = moe.lora_experts gelu base(w1 %w1 : tensor<32x16xf32>, w2 %w2 : tensor<16x24xf32>)
      adapters(w1 %a1, %b1 : tensor<2x4x16xf32>, tensor<2x32x4xf32>,
               w2 %a2, %b2 : tensor<2x4x32xf32>, tensor<2x16x4xf32>)
      {alpha = 8.0 : f32} -> !moe.experts<2, 16>
  return
}

// -----

func.func @lora_dynamic_w2(%w1: tensor<32x16xf32>, %w2: tensor<16x?xf32>,
                           %a1: tensor<2x4x16xf32>, %b1: tensor<2x32x4xf32>,
                           %a2: tensor<2x4x32xf32>, %b2: tensor<2x16x4xf32>) {
  // expected-error @+1 {{'moe.lora_experts' op 'w2' must have a static shape (weights are model properties), got 'tensor<16x?xf32>'}}
  %e = moe.lora_experts gelu base(w1 %w1 : tensor<32x16xf32>, w2 %w2 : tensor<16x?xf32>)
      adapters(w1 %a1, %b1 : tensor<2x4x16xf32>, tensor<2x32x4xf32>,
               w2 %a2, %b2 : tensor<2x4x32xf32>, tensor<2x16x4xf32>)
      {alpha = 8.0 : f32} -> !moe.experts<2, 16>
  return
}

// -----

func.func @lora_a1_count_mismatch(%w1: tensor<32x16xf32>, %w2: tensor<16x32xf32>,
                                  %a1: tensor<3x4x16xf32>, %b1: tensor<2x32x4xf32>,
                                  %a2: tensor<2x4x32xf32>, %b2: tensor<2x16x4xf32>) {
  // expected-error @+1 {{'moe.lora_experts' op 'a1' holds 3 experts but the result type says 2}}
  %e = moe.lora_experts gelu base(w1 %w1 : tensor<32x16xf32>, w2 %w2 : tensor<16x32xf32>)
      adapters(w1 %a1, %b1 : tensor<3x4x16xf32>, tensor<2x32x4xf32>,
               w2 %a2, %b2 : tensor<2x4x32xf32>, tensor<2x16x4xf32>)
      {alpha = 8.0 : f32} -> !moe.experts<2, 16>
  return
}

// -----

func.func @lora_a1_hidden_mismatch(%w1: tensor<32x16xf32>, %w2: tensor<16x32xf32>,
                                   %a1: tensor<2x4x8xf32>, %b1: tensor<2x32x4xf32>,
                                   %a2: tensor<2x4x32xf32>, %b2: tensor<2x16x4xf32>) {
  // expected-error @+1 {{'moe.lora_experts' op 'a1' must be [N, r, H] = [2, 4, 16], got [2, 4, 8]}}
  %e = moe.lora_experts gelu base(w1 %w1 : tensor<32x16xf32>, w2 %w2 : tensor<16x32xf32>)
      adapters(w1 %a1, %b1 : tensor<2x4x8xf32>, tensor<2x32x4xf32>,
               w2 %a2, %b2 : tensor<2x4x32xf32>, tensor<2x16x4xf32>)
      {alpha = 8.0 : f32} -> !moe.experts<2, 16>
  return
}

// -----

func.func @lora_b1_rank_mismatch(%w1: tensor<32x16xf32>, %w2: tensor<16x32xf32>,
                                 %a1: tensor<2x4x16xf32>, %b1: tensor<2x32x8xf32>,
                                 %a2: tensor<2x4x32xf32>, %b2: tensor<2x16x4xf32>) {
  // expected-error @+1 {{'moe.lora_experts' op 'b1' must be [N, I, r] = [2, 32, 4], got [2, 32, 8]}}
  %e = moe.lora_experts gelu base(w1 %w1 : tensor<32x16xf32>, w2 %w2 : tensor<16x32xf32>)
      adapters(w1 %a1, %b1 : tensor<2x4x16xf32>, tensor<2x32x8xf32>,
               w2 %a2, %b2 : tensor<2x4x32xf32>, tensor<2x16x4xf32>)
      {alpha = 8.0 : f32} -> !moe.experts<2, 16>
  return
}

// -----

func.func @lora_a2_mismatch(%w1: tensor<32x16xf32>, %w2: tensor<16x32xf32>,
                            %a1: tensor<2x4x16xf32>, %b1: tensor<2x32x4xf32>,
                            %a2: tensor<2x4x16xf32>, %b2: tensor<2x16x4xf32>) {
  // expected-error @+1 {{'moe.lora_experts' op 'a2' must be [N, r, I] = [2, 4, 32], got [2, 4, 16]}}
  %e = moe.lora_experts gelu base(w1 %w1 : tensor<32x16xf32>, w2 %w2 : tensor<16x32xf32>)
      adapters(w1 %a1, %b1 : tensor<2x4x16xf32>, tensor<2x32x4xf32>,
               w2 %a2, %b2 : tensor<2x4x16xf32>, tensor<2x16x4xf32>)
      {alpha = 8.0 : f32} -> !moe.experts<2, 16>
  return
}

// -----

func.func @lora_b2_mismatch(%w1: tensor<32x16xf32>, %w2: tensor<16x32xf32>,
                            %a1: tensor<2x4x16xf32>, %b1: tensor<2x32x4xf32>,
                            %a2: tensor<2x4x32xf32>, %b2: tensor<2x32x4xf32>) {
  // expected-error @+1 {{'moe.lora_experts' op 'b2' must be [N, H, r] = [2, 16, 4], got [2, 32, 4]}}
  %e = moe.lora_experts gelu base(w1 %w1 : tensor<32x16xf32>, w2 %w2 : tensor<16x32xf32>)
      adapters(w1 %a1, %b1 : tensor<2x4x16xf32>, tensor<2x32x4xf32>,
               w2 %a2, %b2 : tensor<2x4x32xf32>, tensor<2x32x4xf32>)
      {alpha = 8.0 : f32} -> !moe.experts<2, 16>
  return
}

// -----

func.func @lora_w3_mismatch(%w1: tensor<32x16xf32>, %w3: tensor<16x32xf32>, %w2: tensor<16x32xf32>,
                            %a1: tensor<2x4x16xf32>, %b1: tensor<2x32x4xf32>,
                            %a3: tensor<2x4x16xf32>, %b3: tensor<2x32x4xf32>,
                            %a2: tensor<2x4x32xf32>, %b2: tensor<2x16x4xf32>) {
  // expected-error @+1 {{'moe.lora_experts' op 'w3' must be [I, H] = [32, 16], got [16, 32]}}
  %e = moe.lora_experts swiglu
      base(w1 %w1 : tensor<32x16xf32>, w3 %w3 : tensor<16x32xf32>, w2 %w2 : tensor<16x32xf32>)
      adapters(w1 %a1, %b1 : tensor<2x4x16xf32>, tensor<2x32x4xf32>,
               w3 %a3, %b3 : tensor<2x4x16xf32>, tensor<2x32x4xf32>,
               w2 %a2, %b2 : tensor<2x4x32xf32>, tensor<2x16x4xf32>)
      {alpha = 8.0 : f32} -> !moe.experts<2, 16>
  return
}

// -----

func.func @lora_a3_mismatch(%w1: tensor<32x16xf32>, %w3: tensor<32x16xf32>, %w2: tensor<16x32xf32>,
                            %a1: tensor<2x4x16xf32>, %b1: tensor<2x32x4xf32>,
                            %a3: tensor<2x8x16xf32>, %b3: tensor<2x32x4xf32>,
                            %a2: tensor<2x4x32xf32>, %b2: tensor<2x16x4xf32>) {
  // expected-error @+1 {{'moe.lora_experts' op 'a3' must be [N, r, H] = [2, 4, 16], got [2, 8, 16]}}
  %e = moe.lora_experts swiglu
      base(w1 %w1 : tensor<32x16xf32>, w3 %w3 : tensor<32x16xf32>, w2 %w2 : tensor<16x32xf32>)
      adapters(w1 %a1, %b1 : tensor<2x4x16xf32>, tensor<2x32x4xf32>,
               w3 %a3, %b3 : tensor<2x8x16xf32>, tensor<2x32x4xf32>,
               w2 %a2, %b2 : tensor<2x4x32xf32>, tensor<2x16x4xf32>)
      {alpha = 8.0 : f32} -> !moe.experts<2, 16>
  return
}

// -----

func.func @lora_b3_mismatch(%w1: tensor<32x16xf32>, %w3: tensor<32x16xf32>, %w2: tensor<16x32xf32>,
                            %a1: tensor<2x4x16xf32>, %b1: tensor<2x32x4xf32>,
                            %a3: tensor<2x4x16xf32>, %b3: tensor<1x32x4xf32>,
                            %a2: tensor<2x4x32xf32>, %b2: tensor<2x16x4xf32>) {
  // expected-error @+1 {{'moe.lora_experts' op 'b3' holds 1 experts but the result type says 2}}
  %e = moe.lora_experts geglu
      base(w1 %w1 : tensor<32x16xf32>, w3 %w3 : tensor<32x16xf32>, w2 %w2 : tensor<16x32xf32>)
      adapters(w1 %a1, %b1 : tensor<2x4x16xf32>, tensor<2x32x4xf32>,
               w3 %a3, %b3 : tensor<2x4x16xf32>, tensor<1x32x4xf32>,
               w2 %a2, %b2 : tensor<2x4x32xf32>, tensor<2x16x4xf32>)
      {alpha = 8.0 : f32} -> !moe.experts<2, 16>
  return
}

//===----------------------------------------------------------------------===//
// moe.const_experts
//===----------------------------------------------------------------------===//

// -----

func.func @const_experts_count_mismatch(%v: tensor<3x64xf32>) {
  // expected-error @+1 {{'moe.const_experts' op 'values' must be [N, H] = [2, 64], got [3, 64]}}
  %e = moe.const_experts %v : tensor<3x64xf32> -> !moe.experts<2, 64>
  return
}

// -----

func.func @const_experts_hidden_mismatch(%v: tensor<2x32xf32>) {
  // expected-error @+1 {{'moe.const_experts' op 'values' must be [N, H] = [2, 64], got [2, 32]}}
  %e = moe.const_experts %v : tensor<2x32xf32> -> !moe.experts<2, 64>
  return
}

// -----

func.func @const_experts_dynamic(%v: tensor<?x64xf32>) {
  // expected-error @+1 {{'moe.const_experts' op 'values' must have a static shape (weights are model properties), got 'tensor<?x64xf32>'}}
  %e = moe.const_experts %v : tensor<?x64xf32> -> !moe.experts<2, 64>
  return
}

//===----------------------------------------------------------------------===//
// moe.layer
//===----------------------------------------------------------------------===//

// -----

func.func @layer_dynamic_hidden_size(%x: tensor<16x?xf32>, %ids: tensor<16x2xi32>,
                                     %w: tensor<16x2xf32>, %e: !moe.experts<4, 64>) {
  // expected-error @+1 {{'moe.layer' op hidden size H of 'hidden' must be static}}
  %y = moe.layer %x, %ids, %w experts(%e : !moe.experts<4, 64>)
      : tensor<16x?xf32>, tensor<16x2xi32>, tensor<16x2xf32> -> tensor<16x?xf32>
  return
}

// -----

func.func @layer_routing_tokens(%x: tensor<16x64xf32>, %ids: tensor<16x2xi32>,
                                %w: tensor<12x2xf32>, %e: !moe.experts<4, 64>) {
  // expected-error @+1 {{'moe.layer' op T mismatch: 'ids' has T = 16 but 'weights' has T = 12}}
  %y = moe.layer %x, %ids, %w experts(%e : !moe.experts<4, 64>)
      : tensor<16x64xf32>, tensor<16x2xi32>, tensor<12x2xf32> -> tensor<16x64xf32>
  return
}

// -----

func.func @layer_routing_slots(%x: tensor<16x64xf32>, %ids: tensor<16x2xi32>,
                               %w: tensor<16x1xf32>, %e: !moe.experts<4, 64>) {
  // expected-error @+1 {{'moe.layer' op K mismatch: 'ids' has K = 2 but 'weights' has K = 1}}
  %y = moe.layer %x, %ids, %w experts(%e : !moe.experts<4, 64>)
      : tensor<16x64xf32>, tensor<16x2xi32>, tensor<16x1xf32> -> tensor<16x64xf32>
  return
}

// -----

func.func @layer_dynamic_slots(%x: tensor<16x64xf32>, %ids: tensor<16x?xi32>,
                               %w: tensor<16x?xf32>, %e: !moe.experts<4, 64>) {
  // expected-error @+1 {{'moe.layer' op slot count K of 'ids' must be static}}
  %y = moe.layer %x, %ids, %w experts(%e : !moe.experts<4, 64>)
      : tensor<16x64xf32>, tensor<16x?xi32>, tensor<16x?xf32> -> tensor<16x64xf32>
  return
}

// -----

func.func @layer_hidden_ids_tokens(%x: tensor<16x64xf32>, %ids: tensor<8x2xi32>,
                                   %w: tensor<8x2xf32>, %e: !moe.experts<4, 64>) {
  // expected-error @+1 {{'moe.layer' op T mismatch: 'hidden' has T = 16 but 'ids' has T = 8}}
  %y = moe.layer %x, %ids, %w experts(%e : !moe.experts<4, 64>)
      : tensor<16x64xf32>, tensor<8x2xi32>, tensor<8x2xf32> -> tensor<16x64xf32>
  return
}

// -----

func.func @layer_result_tokens(%x: tensor<16x64xf32>, %ids: tensor<16x2xi32>,
                               %w: tensor<16x2xf32>, %e: !moe.experts<4, 64>) {
  // expected-error @+1 {{'moe.layer' op T mismatch: 'hidden' has T = 16 but 'result' has T = 32}}
  %y = moe.layer %x, %ids, %w experts(%e : !moe.experts<4, 64>)
      : tensor<16x64xf32>, tensor<16x2xi32>, tensor<16x2xf32> -> tensor<32x64xf32>
  return
}

// -----

func.func @layer_result_hidden(%x: tensor<?x64xf32>, %ids: tensor<?x2xi32>,
                               %w: tensor<?x2xf32>, %e: !moe.experts<4, 64>) {
  // expected-error @+1 {{'moe.layer' op H mismatch: 'hidden' has H = 64 but 'result' has H = 32}}
  %y = moe.layer %x, %ids, %w experts(%e : !moe.experts<4, 64>)
      : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x32xf32>
  return
}

// -----

// Only the generic form can give an empty expert table.
func.func @layer_no_experts(%x: tensor<16x64xf32>, %ids: tensor<16x2xi32>, %w: tensor<16x2xf32>,
                            %s: !moe.experts<1, 64>) {
  // expected-error @+1 {{'moe.layer' op needs at least one routed expert bank}}
  %y = "moe.layer"(%x, %ids, %w, %s) <{operandSegmentSizes = array<i32: 1, 1, 1, 0, 1>}>
      : (tensor<16x64xf32>, tensor<16x2xi32>, tensor<16x2xf32>, !moe.experts<1, 64>)
      -> tensor<16x64xf32>
  return
}

// -----

func.func @layer_routed_bank_hidden(%x: tensor<16x64xf32>, %ids: tensor<16x2xi32>, %w: tensor<16x2xf32>,
                                    %e0: !moe.experts<4, 64>, %e1: !moe.experts<4, 32>) {
  // expected-error @+1 {{'moe.layer' op routed expert bank #1 has hidden size 32 but 'hidden' has H = 64}}
  %y = moe.layer %x, %ids, %w experts(%e0, %e1 : !moe.experts<4, 64>, !moe.experts<4, 32>)
      : tensor<16x64xf32>, tensor<16x2xi32>, tensor<16x2xf32> -> tensor<16x64xf32>
  return
}

// -----

func.func @layer_shared_bank_hidden(%x: tensor<16x64xf32>, %ids: tensor<16x2xi32>, %w: tensor<16x2xf32>,
                                    %e: !moe.experts<4, 64>, %s: !moe.experts<1, 128>) {
  // expected-error @+1 {{'moe.layer' op shared expert bank #0 has hidden size 128 but 'hidden' has H = 64}}
  %y = moe.layer %x, %ids, %w experts(%e : !moe.experts<4, 64>) shared(%s : !moe.experts<1, 128>)
      : tensor<16x64xf32>, tensor<16x2xi32>, tensor<16x2xf32> -> tensor<16x64xf32>
  return
}

// -----

// Shared experts are not part of the routed table: 6 + 2 shared is not E = 8.
func.func @layer_routing_experts_mismatch(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>,
                                          %e0: !moe.experts<4, 64>, %e1: !moe.experts<2, 64>,
                                          %s: !moe.experts<2, 64>) {
  %ids, %w = moe.topk_router softmax %x, %gate {k = 2}
      : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  // expected-error @+1 {{'moe.layer' op routing chooses among 8 experts but the expert table holds 6}}
  %y = moe.layer %x, %ids, %w experts(%e0, %e1 : !moe.experts<4, 64>, !moe.experts<2, 64>)
      shared(%s : !moe.experts<2, 64>)
      : tensor<16x64xf32>, tensor<16x2xi32>, tensor<16x2xf32> -> tensor<16x64xf32>
  return
}

// -----

func.func @layer_capacity_drop_experts_mismatch(%x: tensor<16x64xf32>, %ids0: tensor<16x1xi32>,
                                                %w0: tensor<16x1xf32>, %e: !moe.experts<4, 64>) {
  %ids, %w = moe.capacity_drop %ids0, %w0 {num_experts = 8, capacity_factor = 1.0 : f32}
      : tensor<16x1xi32>, tensor<16x1xf32> -> tensor<16x1xi32>, tensor<16x1xf32>
  // expected-error @+1 {{'moe.layer' op routing chooses among 8 experts but the expert table holds 4}}
  %y = moe.layer %x, %ids, %w experts(%e : !moe.experts<4, 64>)
      : tensor<16x64xf32>, tensor<16x1xi32>, tensor<16x1xf32> -> tensor<16x64xf32>
  return
}

// -----

// A use before its definition: the layer is verified before the router (whose
// gate is not static), and must not read the router's E; the router's own
// verifier reports the problem.
func.func @layer_before_router(%x: tensor<16x64xf32>, %gate: tensor<?x64xf32>,
                               %e: !moe.experts<4, 64>) {
  %y = moe.layer %x, %ids, %w experts(%e : !moe.experts<4, 64>)
      : tensor<16x64xf32>, tensor<16x2xi32>, tensor<16x2xf32> -> tensor<16x64xf32>
  // expected-error @+1 {{'moe.topk_router' op 'gate' must have a static shape (weights are model properties), got 'tensor<?x64xf32>'}}
  %ids, %w = moe.topk_router softmax %x, %gate {k = 2}
      : tensor<16x64xf32>, tensor<?x64xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

//===----------------------------------------------------------------------===//
// moe.ffn
//===----------------------------------------------------------------------===//

// -----

func.func @ffn_dynamic_hidden_size(%x: tensor<16x?xf32>, %w1: tensor<128x64xf32>, %w2: tensor<64x128xf32>) {
  // expected-error @+1 {{'moe.ffn' op hidden size H of 'hidden' must be static}}
  %y = moe.ffn gelu %x w1(%w1 : tensor<128x64xf32>) w2(%w2 : tensor<64x128xf32>)
      : tensor<16x?xf32> -> tensor<16x?xf32>
  return
}

// -----

func.func @ffn_result_tokens(%x: tensor<16x64xf32>, %w1: tensor<128x64xf32>, %w2: tensor<64x128xf32>) {
  // expected-error @+1 {{'moe.ffn' op T mismatch: 'hidden' has T = 16 but 'result' has T = 8}}
  %y = moe.ffn gelu %x w1(%w1 : tensor<128x64xf32>) w2(%w2 : tensor<64x128xf32>)
      : tensor<16x64xf32> -> tensor<8x64xf32>
  return
}

// -----

func.func @ffn_dynamic_w1(%x: tensor<16x64xf32>, %w1: tensor<?x64xf32>, %w2: tensor<64x128xf32>) {
  // expected-error @+1 {{'moe.ffn' op 'w1' must have a static shape (weights are model properties), got 'tensor<?x64xf32>'}}
  %y = moe.ffn gelu %x w1(%w1 : tensor<?x64xf32>) w2(%w2 : tensor<64x128xf32>)
      : tensor<16x64xf32> -> tensor<16x64xf32>
  return
}

// -----

func.func @ffn_swiglu_without_w3(%x: tensor<16x64xf32>, %w1: tensor<128x64xf32>, %w2: tensor<64x128xf32>) {
  // expected-error @+1 {{'moe.ffn' op gated activation 'swiglu' requires 'w3'}}
  %y = moe.ffn swiglu %x w1(%w1 : tensor<128x64xf32>) w2(%w2 : tensor<64x128xf32>)
      : tensor<16x64xf32> -> tensor<16x64xf32>
  return
}

// -----

func.func @ffn_relu_with_w3(%x: tensor<16x64xf32>, %w1: tensor<128x64xf32>, %w3: tensor<128x64xf32>,
                            %w2: tensor<64x128xf32>) {
  // expected-error @+1 {{'moe.ffn' op plain activation 'relu' takes no 'w3'}}
  %y = moe.ffn relu %x w1(%w1 : tensor<128x64xf32>) w3(%w3 : tensor<128x64xf32>)
      w2(%w2 : tensor<64x128xf32>) : tensor<16x64xf32> -> tensor<16x64xf32>
  return
}

// -----

func.func @ffn_w1_hidden_mismatch(%x: tensor<16x64xf32>, %w1: tensor<128x32xf32>, %w2: tensor<64x128xf32>) {
  // expected-error @+1 {{'moe.ffn' op 'w1' must be [I, H] = [128, 64], got [128, 32]}}
  %y = moe.ffn silu %x w1(%w1 : tensor<128x32xf32>) w2(%w2 : tensor<64x128xf32>)
      : tensor<16x64xf32> -> tensor<16x64xf32>
  return
}

// -----

func.func @ffn_w2_mismatch(%x: tensor<16x64xf32>, %w1: tensor<128x64xf32>, %w2: tensor<128x64xf32>) {
  // expected-error @+1 {{'moe.ffn' op 'w2' must be [H, I] = [64, 128], got [128, 64]}}
  %y = moe.ffn gelu %x w1(%w1 : tensor<128x64xf32>) w2(%w2 : tensor<128x64xf32>)
      : tensor<16x64xf32> -> tensor<16x64xf32>
  return
}

// -----

func.func @ffn_dynamic_w2(%x: tensor<16x64xf32>, %w1: tensor<128x64xf32>, %w2: tensor<64x?xf32>) {
  // expected-error @+1 {{'moe.ffn' op 'w2' must have a static shape (weights are model properties), got 'tensor<64x?xf32>'}}
  %y = moe.ffn gelu %x w1(%w1 : tensor<128x64xf32>) w2(%w2 : tensor<64x?xf32>)
      : tensor<16x64xf32> -> tensor<16x64xf32>
  return
}

// -----

func.func @ffn_w3_mismatch(%x: tensor<16x64xf32>, %w1: tensor<128x64xf32>, %w3: tensor<96x64xf32>,
                           %w2: tensor<64x128xf32>) {
  // expected-error @+1 {{'moe.ffn' op 'w3' must be [I, H] = [128, 64], got [96, 64]}}
  %y = moe.ffn geglu %x w1(%w1 : tensor<128x64xf32>) w3(%w3 : tensor<96x64xf32>)
      w2(%w2 : tensor<64x128xf32>) : tensor<16x64xf32> -> tensor<16x64xf32>
  return
}

//===----------------------------------------------------------------------===//
// moe.skip_block
//===----------------------------------------------------------------------===//

// -----

func.func @skip_dynamic_hidden_size(%x: tensor<16x?xf32>, %r: tensor<64xf32>) {
  // expected-error @+1 {{'moe.skip_block' op hidden size H of 'hidden' must be static}}
  %y = moe.skip_block %x, %r {threshold = 0.5 : f32}
      : tensor<16x?xf32>, tensor<64xf32> -> tensor<16x?xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    moe.yield %xs : tensor<?x64xf32>
  }
  return
}

// -----

func.func @skip_result_hidden(%x: tensor<16x64xf32>, %r: tensor<64xf32>) {
  // expected-error @+1 {{'moe.skip_block' op H mismatch: 'hidden' has H = 64 but 'result' has H = 32}}
  %y = moe.skip_block %x, %r {threshold = 0.5 : f32}
      : tensor<16x64xf32>, tensor<64xf32> -> tensor<16x32xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    moe.yield %xs : tensor<?x64xf32>
  }
  return
}

// -----

func.func @skip_dynamic_router(%x: tensor<16x64xf32>, %r: tensor<?xf32>) {
  // expected-error @+1 {{'moe.skip_block' op 'router' must have a static shape (weights are model properties), got 'tensor<?xf32>'}}
  %y = moe.skip_block %x, %r {threshold = 0.5 : f32}
      : tensor<16x64xf32>, tensor<?xf32> -> tensor<16x64xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    moe.yield %xs : tensor<?x64xf32>
  }
  return
}

// -----

func.func @skip_router_hidden(%x: tensor<16x64xf32>, %r: tensor<32xf32>) {
  // expected-error @+1 {{'moe.skip_block' op H mismatch: 'hidden' has H = 64 but 'router' has H = 32}}
  %y = moe.skip_block %x, %r {threshold = 0.5 : f32}
      : tensor<16x64xf32>, tensor<32xf32> -> tensor<16x64xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    moe.yield %xs : tensor<?x64xf32>
  }
  return
}

// -----

func.func @skip_no_selection(%x: tensor<16x64xf32>, %r: tensor<64xf32>) {
  // expected-error @+1 {{'moe.skip_block' op needs exactly one of 'capacity_fraction' (top tokens by score) and 'threshold' (score > t)}}
  %y = moe.skip_block %x, %r {scale_by_score}
      : tensor<16x64xf32>, tensor<64xf32> -> tensor<16x64xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    moe.yield %xs : tensor<?x64xf32>
  }
  return
}

// -----

func.func @skip_both_selections(%x: tensor<16x64xf32>, %r: tensor<64xf32>) {
  // expected-error @+1 {{'moe.skip_block' op needs exactly one of 'capacity_fraction' (top tokens by score) and 'threshold' (score > t)}}
  %y = moe.skip_block %x, %r {capacity_fraction = 0.5 : f32, threshold = 0.5 : f32}
      : tensor<16x64xf32>, tensor<64xf32> -> tensor<16x64xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    moe.yield %xs : tensor<?x64xf32>
  }
  return
}

// -----

func.func @skip_capacity_fraction_zero(%x: tensor<16x64xf32>, %r: tensor<64xf32>) {
  // expected-error @+1 {{'moe.skip_block' op 'capacity_fraction' must be in (0, 1], got 0.000000e+00}}
  %y = moe.skip_block %x, %r {capacity_fraction = 0.0 : f32}
      : tensor<16x64xf32>, tensor<64xf32> -> tensor<16x64xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    moe.yield %xs : tensor<?x64xf32>
  }
  return
}

// -----

func.func @skip_capacity_fraction_above_one(%x: tensor<16x64xf32>, %r: tensor<64xf32>) {
  // expected-error @+1 {{'moe.skip_block' op 'capacity_fraction' must be in (0, 1], got 1.250000e+00}}
  %y = moe.skip_block %x, %r {capacity_fraction = 1.25 : f32}
      : tensor<16x64xf32>, tensor<64xf32> -> tensor<16x64xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    moe.yield %xs : tensor<?x64xf32>
  }
  return
}

// -----

func.func @skip_capacity_fraction_nan(%x: tensor<16x64xf32>, %r: tensor<64xf32>) {
  // expected-error @+1 {{'moe.skip_block' op 'capacity_fraction' must be in (0, 1], got nan}}
  %y = moe.skip_block %x, %r {capacity_fraction = 0x7FC00000 : f32}
      : tensor<16x64xf32>, tensor<64xf32> -> tensor<16x64xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    moe.yield %xs : tensor<?x64xf32>
  }
  return
}

// -----

func.func @skip_threshold_inf(%x: tensor<16x64xf32>, %r: tensor<64xf32>) {
  // expected-error @+1 {{'moe.skip_block' op 'threshold' must be finite}}
  %y = moe.skip_block %x, %r {threshold = 0x7F800000 : f32}
      : tensor<16x64xf32>, tensor<64xf32> -> tensor<16x64xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    moe.yield %xs : tensor<?x64xf32>
  }
  return
}

// -----

func.func @skip_body_no_argument(%x: tensor<16x64xf32>, %r: tensor<64xf32>) {
  // expected-error @+1 {{'moe.skip_block' op body must take exactly one argument (the compacted tokens), got 0}}
  %y = moe.skip_block %x, %r {threshold = 0.5 : f32}
      : tensor<16x64xf32>, tensor<64xf32> -> tensor<16x64xf32> {
    moe.yield %x : tensor<16x64xf32>
  }
  return
}

// -----

func.func @skip_body_two_arguments(%x: tensor<16x64xf32>, %r: tensor<64xf32>) {
  // expected-error @+1 {{'moe.skip_block' op body must take exactly one argument (the compacted tokens), got 2}}
  %y = moe.skip_block %x, %r {threshold = 0.5 : f32}
      : tensor<16x64xf32>, tensor<64xf32> -> tensor<16x64xf32> {
  ^bb0(%xs: tensor<?x64xf32>, %s: tensor<?xf32>):
    moe.yield %xs : tensor<?x64xf32>
  }
  return
}

// -----

func.func @skip_body_static_tokens(%x: tensor<16x64xf32>, %r: tensor<64xf32>) {
  // expected-error @+1 {{'moe.skip_block' op body argument must be tensor<?x64xf32> (the selected tokens, count known at run time), got 'tensor<16x64xf32>'}}
  %y = moe.skip_block %x, %r {threshold = 0.5 : f32}
      : tensor<16x64xf32>, tensor<64xf32> -> tensor<16x64xf32> {
  ^bb0(%xs: tensor<16x64xf32>):
    moe.yield %xs : tensor<16x64xf32>
  }
  return
}

// -----

func.func @skip_body_argument_hidden(%x: tensor<16x64xf32>, %r: tensor<64xf32>) {
  // expected-error @+1 {{'moe.skip_block' op body argument must be tensor<?x64xf32> (the selected tokens, count known at run time), got 'tensor<?x32xf32>'}}
  %y = moe.skip_block %x, %r {threshold = 0.5 : f32}
      : tensor<16x64xf32>, tensor<64xf32> -> tensor<16x64xf32> {
  ^bb0(%xs: tensor<?x32xf32>):
    moe.yield %x : tensor<16x64xf32>
  }
  return
}

// -----

func.func @skip_body_argument_element_type(%x: tensor<16x64xf32>, %r: tensor<64xf32>) {
  // expected-error @+1 {{'moe.skip_block' op body argument must be tensor<?x64xf32> (the selected tokens, count known at run time), got 'tensor<?x64xf16>'}}
  %y = moe.skip_block %x, %r {threshold = 0.5 : f32}
      : tensor<16x64xf32>, tensor<64xf32> -> tensor<16x64xf32> {
  ^bb0(%xs: tensor<?x64xf16>):
    moe.yield %x : tensor<16x64xf32>
  }
  return
}

// -----

func.func @skip_body_argument_not_tensor(%x: tensor<16x64xf32>, %r: tensor<64xf32>) {
  // expected-error @+1 {{'moe.skip_block' op body argument must be tensor<?x64xf32> (the selected tokens, count known at run time), got 'memref<?x64xf32>'}}
  %y = moe.skip_block %x, %r {threshold = 0.5 : f32}
      : tensor<16x64xf32>, tensor<64xf32> -> tensor<16x64xf32> {
  ^bb0(%xs: memref<?x64xf32>):
    moe.yield %x : tensor<16x64xf32>
  }
  return
}

// -----

func.func @skip_body_not_yield(%x: tensor<16x64xf32>, %r: tensor<64xf32>) {
  // expected-error @+1 {{'moe.skip_block' op body must end with moe.yield}}
  %y = moe.skip_block %x, %r {threshold = 0.5 : f32}
      : tensor<16x64xf32>, tensor<64xf32> -> tensor<16x64xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    llvm.unreachable
  }
  return
}

// -----

func.func @skip_body_yields_static_tokens(%x: tensor<16x64xf32>, %r: tensor<64xf32>) {
  %y = moe.skip_block %x, %r {threshold = 0.5 : f32}
      : tensor<16x64xf32>, tensor<64xf32> -> tensor<16x64xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    // expected-error @+1 {{'moe.yield' op must yield tensor<?x64xf32> (one row per selected token), got 'tensor<16x64xf32>'}}
    moe.yield %x : tensor<16x64xf32>
  }
  return
}

// -----

func.func @skip_body_yields_wrong_hidden(%x: tensor<16x64xf32>, %r: tensor<64xf32>, %f: tensor<?x32xf32>) {
  %y = moe.skip_block %x, %r {capacity_fraction = 0.5 : f32}
      : tensor<16x64xf32>, tensor<64xf32> -> tensor<16x64xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    // expected-error @+1 {{'moe.yield' op must yield tensor<?x64xf32> (one row per selected token), got 'tensor<?x32xf32>'}}
    moe.yield %f : tensor<?x32xf32>
  }
  return
}

//===----------------------------------------------------------------------===//
// moe.path_select
//===----------------------------------------------------------------------===//

// -----

func.func @path_select_dynamic_hidden_size(%x: tensor<16x?xf32>, %p: tensor<16xi32>) {
  // expected-error @+1 {{'moe.path_select' op hidden size H of 'hidden' must be static}}
  %y = moe.path_select %x, %p : tensor<16x?xf32>, tensor<16xi32> -> tensor<16x?xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    moe.yield %xs : tensor<?x64xf32>
  }
  return
}

// -----

func.func @path_select_result_tokens(%x: tensor<16x64xf32>, %p: tensor<16xi32>) {
  // expected-error @+1 {{'moe.path_select' op T mismatch: 'hidden' has T = 16 but 'result' has T = 4}}
  %y = moe.path_select %x, %p : tensor<16x64xf32>, tensor<16xi32> -> tensor<4x64xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    moe.yield %xs : tensor<?x64xf32>
  }
  return
}

// -----

func.func @path_select_paths_tokens(%x: tensor<16x64xf32>, %p: tensor<8xi32>) {
  // expected-error @+1 {{'moe.path_select' op T mismatch: 'hidden' has T = 16 but 'paths' has T = 8}}
  %y = moe.path_select %x, %p : tensor<16x64xf32>, tensor<8xi32> -> tensor<16x64xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    moe.yield %xs : tensor<?x64xf32>
  }
  return
}

// -----

// Only the generic form can give no branch region.
func.func @path_select_no_branch(%x: tensor<16x64xf32>, %p: tensor<16xi32>) {
  // expected-error @+1 {{'moe.path_select' op needs at least one branch region besides skip}}
  %y = "moe.path_select"(%x, %p) : (tensor<16x64xf32>, tensor<16xi32>) -> tensor<16x64xf32>
  return
}

// -----

// A path_router over 3 paths (skip, small, big) needs two branch regions.
func.func @path_select_router_paths_mismatch(%x: tensor<16x64xf32>, %gate: tensor<3x64xf32>) {
  %p = moe.path_router %x, %gate : tensor<16x64xf32>, tensor<3x64xf32> -> tensor<16xi32>
  // expected-error @+1 {{'moe.path_select' op 'paths' come from a path_router over P = 3 paths but the op has 1 branch region(s), so P must be 1 (skip) + 1 = 2}}
  %y = moe.path_select %x, %p : tensor<16x64xf32>, tensor<16xi32> -> tensor<16x64xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    moe.yield %xs : tensor<?x64xf32>
  }
  return
}

// -----

func.func @path_select_branch_two_blocks(%x: tensor<16x64xf32>, %p: tensor<16xi32>) {
  // expected-error @+1 {{'moe.path_select' op region #0 ('branches') failed to verify constraint: region with 1 blocks}}
  %y = "moe.path_select"(%x, %p) ({
  ^bb0(%xs: tensor<?x64xf32>):
    "moe.yield"(%xs) : (tensor<?x64xf32>) -> ()
  ^bb1(%xt: tensor<?x64xf32>):
    "moe.yield"(%xt) : (tensor<?x64xf32>) -> ()
  }) : (tensor<16x64xf32>, tensor<16xi32>) -> tensor<16x64xf32>
  return
}

// -----

func.func @path_select_second_branch_argument(%x: tensor<16x64xf32>, %p: tensor<16xi32>) {
  // expected-error @+1 {{'moe.path_select' op branch #2 must take exactly one argument (the compacted tokens), got 0}}
  %y = moe.path_select %x, %p : tensor<16x64xf32>, tensor<16xi32> -> tensor<16x64xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    moe.yield %xs : tensor<?x64xf32>
  }, {
    moe.yield %x : tensor<16x64xf32>
  }
  return
}

// -----

func.func @path_select_branch_argument_type(%x: tensor<16x64xf32>, %p: tensor<16xi32>) {
  // expected-error @+1 {{'moe.path_select' op branch #1 argument must be tensor<?x64xf32> (the selected tokens, count known at run time), got 'tensor<?x?xf32>'}}
  %y = moe.path_select %x, %p : tensor<16x64xf32>, tensor<16xi32> -> tensor<16x64xf32> {
  ^bb0(%xs: tensor<?x?xf32>):
    moe.yield %xs : tensor<?x?xf32>
  }
  return
}

// -----

func.func @path_select_branch_not_yield(%x: tensor<16x64xf32>, %p: tensor<16xi32>) {
  // expected-error @+1 {{'moe.path_select' op branch #2 must end with moe.yield}}
  %y = moe.path_select %x, %p : tensor<16x64xf32>, tensor<16xi32> -> tensor<16x64xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    moe.yield %xs : tensor<?x64xf32>
  }, {
  ^bb0(%xb: tensor<?x64xf32>):
    llvm.unreachable
  }
  return
}

// -----

func.func @path_select_branch_yield_type(%x: tensor<16x64xf32>, %p: tensor<16xi32>) {
  %y = moe.path_select %x, %p : tensor<16x64xf32>, tensor<16xi32> -> tensor<16x64xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    moe.yield %xs : tensor<?x64xf32>
  }, {
  ^bb0(%xb: tensor<?x64xf32>):
    // expected-error @+1 {{'moe.yield' op must yield tensor<?x64xf32> (one row per selected token), got 'tensor<16x64xf32>'}}
    moe.yield %x : tensor<16x64xf32>
  }
  return
}

// -----

// A static result T over a dynamic operand T promises a token count the op
// cannot guarantee.
func.func @router_static_result_over_dynamic_tokens(%x: tensor<?x8xf32>, %g: tensor<4x8xf32>) {
  // expected-error @+1 {{T of result 'ids' must be dynamic like 'hidden' (T = ?)}}
  %ids, %w = moe.topk_router softmax %x, %g {k = 2}
      : tensor<?x8xf32>, tensor<4x8xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return
}

// -----

func.func @layer_static_result_over_dynamic_tokens(%x: tensor<?x8xf32>, %ids: tensor<?x2xi32>,
                                                   %w: tensor<?x2xf32>) {
  %e = moe.copy_experts : !moe.experts<4, 8>
  // expected-error @+1 {{T of result 'result' must be dynamic like 'hidden' (T = ?)}}
  %y = moe.layer %x, %ids, %w experts(%e : !moe.experts<4, 8>)
      : tensor<?x8xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<16x8xf32>
  return
}

// -----

func.func @path_router_dynamic_result_over_static_tokens(%x: tensor<16x8xf32>, %g: tensor<3x8xf32>) {
  // expected-error @+1 {{T of result 'paths' must be static like 'hidden' (T = 16)}}
  %p = moe.path_router %x, %g : tensor<16x8xf32>, tensor<3x8xf32> -> tensor<?xi32>
  return
}

// -----

func.func @pack_dynamic_source(%w: tensor<?x64xf32>) {
  // expected-error @+1 {{packs weights, whose shapes are static, but the source has type 'tensor<?x64xf32>'}}
  %p = moe.pack %w layout(#moe.pack_layout<row_stride = 80>) : tensor<?x64xf32> -> tensor<?x80xf32>
  return
}

// -----

func.func @pack_short_stride(%w: tensor<4x64xf32>) {
  // expected-error @+1 {{row_stride 48 is shorter than a source row (64 elements)}}
  %p = moe.pack %w layout(#moe.pack_layout<row_stride = 48>) : tensor<4x64xf32> -> tensor<4x48xf32>
  return
}

// -----

func.func @pack_rank_change(%w: tensor<4x64xf32>) {
  // expected-error @+1 {{result rank 3 differs from the source's 2}}
  %p = moe.pack %w layout(#moe.pack_layout<row_stride = 64>) : tensor<4x64xf32> -> tensor<1x4x64xf32>
  return
}

// -----

func.func @pack_wrong_shape(%w: tensor<4x64xf32>) {
  // expected-error @+1 {{result type must be 'tensor<4x80xf32>' (the source's shape with rows of row_stride 80), got 'tensor<4x64xf32>'}}
  %p = moe.pack %w layout(#moe.pack_layout<row_stride = 80>) : tensor<4x64xf32> -> tensor<4x64xf32>
  return
}

// -----

func.func @pack_layout_stride(%w: tensor<4x64xf32>) {
  // expected-error @+1 {{pack_layout row_stride must be positive, got 0}}
  %p = moe.pack %w layout(#moe.pack_layout<row_stride = 0>) : tensor<4x64xf32> -> tensor<4x0xf32>
  return
}

// -----

func.func @pack_element_type(%w: tensor<4x64xbf16>) {
  // expected-error @+1 {{result element type 'f32' differs from the source's 'bf16'}}
  %p = moe.pack %w layout(#moe.pack_layout<row_stride = 64>) : tensor<4x64xbf16> -> tensor<4x64xf32>
  return
}

// -----

// moe.exit_layers / moe.exit_paths (SkipDecode)

func.func @exit_layers_min_above_max(%p: tensor<?xi32>) {
  // expected-error @+1 {{'moe.exit_layers' op needs 0 <= 'min_exit' <= 'max_exit', got min_exit = 3, max_exit = 2}}
  %e = moe.exit_layers %p {max_exit = 2, min_exit = 3, decay_positions = 8} : tensor<?xi32> -> tensor<?xi32>
  return
}

// -----

func.func @exit_layers_negative_min(%p: tensor<?xi32>) {
  // expected-error @+1 {{'moe.exit_layers' op needs 0 <= 'min_exit' <= 'max_exit', got min_exit = -1, max_exit = 2}}
  %e = moe.exit_layers %p {max_exit = 2, min_exit = -1, decay_positions = 8} : tensor<?xi32> -> tensor<?xi32>
  return
}

// -----

func.func @exit_layers_zero_decay(%p: tensor<?xi32>) {
  // expected-error @+1 {{'moe.exit_layers' op 'decay_positions' must be positive, got 0}}
  %e = moe.exit_layers %p {max_exit = 4, min_exit = 2, decay_positions = 0} : tensor<?xi32> -> tensor<?xi32>
  return
}

// -----

func.func @exit_layers_static_result(%p: tensor<?xi32>) {
  // expected-error @+1 {{'moe.exit_layers' op T of result 'exits' must be dynamic like 'positions' (T = ?)}}
  %e = moe.exit_layers %p {max_exit = 4, min_exit = 2, decay_positions = 8} : tensor<?xi32> -> tensor<8xi32>
  return
}

// -----

func.func @exit_layers_positions_i64(%p: tensor<?xi64>) {
  // expected-error @+1 {{'moe.exit_layers' op operand #0 must be 1D tensor of 32-bit signless integer values, but got 'tensor<?xi64>'}}
  %e = moe.exit_layers %p {max_exit = 4, min_exit = 2, decay_positions = 8} : tensor<?xi64> -> tensor<?xi32>
  return
}

// -----

func.func @exit_paths_negative_layer(%e: tensor<?xi32>) {
  // expected-error @+1 {{'moe.exit_paths' op 'layer' must be non-negative, got -1}}
  %p = moe.exit_paths %e {layer = -1} : tensor<?xi32> -> tensor<?xi32>
  return
}

// -----

func.func @exit_paths_token_mismatch(%e: tensor<8xi32>) {
  // expected-error @+1 {{'moe.exit_paths' op T mismatch: 'exits' has T = 8 but 'paths' has T = 4}}
  %p = moe.exit_paths %e {layer = 0} : tensor<8xi32> -> tensor<4xi32>
  return
}

// -----

func.func @exit_paths_two_branches(%x: tensor<?x64xf32>, %e: tensor<?xi32>) {
  %p = moe.exit_paths %e {layer = 0} : tensor<?xi32> -> tensor<?xi32>
  // expected-error @+1 {{'moe.path_select' op 'paths' come from moe.exit_paths (0 = skip, 1 = run) but the op has 2 branch regions; it needs exactly one}}
  %y = moe.path_select %x, %p : tensor<?x64xf32>, tensor<?xi32> -> tensor<?x64xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    moe.yield %xs : tensor<?x64xf32>
  }, {
  ^bb0(%xb: tensor<?x64xf32>):
    moe.yield %xb : tensor<?x64xf32>
  }
  return
}

// -----

// moe.halting_stack (ACT)

func.func @halting_no_layers(%x: tensor<?x64xf32>, %w: tensor<0x64xf32>, %b: tensor<0xf32>) {
  // expected-error @+1 {{'moe.halting_stack' op needs at least one layer region}}
  %y, %n = moe.halting_stack %x, %w, %b {epsilon = 0.01 : f32}
      : tensor<?x64xf32>, tensor<0x64xf32>, tensor<0xf32> -> tensor<?x64xf32>, tensor<?xi32>
  return
}

// -----

func.func @halting_weights_per_layer(%x: tensor<?x64xf32>, %w: tensor<3x64xf32>, %b: tensor<3xf32>) {
  // expected-error @+1 {{'moe.halting_stack' op has 2 layer regions, so 'halt_weights' must be [2, H] and 'halt_bias' [2], got 'tensor<3x64xf32>' and 'tensor<3xf32>'}}
  %y, %n = moe.halting_stack %x, %w, %b {epsilon = 0.01 : f32}
      : tensor<?x64xf32>, tensor<3x64xf32>, tensor<3xf32> -> tensor<?x64xf32>, tensor<?xi32> {
  ^bb0(%xs: tensor<?x64xf32>):
    moe.yield %xs : tensor<?x64xf32>
  }, {
  ^bb0(%xb: tensor<?x64xf32>):
    moe.yield %xb : tensor<?x64xf32>
  }
  return
}

// -----

func.func @halting_epsilon_one(%x: tensor<?x64xf32>, %w: tensor<1x64xf32>, %b: tensor<1xf32>) {
  // expected-error @+1 {{'moe.halting_stack' op 'epsilon' must be in [0, 1), got 1}}
  %y, %n = moe.halting_stack %x, %w, %b {epsilon = 1.0 : f32}
      : tensor<?x64xf32>, tensor<1x64xf32>, tensor<1xf32> -> tensor<?x64xf32>, tensor<?xi32> {
  ^bb0(%xs: tensor<?x64xf32>):
    moe.yield %xs : tensor<?x64xf32>
  }
  return
}

// -----

func.func @halting_hidden_mismatch(%x: tensor<?x64xf32>, %w: tensor<1x32xf32>, %b: tensor<1xf32>) {
  // expected-error @+1 {{'moe.halting_stack' op H mismatch: 'hidden' has H = 64 but 'halt_weights' has H = 32}}
  %y, %n = moe.halting_stack %x, %w, %b {epsilon = 0.01 : f32}
      : tensor<?x64xf32>, tensor<1x32xf32>, tensor<1xf32> -> tensor<?x64xf32>, tensor<?xi32> {
  ^bb0(%xs: tensor<?x64xf32>):
    moe.yield %xs : tensor<?x64xf32>
  }
  return
}

// -----

func.func @halting_steps_static(%x: tensor<?x64xf32>, %w: tensor<1x64xf32>, %b: tensor<1xf32>) {
  // expected-error @+1 {{'moe.halting_stack' op T of result 'steps' must be dynamic like 'hidden' (T = ?)}}
  %y, %n = moe.halting_stack %x, %w, %b {epsilon = 0.01 : f32}
      : tensor<?x64xf32>, tensor<1x64xf32>, tensor<1xf32> -> tensor<?x64xf32>, tensor<4xi32> {
  ^bb0(%xs: tensor<?x64xf32>):
    moe.yield %xs : tensor<?x64xf32>
  }
  return
}

// -----

func.func @halting_layer_argument(%x: tensor<?x64xf32>, %w: tensor<1x64xf32>, %b: tensor<1xf32>) {
  // expected-error @+1 {{'moe.halting_stack' op layer #0 argument must be tensor<?x64xf32> (the selected tokens, count known at run time), got 'tensor<?x32xf32>'}}
  %y, %n = moe.halting_stack %x, %w, %b {epsilon = 0.01 : f32}
      : tensor<?x64xf32>, tensor<1x64xf32>, tensor<1xf32> -> tensor<?x64xf32>, tensor<?xi32> {
  ^bb0(%xs: tensor<?x32xf32>):
    moe.yield %xs : tensor<?x32xf32>
  }
  return
}
