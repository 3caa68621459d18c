// RUN: moe-opt %s --moe-call-slots --moe-lower-skips=vector-width=8 | FileCheck %s
// RUN: moe-opt %s --moe-call-slots --moe-lower-skips=vector-width=8 | FileCheck %s --check-prefix=NONE
// RUN: %if moe-pass-stats %{ moe-opt %s --moe-call-slots --moe-lower-skips=vector-width=8 -mlir-pass-statistics -o /dev/null 2>&1 | FileCheck %s --check-prefix=STATS %}

// moe-lower-skips compacts the tokens that run a region: it selects them
// (ascending token order) into an index buffer, gathers their rows into a
// [n, H] buffer, inlines the region's ops on that buffer (the region's own
// ops stay for the later lowerings), and scatter-adds the region's output
// into a copy of the input. Skipped tokens cost only the copy.

// Threshold skip: r = router . x[t] (vector dot), selected iff r > 0.25,
// y[t] = x[t] + f[t] (weight 1).
// CHECK-LABEL: func.func @threshold_skip(
// CHECK-SAME:      %[[XT:[a-z0-9_]+]]: tensor<?x64xf32>, %[[ROUTERT:[a-z0-9_]+]]: tensor<64xf32>
// CHECK:         %[[X:.*]] = bufferization.to_buffer %[[XT]] read_only : tensor<?x64xf32> to memref<?x64xf32>
// CHECK:         %[[ROUTER:.*]] = bufferization.to_buffer %[[ROUTERT]] read_only : tensor<64xf32> to memref<64xf32>
// CHECK:         %[[T:[a-z0-9_]+]] = memref.dim %[[X]], %{{.*}} : memref<?x64xf32>
// CHECK:         %[[SCORES:[a-z0-9_]+]] = memref.alloc(%[[T]]) {{.*}} : memref<?xf32>
// CHECK:         %[[IDX:[a-z0-9_]+]] = memref.alloc(%[[T]]) {{.*}} : memref<?xi32>
//   scores
// CHECK:         scf.for %[[TOK:[a-z0-9_]+]] = %{{.*}} to %[[T]] step
// CHECK:           scf.for {{.*}} -> (vector<8xf32>)
// CHECK-DAG:           vector.load %[[X]][%[[TOK]], %{{.*}}] : memref<?x64xf32>, vector<8xf32>
// CHECK-DAG:           vector.load %[[ROUTER]][%{{.*}}] : memref<64xf32>, vector<8xf32>
// CHECK:           %[[R:.*]] = vector.reduction <add>
// CHECK:           memref.store %[[R]], %[[SCORES]][%[[TOK]]]
//   selection: append t when r > threshold; N = number selected
// CHECK:         %[[THR:.*]] = arith.constant 2.500000e-01 : f32
// CHECK:         %[[N:.*]] = scf.for %[[TOK:[a-z0-9_]+]] = %{{.*}} to %[[T]] step %{{.*}} iter_args(%[[CNT:.*]] = %{{.*}}) -> (index) {
// CHECK:           %[[RT:.*]] = memref.load %[[SCORES]][%[[TOK]]]
// CHECK:           %[[TAKE:.*]] = arith.cmpf ogt, %[[RT]], %[[THR]] : f32
// CHECK:           scf.if %[[TAKE]] -> (index) {
// CHECK:             %[[TI:.*]] = arith.index_cast %[[TOK]] : index to i32
// CHECK:             memref.store %[[TI]], %[[IDX]][%[[CNT]]] : memref<?xi32>
//   gather
// CHECK:         %[[XS:[a-z0-9_]+]] = memref.alloc(%[[N]]) {{.*}} : memref<?x64xf32>
// CHECK:         scf.for %[[J:[a-z0-9_]+]] = %{{.*}} to %[[N]] step
// CHECK:           %[[SRC_I:.*]] = memref.load %[[IDX]][%[[J]]]
// CHECK:           %[[SRC:.*]] = arith.index_cast %[[SRC_I]] : i32 to index
// CHECK:             %[[V:.*]] = memref.load %[[X]][%[[SRC]], %{{.*}}]
// CHECK:             memref.store %[[V]], %[[XS]][%[[J]], %{{.*}}]
//   y = copy of x
// CHECK:         %[[Y:[a-z0-9_]+]] = memref.alloc(%[[T]]) {{.*}} : memref<?x64xf32>
// CHECK-NEXT:    memref.copy %[[X]], %[[Y]]
//   the region, inlined on the gathered rows
// CHECK-NEXT:    %[[XST:.*]] = bufferization.to_tensor %[[XS]] restrict : memref<?x64xf32> to tensor<?x64xf32>
// CHECK-NEXT:    %[[F:.*]] = moe.ffn swiglu %[[XST]]
// CHECK-NEXT:    %[[FB:.*]] = bufferization.to_buffer %[[F]] read_only : tensor<?x64xf32> to memref<?x64xf32>
//   scatter-add, weight 1
// CHECK:         scf.for %[[J:[a-z0-9_]+]] = %{{.*}} to %[[N]] step
// CHECK:           %[[DST_I:.*]] = memref.load %[[IDX]][%[[J]]]
// CHECK:           %[[DST:.*]] = arith.index_cast %[[DST_I]] : i32 to index
// CHECK:           %[[ONE:.*]] = arith.constant 1.000000e+00 : f32
// CHECK:           %[[G:.*]] = vector.broadcast %[[ONE]] : f32 to vector<8xf32>
// CHECK:           scf.for %[[C:[a-z0-9_]+]] =
// CHECK-NEXT:        %[[FV:.*]] = vector.load %[[FB]][%[[J]], %[[C]]]
// CHECK-NEXT:        %[[YV:.*]] = vector.load %[[Y]][%[[DST]], %[[C]]]
// CHECK-NEXT:        %[[SUM:.*]] = vector.fma %[[FV]], %[[G]], %[[YV]] : vector<8xf32>
// CHECK-NEXT:        vector.store %[[SUM]], %[[Y]][%[[DST]], %[[C]]]
// CHECK:         bufferization.to_tensor %[[Y]] restrict : memref<?x64xf32> to tensor<?x64xf32>
// CHECK-NOT:     moe.skip_block
func.func @threshold_skip(%x: tensor<?x64xf32>, %router: tensor<64xf32>,
                          %w1: tensor<128x64xf32>, %w3: tensor<128x64xf32>,
                          %w2: tensor<64x128xf32>) -> tensor<?x64xf32> {
  %y = moe.skip_block %x, %router {threshold = 0.25 : f32}
      : tensor<?x64xf32>, tensor<64xf32> -> tensor<?x64xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    %f = moe.ffn swiglu %xs w1(%w1 : tensor<128x64xf32>) w3(%w3 : tensor<128x64xf32>)
        w2(%w2 : tensor<64x128xf32>) : tensor<?x64xf32> -> tensor<?x64xf32>
    moe.yield %f : tensor<?x64xf32>
  }
  return %y : tensor<?x64xf32>
}

