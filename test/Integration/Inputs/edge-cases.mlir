// Edge cases of the adaptive paths (issue 5), each compiled vs reference.

// No token passes the threshold: the block is skipped by every token.
func.func @all_skipped(%x: tensor<?x16xf32>, %r: tensor<16xf32>,
                       %w1: tensor<24x16xf32>, %w2: tensor<16x24xf32>) -> tensor<?x16xf32> {
  %y = moe.skip_block %x, %r {threshold = 1.0e30 : f32}
      : tensor<?x16xf32>, tensor<16xf32> -> tensor<?x16xf32> {
  ^bb0(%xs: tensor<?x16xf32>):
    %f = moe.ffn relu %xs w1(%w1 : tensor<24x16xf32>) w2(%w2 : tensor<16x24xf32>)
        : tensor<?x16xf32> -> tensor<?x16xf32>
    moe.yield %f : tensor<?x16xf32>
  }
  return %y : tensor<?x16xf32>
}

// Capacity fraction 1: no token is skipped.
func.func @none_skipped(%x: tensor<?x16xf32>, %r: tensor<16xf32>,
                        %w1: tensor<24x16xf32>, %w2: tensor<16x24xf32>) -> tensor<?x16xf32> {
  %y = moe.skip_block %x, %r {capacity_fraction = 1.0 : f32, scale_by_score}
      : tensor<?x16xf32>, tensor<16xf32> -> tensor<?x16xf32> {
  ^bb0(%xs: tensor<?x16xf32>):
    %f = moe.ffn gelu %xs w1(%w1 : tensor<24x16xf32>) w2(%w2 : tensor<16x24xf32>)
        : tensor<?x16xf32> -> tensor<?x16xf32>
    moe.yield %f : tensor<?x16xf32>
  }
  return %y : tensor<?x16xf32>
}

