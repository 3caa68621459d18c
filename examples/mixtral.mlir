// Mixtral-like layer: softmax top-2 over 8 SwiGLU experts, renormalized.
// H = 64, I = 128.
// The token count T is dynamic (moe-run --tokens=T).
func.func @main(%x: tensor<?x64xf32>, %gate: tensor<8x64xf32>,
                %w1: tensor<8x128x64xf32>, %w3: tensor<8x128x64xf32>,
                %w2: tensor<8x64x128xf32>) -> tensor<?x64xf32> {
  %ids, %w = moe.topk_router softmax %x, %gate {k = 2, renormalize}
      : tensor<?x64xf32>, tensor<8x64xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  %experts = moe.ffn_experts swiglu w1(%w1 : tensor<8x128x64xf32>)
      w3(%w3 : tensor<8x128x64xf32>) w2(%w2 : tensor<8x64x128xf32>) -> !moe.experts<8, 64>
  %y = moe.layer %x, %ids, %w experts(%experts : !moe.experts<8, 64>)
      : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
