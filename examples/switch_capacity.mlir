// Switch-style layer with a capacity limit: softmax top-1 over 8 GELU
// experts, then each expert keeps at most ceil(1.0 * T * K / E) = 2 tokens;
// overflowing tokens are dropped (their slot contributes nothing).
// H = 64, I = 128.
// The token count T is dynamic (moe-run --tokens=T).
func.func @main(%x: tensor<?x64xf32>, %gate: tensor<8x64xf32>,
                %w1: tensor<8x128x64xf32>, %w2: tensor<8x64x128xf32>) -> tensor<?x64xf32> {
  %ids0, %w0 = moe.topk_router softmax %x, %gate {k = 1}
      : tensor<?x64xf32>, tensor<8x64xf32> -> tensor<?x1xi32>, tensor<?x1xf32>
  %ids, %w = moe.capacity_drop %ids0, %w0 {num_experts = 8, capacity_factor = 1.0 : f32}
      : tensor<?x1xi32>, tensor<?x1xf32> -> tensor<?x1xi32>, tensor<?x1xf32>
  %experts = moe.ffn_experts gelu w1(%w1 : tensor<8x128x64xf32>)
      w2(%w2 : tensor<8x64x128xf32>) -> !moe.experts<8, 64>
  %y = moe.layer %x, %ids, %w experts(%experts : !moe.experts<8, 64>)
      : tensor<?x64xf32>, tensor<?x1xi32>, tensor<?x1xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
