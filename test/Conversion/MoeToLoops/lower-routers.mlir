// RUN: moe-opt %s --moe-call-slots --moe-lower-routers=vector-width=8 %bufferize | FileCheck %s
// RUN: moe-opt %s --moe-call-slots --moe-lower-routers=vector-width=8 %bufferize | FileCheck %s --check-prefix=NONE
// RUN: moe-opt %s --moe-call-slots "--moe-lower-routers=vector-width=8 token-chunk=32" %bufferize | FileCheck %s --check-prefix=CHUNK
// RUN: %if moe-pass-stats %{ moe-opt %s --moe-call-slots --moe-lower-routers=vector-width=8 -mlir-pass-statistics -o /dev/null 2>&1 | FileCheck %s --check-prefix=STATS %}

// moe-lower-routers fuses a router into ONE scf.for over the tokens: per
// token the E logits go to a stack buffer [E] (vector<8> FMAs over H plus one
// horizontal reduction), are scored in place (softmax: max, exp, divide;
// sigmoid: the two-sided 1 / (1 + e) or e / (1 + e) with e = exp(-|z|), so
// exp never overflows), selected (K masked argmaxes) and normalized,
// writing only the [T, K] routing. Only expert choice keeps a [T, E] score
// matrix. Before the token loop the routing is filled as unused (-1, 0).

// token-chunk=32 (the CPU pipeline): the token loop becomes a moe.parallel
// loop over items of 32 tokens; the per-token score/selection scratch moves
// from the entry block into each item's alloca_scope (one copy per worker),
// the status slot stays shared.
// CHUNK-LABEL: func.func @topk_softmax(
// CHUNK:         %[[ST:.*]] = memref.alloca() {moe.status} : memref<i32>
// CHUNK-NOT:     memref.alloca()
// CHUNK:         %[[N:.*]] = arith.ceildivui
// CHUNK:         scf.for %[[C:[a-z0-9_]+]] = %{{.*}} to %[[N]]
// CHUNK-NEXT:      memref.alloca_scope
// CHUNK:             %[[B:.*]] = arith.muli %[[C]], %{{.*}} : index
// CHUNK:             %[[E:.*]] = arith.minui
// CHUNK:             %[[SC:.*]] = memref.alloca() {{.*}} : memref<8xf32>
// CHUNK:             scf.for %{{.*}} = %[[B]] to %[[E]] step
// CHUNK:               memref.store %{{.*}}, %[[SC]]
// CHUNK:         } {moe.parallel}

