// moe.compress_slots, one entry per form of the expert -> compressed-expert
// map the lowering specializes (docs/dialect.md §4.7.3).
// @oracle_chain: oracle routing over E = 6 full experts, K = 3, keep = 1,
// map [2, 0, 1, 1, 0, 2] (a chain of selects); ids from [-1, 6), so some
// slots are unused.
func.func @oracle_chain(%ids0: tensor<?x3xi32> {moe.random_range = array<i64: -1, 6>},
                        %w0: tensor<?x3xf32>) -> (tensor<?x3xi32>, tensor<?x3xf32>) {
  %ids, %w = moe.compress_slots %ids0, %w0 {keep = 1, compressed = array<i64: 2, 0, 1, 1, 0, 2>}
      : tensor<?x3xi32>, tensor<?x3xf32> -> tensor<?x3xi32>, tensor<?x3xf32>
  return %ids, %w : tensor<?x3xi32>, tensor<?x3xf32>
}

// @layer_chain: sigmoid top-3 over 6 SwiGLU experts (I = 48); per token the
// best two run in full, the third runs one of 3 small GELU stand-ins
// (I = 8) through the map [2, 0, 1, 1, 0, 2]. The demoted routing is
// returned next to the layer's output.
func.func @layer_chain(%x: tensor<?x32xf32>, %gate: tensor<6x32xf32>,
                       %w1: tensor<6x48x32xf32>, %w3: tensor<6x48x32xf32>,
                       %w2: tensor<6x32x48xf32>, %c1: tensor<3x8x32xf32>,
                       %c2: tensor<3x32x8xf32>) -> (tensor<?x32xf32>, tensor<?x3xi32>) {
  %ids0, %w0 = moe.topk_router sigmoid %x, %gate {k = 3}
      : tensor<?x32xf32>, tensor<6x32xf32> -> tensor<?x3xi32>, tensor<?x3xf32>
  %ids, %w = moe.compress_slots %ids0, %w0 {keep = 2, compressed = array<i64: 2, 0, 1, 1, 0, 2>}
      : tensor<?x3xi32>, tensor<?x3xf32> -> tensor<?x3xi32>, tensor<?x3xf32>
  %full = moe.ffn_experts swiglu w1(%w1 : tensor<6x48x32xf32>) w3(%w3 : tensor<6x48x32xf32>)
      w2(%w2 : tensor<6x32x48xf32>) -> !moe.experts<6, 32>
  %small = moe.ffn_experts gelu w1(%c1 : tensor<3x8x32xf32>) w2(%c2 : tensor<3x32x8xf32>)
      -> !moe.experts<3, 32>
  %y = moe.layer %x, %ids, %w experts(%full, %small : !moe.experts<6, 32>, !moe.experts<3, 32>)
      : tensor<?x32xf32>, tensor<?x3xi32>, tensor<?x3xf32> -> tensor<?x32xf32>
  return %y, %ids : tensor<?x32xf32>, tensor<?x3xi32>
}

// @layer_shared: softmax top-2 over 4 experts, keep = 0: every slot runs
// the one shared compressed expert (map all 0: the constant id 4).
func.func @layer_shared(%x: tensor<?x32xf32>, %gate: tensor<4x32xf32>,
                        %w1: tensor<4x48x32xf32>, %w3: tensor<4x48x32xf32>,
                        %w2: tensor<4x32x48xf32>, %s1: tensor<1x8x32xf32>,
                        %s3: tensor<1x8x32xf32>, %s2: tensor<1x32x8xf32>)
    -> (tensor<?x32xf32>, tensor<?x2xi32>) {
  %ids0, %w0 = moe.topk_router softmax %x, %gate {k = 2, renormalize}
      : tensor<?x32xf32>, tensor<4x32xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  %ids, %w = moe.compress_slots %ids0, %w0 {keep = 0, compressed = array<i64: 0, 0, 0, 0>}
      : tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  %full = moe.ffn_experts swiglu w1(%w1 : tensor<4x48x32xf32>) w3(%w3 : tensor<4x48x32xf32>)
      w2(%w2 : tensor<4x32x48xf32>) -> !moe.experts<4, 32>
  %shared = moe.ffn_experts swiglu w1(%s1 : tensor<1x8x32xf32>) w3(%s3 : tensor<1x8x32xf32>)
      w2(%s2 : tensor<1x32x8xf32>) -> !moe.experts<1, 32>
  %y = moe.layer %x, %ids, %w experts(%full, %shared : !moe.experts<4, 32>, !moe.experts<1, 32>)
      : tensor<?x32xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x32xf32>
  return %y, %ids : tensor<?x32xf32>, tensor<?x2xi32>
}

// Ids drawn from [-3, 9): some are outside [-1, 6) and must be rejected.
func.func @bad_ids(%ids0: tensor<?x3xi32> {moe.random_range = array<i64: -3, 9>},
                   %w0: tensor<?x3xf32>) -> (tensor<?x3xi32>, tensor<?x3xf32>) {
  %ids, %w = moe.compress_slots %ids0, %w0 {keep = 1, compressed = array<i64: 2, 0, 1, 1, 0, 2>}
      : tensor<?x3xi32>, tensor<?x3xf32> -> tensor<?x3xi32>, tensor<?x3xf32>
  return %ids, %w : tensor<?x3xi32>, tensor<?x3xf32>
}
