// RUN: moe-opt %s --moe-gpu-approximate-math | FileCheck %s
// RUN: moe-opt %s --pass-pipeline="builtin.module(gpu.module(moe-gpu-approximate-math))" | FileCheck %s --check-prefix=NESTED

// moe-gpu-approximate-math leaves the kernels no math op that would lower
// to a libdevice call: exp and erf become polynomials, floor and ceil a
// round trip through a signed integer, abs a cleared sign bit, a scalar
// fma a multiply and an add.

// CHECK-LABEL: func.func @kernel_math(
// CHECK-SAME:      %[[X:[a-z0-9_]+]]: f32, %[[Y:[a-z0-9_]+]]: f32, %[[Z:[a-z0-9_]+]]: f32, %[[D:[a-z0-9_]+]]: f64
// CHECK-NOT:     math.
//   |x|: the sign bit cleared.
// CHECK:         %[[BITS:.*]] = arith.bitcast %[[X]] : f32 to i32
// CHECK-NEXT:    %[[CLEARED:.*]] = arith.andi %[[BITS]], %{{.*}} : i32
// CHECK-NEXT:    %[[ABS:.*]] = arith.bitcast %[[CLEARED]] : i32 to f32
//   fma(x, y, z) = x * y + z.
// CHECK-NEXT:    %[[PROD:.*]] = arith.mulf %[[X]], %[[Y]] : f32
// CHECK-NEXT:    %[[FMA:.*]] = arith.addf %[[PROD]], %[[Z]] : f32
//   ceil(d): truncated through i64, plus one when below d.
// CHECK-NEXT:    %[[DI:.*]] = arith.fptosi %[[D]] : f64 to i64
// CHECK-NEXT:    %[[DT:.*]] = arith.sitofp %[[DI]] : i64 to f64
// CHECK-NEXT:    %[[BELOW:.*]] = arith.cmpf olt, %[[DT]], %[[D]] : f64
// CHECK-NEXT:    %[[UP:.*]] = arith.addf %[[DT]], %{{.*}} : f64
// CHECK-NEXT:    %[[CEIL:.*]] = arith.select %[[BELOW]], %[[UP]], %[[DT]] : f64
//   floor(x): truncated through i32, minus one when above x.
// CHECK-NEXT:    %[[XI:.*]] = arith.fptosi %[[X]] : f32 to i32
// CHECK-NEXT:    %[[XT:.*]] = arith.sitofp %[[XI]] : i32 to f32
// CHECK-NEXT:    %[[ABOVE:.*]] = arith.cmpf ogt, %[[XT]], %[[X]] : f32
// CHECK-NEXT:    %[[DOWN:.*]] = arith.subf %[[XT]], %{{.*}} : f32
// CHECK-NEXT:    %[[FLOOR:.*]] = arith.select %[[ABOVE]], %[[DOWN]], %[[XT]] : f32
// CHECK-NOT:     math.
// CHECK:         return %{{.*}}, %[[ABS]], %[[FMA]], %[[CEIL]], %[[FLOOR]], %{{.*}} : f32, f32, f32, f64, f32, f32
func.func @kernel_math(%x: f32, %y: f32, %z: f32, %d: f64) -> (f32, f32, f32, f64, f32, f32) {
  %e = math.exp %x : f32
  %a = math.absf %x : f32
  %f = math.fma %x, %y, %z : f32
  %c = math.ceil %d : f64
  %fl = math.floor %x : f32
  %er = math.erf %x : f32
  return %e, %a, %f, %c, %fl, %er : f32, f32, f32, f64, f32, f32
}

// Only scalar fma is rewritten (the kernels are scalar code).
// CHECK-LABEL: func.func @vector_fma(
// CHECK:         math.fma %{{.*}} : vector<4xf32>
func.func @vector_fma(%a: vector<4xf32>) -> vector<4xf32> {
  %f = math.fma %a, %a, %a : vector<4xf32>
  return %f : vector<4xf32>
}

// In the GPU pipelines it runs on the gpu.module only: the host code keeps
// its math.
// NESTED-LABEL: func.func @kernel_math(
// NESTED:         math.exp
// NESTED-LABEL: gpu.module @kernels
// NESTED-NOT:     math.exp
// NESTED:         gpu.return
gpu.module @kernels {
  gpu.func @exp_kernel(%x: f32) -> f32 {
    %e = math.exp %x : f32
    gpu.return %e : f32
  }
}
