// MoE++ layer: 4 FFN experts plus zero-computation experts (1 zero, 1 copy,
// 2 constant), all routed by one softmax top-2. Expert ids: 0-3 FFN, 4 zero,
// 5 copy, 6-7 constant. H = 64, I = 128.
// The token count T is dynamic (moe-run --tokens=T).
func.func @main(%x: tensor<?x64xf32>, %gate: tensor<8x64xf32>,
                %w1: tensor<4x128x64xf32>, %w3: tensor<4x128x64xf32>, %w2: tensor<4x64x128xf32>,
                %consts: tensor<2x64xf32>) -> tensor<?x64xf32> {
  %ids, %w = moe.topk_router softmax %x, %gate {k = 2}
      : tensor<?x64xf32>, tensor<8x64xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  %ffn = moe.ffn_experts swiglu w1(%w1 : tensor<4x128x64xf32>)
      w3(%w3 : tensor<4x128x64xf32>) w2(%w2 : tensor<4x64x128xf32>) -> !moe.experts<4, 64>
  %zero = moe.zero_experts : !moe.experts<1, 64>
  %copy = moe.copy_experts : !moe.experts<1, 64>
  %const = moe.const_experts %consts : tensor<2x64xf32> -> !moe.experts<2, 64>
  %y = moe.layer %x, %ids, %w
      experts(%ffn, %zero, %copy, %const : !moe.experts<4, 64>, !moe.experts<1, 64>,
                                           !moe.experts<1, 64>, !moe.experts<2, 64>)
      : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
