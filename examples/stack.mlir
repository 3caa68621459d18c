// A stack of four adaptive layers, each token taking its own path in each,
// run in one call of the compiled code:
//   1. softmax top-2 over 4 SwiGLU experts (Mixtral-like);
//   2. sigmoid + bias grouped top-2 with a shared expert (DeepSeek-like);
//   3. top-p (0.5, max 3) over 3 FFN + 1 null + 1 copy expert (AdaMoE/MoE++);
//   4. a Mixture-of-Depths block (half the tokens) around a ReLU-routed layer.
// Layer 1 is added to the residual stream (h + layer(h), through a skip
// block that skips no token); layers 2 and 3 replace the hidden state;
// layer 4 adds to it for the tokens it selects. H = 32, I = 64. T is dynamic
// (moe-run --tokens=T).
func.func @main(%x: tensor<?x32xf32>,
                %g1: tensor<4x32xf32>, %a1: tensor<4x64x32xf32>, %a3: tensor<4x64x32xf32>, %a2: tensor<4x32x64xf32>,
                %g2: tensor<8x32xf32>, %bias: tensor<8xf32>,
                %b1: tensor<8x64x32xf32>, %b3: tensor<8x64x32xf32>, %b2: tensor<8x32x64xf32>,
                %s1: tensor<1x64x32xf32>, %s3: tensor<1x64x32xf32>, %s2: tensor<1x32x64xf32>,
                %g3: tensor<5x32xf32>, %c1: tensor<3x64x32xf32>, %c3: tensor<3x64x32xf32>, %c2: tensor<3x32x64xf32>,
                %r: tensor<32xf32>, %g4: tensor<4x32xf32>,
                %d1: tensor<4x64x32xf32>, %d2: tensor<4x32x64xf32>) -> tensor<?x32xf32> {
  %i1, %w1 = moe.topk_router softmax %x, %g1 {k = 2, renormalize}
      : tensor<?x32xf32>, tensor<4x32xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  %e1 = moe.ffn_experts swiglu w1(%a1 : tensor<4x64x32xf32>) w3(%a3 : tensor<4x64x32xf32>)
      w2(%a2 : tensor<4x32x64xf32>) -> !moe.experts<4, 32>
  %h1 = moe.skip_block %x, %r {threshold = -1.0e30 : f32}
      : tensor<?x32xf32>, tensor<32xf32> -> tensor<?x32xf32> {
  ^bb0(%all: tensor<?x32xf32>):
    %l = moe.layer %all, %i1, %w1 experts(%e1 : !moe.experts<4, 32>)
        : tensor<?x32xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x32xf32>
    moe.yield %l : tensor<?x32xf32>
  }

  %i2, %w2 = moe.grouped_topk_router sigmoid %h1, %g2 bias %bias
      {k = 2, num_groups = 4, topk_groups = 2, renormalize}
      : tensor<?x32xf32>, tensor<8x32xf32>, tensor<8xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  %e2 = moe.ffn_experts swiglu w1(%b1 : tensor<8x64x32xf32>) w3(%b3 : tensor<8x64x32xf32>)
      w2(%b2 : tensor<8x32x64xf32>) -> !moe.experts<8, 32>
  %sh = moe.ffn_experts swiglu w1(%s1 : tensor<1x64x32xf32>) w3(%s3 : tensor<1x64x32xf32>)
      w2(%s2 : tensor<1x32x64xf32>) -> !moe.experts<1, 32>
  %y2 = moe.layer %h1, %i2, %w2 experts(%e2 : !moe.experts<8, 32>) shared(%sh : !moe.experts<1, 32>)
      : tensor<?x32xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x32xf32>

  %i3, %w3 = moe.topp_router %y2, %g3 {threshold = 0.5 : f32, max_k = 3}
      : tensor<?x32xf32>, tensor<5x32xf32> -> tensor<?x3xi32>, tensor<?x3xf32>
  %e3 = moe.ffn_experts gelu w1(%c1 : tensor<3x64x32xf32>) w2(%c2 : tensor<3x32x64xf32>)
      -> !moe.experts<3, 32>
  %null = moe.zero_experts : !moe.experts<1, 32>
  %copy = moe.copy_experts : !moe.experts<1, 32>
  %y3 = moe.layer %y2, %i3, %w3 experts(%e3, %null, %copy : !moe.experts<3, 32>,
      !moe.experts<1, 32>, !moe.experts<1, 32>)
      : tensor<?x32xf32>, tensor<?x3xi32>, tensor<?x3xf32> -> tensor<?x32xf32>

  %y4 = moe.skip_block %y3, %r {capacity_fraction = 0.5 : f32, scale_by_score}
      : tensor<?x32xf32>, tensor<32xf32> -> tensor<?x32xf32> {
  ^bb0(%xs: tensor<?x32xf32>):
    %i4, %w4 = moe.relu_router %xs, %g4
        : tensor<?x32xf32>, tensor<4x32xf32> -> tensor<?x4xi32>, tensor<?x4xf32>
    %e4 = moe.ffn_experts relu w1(%d1 : tensor<4x64x32xf32>) w2(%d2 : tensor<4x32x64xf32>)
        -> !moe.experts<4, 32>
    %f = moe.layer %xs, %i4, %w4 experts(%e4 : !moe.experts<4, 32>)
        : tensor<?x32xf32>, tensor<?x4xi32>, tensor<?x4xf32> -> tensor<?x32xf32>
    moe.yield %f : tensor<?x32xf32>
  }
  return %y4 : tensor<?x32xf32>
}