// Top-p with a tiny threshold: every token keeps exactly one expert, the
// other max_k - 1 slots stay unused all the way through the dispatch.
func.func @topp_one_expert(%x: tensor<?x16xf32>, %gate: tensor<6x16xf32>,
                           %w1: tensor<6x24x16xf32>, %w3: tensor<6x24x16xf32>,
                           %w2: tensor<6x16x24xf32>) -> tensor<?x16xf32> {
  %ids, %w = moe.topp_router %x, %gate {threshold = 0.01 : f32, max_k = 4}
      : tensor<?x16xf32>, tensor<6x16xf32> -> tensor<?x4xi32>, tensor<?x4xf32>
  %e = moe.ffn_experts swiglu w1(%w1 : tensor<6x24x16xf32>) w3(%w3 : tensor<6x24x16xf32>)
      w2(%w2 : tensor<6x16x24xf32>) -> !moe.experts<6, 16>
  %y = moe.layer %x, %ids, %w experts(%e : !moe.experts<6, 16>)
      : tensor<?x16xf32>, tensor<?x4xi32>, tensor<?x4xf32> -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// Every slot routed to a trivial expert (ids 2..5: zero, copy, two
// constants): the FFN experts get no rows at all.
func.func @only_trivial(%x: tensor<?x16xf32>,
                        %ids: tensor<?x2xi32> {moe.random_range = array<i64: 2, 6>},
                        %w: tensor<?x2xf32>, %w1: tensor<2x24x16xf32>,
                        %w2: tensor<2x16x24xf32>, %c: tensor<2x16xf32>) -> tensor<?x16xf32> {
  %ffn = moe.ffn_experts relu w1(%w1 : tensor<2x24x16xf32>) w2(%w2 : tensor<2x16x24xf32>)
      -> !moe.experts<2, 16>
  %zero = moe.zero_experts : !moe.experts<1, 16>
  %copy = moe.copy_experts : !moe.experts<1, 16>
  %const = moe.const_experts %c : tensor<2x16xf32> -> !moe.experts<2, 16>
  %y = moe.layer %x, %ids, %w experts(%ffn, %zero, %copy, %const : !moe.experts<2, 16>,
      !moe.experts<1, 16>, !moe.experts<1, 16>, !moe.experts<2, 16>)
      : tensor<?x16xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// A routing of only trivial experts and no FFN bank at all.
func.func @all_trivial_table(%x: tensor<?x16xf32>,
                             %ids: tensor<?x2xi32> {moe.random_range = array<i64: -1, 3>},
                             %w: tensor<?x2xf32>, %c: tensor<1x16xf32>) -> tensor<?x16xf32> {
  %zero = moe.zero_experts : !moe.experts<1, 16>
  %copy = moe.copy_experts : !moe.experts<1, 16>
  %const = moe.const_experts %c : tensor<1x16xf32> -> !moe.experts<1, 16>
  %y = moe.layer %x, %ids, %w experts(%zero, %copy, %const : !moe.experts<1, 16>,
      !moe.experts<1, 16>, !moe.experts<1, 16>)
      : tensor<?x16xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// Experts over capacity: top-2 with capacity factor 0.25, so most slots
// are dropped (slot-major order), and a shared expert still runs for all.
func.func @over_capacity(%x: tensor<?x16xf32>, %gate: tensor<4x16xf32>,
                         %w1: tensor<4x24x16xf32>, %w2: tensor<4x16x24xf32>,
                         %s1: tensor<1x24x16xf32>, %s2: tensor<1x16x24xf32>) -> tensor<?x16xf32> {
  %ids0, %w0 = moe.topk_router softmax %x, %gate {k = 2}
      : tensor<?x16xf32>, tensor<4x16xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  %ids, %w = moe.capacity_drop %ids0, %w0 {num_experts = 4, capacity_factor = 0.25 : f32}
      : tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  %e = moe.ffn_experts relu w1(%w1 : tensor<4x24x16xf32>) w2(%w2 : tensor<4x16x24xf32>)
      -> !moe.experts<4, 16>
  %sh = moe.ffn_experts relu w1(%s1 : tensor<1x24x16xf32>) w2(%s2 : tensor<1x16x24xf32>)
      -> !moe.experts<1, 16>
  %y = moe.layer %x, %ids, %w experts(%e : !moe.experts<4, 16>) shared(%sh : !moe.experts<1, 16>)
      : tensor<?x16xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// Expert choice with capacity above T (clamped to T: every expert takes
// every token).
func.func @expert_choice_all(%x: tensor<?x16xf32>, %gate: tensor<3x16xf32>,
                             %w1: tensor<3x24x16xf32>, %w2: tensor<3x16x24xf32>) -> tensor<?x16xf32> {
  %ids, %w = moe.expert_choice_router sigmoid %x, %gate {capacity = 100000}
      : tensor<?x16xf32>, tensor<3x16xf32> -> tensor<?x3xi32>, tensor<?x3xf32>
  %e = moe.ffn_experts silu w1(%w1 : tensor<3x24x16xf32>) w2(%w2 : tensor<3x16x24xf32>)
      -> !moe.experts<3, 16>
  %y = moe.layer %x, %ids, %w experts(%e : !moe.experts<3, 16>)
      : tensor<?x16xf32>, tensor<?x3xi32>, tensor<?x3xf32> -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// LoRA experts without a gate projection (plain GELU), 3 adapters of rank 2,
// plus a LoRA bank as a shared expert: the base projection is computed once
// per token and shared by every expert that uses it.
func.func @lora_plain(%x: tensor<?x16xf32>, %gate: tensor<3x16xf32>,
                      %w1: tensor<24x16xf32>, %w2: tensor<16x24xf32>,
                      %a1: tensor<3x2x16xf32>, %b1: tensor<3x24x2xf32>,
                      %a2: tensor<3x2x24xf32>, %b2: tensor<3x16x2xf32>,
                      %sa1: tensor<1x2x16xf32>, %sb1: tensor<1x24x2xf32>,
                      %sa2: tensor<1x2x24xf32>, %sb2: tensor<1x16x2xf32>) -> tensor<?x16xf32> {
  %ids, %w = moe.topk_router softmax %x, %gate {k = 2}
      : tensor<?x16xf32>, tensor<3x16xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  %lora = moe.lora_experts gelu
      base(w1 %w1 : tensor<24x16xf32>, w2 %w2 : tensor<16x24xf32>)
      adapters(w1 %a1, %b1 : tensor<3x2x16xf32>, tensor<3x24x2xf32>,
               w2 %a2, %b2 : tensor<3x2x24xf32>, tensor<3x16x2xf32>)
      {alpha = 4.0 : f32} -> !moe.experts<3, 16>
  %shared = moe.lora_experts gelu
      base(w1 %w1 : tensor<24x16xf32>, w2 %w2 : tensor<16x24xf32>)
      adapters(w1 %sa1, %sb1 : tensor<1x2x16xf32>, tensor<1x24x2xf32>,
               w2 %sa2, %sb2 : tensor<1x2x24xf32>, tensor<1x16x2xf32>)
      {alpha = 2.0 : f32} -> !moe.experts<1, 16>
  %y = moe.layer %x, %ids, %w experts(%lora : !moe.experts<3, 16>)
      shared(%shared : !moe.experts<1, 16>)
      : tensor<?x16xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}
