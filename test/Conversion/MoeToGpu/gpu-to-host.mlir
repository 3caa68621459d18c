// RUN: moe-opt %s --split-input-file --moe-gpu-to-host --verify-diagnostics | FileCheck %s

// A block-reversal kernel: every thread writes shared memory, barrier, then
// reads another thread's element. Host execution must run all threads of
// the first phase before any of the second: two loops over the threads
// inside the block loop, the shared tile a stack buffer.

// CHECK-LABEL: func.func @reverse
// CHECK:         %[[TILE:.*]] = memref.alloca() {{.*}} : memref<4xf32>
// CHECK-NOT:     scf.forall
// CHECK:         scf.for %[[B:.*]] = %{{.*}} to %{{.*}} step
// CHECK:           scf.for %[[T1:.*]] = %{{.*}} to %{{.*}} step
// CHECK:             memref.store %{{.*}}, %[[TILE]][%[[T1]]]
// CHECK:           }
// CHECK:           scf.for %[[T2:.*]] = %{{.*}} to %{{.*}} step
// CHECK:             memref.load %[[TILE]]
// CHECK-NOT:     gpu.barrier
func.func @reverse(%in: memref<8xf32>, %out: memref<8xf32>) {
  %c2 = arith.constant 2 : index
  scf.forall (%b) in (%c2) {
    %tile = memref.alloc() : memref<4xf32, #gpu.address_space<workgroup>>
    scf.forall (%t) in (4) {
      %c4 = arith.constant 4 : index
      %base = arith.muli %b, %c4 : index
      %i = arith.addi %base, %t : index
      %v = memref.load %in[%i] : memref<8xf32>
      memref.store %v, %tile[%t] : memref<4xf32, #gpu.address_space<workgroup>>
      gpu.barrier
      %c3 = arith.constant 3 : index
      %c4b = arith.constant 4 : index
      %r = arith.subi %c3, %t : index
      %w = memref.load %tile[%r] : memref<4xf32, #gpu.address_space<workgroup>>
      %base2 = arith.muli %b, %c4b : index
      %j = arith.addi %base2, %t : index
      memref.store %w, %out[%j] : memref<8xf32>
    } {mapping = [#gpu.thread<x>]}
  } {mapping = [#gpu.block<x>]}
  return
}

// -----

// A value computed before the barrier and used after it would be the last
// thread's value for every thread on the host: rejected.
func.func @crossing(%in: memref<8xf32>, %out: memref<8xf32>) {
  %c1 = arith.constant 1 : index
  scf.forall (%b) in (%c1) {
    scf.forall (%t) in (8) {
      %v = memref.load %in[%t] : memref<8xf32>
      gpu.barrier
      // expected-error @+1 {{uses a value computed before a barrier}}
      memref.store %v, %out[%t] : memref<8xf32>
    } {mapping = [#gpu.thread<x>]}
  } {mapping = [#gpu.block<x>]}
  return
}
