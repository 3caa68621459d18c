// Oracle routing through capacity_drop into 3 SwiGLU experts + 1 zero
// expert (E = 4, K = 2, H = 8, I = 4): the routing statistics test
// (moe-run-stats.test) feeds the ids of docs/dialect.md's capacity_drop
// example, whose counts are worked out by hand there.
func.func @main(%x: tensor<?x8xf32>, %ids0: tensor<?x2xi32>, %w0: tensor<?x2xf32>,
                %w1: tensor<3x4x8xf32>, %w3: tensor<3x4x8xf32>, %w2: tensor<3x8x4xf32>)
    -> tensor<?x8xf32> {
  %ids, %w = moe.capacity_drop %ids0, %w0 {num_experts = 4, capacity_factor = 1.0 : f32}
      : tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  %ffn = moe.ffn_experts swiglu w1(%w1 : tensor<3x4x8xf32>) w3(%w3 : tensor<3x4x8xf32>)
      w2(%w2 : tensor<3x8x4xf32>) -> !moe.experts<3, 8>
  %zero = moe.zero_experts : !moe.experts<1, 8>
  %y = moe.layer %x, %ids, %w experts(%ffn, %zero : !moe.experts<3, 8>, !moe.experts<1, 8>)
      : tensor<?x8xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}
