// Capacity-aware re-routing: softmax top-2 over 8 SwiGLU experts; each
// expert accepts at most ceil(1.0 * T * K / E) = ceil(T / 4) (token, slot)
// pairs, its highest-scoring ones, and a pair an over-full expert drops
// moves to its token's next-best expert that still has room (weight: the
// new expert's score times the router's weight/score factor).
// H = 64, I = 128.
// The token count T is dynamic (moe-run --tokens=T).
func.func @main(%x: tensor<?x64xf32>, %gate: tensor<8x64xf32>, %w1: tensor<8x128x64xf32>,
                %w3: tensor<8x128x64xf32>, %w2: tensor<8x64x128xf32>) -> tensor<?x64xf32> {
  %ids0, %w0 = moe.topk_router softmax %x, %gate {k = 2, renormalize}
      : tensor<?x64xf32>, tensor<8x64xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  %scores = moe.router_scores softmax %x, %gate
      : tensor<?x64xf32>, tensor<8x64xf32> -> tensor<?x8xf32>
  %ids, %w = moe.capacity_reroute %ids0, %w0, %scores {capacity_factor = 1.0 : f32}
      : tensor<?x2xi32>, tensor<?x2xf32>, tensor<?x8xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  %experts = moe.ffn_experts swiglu w1(%w1 : tensor<8x128x64xf32>) w3(%w3 : tensor<8x128x64xf32>)
      w2(%w2 : tensor<8x64x128xf32>) -> !moe.experts<8, 64>
  %y = moe.layer %x, %ids, %w experts(%experts : !moe.experts<8, 64>)
      : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