// Mixture-of-Depths capacity (T static = 16): the ceil(0.5 * T) best scores
// by radix select in O(32 T): scores become order-preserving u32 keys, the
// quota-th largest key is built bit by bit from the top (one counting pass
// per bit), then the tokens above it are taken, and the tokens equal to it
// in ascending order until the quota is full. With scale_by_score the
// scatter-add weight is the token's score.
// CHECK-LABEL: func.func @capacity_skip(
// CHECK-SAME:      %[[XT:[a-z0-9_]+]]: tensor<16x64xf32>
// CHECK:         %[[X:.*]] = bufferization.to_buffer %[[XT]] read_only : tensor<16x64xf32> to memref<16x64xf32>
// CHECK:         %[[T:[a-z0-9_]+]] = memref.dim %[[X]], %{{.*}} : memref<16x64xf32>
// CHECK:         %[[SCORES:[a-z0-9_]+]] = memref.alloc(%[[T]]) {{.*}} : memref<?xf32>
// CHECK:         %[[IDX:[a-z0-9_]+]] = memref.alloc(%[[T]]) {{.*}} : memref<?xi32>
// CHECK:         %[[TF:.*]] = arith.uitofp %{{.*}} : i64 to f64
// CHECK:         %[[FRAC:.*]] = arith.constant 5.000000e-01 : f64
// CHECK:         %[[WANT:.*]] = arith.mulf %[[TF]], %[[FRAC]] : f64
// CHECK:         math.ceil %[[WANT]] : f64
// CHECK:         %[[QUOTA:.*]] = arith.minui %{{.*}}, %[[T]] : index
//   keys
// CHECK:         %[[KEYS:[a-z0-9_]+]] = memref.alloc(%[[T]]) {{.*}} : memref<?xi32>
// CHECK:         scf.for %[[TOK:[a-z0-9_]+]] = %{{.*}} to %[[T]] step
// CHECK:           memref.load %[[SCORES]][%[[TOK]]]
// CHECK:           arith.bitcast %{{.*}} : f32 to i32
// CHECK:           memref.store %{{.*}}, %[[KEYS]][%[[TOK]]] : memref<?xi32>
//   the quota-th largest key, bit by bit
// CHECK:         %[[KTH:.*]] = scf.for %{{.*}} = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%[[ACC:.*]] = %{{.*}}) -> (i32) {
// CHECK:           %[[CAND:.*]] = arith.ori %[[ACC]], %{{.*}} : i32
// CHECK:           %[[CNT:.*]] = scf.for %[[U:[a-z0-9_]+]] = %{{.*}} to %[[T]] step {{.*}} -> (index) {
// CHECK:             %[[KU:.*]] = memref.load %[[KEYS]][%[[U]]]
// CHECK:             arith.cmpi uge, %[[KU]], %[[CAND]] : i32
// CHECK:           %[[ENOUGH:.*]] = arith.cmpi uge, %[[CNT]], %[[QUOTA]] : index
// CHECK:           arith.select %[[ENOUGH]], %[[CAND]], %[[ACC]] : i32
//   take: key > K, or key == K while the tie quota lasts
// CHECK:         %[[GREATER:.*]] = scf.for {{.*}} -> (index) {
// CHECK:         %[[TIES:.*]] = arith.subi %[[QUOTA]], %[[GREATER]] : index
// CHECK:         %[[N:.*]]:2 = scf.for %[[TOK:[a-z0-9_]+]] = %{{.*}} to %[[T]] step {{.*}} -> (index, index) {
// CHECK:           %[[KEY:.*]] = memref.load %[[KEYS]][%[[TOK]]]
// CHECK:           %[[ABOVE:.*]] = arith.cmpi ugt, %[[KEY]], %[[KTH]] : i32
// CHECK:           %[[EQ:.*]] = arith.cmpi eq, %[[KEY]], %[[KTH]] : i32
// CHECK:           arith.cmpi ult, %{{.*}}, %[[TIES]] : index
// CHECK:           scf.if %{{.*}} -> (index) {
// CHECK:             memref.store %{{.*}}, %[[IDX]][%{{.*}}] : memref<?xi32>
// CHECK:         %[[XS:[a-z0-9_]+]] = memref.alloc(%[[N]]#0) {{.*}} : memref<?x64xf32>
// CHECK:         %[[Y:[a-z0-9_]+]] = memref.alloc() {{.*}} : memref<16x64xf32>
// CHECK-NEXT:    memref.copy %[[X]], %[[Y]]
// CHECK:         moe.ffn gelu
// CHECK:         scf.for %[[J:[a-z0-9_]+]] = %{{.*}} to %[[N]]#0 step
// CHECK:           %[[DST:.*]] = arith.index_cast %{{.*}} : i32 to index
// CHECK:           %[[G:.*]] = memref.load %[[SCORES]][%[[DST]]] : memref<?xf32>
// CHECK:           vector.broadcast %[[G]] : f32 to vector<8xf32>
// CHECK:         bufferization.to_tensor %[[Y]] restrict : memref<16x64xf32> to tensor<16x64xf32>
func.func @capacity_skip(%x: tensor<16x64xf32>, %router: tensor<64xf32>,
                         %w1: tensor<128x64xf32>, %w2: tensor<64x128xf32>) -> tensor<16x64xf32> {
  %y = moe.skip_block %x, %router {capacity_fraction = 0.5 : f32, scale_by_score}
      : tensor<16x64xf32>, tensor<64xf32> -> tensor<16x64xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    %f = moe.ffn gelu %xs w1(%w1 : tensor<128x64xf32>) w2(%w2 : tensor<64x128xf32>)
        : tensor<?x64xf32> -> tensor<?x64xf32>
    moe.yield %f : tensor<?x64xf32>
  }
  return %y : tensor<16x64xf32>
}

