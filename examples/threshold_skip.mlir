// Threshold layer skip (Router-Tuning / MindSkip style): tokens whose router
// score exceeds 0.25 run a dense SwiGLU FFN (y = x + f(x)); the others
// bypass it. H = 64, I = 128.
// The token count T is dynamic (moe-run --tokens=T).
func.func @main(%x: tensor<?x64xf32>, %router: tensor<64xf32>,
                %w1: tensor<128x64xf32>, %w3: tensor<128x64xf32>, %w2: tensor<64x128xf32>)
    -> tensor<?x64xf32> {
  %y = moe.skip_block %x, %router {threshold = 0.25 : f32}
      : tensor<?x64xf32>, tensor<64xf32> -> tensor<?x64xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    %f = moe.ffn swiglu %xs w1(%w1 : tensor<128x64xf32>) w3(%w3 : tensor<128x64xf32>)
        w2(%w2 : tensor<64x128xf32>) : tensor<?x64xf32> -> tensor<?x64xf32>
    moe.yield %f : tensor<?x64xf32>
  }
  return %y : tensor<?x64xf32>
}
