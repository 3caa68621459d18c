// H = 40: with 16-lane panels, packing transposes two 16 x 16 blocks per
// panel and copies the last 8 columns element by element.
func.func @main(%x: tensor<?x40xf32>, %gate: tensor<4x40xf32>, %w1: tensor<4x24x40xf32>,
                %w3: tensor<4x24x40xf32>, %w2: tensor<4x40x24xf32>) -> tensor<?x40xf32> {
  %ids, %w = moe.topk_router softmax %x, %gate {k = 2, renormalize}
      : tensor<?x40xf32>, tensor<4x40xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  %e = moe.ffn_experts swiglu w1(%w1 : tensor<4x24x40xf32>) w3(%w3 : tensor<4x24x40xf32>)
      w2(%w2 : tensor<4x40x24xf32>) -> !moe.experts<4, 40>
  %y = moe.layer %x, %ids, %w experts(%e : !moe.experts<4, 40>)
      : tensor<?x40xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x40xf32>
  return %y : tensor<?x40xf32>
}
