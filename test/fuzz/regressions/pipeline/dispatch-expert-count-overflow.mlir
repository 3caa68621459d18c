// moe.dispatch's verifier computed E + S + 1 (and E + S) in int64 before
// bounding E and S: signed overflow (UBSan) for num_experts = 2^63 - 1.
// Also a lit case: test/Dialect/moe/invalid-lowering-ops.mlir.
func.func @dispatch_huge_count(%ids: tensor<4x2xi32>) {
  %o, %r, %s = moe.dispatch %ids {num_experts = 9223372036854775807 : i64, num_shared = 1 : i64}
      : tensor<4x2xi32> -> tensor<4xi32>, tensor<8xi32>, tensor<4x3xi32>
  return
}
