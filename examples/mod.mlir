// Mixture-of-Depths block skip: a scalar router scores each token; the top
// half (capacity fraction 0.5) runs the block and gets x + r * f(x), the
// others pass through unchanged. The block is a Mixtral-style MoE layer.
// H = 64, I = 128.
// The token count T is dynamic (moe-run --tokens=T).
func.func @main(%x: tensor<?x64xf32>, %router: tensor<64xf32>, %gate: tensor<4x64xf32>,
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
