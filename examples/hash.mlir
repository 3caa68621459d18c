// Hash layer: each token's vocabulary id picks its single expert through a
// fixed hash; no learned router. H = 64, I = 128, E = 8.
// The token count T is dynamic (moe-run --tokens=T).
func.func @main(%x: tensor<?x64xf32>,
                %token_ids: tensor<?xi32> {moe.random_range = array<i64: 0, 32000>},
                %w1: tensor<8x128x64xf32>, %w3: tensor<8x128x64xf32>,
                %w2: tensor<8x64x128xf32>) -> tensor<?x64xf32> {
  %ids, %w = moe.hash_router %token_ids {num_experts = 8}
      : tensor<?xi32> -> tensor<?x1xi32>, tensor<?x1xf32>
  %experts = moe.ffn_experts swiglu w1(%w1 : tensor<8x128x64xf32>)
      w3(%w3 : tensor<8x128x64xf32>) w2(%w2 : tensor<8x64x128xf32>) -> !moe.experts<8, 64>
  %y = moe.layer %x, %ids, %w experts(%experts : !moe.experts<8, 64>)
      : tensor<?x64xf32>, tensor<?x1xi32>, tensor<?x1xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
