// RUN: moe-opt %s --moe-call-slots --moe-gpu-map-grouped-experts %bufferize | FileCheck %s

// moe-gpu-map-grouped-experts: a bank of FFN experts as two grouped-GEMM
// kernels. Blocks of 16x16 = 256 threads; the grid is (expert, 16-row tile)
// x (16-column tile), sized to the worst case ceil(P / 16) + E row tiles;
// each block finds its expert by scanning the offsets and exits early
// (uniform scf.if) when its tile lies past the expert's rows. x and the
// weights are staged through 16x16 workgroup tiles between barriers; each
// thread's accumulators live in per-thread (private) storage across them.

// 2 SwiGLU experts, H = I = 32, P rows (dynamic).
// CHECK-LABEL: func.func @grouped_swiglu(
// CHECK-SAME:      %[[X:[a-z0-9_]+]]: memref<?x32xf32>, %[[ROWS:[a-z0-9_]+]]: memref<?xi32>, %[[OFF:[a-z0-9_]+]]: memref<3xi32>, %{{.*}}: memref<2x32x32xf32>, %{{.*}}: memref<2x32x32xf32>, %{{.*}}: memref<2x32x32xf32>, %[[ACC_IN:[a-z0-9_]+]]: memref<?x32xf32>
// CHECK-NOT:     moe.grouped_ffn
//   The accumulator, an argument here, is written into a copy: the caller's
//   buffer keeps its value.
// CHECK:         %[[ACC:[a-z0-9_]+]] = memref.alloc(%{{.*}}) {{.*}} : memref<?x32xf32>
// CHECK:         memref.copy %[[ACC_IN]], %[[ACC]]
//   Row tiles: ceil(P / 16) + E.
// CHECK:         %[[P:[a-z0-9_]+]] = memref.dim %[[ROWS]], %{{.*}} : memref<?xi32>
// CHECK:         %[[PT:[a-z0-9_]+]] = arith.ceildivui %[[P]], %{{.*}} : index
// CHECK:         %[[TILES:[a-z0-9_]+]] = arith.addi %[[PT]], %{{.*}} : index
//   The [P, I] intermediate between the two kernels.
// CHECK:         %[[MID:[a-z0-9_]+]] = memref.alloc(%[[P]]) {{.*}} : memref<?x32xf32>

//   Up kernel: x W1^T and x W3^T (two accumulators per thread), SiLU(gate) * up.
// CHECK:         scf.forall (%[[BX:[a-z0-9_]+]], %[[BY:[a-z0-9_]+]]) in (%[[TILES]], %{{.*}}) {
// CHECK:           %[[FIND:[a-z0-9_]+]]:4 = scf.for {{.*}} -> (index, index, index, index) {
// CHECK:             memref.load %[[OFF]]
// CHECK:           }
// CHECK:           %[[MINE:[a-z0-9_]+]] = arith.cmpi sge, %[[FIND]]#1, %{{.*}} : index
// CHECK:           %[[XT:[a-z0-9_]+]] = memref.alloc() : memref<16x16xf32, #gpu.address_space<workgroup>>
// CHECK:           %[[WT:[a-z0-9_]+]] = memref.alloc() : memref<2x16x16xf32, #gpu.address_space<workgroup>>
// CHECK:           %[[ACCS:[a-z0-9_]+]] = memref.alloc() : memref<256x2xf32, #gpu.address_space<private>>
// CHECK:           scf.if %[[MINE]] {
// CHECK-NEXT:        scf.forall (%[[TID:[a-z0-9_]+]]) in (256) {
//   K loop over 16-wide slices: stage x (gathered through rows) and w1/w3, sync, accumulate, sync.
// CHECK:               scf.for
// CHECK:                 memref.load %[[ROWS]]
// CHECK:                 memref.load %[[X]]
// CHECK:               memref.store %{{.*}}, %[[XT]]
// CHECK:               memref.store %{{.*}}, %[[WT]]
// CHECK:               memref.store %{{.*}}, %[[WT]]
// CHECK:               gpu.barrier
// CHECK:               math.fma
// CHECK:               memref.store %{{.*}}, %[[ACCS]][%[[TID]], %{{.*}}]
// CHECK:               math.fma
// CHECK:               memref.store %{{.*}}, %[[ACCS]][%[[TID]], %{{.*}}]
// CHECK:               gpu.barrier
//   Epilogue, guarded to the expert's rows and the columns.
// CHECK:             scf.if
// CHECK:               math.exp
// CHECK:               arith.mulf
// CHECK:               memref.store %{{.*}}, %[[MID]][%{{.*}}, %{{.*}}] : memref<?x32xf32>
// CHECK:           } {mapping = [#gpu.thread<x>]}
// CHECK:       } {mapping = [#gpu.block<x>, #gpu.block<y>], moe.gpu.grid = [array<i64: 1, 0, 16, 1, 2>, array<i64: 0, 2, 1, 1, 0>], moe.gpu.kernel = "expert_up"}

//   Down kernel: mid W2^T into the accumulator (one accumulator per thread).
// CHECK:         scf.forall (%{{.*}}, %{{.*}}) in (%[[TILES]], %{{.*}}) {
// CHECK:           memref.alloc() : memref<16x16xf32, #gpu.address_space<workgroup>>
// CHECK:           memref.alloc() : memref<1x16x16xf32, #gpu.address_space<workgroup>>
// CHECK:           memref.alloc() : memref<256x1xf32, #gpu.address_space<private>>
// CHECK:               memref.load %[[MID]]
// CHECK:               gpu.barrier
// CHECK:               math.fma
// CHECK:               gpu.barrier
// CHECK:               memref.store %{{.*}}, %[[ACC]][%{{.*}}, %{{.*}}] : memref<?x32xf32>
// CHECK:       } {mapping = [#gpu.block<x>, #gpu.block<y>], moe.gpu.grid = [array<i64: 1, 0, 16, 1, 2>, array<i64: 0, 2, 1, 1, 0>], moe.gpu.kernel = "expert_down"}
// CHECK-NOT:     scf.forall
// CHECK:         return
func.func @grouped_swiglu(%x: tensor<?x32xf32>, %rows: tensor<?xi32>, %offsets: tensor<3xi32>,
                          %w1: tensor<2x32x32xf32>, %w3: tensor<2x32x32xf32>,
                          %w2: tensor<2x32x32xf32>, %acc: tensor<?x32xf32>) -> tensor<?x32xf32> {
  %y = moe.grouped_ffn swiglu %x, %rows, %offsets w1(%w1 : tensor<2x32x32xf32>)
      w3(%w3 : tensor<2x32x32xf32>) w2(%w2 : tensor<2x32x32xf32>) into %acc {first_expert = 0}
      : tensor<?x32xf32>, tensor<?xi32>, tensor<3xi32>, tensor<?x32xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}