// CHECK-LABEL: func.func @topk_softmax(
// CHECK-SAME:      %[[X:[a-z0-9_]+]]: memref<16x64xf32>, %[[GATE:[a-z0-9_]+]]: memref<8x64xf32>
// CHECK-NOT:     memref.alloc(
// CHECK:         %[[T:[a-z0-9_]+]] = memref.dim %[[X]], %{{.*}} : memref<16x64xf32>
// CHECK-NEXT:    %[[IDS:[a-z0-9_]+]] = memref.alloc() {{.*}} : memref<16x2xi32>
// CHECK-NEXT:    %[[W:[a-z0-9_]+]] = memref.alloc() {{.*}} : memref<16x2xf32>
// CHECK-NOT:     memref.alloc(
// CHECK-NOT:     moe.topk_router
// CHECK:         scf.for %[[TOK:[a-z0-9_]+]] = %{{.*}} to %[[T]] step
//   Logits: for each expert, a dot product of x[tok] and gate[e].
// CHECK:           scf.for %[[E:[a-z0-9_]+]] = %{{.*}} to %{{.*}} step
// CHECK:             %[[E7:.*]] = arith.addi %[[E]], %c7
// CHECK:             scf.for {{.*}} iter_args({{.*}}) -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK:               vector.load %[[GATE]][%[[E7]], %{{.*}}] : memref<8x64xf32>, vector<8xf32>
// CHECK-NEXT:          %[[XV:.*]] = vector.load %[[X]][%[[TOK]], %{{.*}}] : memref<16x64xf32>, vector<8xf32>
// CHECK-COUNT-8:       vector.fma %[[XV]], {{.*}} : vector<8xf32>
// CHECK:             %[[DOT:.*]] = vector.reduction <add>, %{{.*}} : vector<8xf32> into f32
// CHECK-COUNT-7:     vector.reduction <add>
// CHECK:             memref.store %[[DOT]], %[[LOGITS:[a-z0-9_]+]][%{{.*}}] : memref<8xf32>
//   Softmax in place: max, exp(z - max) summed, divide.
// CHECK:           arith.maximumf
// CHECK:           %[[L:.*]] = memref.load %[[LOGITS]]
// CHECK:           %[[SHIFTED:.*]] = arith.subf %[[L]], %{{.*}} : f32
// CHECK:           math.exp %[[SHIFTED]] : f32
// CHECK:           arith.divf
//   Selection: K = 2 masked argmaxes, each writing one slot of the token.
// CHECK:           %[[BEST0:.*]]:2 = scf.for {{.*}} -> (index, f32)
// CHECK:           %[[ID0:.*]] = arith.index_cast %[[BEST0]]#0 : index to i32
// CHECK:           memref.store %[[ID0]], %[[IDS]][%[[TOK]], %{{.*}}] : memref<16x2xi32>
// CHECK:           %[[S0:.*]] = memref.load %[[LOGITS]][%[[BEST0]]#0]
// CHECK:           memref.store %[[S0]], %[[W]][%[[TOK]], %{{.*}}] : memref<16x2xf32>
// CHECK:           %[[BEST1:.*]]:2 = scf.for {{.*}} -> (index, f32)
// CHECK:           memref.store %{{.*}}, %[[IDS]][%[[TOK]], %{{.*}}] : memref<16x2xi32>
// CHECK-NOT:       -> (index, f32)
//   Renormalization: sum of the token's K weights, then each weight divided
//   by it (no single reciprocal: it overflows for a denormal sum).
// CHECK:           %[[SUM:.*]] = scf.for {{.*}} -> (f32)
// CHECK:             memref.load %[[W]][%[[TOK]], %{{.*}}]
// CHECK:           %[[POS:.*]] = arith.cmpf ogt, %[[SUM]]
// CHECK:           scf.for
// CHECK:             %[[V:.*]] = memref.load %[[W]][%[[TOK]], %{{.*}}]
// CHECK:             %[[Q:.*]] = arith.divf %[[V]], %[[SUM]] : f32
// CHECK:             %[[N:.*]] = arith.select %[[POS]], %[[Q]], %[[V]] : f32
// CHECK:             memref.store %[[N]], %[[W]][%[[TOK]], %{{.*}}]
// CHECK-NEXT:      }
// CHECK-NEXT:    }
// CHECK:    memref.copy %[[IDS]], %{{.*}}
// CHECK:    memref.copy %[[W]], %{{.*}}
// CHECK-NOT:     scf.for
// CHECK-NOT:     memref.alloc(
// CHECK:         return
func.func @topk_softmax(%x: tensor<16x64xf32>, %gate: tensor<8x64xf32>)
    -> (tensor<16x2xi32>, tensor<16x2xf32>) {
  %ids, %w = moe.topk_router softmax %x, %gate {k = 2, renormalize}
      : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return %ids, %w : tensor<16x2xi32>, tensor<16x2xf32>
}

