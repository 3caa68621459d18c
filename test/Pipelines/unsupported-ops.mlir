// RUN: moe-opt %s --split-input-file --verify-diagnostics --moe-to-cpu -o /dev/null
// The GPU run takes the whole file as one module (without
// --split-input-file, which checks the expected-error lines for CPU):
// every unsupported op of every function is reported.
// RUN: not moe-opt %s --moe-gpu-mapped -o /dev/null 2>&1 | FileCheck %s --check-prefix=GPU

// The first pass of the CPU and GPU pipelines (moe-check-supported-ops)
// names an op neither the moe lowerings nor one-shot-bufferize can handle,
// at its own location. Upstream tensor ops around layers (a residual
// arith.addf, linalg) compile: see the last function and
// test/python/test_transformer_block.py.

// Weights as constants: the reference interpreter and the CPU pipeline take
// them (a memref.global); on the GPU they would be host globals its kernels
// cannot read.
func.func @constant_weights(%x: tensor<?x2xf32>, %w2: tensor<2x1xf32>) -> tensor<?x2xf32> {
  // GPU: unsupported-ops.mlir:[[# @LINE + 1]]:{{[0-9]+}}: error: 'arith.constant' on tensors is not supported by the GPU pipeline
  %w1 = arith.constant dense<[[1.0, 1.0]]> : tensor<1x2xf32>
  %y = moe.ffn relu %x w1(%w1 : tensor<1x2xf32>) w2(%w2 : tensor<2x1xf32>)
      : tensor<?x2xf32> -> tensor<?x2xf32>
  return %y : tensor<?x2xf32>
}

// -----

// Inside a skip region too; every unsupported op is reported, not only the first.
func.func @in_a_region(%x: tensor<16x64xf32>, %router: tensor<64xf32>) -> tensor<16x64xf32> {
  %y = moe.skip_block %x, %router {threshold = 0.5 : f32} : tensor<16x64xf32>, tensor<64xf32> -> tensor<16x64xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    // GPU: unsupported-ops.mlir:[[# @LINE + 2]]:{{[0-9]+}}: error: 'tosa.abs' on tensors is not supported by the GPU pipeline
    // expected-error @+1 {{'tosa.abs' on tensors is not supported by the CPU pipeline}}
    %f = tosa.abs %xs : (tensor<?x64xf32>) -> tensor<?x64xf32>
    moe.yield %f : tensor<?x64xf32>
  }
  // GPU: unsupported-ops.mlir:[[# @LINE + 2]]:{{[0-9]+}}: error: 'tosa.exp' on tensors is not supported by the GPU pipeline
  // expected-error @+1 {{'tosa.exp' on tensors is not supported by the CPU pipeline}}
  %n = tosa.exp %y : (tensor<16x64xf32>) -> tensor<16x64xf32>
  return %n : tensor<16x64xf32>
}

// -----

// GPU: unsupported-ops.mlir:[[# @LINE + 2]]:{{[0-9]+}}: error: function 'helper' is private: the GPU pipeline compiles public functions only (each one is an entry point; calls between functions are not supported)
// expected-error @+1 {{function 'helper' is private: the CPU pipeline compiles public functions only (each one is an entry point; calls between functions are not supported)}}
func.func private @helper(%x: tensor<?x2xf32>, %w1: tensor<1x2xf32>, %w2: tensor<2x1xf32>) -> tensor<?x2xf32> {
  %y = moe.ffn relu %x w1(%w1 : tensor<1x2xf32>) w2(%w2 : tensor<2x1xf32>)
      : tensor<?x2xf32> -> tensor<?x2xf32>
  return %y : tensor<?x2xf32>
}
func.func @calls_helper(%x: tensor<?x2xf32>, %w1: tensor<1x2xf32>, %w2: tensor<2x1xf32>) -> tensor<?x2xf32> {
  // GPU: unsupported-ops.mlir:[[# @LINE + 2]]:{{[0-9]+}}: error: 'func.call' on tensors is not supported by the GPU pipeline
  // expected-error @+1 {{'func.call' on tensors is not supported by the CPU pipeline}}
  %y = func.call @helper(%x, %w1, %w2) : (tensor<?x2xf32>, tensor<1x2xf32>, tensor<2x1xf32>) -> tensor<?x2xf32>
  return %y : tensor<?x2xf32>
}

// -----

// What the pipelines take besides moe ops, and so must keep taking: ops on
// scalars (index arithmetic), tensor.dim and tensor.empty, upstream tensor
// ops around a layer (a residual arith.addf, linalg), and an external
// declaration.
// GPU-NOT: error: '{{tensor|arith|linalg|func.func}}
func.func private @declared(tensor<4xf32>) -> tensor<4xf32>
func.func @supported(%x: tensor<?x2xf32>, %w1: tensor<1x2xf32>, %w2: tensor<2x1xf32>) -> tensor<?x2xf32> {
  %c0 = arith.constant 0 : index
  %c2 = arith.constant 2 : index
  %t = tensor.dim %x, %c0 : tensor<?x2xf32>
  %t2 = arith.muli %t, %c2 : index
  %e = tensor.empty(%t) : tensor<?x2xf32>
  %y = moe.ffn relu %e w1(%w1 : tensor<1x2xf32>) w2(%w2 : tensor<2x1xf32>)
      : tensor<?x2xf32> -> tensor<?x2xf32>
  %r = arith.addf %x, %y : tensor<?x2xf32>
  %s = linalg.exp ins(%r : tensor<?x2xf32>) outs(%e : tensor<?x2xf32>) -> tensor<?x2xf32>
  return %s : tensor<?x2xf32>
}
