// RUN: moe-opt %s --split-input-file --moe-record-routing-stats | FileCheck %s

// moe-record-routing-stats (the CPU pipeline's `stats` option; layout in
// RecordRoutingStats.cpp, definitions in docs/routing-stats.md): a constant
// global with the static part of each record is copied into a stack
// buffer, counting loops run before each layer, and the buffer goes to the
// runtime before the return. Values computed end to end:
// test/Tools/moe-run-stats.test and test/python/test_routing_stats.py.

// Header [magic "MOES", version 1, 1 record]; the record: length 10 + 2E +
// K + 1 = 28, layer 0, its source line, E = 8, K = 1, T (stored), routed T,
// 0 = "has a capacity op", pairs, shared FLOPs 0; 8 x 4*H*I = 32768 (GELU,
// two matrices); then 8 + 2 zero counters.
// CHECK: func.func private @moe_rt_record_stats(i64, i64)
// CHECK: memref.global "private" constant @__moe_stats_init_capacity : memref<31xi64> = dense<[1297040723, 1, 1, 28, 0, {{[0-9]+}}, 8, 1, 0, 0, 0, 0, 0, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]>
// CHECK-LABEL: func.func @capacity(
// CHECK:         %[[STATS:.*]] = memref.alloca() : memref<31xi64>
// CHECK:         %[[INIT:.*]] = memref.get_global @__moe_stats_init_capacity
// CHECK:         memref.copy %[[INIT]], %[[STATS]]
// The call's T, then the tokens the layer ran on.
// CHECK:         tensor.dim %{{.*}}, %{{.*}} : tensor<?x64xf32>
// CHECK:         memref.store %{{.*}}, %[[STATS]][%c8]
// CHECK:         memref.load %[[STATS]][%c9]
// The capacity op's input pairs (no per-expert counters), added at 3 + 7.
// CHECK:         scf.for
// CHECK:           tensor.extract %[[IDS0:ids]][
// CHECK-NOT:       memref.store
// CHECK:         memref.load %[[STATS]][%c10]
// The layer's ids: per-expert rows at 3 + 10 + E = 21, the k histogram at 29.
// CHECK:         scf.for
// CHECK:           tensor.extract %ids_0[
// CHECK:           scf.if
// CHECK:             arith.constant 21 : index
// CHECK:           arith.constant 29 : index
// CHECK:         memref.load %[[STATS]][%c11]
// CHECK:         moe.layer
// CHECK:         %[[PTR:.*]] = memref.extract_aligned_pointer_as_index %[[STATS]]
// CHECK:         %[[ADDR:.*]] = arith.index_cast %[[PTR]] : index to i64
// CHECK:         call @moe_rt_record_stats(%[[ADDR]], %c31_i64)
// CHECK-NEXT:    return
func.func @capacity(%x: tensor<?x64xf32>, %gate: tensor<8x64xf32>,
                    %w1: tensor<8x128x64xf32>, %w2: tensor<8x64x128xf32>) -> tensor<?x64xf32> {
  %ids0, %w0 = moe.topk_router softmax %x, %gate {k = 1}
      : tensor<?x64xf32>, tensor<8x64xf32> -> tensor<?x1xi32>, tensor<?x1xf32>
  %ids, %w = moe.capacity_drop %ids0, %w0 {num_experts = 8, capacity_factor = 1.0 : f32}
      : tensor<?x1xi32>, tensor<?x1xf32> -> tensor<?x1xi32>, tensor<?x1xf32>
  %experts = moe.ffn_experts gelu w1(%w1 : tensor<8x128x64xf32>)
      w2(%w2 : tensor<8x64x128xf32>) -> !moe.experts<8, 64>
  %y = moe.layer %x, %ids, %w experts(%experts : !moe.experts<8, 64>)
      : tensor<?x64xf32>, tensor<?x1xi32>, tensor<?x1xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// A layer in a skip region: the call's T is stored before the skip_block
// (its input's tokens), the counting runs inside the region (on the tokens
// the region gets); no capacity op: -1. Zero experts cost 0, shared
// SwiGLU experts 6*H*I = 1536 per token.
// CHECK: memref.global "private" constant @__moe_stats_init_skip : memref<20xi64> = dense<[1297040723, 1, 1, 17, 0, {{[0-9]+}}, 2, 2, 0, 0, -1, 0, 1536, 0, 0, 0, 0, 0, 0, 0]>
// CHECK-LABEL: func.func @skip(
// CHECK:         tensor.dim %[[X:.*]], %{{.*}} : tensor<?x16xf32>
// CHECK:         memref.store
// CHECK-NEXT:    moe.skip_block
// CHECK:           scf.for
// CHECK:             tensor.extract
// CHECK:           moe.layer
// CHECK:           moe.yield
// CHECK:         call @moe_rt_record_stats
func.func @skip(%x: tensor<?x16xf32>, %r: tensor<16xf32>, %ids: tensor<?x2xi32>, %w: tensor<?x2xf32>,
                %w1: tensor<1x16x16xf32>, %w3: tensor<1x16x16xf32>, %w2: tensor<1x16x16xf32>)
    -> tensor<?x16xf32> {
  %y = moe.skip_block %x, %r {capacity_fraction = 0.5 : f32}
      : tensor<?x16xf32>, tensor<16xf32> -> tensor<?x16xf32> {
  ^bb0(%xs: tensor<?x16xf32>):
    %zero = moe.zero_experts : !moe.experts<2, 16>
    %sh = moe.ffn_experts swiglu w1(%w1 : tensor<1x16x16xf32>) w3(%w3 : tensor<1x16x16xf32>)
        w2(%w2 : tensor<1x16x16xf32>) -> !moe.experts<1, 16>
    %f = moe.layer %xs, %ids, %w experts(%zero : !moe.experts<2, 16>) shared(%sh : !moe.experts<1, 16>)
        : tensor<?x16xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x16xf32>
    moe.yield %f : tensor<?x16xf32>
  }
  return %y : tensor<?x16xf32>
}

// -----

// Functions without layers, and declarations, are left alone.
// CHECK-LABEL: func.func @no_layer(
// CHECK-NOT:     moe_rt_record_stats
// CHECK:         return
func.func @no_layer(%x: tensor<?x16xf32>) -> tensor<?x16xf32> {
  return %x : tensor<?x16xf32>
}
