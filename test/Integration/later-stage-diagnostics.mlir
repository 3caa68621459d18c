// Diagnostics of the stages after parsing (pipeline passes, then the JIT)
// print as the parser's do: "file:line:col: error: ...", the source line and
// a caret. Before, moe-run and the Python CompileError printed these as
// `loc("file":10:8): ...`, with no severity and no source line.

// RUN: not moe-run %s --mode=compiled --tokens=2 2>&1 | FileCheck %s --check-prefix=CPU
// CPU:      moe-run: error: compilation failed in stage 'expanded':
// CPU-NEXT: later-stage-diagnostics.mlir:[[# @LINE + 27]]:8: error: 'tosa.abs' on tensors is not supported by the CPU pipeline
// CPU-NEXT: {{^}}  %r = tosa.abs %y : (tensor<?x8xf32>) -> tensor<?x8xf32>
// CPU-NEXT: {{^}}       ^
// CPU-NOT:  loc(

// RUN: not moe-run %s --mode=compiled --tokens=2 --target=gpu-host 2>&1 | FileCheck %s --check-prefix=HOST
// HOST:      moe-run: error: compilation failed in stage 'expanded':
// HOST-NEXT: later-stage-diagnostics.mlir:[[# @LINE + 20]]:8: error: 'tosa.abs' on tensors is not supported by the GPU pipeline
// HOST-NEXT: {{^}}  %r = tosa.abs %y : (tensor<?x8xf32>) -> tensor<?x8xf32>
// HOST-NOT:  loc(

// compileToPtx already wrote file:line:col; now the source line follows.
// RUN: not moe-compile %s --target=nvptx -o %t.ptx 2>&1 | FileCheck %s --check-prefix=PTX
// PTX:      moe-compile: error: compilation for the GPU failed in stage 'expanded':
// PTX-NEXT: later-stage-diagnostics.mlir:[[# @LINE + 13]]:8: error: 'tosa.abs' on tensors is not supported by the GPU pipeline
// PTX-NEXT: {{^}}  %r = tosa.abs %y : (tensor<?x8xf32>) -> tensor<?x8xf32>
// PTX-NOT:  loc(

func.func @main(%x: tensor<?x8xf32>, %gate: tensor<4x8xf32>,
                %w1: tensor<4x16x8xf32>, %w3: tensor<4x16x8xf32>,
                %w2: tensor<4x8x16xf32>) -> tensor<?x8xf32> {
  %ids, %w = moe.topk_router softmax %x, %gate {k = 2}
      : tensor<?x8xf32>, tensor<4x8xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  %experts = moe.ffn_experts swiglu w1(%w1 : tensor<4x16x8xf32>)
      w3(%w3 : tensor<4x16x8xf32>) w2(%w2 : tensor<4x8x16xf32>) -> !moe.experts<4, 8>
  %y = moe.layer %x, %ids, %w experts(%experts : !moe.experts<4, 8>)
      : tensor<?x8xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x8xf32>
  %r = tosa.abs %y : (tensor<?x8xf32>) -> tensor<?x8xf32>
  return %r : tensor<?x8xf32>
}