// Sigmoid scores, a selection bias (selection keys only) and a scaling
// factor without renormalization; T dynamic.
// CHECK-LABEL: func.func @topk_sigmoid_bias(
// CHECK-SAME:      %[[X:[a-z0-9_]+]]: memref<?x64xf32>, %[[GATE:[a-z0-9_]+]]: memref<8x64xf32>, %[[BIAS:[a-z0-9_]+]]: memref<8xf32>
// CHECK:         %[[T:[a-z0-9_]+]] = memref.dim %[[X]], %{{.*}} : memref<?x64xf32>
// CHECK-NEXT:    %[[IDS:[a-z0-9_]+]] = memref.alloc(%[[T]]) {{.*}} : memref<?x2xi32>
// CHECK-NEXT:    %[[W:[a-z0-9_]+]] = memref.alloc(%[[T]]) {{.*}} : memref<?x2xf32>
// CHECK-NOT:     memref.alloc(
// CHECK:         scf.for %[[TOK:[a-z0-9_]+]] = %{{.*}} to %[[T]] step
// CHECK:             vector.fma {{.*}} : vector<8xf32>
// CHECK:             %[[DOT:.*]] = vector.reduction <add>
// CHECK:             memref.store %[[DOT]], %[[LOGITS:[a-z0-9_]+]][%{{.*}}] : memref<8xf32>
// CHECK-NOT:       arith.maximumf
// CHECK:             %[[Z:.*]] = memref.load %[[LOGITS]]
// CHECK:             %[[ABS:.*]] = math.absf %[[Z]] : f32
// CHECK:             %[[NEG:.*]] = arith.negf %[[ABS]] : f32
// CHECK:             %[[EXP:.*]] = math.exp %[[NEG]] : f32
// CHECK:             %[[DEN:.*]] = arith.addf %{{.*}}, %[[EXP]] : f32
// CHECK:             %[[POS:.*]] = arith.cmpf oge, %[[Z]], %{{.*}} : f32
// CHECK:             %[[NUM:.*]] = arith.select %[[POS]], %{{.*}}, %[[EXP]] : f32
// CHECK:             %[[SIG:.*]] = arith.divf %[[NUM]], %[[DEN]] : f32
// CHECK:             memref.store %[[SIG]], %[[LOGITS]]
// CHECK:             %[[S:.*]] = memref.load %[[LOGITS]]
// CHECK:             %[[B:.*]] = memref.load %[[BIAS]]
// CHECK:             %[[KEY:.*]] = arith.addf %[[S]], %[[B]] : f32
// CHECK:             memref.store %[[KEY]], %[[KEYS:[a-z0-9_]+]][
// CHECK:           scf.for {{.*}} -> (index, f32)
// CHECK:             memref.load %[[KEYS]]
// CHECK:           memref.store %{{.*}}, %[[IDS]][%[[TOK]], %{{.*}}] : memref<?x2xi32>
// CHECK:           scf.for {{.*}} -> (index, f32)
// CHECK:           memref.store %{{.*}}, %[[IDS]][%[[TOK]], %{{.*}}] : memref<?x2xi32>
// CHECK:           scf.for
// CHECK:             %[[V:.*]] = memref.load %[[W]][%[[TOK]], %{{.*}}]
// CHECK:             arith.mulf %[[V]], %{{.*}} : f32
// CHECK:         memref.copy %[[IDS]], %{{.*}}
// CHECK-NOT:     scf.for
// CHECK:         return
func.func @topk_sigmoid_bias(%x: tensor<?x64xf32>, %gate: tensor<8x64xf32>, %bias: tensor<8xf32>)
    -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %ids, %w = moe.topk_router sigmoid %x, %gate bias %bias {k = 2, scaling_factor = 2.5 : f32}
      : tensor<?x64xf32>, tensor<8x64xf32>, tensor<8xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  return %ids, %w : tensor<?x2xi32>, tensor<?x2xf32>
}

