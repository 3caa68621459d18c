// ReMoE layer: ReLU routing, every expert with a positive logit is active
// (K = E = 8 slots, so k varies per token), small and big experts mixed in
// one table (ids 0-3: I = 32, ids 4-7: I = 128). H = 64.
// The token count T is dynamic (moe-run --tokens=T).
func.func @main(%x: tensor<?x64xf32>, %gate: tensor<8x64xf32>,
                %s1: tensor<4x32x64xf32>, %s3: tensor<4x32x64xf32>, %s2: tensor<4x64x32xf32>,
                %b1: tensor<4x128x64xf32>, %b3: tensor<4x128x64xf32>, %b2: tensor<4x64x128xf32>)
    -> tensor<?x64xf32> {
  %ids, %w = moe.relu_router %x, %gate
      : tensor<?x64xf32>, tensor<8x64xf32> -> tensor<?x8xi32>, tensor<?x8xf32>
  %small = moe.ffn_experts swiglu w1(%s1 : tensor<4x32x64xf32>)
      w3(%s3 : tensor<4x32x64xf32>) w2(%s2 : tensor<4x64x32xf32>) -> !moe.experts<4, 64>
  %big = moe.ffn_experts swiglu w1(%b1 : tensor<4x128x64xf32>)
      w3(%b3 : tensor<4x128x64xf32>) w2(%b2 : tensor<4x64x128xf32>) -> !moe.experts<4, 64>
  %y = moe.layer %x, %ids, %w experts(%small, %big : !moe.experts<4, 64>, !moe.experts<4, 64>)
      : tensor<?x64xf32>, tensor<?x8xi32>, tensor<?x8xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