// path_select (Duo-LLM): paths outside [0, 2] record an error; y = copy of
// x, then per region p = 1, 2: select the tokens with path p, gather, the
// region inlined, scatter-add.
// CHECK-LABEL: func.func @paths(
// CHECK-SAME:      %[[XT:[a-z0-9_]+]]: tensor<?x64xf32>, %[[PATHST:[a-z0-9_]+]]: tensor<?xi32>
// CHECK:         %[[STATUS:[a-z0-9_]+]] = memref.alloca() {moe.status}
// CHECK:         %[[X:.*]] = bufferization.to_buffer %[[XT]] read_only : tensor<?x64xf32> to memref<?x64xf32>
// CHECK:         %[[PATHS:.*]] = bufferization.to_buffer %[[PATHST]] read_only : tensor<?xi32> to memref<?xi32>
// CHECK:         %[[T:[a-z0-9_]+]] = memref.dim %[[X]], %{{.*}} : memref<?x64xf32>
// CHECK:         scf.for %[[TOK:[a-z0-9_]+]] = %{{.*}} to %[[T]] step
// CHECK:           %[[P:.*]] = memref.load %[[PATHS]][%[[TOK]]]
// CHECK:           %[[LOW:.*]] = arith.cmpi slt, %[[P]], %{{.*}} : i32
// CHECK:           %[[MAXP:.*]] = arith.constant 2 : i32
// CHECK:           %[[HIGH:.*]] = arith.cmpi sgt, %[[P]], %[[MAXP]] : i32
// CHECK:           %[[BAD:.*]] = arith.ori %[[LOW]], %[[HIGH]] : i1
// CHECK:           scf.if %[[BAD]] {
// CHECK:             memref.store %{{.*}}, %[[STATUS]][]
// CHECK:         %[[Y:[a-z0-9_]+]] = memref.alloc(%[[T]]) {{.*}} : memref<?x64xf32>
// CHECK-NEXT:    memref.copy %[[X]], %[[Y]]
//   path 1
// CHECK:         %[[IDX1:[a-z0-9_]+]] = memref.alloc(%[[T]]) {{.*}} : memref<?xi32>
// CHECK:         %[[N1:.*]] = scf.for %[[TOK:[a-z0-9_]+]] = %{{.*}} to %[[T]] step {{.*}} -> (index) {
// CHECK:           %[[P:.*]] = memref.load %[[PATHS]][%[[TOK]]]
// CHECK:           %[[ONE:.*]] = arith.constant 1 : i32
// CHECK:           %[[IS1:.*]] = arith.cmpi eq, %[[P]], %[[ONE]] : i32
// CHECK:         %[[XS1:[a-z0-9_]+]] = memref.alloc(%[[N1]]) {{.*}} : memref<?x64xf32>
// CHECK:         bufferization.to_tensor %[[XS1]] restrict : memref<?x64xf32> to tensor<?x64xf32>
// CHECK-NEXT:    moe.ffn relu
// CHECK:         scf.for %{{.*}} = %{{.*}} to %[[N1]] step
// CHECK:             vector.store %{{.*}}, %[[Y]]
//   path 2
// CHECK:         %[[IDX2:[a-z0-9_]+]] = memref.alloc(%[[T]]) {{.*}} : memref<?xi32>
// CHECK:         %[[N2:.*]] = scf.for %[[TOK:[a-z0-9_]+]] = %{{.*}} to %[[T]] step {{.*}} -> (index) {
// CHECK:           %[[P:.*]] = memref.load %[[PATHS]][%[[TOK]]]
// CHECK:           %[[TWO:.*]] = arith.constant 2 : i32
// CHECK:           %[[IS2:.*]] = arith.cmpi eq, %[[P]], %[[TWO]] : i32
// CHECK:         %[[XS2:[a-z0-9_]+]] = memref.alloc(%[[N2]]) {{.*}} : memref<?x64xf32>
// CHECK:         bufferization.to_tensor %[[XS2]] restrict : memref<?x64xf32> to tensor<?x64xf32>
// CHECK-NEXT:    moe.ffn silu
// CHECK:         scf.for %{{.*}} = %{{.*}} to %[[N2]] step
// CHECK:             vector.store %{{.*}}, %[[Y]]
// CHECK:         bufferization.to_tensor %[[Y]] restrict : memref<?x64xf32> to tensor<?x64xf32>
// CHECK-NOT:     moe.path_select
func.func @paths(%x: tensor<?x64xf32>, %p: tensor<?xi32>,
                 %s1: tensor<32x64xf32>, %s2: tensor<64x32xf32>,
                 %b1: tensor<128x64xf32>, %b2: tensor<64x128xf32>) -> tensor<?x64xf32> {
  %y = moe.path_select %x, %p : tensor<?x64xf32>, tensor<?xi32> -> tensor<?x64xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    %f = moe.ffn relu %xs w1(%s1 : tensor<32x64xf32>) w2(%s2 : tensor<64x32xf32>)
        : tensor<?x64xf32> -> tensor<?x64xf32>
    moe.yield %f : tensor<?x64xf32>
  }, {
  ^bb0(%xb: tensor<?x64xf32>):
    %f = moe.ffn silu %xb w1(%b1 : tensor<128x64xf32>) w2(%b2 : tensor<64x128xf32>)
        : tensor<?x64xf32> -> tensor<?x64xf32>
    moe.yield %f : tensor<?x64xf32>
  }
  return %y : tensor<?x64xf32>
}

