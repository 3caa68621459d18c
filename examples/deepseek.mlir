// DeepSeek-V3-like layer: sigmoid scores + selection bias, grouped top-k
// (16 fine-grained experts in 4 groups, keep 2 groups, top-4 inside them),
// weights renormalized and scaled by 2.5, plus 2 always-on shared experts.
// H = 64, routed I = 32, shared I = 64.
// The token count T is dynamic (moe-run --tokens=T).
func.func @main(%x: tensor<?x64xf32>, %gate: tensor<16x64xf32>, %bias: tensor<16xf32>,
                %w1: tensor<16x32x64xf32>, %w3: tensor<16x32x64xf32>, %w2: tensor<16x64x32xf32>,
                %s1: tensor<2x64x64xf32>, %s3: tensor<2x64x64xf32>, %s2: tensor<2x64x64xf32>)
    -> tensor<?x64xf32> {
  %ids, %w = moe.grouped_topk_router sigmoid %x, %gate bias %bias
      {k = 4, num_groups = 4, topk_groups = 2, renormalize, scaling_factor = 2.5 : f32}
      : tensor<?x64xf32>, tensor<16x64xf32>, tensor<16xf32> -> tensor<?x4xi32>, tensor<?x4xf32>
  %routed = moe.ffn_experts swiglu w1(%w1 : tensor<16x32x64xf32>)
      w3(%w3 : tensor<16x32x64xf32>) w2(%w2 : tensor<16x64x32xf32>) -> !moe.experts<16, 64>
  %shared = moe.ffn_experts swiglu w1(%s1 : tensor<2x64x64xf32>)
      w3(%s3 : tensor<2x64x64xf32>) w2(%s2 : tensor<2x64x64xf32>) -> !moe.experts<2, 64>
  %y = moe.layer %x, %ids, %w experts(%routed : !moe.experts<16, 64>)
      shared(%shared : !moe.experts<2, 64>)
      : tensor<?x64xf32>, tensor<?x4xi32>, tensor<?x4xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
