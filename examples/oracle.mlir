// Oracle-routed layer: the routing (expert ids and weights) is an input, as
// in routing studies that impose a searched or recorded assignment. Ids are
// checked at run time: -1 marks an unused slot, anything outside [-1, 8) is
// an error. H = 64, I = 128, K = 2.
// The token count T is dynamic (moe-run --tokens=T).
func.func @main(%x: tensor<?x64xf32>,
                %ids: tensor<?x2xi32> {moe.random_range = array<i64: -1, 8>},
                %w: tensor<?x2xf32>,
                %w1: tensor<8x128x64xf32>, %w3: tensor<8x128x64xf32>,
                %w2: tensor<8x64x128xf32>) -> tensor<?x64xf32> {
  %experts = moe.ffn_experts swiglu w1(%w1 : tensor<8x128x64xf32>)
      w3(%w3 : tensor<8x128x64xf32>) w2(%w2 : tensor<8x64x128xf32>) -> !moe.experts<8, 64>
  %y = moe.layer %x, %ids, %w experts(%experts : !moe.experts<8, 64>)
      : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
