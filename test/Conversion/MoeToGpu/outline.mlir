// RUN: moe-opt %s --split-input-file --moe-gpu-outline --verify-diagnostics | FileCheck %s
// RUN: moe-opt %s --split-input-file --moe-gpu-outline --gpu-kernel-outlining --verify-diagnostics | FileCheck %s --check-prefix=MODULE

// moe-gpu-outline: each kernel of the mapped stage (a block forall holding
// a thread forall) becomes a gpu.launch named after it. The block id and
// the thread id replace the foralls' induction variables; the workgroup
// tile becomes a workgroup attribution, the per-thread buffer [4, 1] a
// private [1] indexed without the thread id; the dynamic host buffers are
// passed as static views (bare pointers carry no shape) and the shape query
// inside the kernel moves to the host. gpu-kernel-outlining then makes the
// launch a gpu.launch_func of a gpu.func in the gpu.module it names.

// CHECK-LABEL: func.func @reverse(
// CHECK-SAME:      %[[IN:[a-z0-9_]+]]: memref<?xf32>, %[[OUT:[a-z0-9_]+]]: memref<?xf32>
// CHECK-NOT:     scf.forall
// CHECK:         %[[GRID:[a-z0-9_]+]] = arith.ceildivui
// CHECK:         %[[SIZE:[a-z0-9_]+]] = memref.dim %[[IN]], %{{.*}} : memref<?xf32>
// CHECK:         %[[VIN:[a-z0-9_]+]] = memref.reinterpret_cast %[[IN]] to offset: [0], sizes: [2147483647], strides: [1] : memref<?xf32> to memref<2147483647xf32>
// CHECK:         %[[VOUT:[a-z0-9_]+]] = memref.reinterpret_cast %[[OUT]] to offset: [0], sizes: [2147483647], strides: [1] : memref<?xf32> to memref<2147483647xf32>
// CHECK:         gpu.launch blocks(%[[BX:[a-z0-9_]+]], %{{[a-z0-9_]+}}, %{{[a-z0-9_]+}}) in (%{{[a-z0-9_]+}} = %[[GRID]],
// CHECK-SAME:        threads(%[[TX:[a-z0-9_]+]], %{{[a-z0-9_]+}}, %{{[a-z0-9_]+}})
// CHECK-SAME:        module(@moe_kernels) function(@reverse_k0_reverse_tiles)
// CHECK-SAME:        workgroup(%[[TILE:[a-z0-9_]+]] : memref<4xf32, #gpu.address_space<workgroup>>)
// CHECK-SAME:        private(%[[MINE:[a-z0-9_]+]] : memref<1xf32, #gpu.address_space<private>>)
// CHECK-NOT:       memref.dim
// CHECK:           %[[BASE:[a-z0-9_]+]] = arith.muli %[[BX]], %{{.*}} : index
// CHECK:           %[[I:[a-z0-9_]+]] = arith.addi %[[BASE]], %[[TX]] : index
// CHECK:           %[[IN_RANGE:[a-z0-9_]+]] = arith.cmpi ult, %[[I]], %[[SIZE]] : index
// CHECK:           scf.if %[[IN_RANGE]] {
// CHECK:             memref.load %[[VIN]][%[[I]]] : memref<2147483647xf32>
// CHECK:             memref.store %{{.*}}, %[[TILE]][%[[TX]]] : memref<4xf32, #gpu.address_space<workgroup>>
// CHECK:             memref.store %{{.*}}, %[[MINE]][%{{.*}}] : memref<1xf32, #gpu.address_space<private>>
// CHECK:           gpu.barrier
// CHECK:           memref.load %[[TILE]][%{{.*}}] : memref<4xf32, #gpu.address_space<workgroup>>
// CHECK:           memref.load %[[MINE]][%{{.*}}] : memref<1xf32, #gpu.address_space<private>>
// CHECK:           memref.store %{{.*}}, %[[VOUT]][%[[I]]] : memref<2147483647xf32>
// CHECK:           gpu.terminator
// CHECK:         return

// MODULE-LABEL: func.func @reverse(
// MODULE:         gpu.launch_func  @moe_kernels::@reverse_k0_reverse_tiles
// MODULE-SAME:      args(%{{[a-z0-9_]+}} : index, %{{[a-z0-9_]+}} : memref<2147483647xf32>, %{{[a-z0-9_]+}} : memref<2147483647xf32>)
// MODULE:       gpu.module @moe_kernels
// MODULE:         gpu.func @reverse_k0_reverse_tiles(
// MODULE-SAME:      workgroup(%{{.*}} : memref<4xf32, #gpu.address_space<workgroup>>)
// MODULE-SAME:      private(%{{.*}} : memref<1xf32, #gpu.address_space<private>>)
// MODULE-SAME:      kernel
// MODULE:           gpu.block_id  x
// MODULE:           gpu.thread_id  x
// MODULE:           gpu.barrier
// MODULE:           gpu.return
func.func @reverse(%in: memref<?xf32>, %out: memref<?xf32>) {
  %c0 = arith.constant 0 : index
  %t = memref.dim %in, %c0 : memref<?xf32>
  %c4 = arith.constant 4 : index
  %blocks = arith.ceildivui %t, %c4 : index
  scf.forall (%b) in (%blocks) {
    %tile = memref.alloc() : memref<4xf32, #gpu.address_space<workgroup>>
    %acc = memref.alloc() : memref<4x1xf32, #gpu.address_space<private>>
    scf.forall (%tid) in (4) {
      %c0_0 = arith.constant 0 : index
      %c4_0 = arith.constant 4 : index
      %base = arith.muli %b, %c4_0 : index
      %i = arith.addi %base, %tid : index
      %n = memref.dim %in, %c0_0 : memref<?xf32>
      %in_range = arith.cmpi ult, %i, %n : index
      scf.if %in_range {
        %v = memref.load %in[%i] : memref<?xf32>
        memref.store %v, %tile[%tid] : memref<4xf32, #gpu.address_space<workgroup>>
        memref.store %v, %acc[%tid, %c0_0] : memref<4x1xf32, #gpu.address_space<private>>
      }
      gpu.barrier
      %c3 = arith.constant 3 : index
      %r = arith.subi %c3, %tid : index
      %w = memref.load %tile[%r] : memref<4xf32, #gpu.address_space<workgroup>>
      %mine = memref.load %acc[%tid, %c0_0] : memref<4x1xf32, #gpu.address_space<private>>
      %s = arith.addf %w, %mine : f32
      scf.if %in_range {
        memref.store %s, %out[%i] : memref<?xf32>
      }
    } {mapping = [#gpu.thread<x>]}
  } {mapping = [#gpu.block<x>], moe.gpu.grid = [array<i64: 1, 0, 4, 1, 0>], moe.gpu.kernel = "reverse_tiles"}
  return
}

// -----

// A host op marked moe.gpu.host_sync (a size computed from device data)
// cannot be outlined: the launch sequence has no host synchronisation.
func.func @host_sync(%ids: memref<?xi32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %t = memref.dim %ids, %c0 : memref<?xi32>
  // expected-error @+1 {{needs the host to wait for the device}}
  %n = scf.for %i = %c0 to %t step %c1 iter_args(%acc = %c0) -> (index) {
    %next = arith.addi %acc, %c1 : index
    scf.yield %next : index
  } {moe.gpu.host_sync}
  %sel = memref.alloc(%n) : memref<?xi32>
  memref.dealloc %sel : memref<?xi32>
  return
}
