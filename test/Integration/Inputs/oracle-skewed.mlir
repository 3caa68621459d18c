// Oracle routing whose ids come from a narrow range: with
// moe.random_range [3, 4) every token goes to expert 3 in both slots (the
// other experts get no tokens); with [5, 8) experts 0-4 are idle.
func.func @all_to_one(%x: tensor<?x32xf32>,
                      %ids: tensor<?x2xi32> {moe.random_range = array<i64: 3, 4>},
                      %w: tensor<?x2xf32>,
                      %w1: tensor<8x48x32xf32>, %w3: tensor<8x48x32xf32>,
                      %w2: tensor<8x32x48xf32>) -> tensor<?x32xf32> {
  %e = moe.ffn_experts swiglu w1(%w1 : tensor<8x48x32xf32>)
      w3(%w3 : tensor<8x48x32xf32>) w2(%w2 : tensor<8x32x48xf32>) -> !moe.experts<8, 32>
  %y = moe.layer %x, %ids, %w experts(%e : !moe.experts<8, 32>)
      : tensor<?x32xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

func.func @idle_experts(%x: tensor<?x32xf32>,
                        %ids: tensor<?x2xi32> {moe.random_range = array<i64: 5, 8>},
                        %w: tensor<?x2xf32>,
                        %w1: tensor<8x48x32xf32>, %w3: tensor<8x48x32xf32>,
                        %w2: tensor<8x32x48xf32>) -> tensor<?x32xf32> {
  %e = moe.ffn_experts swiglu w1(%w1 : tensor<8x48x32xf32>)
      w3(%w3 : tensor<8x48x32xf32>) w2(%w2 : tensor<8x32x48xf32>) -> !moe.experts<8, 32>
  %y = moe.layer %x, %ids, %w experts(%e : !moe.experts<8, 32>)
      : tensor<?x32xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// Ids drawn from [-3, 12): some are outside [-1, 8) and must be rejected.
func.func @bad_ids(%x: tensor<?x32xf32>,
                   %ids: tensor<?x2xi32> {moe.random_range = array<i64: -3, 12>},
                   %w: tensor<?x2xf32>,
                   %w1: tensor<8x48x32xf32>, %w3: tensor<8x48x32xf32>,
                   %w2: tensor<8x32x48xf32>) -> tensor<?x32xf32> {
  %e = moe.ffn_experts swiglu w1(%w1 : tensor<8x48x32xf32>)
      w3(%w3 : tensor<8x48x32xf32>) w2(%w2 : tensor<8x32x48xf32>) -> !moe.experts<8, 32>
  %y = moe.layer %x, %ids, %w experts(%e : !moe.experts<8, 32>)
      : tensor<?x32xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// Path ids from [0, 4) for two branches: path 3 is out of range.
func.func @bad_paths(%x: tensor<?x32xf32>,
                     %p: tensor<?xi32> {moe.random_range = array<i64: 0, 4>},
                     %w1: tensor<16x32xf32>, %w2: tensor<32x16xf32>) -> tensor<?x32xf32> {
  %y = moe.path_select %x, %p : tensor<?x32xf32>, tensor<?xi32> -> tensor<?x32xf32> {
  ^bb0(%a: tensor<?x32xf32>):
    %f = moe.ffn relu %a w1(%w1 : tensor<16x32xf32>) w2(%w2 : tensor<32x16xf32>)
        : tensor<?x32xf32> -> tensor<?x32xf32>
    moe.yield %f : tensor<?x32xf32>
  }, {
  ^bb0(%b: tensor<?x32xf32>):
    %f = moe.ffn gelu %b w1(%w1 : tensor<16x32xf32>) w2(%w2 : tensor<32x16xf32>)
        : tensor<?x32xf32> -> tensor<?x32xf32>
    moe.yield %f : tensor<?x32xf32>
  }
  return %y : tensor<?x32xf32>
}
