// moe.capacity_reroute under skew. @skewed_oracle: oracle ids from experts
// 0-2 only (of 8), independent random scores (some negative), so most pairs
// are dropped and re-routed, some to no room. @skewed_layer: a top-2 router
// whose gate favours expert 0 (moe.random_range does not apply to floats:
// the skew comes from the small capacity factor), the re-routed routing
// returned next to the layer's output.
func.func @skewed_oracle(%ids0: tensor<?x2xi32> {moe.random_range = array<i64: 0, 3>},
                         %w0: tensor<?x2xf32>, %scores: tensor<?x8xf32>)
    -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %ids, %w = moe.capacity_reroute %ids0, %w0, %scores {capacity_factor = 0.75 : f32}
      : tensor<?x2xi32>, tensor<?x2xf32>, tensor<?x8xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  return %ids, %w : tensor<?x2xi32>, tensor<?x2xf32>
}

func.func @skewed_layer(%x: tensor<?x32xf32>, %gate: tensor<8x32xf32>,
                        %w1: tensor<8x48x32xf32>, %w3: tensor<8x48x32xf32>,
                        %w2: tensor<8x32x48xf32>) -> (tensor<?x32xf32>, tensor<?x2xi32>) {
  %ids0, %w0 = moe.topk_router sigmoid %x, %gate {k = 2, scaling_factor = 2.0 : f32}
      : tensor<?x32xf32>, tensor<8x32xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  %s = moe.router_scores sigmoid %x, %gate : tensor<?x32xf32>, tensor<8x32xf32> -> tensor<?x8xf32>
  %ids, %w = moe.capacity_reroute %ids0, %w0, %s {capacity_factor = 0.5 : f32}
      : tensor<?x2xi32>, tensor<?x2xf32>, tensor<?x8xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  %e = moe.ffn_experts swiglu w1(%w1 : tensor<8x48x32xf32>)
      w3(%w3 : tensor<8x48x32xf32>) w2(%w2 : tensor<8x32x48xf32>) -> !moe.experts<8, 32>
  %y = moe.layer %x, %ids, %w experts(%e : !moe.experts<8, 32>)
      : tensor<?x32xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x32xf32>
  return %y, %ids : tensor<?x32xf32>, tensor<?x2xi32>
}

// Ids drawn from [-3, 12): some are outside [-1, 8) and must be rejected.
func.func @bad_ids(%ids0: tensor<?x2xi32> {moe.random_range = array<i64: -3, 12>},
                   %w0: tensor<?x2xf32>, %scores: tensor<?x8xf32>)
    -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %ids, %w = moe.capacity_reroute %ids0, %w0, %scores {capacity_factor = 1.0 : f32}
      : tensor<?x2xi32>, tensor<?x2xf32>, tensor<?x8xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  return %ids, %w : tensor<?x2xi32>, tensor<?x2xf32>
}
