// ACT (adaptive computation time) over four Mixtral-like MoE layers
// (softmax top-2 of 4 SwiGLU experts, H = 64, I = 64), each a residual
// branch: after each layer a token's halting probability is
// sigmoid(halt_w[l] . h + halt_b[l]); it leaves the stack once the running
// sum reaches 1 - 0.01 (or at the last layer, with the remainder). Results:
// the halting-weighted mixture of its states and the layers it ran.
// Halted tokens are compacted out of later layers. T is dynamic.
func.func @main(
    %x: tensor<?x64xf32>,
    %halt_w: tensor<4x64xf32>,
    %halt_b: tensor<4xf32>,
    %g0: tensor<4x64xf32>,
    %l0_w1: tensor<4x64x64xf32>,
    %l0_w3: tensor<4x64x64xf32>,
    %l0_w2: tensor<4x64x64xf32>,
    %g1: tensor<4x64xf32>,
    %l1_w1: tensor<4x64x64xf32>,
    %l1_w3: tensor<4x64x64xf32>,
    %l1_w2: tensor<4x64x64xf32>,
    %g2: tensor<4x64xf32>,
    %l2_w1: tensor<4x64x64xf32>,
    %l2_w3: tensor<4x64x64xf32>,
    %l2_w2: tensor<4x64x64xf32>,
    %g3: tensor<4x64xf32>,
    %l3_w1: tensor<4x64x64xf32>,
    %l3_w3: tensor<4x64x64xf32>,
    %l3_w2: tensor<4x64x64xf32>)
    -> (tensor<?x64xf32>, tensor<?xi32>) {
  %y, %steps = moe.halting_stack %x, %halt_w, %halt_b {epsilon = 0.01 : f32}
      : tensor<?x64xf32>, tensor<4x64xf32>, tensor<4xf32> -> tensor<?x64xf32>, tensor<?xi32> {
  ^bb0(%xs: tensor<?x64xf32>):
    %r, %r_w = moe.topk_router softmax %xs, %g0 {k = 2, renormalize}
        : tensor<?x64xf32>, tensor<4x64xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
    %e = moe.ffn_experts swiglu w1(%l0_w1 : tensor<4x64x64xf32>)
        w3(%l0_w3 : tensor<4x64x64xf32>) w2(%l0_w2 : tensor<4x64x64xf32>) -> !moe.experts<4, 64>
    %f = moe.layer %xs, %r, %r_w experts(%e : !moe.experts<4, 64>)
        : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
    moe.yield %f : tensor<?x64xf32>
  }, {
  ^bb0(%xs_1: tensor<?x64xf32>):
    %r_1, %r_w_1 = moe.topk_router softmax %xs_1, %g1 {k = 2, renormalize}
        : tensor<?x64xf32>, tensor<4x64xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
    %e_1 = moe.ffn_experts swiglu w1(%l1_w1 : tensor<4x64x64xf32>)
        w3(%l1_w3 : tensor<4x64x64xf32>) w2(%l1_w2 : tensor<4x64x64xf32>) -> !moe.experts<4, 64>
    %f_1 = moe.layer %xs_1, %r_1, %r_w_1 experts(%e_1 : !moe.experts<4, 64>)
        : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
    moe.yield %f_1 : tensor<?x64xf32>
  }, {
  ^bb0(%xs_2: tensor<?x64xf32>):
    %r_2, %r_w_2 = moe.topk_router softmax %xs_2, %g2 {k = 2, renormalize}
        : tensor<?x64xf32>, tensor<4x64xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
    %e_2 = moe.ffn_experts swiglu w1(%l2_w1 : tensor<4x64x64xf32>)
        w3(%l2_w3 : tensor<4x64x64xf32>) w2(%l2_w2 : tensor<4x64x64xf32>) -> !moe.experts<4, 64>
    %f_2 = moe.layer %xs_2, %r_2, %r_w_2 experts(%e_2 : !moe.experts<4, 64>)
        : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
    moe.yield %f_2 : tensor<?x64xf32>
  }, {
  ^bb0(%xs_3: tensor<?x64xf32>):
    %r_3, %r_w_3 = moe.topk_router softmax %xs_3, %g3 {k = 2, renormalize}
        : tensor<?x64xf32>, tensor<4x64xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
    %e_3 = moe.ffn_experts swiglu w1(%l3_w1 : tensor<4x64x64xf32>)
        w3(%l3_w3 : tensor<4x64x64xf32>) w2(%l3_w2 : tensor<4x64x64xf32>) -> !moe.experts<4, 64>
    %f_3 = moe.layer %xs_3, %r_3, %r_w_3 experts(%e_3 : !moe.experts<4, 64>)
        : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
    moe.yield %f_3 : tensor<?x64xf32>
  }
  return %y, %steps : tensor<?x64xf32>, tensor<?xi32>
}