// Grouped top-k (16 experts, 4 groups, keep 2, k = 4): group scores (sum of
// the group's top 2 keys) into a [num_groups] stack buffer, 2 group
// argmaxes, the experts of the other groups masked, then 4 expert argmaxes;
// all inside the token loop.
// CHECK-LABEL: func.func @grouped(
// CHECK-SAME:      %[[X:[a-z0-9_]+]]: memref<?x64xf32>
// CHECK:         %[[T:[a-z0-9_]+]] = memref.dim %[[X]], %{{.*}} : memref<?x64xf32>
// CHECK:         %[[IDS:[a-z0-9_]+]] = memref.alloc(%[[T]]) {{.*}} : memref<?x4xi32>
// CHECK:         memref.alloc(%[[T]]) {{.*}} : memref<?x4xf32>
// CHECK-NOT:     memref.alloc(
// CHECK:         scf.for %[[TOK:[a-z0-9_]+]] = %{{.*}} to %[[T]] step
// CHECK:             vector.fma {{.*}} : vector<8xf32>
// CHECK:             math.exp
// CHECK:           scf.for %[[G:[a-z0-9_]+]] =
// CHECK:             %[[TOP2:.*]]:2 = scf.for {{.*}} -> (f32, f32)
// CHECK:             %[[GS:.*]] = arith.addf %[[TOP2]]#0, %[[TOP2]]#1 : f32
// CHECK:             memref.store %[[GS]], %[[GROUPS:[a-z0-9_]+]][%[[G]]] : memref<4xf32>
// CHECK:           scf.for {{.*}} -> (index, f32)
// CHECK:             memref.load %[[GROUPS]]
// CHECK:           scf.for {{.*}} -> (index, f32)
// CHECK:             memref.load %[[GROUPS]]
// CHECK:           scf.for
// CHECK:             arith.divui
// CHECK:             memref.store %{{.*}} : memref<16xi1>
// CHECK-COUNT-4:   memref.store %{{.*}}, %[[IDS]][%[[TOK]], %{{.*}}] : memref<?x4xi32>
// CHECK:           arith.divf
// CHECK:         memref.copy %[[IDS]], %{{.*}}
// CHECK-NOT:     scf.for
// CHECK:         return
func.func @grouped(%x: tensor<?x64xf32>, %gate: tensor<16x64xf32>, %bias: tensor<16xf32>)
    -> (tensor<?x4xi32>, tensor<?x4xf32>) {
  %ids, %w = moe.grouped_topk_router sigmoid %x, %gate bias %bias
      {k = 4, num_groups = 4, topk_groups = 2, renormalize, scaling_factor = 2.5 : f32}
      : tensor<?x64xf32>, tensor<16x64xf32>, tensor<16xf32> -> tensor<?x4xi32>, tensor<?x4xf32>
  return %ids, %w : tensor<?x4xi32>, tensor<?x4xf32>
}

// Top-p: max_k takes, each guarded by "done" (cumulative >= threshold),
// threaded as (cumulative, done) through scf.if results.
// E = 10 logits: one block of 8 gate rows, then experts 8 and 9 one at a
// time (a 1-accumulator dot each).
// CHECK-LABEL: func.func @topp(
// CHECK-SAME:      %[[X:[a-z0-9_]+]]: memref<?x64xf32>, %[[GATE:[a-z0-9_]+]]: memref<10x64xf32>
// CHECK:         %[[T:[a-z0-9_]+]] = memref.dim %[[X]], %{{.*}} : memref<?x64xf32>
// CHECK:         %[[IDS:[a-z0-9_]+]] = memref.alloc(%[[T]]) {{.*}} : memref<?x4xi32>
// CHECK:         scf.for %[[TOK:[a-z0-9_]+]] = %{{.*}} to %[[T]] step
// CHECK:           scf.for %{{.*}} = %c0{{.*}} to %c8{{.*}} step %c8
// CHECK:             scf.for {{.*}} -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK-COUNT-8:       vector.fma {{.*}} : vector<8xf32>
// CHECK:           scf.for %[[REST:[a-z0-9_]+]] = %c8{{.*}} to %c10{{.*}} step %c1
// CHECK:             scf.for {{.*}} iter_args({{.*}}) -> (vector<8xf32>) {
// CHECK:               vector.load %[[GATE]][%[[REST]], %{{.*}}] : memref<10x64xf32>, vector<8xf32>
// CHECK:               vector.fma {{.*}} : vector<8xf32>
// CHECK:             vector.reduction <add>
// CHECK:           math.exp
// CHECK:           %[[D0:.*]]:2 = scf.if %{{.*}} -> (f32, i1) {
// CHECK:             memref.store %{{.*}}, %[[IDS]][%[[TOK]], %{{.*}}] : memref<?x4xi32>
// CHECK:             %[[CUM:.*]] = arith.addf
// CHECK:             %[[DONE:.*]] = arith.cmpf oge, %[[CUM]], %{{.*}} : f32
// CHECK:             scf.yield %[[CUM]], %[[DONE]] : f32, i1
// CHECK:           %[[D1:.*]]:2 = scf.if %[[D0]]#1 -> (f32, i1) {
// CHECK:           %[[D2:.*]]:2 = scf.if %[[D1]]#1 -> (f32, i1) {
// CHECK:           %[[D3:.*]]:2 = scf.if %[[D2]]#1 -> (f32, i1) {
// CHECK-NOT:       scf.if %[[D3]]#1
// CHECK:           arith.divf
// CHECK:         memref.copy %[[IDS]], %{{.*}}
func.func @topp(%x: tensor<?x64xf32>, %gate: tensor<10x64xf32>)
    -> (tensor<?x4xi32>, tensor<?x4xf32>) {
  %ids, %w = moe.topp_router %x, %gate {threshold = 0.6 : f32, max_k = 4, renormalize}
      : tensor<?x64xf32>, tensor<10x64xf32> -> tensor<?x4xi32>, tensor<?x4xf32>
  return %ids, %w : tensor<?x4xi32>, tensor<?x4xf32>
}

