// Compressed experts: softmax top-2 over 8 SwiGLU experts (I = 128); per
// token the expert with the larger weight runs in full and the other runs
// its compressed stand-in, a SwiGLU expert with I = 16 (expert e's stand-in
// is id 8 + e: the compressed bank follows the full one in the table), with
// its routing weight.
// H = 64.
// The token count T is dynamic (moe-run --tokens=T).
func.func @main(%x: tensor<?x64xf32>, %gate: tensor<8x64xf32>, %w1: tensor<8x128x64xf32>,
                %w3: tensor<8x128x64xf32>, %w2: tensor<8x64x128xf32>,
                %cw1: tensor<8x16x64xf32>, %cw3: tensor<8x16x64xf32>,
                %cw2: tensor<8x64x16xf32>) -> tensor<?x64xf32> {
  %ids0, %w0 = moe.topk_router softmax %x, %gate {k = 2, renormalize}
      : tensor<?x64xf32>, tensor<8x64xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  %ids, %w = moe.compress_slots %ids0, %w0 {keep = 1, compressed = array<i64: 0, 1, 2, 3, 4, 5, 6, 7>}
      : tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  %full = moe.ffn_experts swiglu w1(%w1 : tensor<8x128x64xf32>) w3(%w3 : tensor<8x128x64xf32>)
      w2(%w2 : tensor<8x64x128xf32>) -> !moe.experts<8, 64>
  %small = moe.ffn_experts swiglu w1(%cw1 : tensor<8x16x64xf32>) w3(%cw3 : tensor<8x16x64xf32>)
      w2(%cw2 : tensor<8x64x16xf32>) -> !moe.experts<8, 64>
  %y = moe.layer %x, %ids, %w experts(%full, %small : !moe.experts<8, 64>, !moe.experts<8, 64>)
      : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
