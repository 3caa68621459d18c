// AdaMoE layer: 6 true FFN experts plus 4 null experts, routed by top-p
// (threshold 0.6, at most 4 experts per token): confident tokens use fewer
// experts, and slots taken by null experts cost nothing.
// H = 64, I = 96.
// The token count T is dynamic (moe-run --tokens=T).
func.func @main(%x: tensor<?x64xf32>, %gate: tensor<10x64xf32>,
                %w1: tensor<6x96x64xf32>, %w3: tensor<6x96x64xf32>, %w2: tensor<6x64x96xf32>)
    -> tensor<?x64xf32> {
  %ids, %w = moe.topp_router %x, %gate {threshold = 0.6 : f32, max_k = 4}
      : tensor<?x64xf32>, tensor<10x64xf32> -> tensor<?x4xi32>, tensor<?x4xf32>
  %ffn = moe.ffn_experts swiglu w1(%w1 : tensor<6x96x64xf32>)
      w3(%w3 : tensor<6x96x64xf32>) w2(%w2 : tensor<6x64x96xf32>) -> !moe.experts<6, 64>
  %null = moe.zero_experts : !moe.experts<4, 64>
  %y = moe.layer %x, %ids, %w experts(%ffn, %null : !moe.experts<6, 64>, !moe.experts<4, 64>)
      : tensor<?x64xf32>, tensor<?x4xi32>, tensor<?x4xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