// ReLU routing: no exponential; a slot is taken only when the best
// remaining logit is positive.
// CHECK-LABEL: func.func @relu(
// CHECK-NOT:     math.exp
// CHECK:         scf.for %[[TOK:[a-z0-9_]+]] =
// CHECK:             vector.fma {{.*}} : vector<8xf32>
// CHECK:           %[[BEST:.*]]:2 = scf.for {{.*}} -> (index, f32)
// CHECK:           %[[POS:.*]] = arith.cmpf ogt, %[[BEST]]#1, %{{.*}} : f32
// CHECK:           scf.if %[[POS]] {
// CHECK:             memref.store %{{.*}}, %{{.*}}[%[[TOK]], %{{.*}}] : memref<?x8xi32>
// CHECK-NOT:     math.exp
// CHECK:         return
func.func @relu(%x: tensor<?x64xf32>, %gate: tensor<8x64xf32>)
    -> (tensor<?x8xi32>, tensor<?x8xf32>) {
  %ids, %w = moe.relu_router %x, %gate
      : tensor<?x64xf32>, tensor<8x64xf32> -> tensor<?x8xi32>, tensor<?x8xf32>
  return %ids, %w : tensor<?x8xi32>, tensor<?x8xf32>
}

// Expert choice ranks the tokens of each expert, so it keeps the [T, E]
// scores (and a [T, E] "taken" mask): token loop writing the scores, then
// per expert min(capacity, T) argmaxes over the tokens, then a token loop
// writing each token's experts in ascending id.
// CHECK-LABEL: func.func @expert_choice(
// CHECK-SAME:      %[[X:[a-z0-9_]+]]: memref<?x64xf32>
// CHECK:         %[[T:[a-z0-9_]+]] = memref.dim %[[X]], %{{.*}} : memref<?x64xf32>
// CHECK:         %[[IDS:[a-z0-9_]+]] = memref.alloc(%[[T]]) {{.*}} : memref<?x8xi32>
// CHECK:         %[[W:[a-z0-9_]+]] = memref.alloc(%[[T]]) {{.*}} : memref<?x8xf32>
// CHECK:         %[[SCORES:[a-z0-9_]+]] = memref.alloc(%[[T]]) {{.*}} : memref<?x8xf32>
// CHECK:         %[[TAKEN:[a-z0-9_]+]] = memref.alloc(%[[T]]) {{.*}} : memref<?x8xi1>
// CHECK:         scf.for %[[TOK:[a-z0-9_]+]] = %{{.*}} to %[[T]] step
// CHECK:             vector.fma {{.*}} : vector<8xf32>
// CHECK:           math.exp
// CHECK:           memref.store %{{.*}}, %[[SCORES]][%[[TOK]], %{{.*}}] : memref<?x8xf32>
// CHECK:         %[[CAP:.*]] = arith.minui %{{.*}}, %[[T]] : index
// CHECK:         scf.for %[[E:[a-z0-9_]+]] =
// CHECK:           scf.for %{{.*}} = %{{.*}} to %[[CAP]] step
// CHECK:             %[[BEST:.*]]:2 = scf.for {{.*}} to %[[T]] step {{.*}} -> (index, f32)
// CHECK:               memref.load %[[SCORES]]
// CHECK:             memref.store %{{.*}}, %[[TAKEN]][%[[BEST]]#0, %[[E]]] : memref<?x8xi1>
// CHECK:         scf.for %[[TOK2:[a-z0-9_]+]] = %{{.*}} to %[[T]] step
// CHECK:           memref.load %[[TAKEN]][%[[TOK2]],
// CHECK:             memref.store %{{.*}}, %[[IDS]][%[[TOK2]], %{{.*}}] : memref<?x8xi32>
// CHECK:             memref.load %[[SCORES]][%[[TOK2]],
// CHECK:             memref.store %{{.*}}, %[[W]][%[[TOK2]], %{{.*}}] : memref<?x8xf32>
// CHECK:         memref.copy %[[IDS]], %{{.*}}
func.func @expert_choice(%x: tensor<?x64xf32>, %gate: tensor<8x64xf32>)
    -> (tensor<?x8xi32>, tensor<?x8xf32>) {
  %ids, %w = moe.expert_choice_router softmax %x, %gate {capacity = 4}
      : tensor<?x64xf32>, tensor<8x64xf32> -> tensor<?x8xi32>, tensor<?x8xf32>
  return %ids, %w : tensor<?x8xi32>, tensor<?x8xf32>
}

