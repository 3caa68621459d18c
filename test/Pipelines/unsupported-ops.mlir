// RUN: moe-opt %s --split-input-file --verify-diagnostics --moe-to-cpu -o /dev/null
// The GPU run takes the whole file as one module (without
// --split-input-file, which checks the expected-error lines for CPU):
// every unsupported op of every function is reported.
// RUN: not moe-opt %s --moe-gpu-mapped -o /dev/null 2>&1 | FileCheck %s --check-prefix=GPU

// The first pass of the CPU and GPU pipelines (moe-check-supported-ops)
// names an op the lowerings cannot handle, at its own location. Before, the
// residual below failed at the function, in the lowering's terms:
// "'builtin.unrealized_conversion_cast' op was not lowered to buffers".

func.func @residual(%x: tensor<?x64xf32>, %gate: tensor<8x64xf32>,
                    %w1: tensor<8x128x64xf32>, %w3: tensor<8x128x64xf32>,
                    %w2: tensor<8x64x128xf32>) -> tensor<?x64xf32> {
  %ids, %w = moe.topk_router softmax %x, %gate {k = 2, renormalize}
      : tensor<?x64xf32>, tensor<8x64xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  %experts = moe.ffn_experts swiglu w1(%w1 : tensor<8x128x64xf32>)
      w3(%w3 : tensor<8x128x64xf32>) w2(%w2 : tensor<8x64x128xf32>) -> !moe.experts<8, 64>
  %y = moe.layer %x, %ids, %w experts(%experts : !moe.experts<8, 64>)
      : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
  // GPU: unsupported-ops.mlir:[[# @LINE + 2]]:{{[0-9]+}}: error: 'arith.addf' on tensors is not supported by the GPU pipeline (a layer function may hold moe ops, tensor.empty, tensor.dim, func.return and ops on scalars)
  // expected-error @+1 {{'arith.addf' on tensors is not supported by the CPU pipeline (a layer function may hold moe ops, tensor.empty, tensor.dim, func.return and ops on scalars)}}
  %r = arith.addf %x, %y : tensor<?x64xf32>
  return %r : tensor<?x64xf32>
}

// -----

// Weights as constants: the reference interpreter takes them, the
// compiled pipelines do not (weights are arguments).
func.func @constant_weights(%x: tensor<?x2xf32>, %w2: tensor<2x1xf32>) -> tensor<?x2xf32> {
  // GPU: unsupported-ops.mlir:[[# @LINE + 2]]:{{[0-9]+}}: error: 'arith.constant' on tensors is not supported by the GPU pipeline
  // expected-error @+1 {{'arith.constant' on tensors is not supported by the CPU pipeline}}
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
    // GPU: unsupported-ops.mlir:[[# @LINE + 2]]:{{[0-9]+}}: error: 'arith.mulf' on tensors is not supported by the GPU pipeline
    // expected-error @+1 {{'arith.mulf' on tensors is not supported by the CPU pipeline}}
    %f = arith.mulf %xs, %xs : tensor<?x64xf32>
    moe.yield %f : tensor<?x64xf32>
  }
  // GPU: unsupported-ops.mlir:[[# @LINE + 2]]:{{[0-9]+}}: error: 'arith.negf' on tensors is not supported by the GPU pipeline
  // expected-error @+1 {{'arith.negf' on tensors is not supported by the CPU pipeline}}
  %n = arith.negf %y : tensor<16x64xf32>
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
// scalars (index arithmetic), tensor.dim and tensor.empty (the moe-level
// rewrites make these themselves), and an external declaration.
// GPU-NOT: error: '{{tensor|arith.muli|func.func}}
func.func private @declared(tensor<4xf32>) -> tensor<4xf32>
func.func @supported(%x: tensor<?x2xf32>, %w1: tensor<1x2xf32>, %w2: tensor<2x1xf32>) -> tensor<?x2xf32> {
  %c0 = arith.constant 0 : index
  %c2 = arith.constant 2 : index
  %t = tensor.dim %x, %c0 : tensor<?x2xf32>
  %t2 = arith.muli %t, %c2 : index
  %e = tensor.empty(%t) : tensor<?x2xf32>
  %y = moe.ffn relu %e w1(%w1 : tensor<1x2xf32>) w2(%w2 : tensor<2x1xf32>)
      : tensor<?x2xf32> -> tensor<?x2xf32>
  return %y : tensor<?x2xf32>
}