// A skip_block inside a path region: the outer op is lowered first, which
// inlines the inner one; it is then lowered on the compacted rows (its T is
// the outer selection count). Every temporary is allocated at function level.
// CHECK-LABEL: func.func @nested(
// CHECK-SAME:      %[[XT:[a-z0-9_]+]]: tensor<?x64xf32>
// CHECK:         %[[X:.*]] = bufferization.to_buffer %[[XT]] read_only : tensor<?x64xf32> to memref<?x64xf32>
// CHECK:         %[[N:[0-9]+]] = scf.for {{.*}} -> (index) {
// CHECK:         %[[XS:[a-z0-9_]+]] = memref.alloc(%[[N]]) {{.*}} : memref<?x64xf32>
// CHECK:         %[[T2:[a-z0-9_]+]] = memref.dim %[[XS]], %{{.*}} : memref<?x64xf32>
// CHECK:         memref.alloc(%[[T2]]) {{.*}} : memref<?xf32>
// CHECK:         scf.for %[[TOK:[a-z0-9_]+]] = %{{.*}} to %[[T2]] step
// CHECK:           vector.load %[[XS]][%[[TOK]], %{{.*}}]
// CHECK:         moe.ffn gelu
// CHECK-NOT:     moe.skip_block
// CHECK-NOT:     moe.yield
// CHECK:         return
func.func @nested(%x: tensor<?x64xf32>, %p: tensor<?xi32>, %router: tensor<64xf32>,
                  %w1: tensor<32x64xf32>, %w2: tensor<64x32xf32>) -> tensor<?x64xf32> {
  %y = moe.path_select %x, %p : tensor<?x64xf32>, tensor<?xi32> -> tensor<?x64xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    %s = moe.skip_block %xs, %router {threshold = 0.0 : f32}
        : tensor<?x64xf32>, tensor<64xf32> -> tensor<?x64xf32> {
    ^bb0(%xt: tensor<?x64xf32>):
      %f = moe.ffn gelu %xt w1(%w1 : tensor<32x64xf32>) w2(%w2 : tensor<64x32xf32>)
          : tensor<?x64xf32> -> tensor<?x64xf32>
      moe.yield %f : tensor<?x64xf32>
    }
    moe.yield %s : tensor<?x64xf32>
  }
  return %y : tensor<?x64xf32>
}

// NONE-NOT: moe.skip_block
// NONE-NOT: moe.path_select
// NONE-NOT: moe.yield

// STATS:      MoeLowerSkips
// STATS-NEXT:   (S) 2 path-selects-lowered
// STATS-NEXT:   (S) 3 skip-blocks-lowered
