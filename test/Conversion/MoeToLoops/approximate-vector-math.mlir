// RUN: moe-opt %s --moe-approximate-vector-math | FileCheck %s
// RUN: %if moe-pass-stats %{ moe-opt %s --moe-approximate-vector-math -mlir-pass-statistics -o /dev/null 2>&1 | FileCheck %s --check-prefix=STATS %}

// Vector exp/erf (the FFN epilogues' SiLU / GELU) become polynomial
// approximations in vector registers: no math op is left for LLVM to
// scalarize into libm calls.
// CHECK-LABEL: func.func @vector_exp(
// CHECK-NOT:     math.exp
// CHECK:         arith.mulf {{.*}} : vector<16xf32>
// CHECK-NOT:     math.exp
// CHECK:         return
func.func @vector_exp(%v: vector<16xf32>) -> vector<16xf32> {
  %e = math.exp %v : vector<16xf32>
  return %e : vector<16xf32>
}

// CHECK-LABEL: func.func @vector_erf(
// CHECK-NOT:     math.erf
// CHECK-NOT:     math.exp
// CHECK:         return
func.func @vector_erf(%v: vector<8xf32>) -> vector<8xf32> {
  %e = math.erf %v : vector<8xf32>
  return %e : vector<8xf32>
}

// Scalar math keeps libm's correctly rounded results; other vector math
// (tanh) is not this pass's business.
// CHECK-LABEL: func.func @scalar_untouched(
// CHECK:         math.exp %{{.*}} : f32
// CHECK:         math.erf %{{.*}} : f32
// CHECK:         math.tanh %{{.*}} : vector<16xf32>
func.func @scalar_untouched(%s: f32, %v: vector<16xf32>) -> (f32, f32, vector<16xf32>) {
  %e = math.exp %s : f32
  %f = math.erf %s : f32
  %t = math.tanh %v : vector<16xf32>
  return %e, %f, %t : f32, f32, vector<16xf32>
}

// STATS: ops-approximated - Vector math ops approximated
// STATS-SAME: 2
