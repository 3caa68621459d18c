// Duo-LLM stack: two FFN layers, each with a small (I = 32) and a big
// (I = 128) module; per token and per layer a learned path router picks
// skip (0), small (1) or big (2). The chosen module's output is added to the
// residual stream; skipped tokens pass through. H = 64.
// The token count T is dynamic (moe-run --tokens=T).
func.func @main(%x: tensor<?x64xf32>,
                %r0: tensor<3x64xf32>,
                %s1_0: tensor<32x64xf32>, %s3_0: tensor<32x64xf32>, %s2_0: tensor<64x32xf32>,
                %b1_0: tensor<128x64xf32>, %b3_0: tensor<128x64xf32>, %b2_0: tensor<64x128xf32>,
                %r1: tensor<3x64xf32>,
                %s1_1: tensor<32x64xf32>, %s3_1: tensor<32x64xf32>, %s2_1: tensor<64x32xf32>,
                %b1_1: tensor<128x64xf32>, %b3_1: tensor<128x64xf32>, %b2_1: tensor<64x128xf32>)
    -> tensor<?x64xf32> {
  %p0 = moe.path_router %x, %r0 : tensor<?x64xf32>, tensor<3x64xf32> -> tensor<?xi32>
  %h0 = moe.path_select %x, %p0 : tensor<?x64xf32>, tensor<?xi32> -> tensor<?x64xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    %f = moe.ffn swiglu %xs w1(%s1_0 : tensor<32x64xf32>) w3(%s3_0 : tensor<32x64xf32>)
        w2(%s2_0 : tensor<64x32xf32>) : tensor<?x64xf32> -> tensor<?x64xf32>
    moe.yield %f : tensor<?x64xf32>
  }, {
  ^bb0(%xb: tensor<?x64xf32>):
    %f = moe.ffn swiglu %xb w1(%b1_0 : tensor<128x64xf32>) w3(%b3_0 : tensor<128x64xf32>)
        w2(%b2_0 : tensor<64x128xf32>) : tensor<?x64xf32> -> tensor<?x64xf32>
    moe.yield %f : tensor<?x64xf32>
  }
  %p1 = moe.path_router %h0, %r1 : tensor<?x64xf32>, tensor<3x64xf32> -> tensor<?xi32>
  %h1 = moe.path_select %h0, %p1 : tensor<?x64xf32>, tensor<?xi32> -> tensor<?x64xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    %f = moe.ffn swiglu %xs w1(%s1_1 : tensor<32x64xf32>) w3(%s3_1 : tensor<32x64xf32>)
        w2(%s2_1 : tensor<64x32xf32>) : tensor<?x64xf32> -> tensor<?x64xf32>
    moe.yield %f : tensor<?x64xf32>
  }, {
  ^bb0(%xb: tensor<?x64xf32>):
    %f = moe.ffn swiglu %xb w1(%b1_1 : tensor<128x64xf32>) w3(%b3_1 : tensor<128x64xf32>)
        w2(%b2_1 : tensor<64x128xf32>) : tensor<?x64xf32> -> tensor<?x64xf32>
    moe.yield %f : tensor<?x64xf32>
  }
  return %h1 : tensor<?x64xf32>
}