// Hash routing: one loop, (uint32(id) * 2654435761) mod E, weight 1.
// CHECK-LABEL: func.func @hash(
// CHECK-SAME:      %[[TOKS:[a-z0-9_]+]]: memref<?xi32>
// CHECK:         scf.for %[[TOK:[a-z0-9_]+]] =
// CHECK:           %[[ID:.*]] = memref.load %[[TOKS]][%[[TOK]]] : memref<?xi32>
// CHECK:           %[[GOLD:.*]] = arith.constant -1640531535 : i32
// CHECK:           %[[H:.*]] = arith.muli %[[ID]], %[[GOLD]] : i32
// CHECK:           %[[E:.*]] = arith.constant 8 : i32
// CHECK:           %[[EX:.*]] = arith.remui %[[H]], %[[E]] : i32
// CHECK:           memref.store %[[EX]], %{{.*}}[%[[TOK]], %{{.*}}] : memref<?x1xi32>
// CHECK-NOT:     vector.fma
// CHECK:         return
func.func @hash(%tok: tensor<?xi32>) -> (tensor<?x1xi32>, tensor<?x1xf32>) {
  %ids, %w = moe.hash_router %tok {num_experts = 8}
      : tensor<?xi32> -> tensor<?x1xi32>, tensor<?x1xf32>
  return %ids, %w : tensor<?x1xi32>, tensor<?x1xf32>
}

