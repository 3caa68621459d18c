// A Mixture-of-Depths block whose router scores can all be equal (a zero
// router): the capacity selection must then take the lowest token indices.
func.func @main(%x: tensor<?x32xf32>, %router: tensor<32xf32>,
                %w1: tensor<16x32xf32>, %w2: tensor<32x16xf32>) -> tensor<?x32xf32> {
  %y = moe.skip_block %x, %router {capacity_fraction = 0.3 : f32}
      : tensor<?x32xf32>, tensor<32xf32> -> tensor<?x32xf32> {
  ^bb0(%xs: tensor<?x32xf32>):
    %f = moe.ffn relu %xs w1(%w1 : tensor<16x32xf32>) w2(%w2 : tensor<32x16xf32>)
        : tensor<?x32xf32> -> tensor<?x32xf32>
    moe.yield %f : tensor<?x32xf32>
  }
  return %y : tensor<?x32xf32>
}
