// Debian's LLVM compiles pass statistics out (no LLVM_ENABLE_STATS), so the
// counts of what the moe passes did are also available as remarks with the
// pass option `report`: experts folded, layers expanded, tokens compacted.
// RUN: moe-opt %s --split-input-file --verify-diagnostics --moe-fold-trivial-experts=report=true -o /dev/null
// RUN: moe-opt %s --split-input-file --moe-fold-trivial-experts --moe-expand-layers=report=true -o /dev/null 2>&1 | FileCheck %s --check-prefix=EXPAND
// RUN: moe-opt %s --split-input-file --moe-fold-trivial-experts --moe-expand-layers --moe-call-slots --moe-lower-skips=report=true -o /dev/null 2>&1 | FileCheck %s --check-prefix=SKIP

func.func @moepp(%x: tensor<?x8xf32>, %ids: tensor<?x2xi32>, %w: tensor<?x2xf32>,
                 %w1: tensor<2x4x8xf32>, %w2: tensor<2x8x4xf32>, %c: tensor<3x8xf32>)
    -> tensor<?x8xf32> {
  %ffn = moe.ffn_experts relu w1(%w1 : tensor<2x4x8xf32>) w2(%w2 : tensor<2x8x4xf32>) -> !moe.experts<2, 8>
  %zero = moe.zero_experts : !moe.experts<2, 8>
  %copy = moe.copy_experts : !moe.experts<1, 8>
  %const = moe.const_experts %c : tensor<3x8xf32> -> !moe.experts<3, 8>
  // expected-remark @below {{folded 2 zero, 1 copy and 3 constant experts out of the expert table; 1 expert bank(s) left to dispatch}}
  %y = moe.layer %x, %ids, %w experts(%ffn, %zero, %copy, %const : !moe.experts<2, 8>,
      !moe.experts<2, 8>, !moe.experts<1, 8>, !moe.experts<3, 8>)
      : tensor<?x8xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}
// EXPAND: remark: expanded into a counting-sort dispatch over 2 routed + 0 shared experts

// -----

func.func @skips(%x: tensor<?x8xf32>, %r: tensor<8xf32>, %p: tensor<?xi32>,
                 %w1: tensor<4x8xf32>, %w2: tensor<8x4xf32>) -> tensor<?x8xf32> {
  %a = moe.skip_block %x, %r {capacity_fraction = 0.25 : f32}
      : tensor<?x8xf32>, tensor<8xf32> -> tensor<?x8xf32> {
  ^bb0(%xs: tensor<?x8xf32>):
    %f = moe.ffn relu %xs w1(%w1 : tensor<4x8xf32>) w2(%w2 : tensor<8x4xf32>) : tensor<?x8xf32> -> tensor<?x8xf32>
    moe.yield %f : tensor<?x8xf32>
  }
  %b = moe.path_select %a, %p : tensor<?x8xf32>, tensor<?xi32> -> tensor<?x8xf32> {
  ^bb0(%xs: tensor<?x8xf32>):
    %f = moe.ffn relu %xs w1(%w1 : tensor<4x8xf32>) w2(%w2 : tensor<8x4xf32>) : tensor<?x8xf32> -> tensor<?x8xf32>
    moe.yield %f : tensor<?x8xf32>
  }, {
  ^bb0(%xs: tensor<?x8xf32>):
    %f = moe.ffn gelu %xs w1(%w1 : tensor<4x8xf32>) w2(%w2 : tensor<8x4xf32>) : tensor<?x8xf32> -> tensor<?x8xf32>
    moe.yield %f : tensor<?x8xf32>
  }
  return %b : tensor<?x8xf32>
}
// SKIP: remark: compacts the tokens selected by capacity fraction 2.500000e-01 into a dense buffer before the block; skipped tokens cost only the copy
// SKIP: remark: compacts the tokens of each of 2 paths into a dense buffer before its branch; skipped tokens cost only the copy