// Capacity drop: C = ceil(((cf * T) * K) / E) in f64, in the reference's
// operation order; slots visited slot-major (outer loop over K, inner over
// T) against per-expert counters; an over-capacity slot becomes (-1, 0).
// CHECK-LABEL: func.func @capacity(
// CHECK-SAME:      %[[IN_IDS:[a-z0-9_]+]]: memref<?x2xi32>, %[[IN_W:[a-z0-9_]+]]: memref<?x2xf32>
// CHECK:         %[[T:[a-z0-9_]+]] = memref.dim %[[IN_IDS]], %{{.*}} : memref<?x2xi32>
// CHECK:         %[[IDS:[a-z0-9_]+]] = memref.alloc(%[[T]]) {{.*}} : memref<?x2xi32>
// CHECK:         %[[W:[a-z0-9_]+]] = memref.alloc(%[[T]]) {{.*}} : memref<?x2xf32>
// CHECK:         memref.copy %[[IN_IDS]], %[[IDS]]
// CHECK:         memref.copy %[[IN_W]], %[[W]]
// CHECK:         memref.store %{{.*}}, %[[COUNT:[a-z0-9_]+]][%{{.*}}] : memref<8xi64>
// CHECK:         %[[TI:.*]] = arith.index_cast %[[T]] : index to i64
// CHECK:         %[[TF:.*]] = arith.uitofp %[[TI]] : i64 to f64
// CHECK:         %[[CF:.*]] = arith.constant 1.250000e+00 : f64
// CHECK:         %[[P1:.*]] = arith.mulf %[[CF]], %[[TF]] : f64
// CHECK:         %[[K:.*]] = arith.constant 2.000000e+00 : f64
// CHECK:         %[[P2:.*]] = arith.mulf %[[P1]], %[[K]] : f64
// CHECK:         %[[E:.*]] = arith.constant 8.000000e+00 : f64
// CHECK:         %[[Q:.*]] = arith.divf %[[P2]], %[[E]] : f64
// CHECK:         %[[CEIL:.*]] = math.ceil %[[Q]] : f64
// CHECK:         %[[LIMIT:.*]] = arith.fptosi %[[CEIL]] : f64 to i64
// CHECK:         scf.for %[[S:[a-z0-9_]+]] =
// CHECK:           scf.for %[[TOK:[a-z0-9_]+]] = %{{.*}} to %[[T]] step
// CHECK:             memref.load %[[IDS]][%[[TOK]], %[[S]]]
// CHECK:               %[[CUR:.*]] = memref.load %[[COUNT]]
// CHECK:               %[[ROOM:.*]] = arith.cmpi slt, %[[CUR]], %[[LIMIT]] : i64
// CHECK:               scf.if %[[ROOM]] {
// CHECK:               } else {
// CHECK:                 memref.store %{{.*}}, %[[IDS]][%[[TOK]], %[[S]]]
// CHECK:                 memref.store %{{.*}}, %[[W]][%[[TOK]], %[[S]]]
func.func @capacity(%ids0: tensor<?x2xi32>, %w0: tensor<?x2xf32>)
    -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %ids, %w = moe.capacity_drop %ids0, %w0 {num_experts = 8, capacity_factor = 1.25 : f32}
      : tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  return %ids, %w : tensor<?x2xi32>, tensor<?x2xf32>
}

// Path router: per token, logits then one argmax stored as the path.
// CHECK-LABEL: func.func @path(
// CHECK-SAME:      %[[X:[a-z0-9_]+]]: memref<?x64xf32>
// CHECK:         %[[T:[a-z0-9_]+]] = memref.dim %[[X]], %{{.*}} : memref<?x64xf32>
// CHECK:         %[[P:[a-z0-9_]+]] = memref.alloc(%[[T]]) {{.*}} : memref<?xi32>
// CHECK:         scf.for %[[TOK:[a-z0-9_]+]] = %{{.*}} to %[[T]] step
// CHECK:             vector.fma {{.*}} : vector<8xf32>
// CHECK:           %[[BEST:.*]]:2 = scf.for {{.*}} -> (index, f32)
// CHECK:           %[[ID:.*]] = arith.index_cast %[[BEST]]#0 : index to i32
// CHECK:           memref.store %[[ID]], %[[P]][%[[TOK]]] : memref<?xi32>
// CHECK-NOT:     math.exp
// CHECK:         return
func.func @path(%x: tensor<?x64xf32>, %gate: tensor<3x64xf32>) -> tensor<?xi32> {
  %p = moe.path_router %x, %gate : tensor<?x64xf32>, tensor<3x64xf32> -> tensor<?xi32>
  return %p : tensor<?xi32>
}

// No router op is left anywhere.
// NONE-NOT: = moe.

// STATS:      MoeLowerRouters
// STATS-NEXT:   (S) 9 routers-fused
