// RUN: moe-opt %s --moe-buffer-abi "--moe-lower-grouped-experts=vector-width=8 row-tile=4" | FileCheck %s
// RUN: moe-opt %s --moe-buffer-abi "--moe-lower-grouped-experts=row-tile=2 vector-width=4" | FileCheck %s --check-prefix=TILE
// RUN: moe-opt %s --moe-buffer-abi "--moe-lower-grouped-experts=vector-width=8 row-tile=4 parallel=false" | FileCheck %s --check-prefix=SEQ
// RUN: %if moe-pass-stats %{ moe-opt %s --moe-buffer-abi "--moe-lower-grouped-experts=vector-width=8 row-tile=4" -mlir-pass-statistics -o /dev/null 2>&1 | FileCheck %s --check-prefix=STATS %}

// moe-lower-grouped-experts: a loop over the bank's experts reads each
// expert's ragged row range from the offsets (global id = n + first_expert)
// and counts its tiles of `row-tile` rows (here 4; by default from the host)
// into a prefix sum; one
// loop then runs the work items, one per (expert, tile), so a skewed routing
// still splits evenly (marked `moe.parallel` for the thread pool unless
// parallel=false). In a full tile every weight vector is loaded once for all
// the tile's token rows (row-tile x {w1, w3} vector accumulators); a partial
// tile runs its rows one at a time. The activation and the gate product are
// the first GEMM's epilogue into a [row-tile, I] stack buffer that the second
// GEMM reads, so no [rows, I] intermediate exists.

// Bank of 3 SwiGLU experts, global ids 5..7 (first_expert = 5).
// CHECK-LABEL: func.func @grouped_swiglu(
// CHECK-SAME:      %[[X:[a-z0-9_]+]]: memref<16x64xf32>, %[[ROWS:[a-z0-9_]+]]: memref<32xi32>, %[[OFF:[a-z0-9_]+]]: memref<9xi32>, %[[W1:[a-z0-9_]+]]: memref<3x128x64xf32>, %[[W3:[a-z0-9_]+]]: memref<3x128x64xf32>, %[[W2:[a-z0-9_]+]]: memref<3x64x128xf32>
// CHECK:         %[[TILE_OFF:[a-z0-9_]+]] = memref.alloca() {{.*}} : memref<4xindex>
// CHECK-NOT:     memref.alloc(
//   tensor.empty (the sorted accumulator) becomes the output buffer.
// CHECK:         %[[OUT:[a-z0-9_]+]] = memref.alloc() {{.*}} : memref<32x64xf32>
// CHECK-NOT:     memref.alloc(
// CHECK-NOT:     tensor.empty
//   Over the experts: rows offsets[n + 5] .. offsets[n + 6], ceil(rows / 4)
//   tiles, prefix-summed.
// CHECK:         scf.for %[[N:[a-z0-9_]+]] = %{{.*}} to %{{.*}} step
// CHECK-NEXT:      %[[FIRST:.*]] = arith.constant 5 : index
// CHECK-NEXT:      %[[ID:.*]] = arith.addi %[[N]], %[[FIRST]] : index
// CHECK-NEXT:      %[[START_I:.*]] = memref.load %[[OFF]][%[[ID]]] : memref<9xi32>
// CHECK-NEXT:      %[[START:.*]] = arith.index_cast %[[START_I]] : i32 to index
// CHECK:           %[[ID1:.*]] = arith.addi %[[ID]], %{{.*}} : index
// CHECK-NEXT:      %[[END_I:.*]] = memref.load %[[OFF]][%[[ID1]]] : memref<9xi32>
// CHECK-NEXT:      %[[END:.*]] = arith.index_cast %[[END_I]] : i32 to index
// CHECK-NEXT:      %[[NROWS:.*]] = arith.subi %[[END]], %[[START]] : index
// CHECK-NEXT:      %[[NTILES:.*]] = arith.ceildivui %[[NROWS]], %{{.*}} : index
// CHECK-NEXT:      %[[PREV:.*]] = memref.load %[[TILE_OFF]][%[[N]]]
// CHECK-NEXT:      %[[SUM:.*]] = arith.addi %[[PREV]], %[[NTILES]] : index
// CHECK:           memref.store %[[SUM]], %[[TILE_OFF]][
// CHECK:         %[[TOTAL:.*]] = memref.load %[[TILE_OFF]][
//   One work item per (expert, tile); each has its own [4, I] buffer, in an
//   alloca scope so it is released per item.
// CHECK:         scf.for %[[ITEM:[a-z0-9_]+]] = %{{.*}} to %[[TOTAL]] step
// CHECK-NEXT:      memref.alloca_scope {
// CHECK-NEXT:      %[[MID:[a-z0-9_]+]] = memref.alloca() : memref<4x128xf32>
//   The item's expert G: the number of experts whose tiles end at or before it.
// CHECK:           %[[G:.*]] = scf.for {{.*}} -> (index) {
// CHECK:             memref.load %[[TILE_OFF]]
// CHECK:             arith.cmpi ule, %{{.*}}, %[[ITEM]] : index
// CHECK:           %[[GFIRST:.*]] = arith.constant 5 : index
// CHECK-NEXT:      %[[GID:.*]] = arith.addi %[[G]], %[[GFIRST]] : index
// CHECK-NEXT:      memref.load %[[OFF]][%[[GID]]] : memref<9xi32>
// CHECK:           arith.muli
// CHECK-NEXT:      %[[T0:.*]] = arith.addi %{{.*}}, %{{.*}} : index
// CHECK-NEXT:      %[[T1:.*]] = arith.addi %[[T0]], %{{.*}} : index
// CHECK-NEXT:      %[[TEND:.*]] = arith.minui %[[T1]], %{{.*}} : index
// CHECK-NEXT:      %[[TROWS:.*]] = arith.subi %[[TEND]], %[[T0]] : index
// CHECK-NEXT:      %[[FULL:.*]] = arith.cmpi eq, %[[TROWS]], %{{.*}} : index
// CHECK-NEXT:      scf.if %[[FULL]] {
//   A full tile: 4 token rows ...
// CHECK-COUNT-4:     memref.load %[[ROWS]][%{{.*}}] : memref<32xi32>
//   ... GEMM 1 over the I = 128 rows of w1/w3 of expert G: the two weight
//   vectors are loaded once and multiplied into the 4 token rows.
// CHECK:             scf.for %[[I:[a-z0-9_]+]] =
// CHECK:               scf.for {{.*}} -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>) {
// CHECK-NEXT:            %[[V1:.*]] = vector.load %[[W1]][%[[G]], %[[I]], %{{.*}}] : memref<3x128x64xf32>, vector<8xf32>
// CHECK-NEXT:            %[[V3:.*]] = vector.load %[[W3]][%[[G]], %[[I]], %{{.*}}] : memref<3x128x64xf32>, vector<8xf32>
// CHECK-NEXT:            %[[X0:.*]] = vector.load %[[X]][%{{.*}}] : memref<16x64xf32>, vector<8xf32>
// CHECK-NEXT:            vector.fma %[[X0]], %[[V1]], %{{.*}} : vector<8xf32>
// CHECK-NEXT:            vector.fma %[[X0]], %[[V3]], %{{.*}} : vector<8xf32>
// CHECK-NEXT:            %[[X1:.*]] = vector.load %[[X]][%{{.*}}] : memref<16x64xf32>, vector<8xf32>
// CHECK-NEXT:            vector.fma %[[X1]], %[[V1]], %{{.*}} : vector<8xf32>
// CHECK-NEXT:            vector.fma %[[X1]], %[[V3]], %{{.*}} : vector<8xf32>
// CHECK-NEXT:            %[[X2:.*]] = vector.load %[[X]][%{{.*}}] : memref<16x64xf32>, vector<8xf32>
// CHECK-NEXT:            vector.fma %[[X2]], %[[V1]], %{{.*}} : vector<8xf32>
// CHECK-NEXT:            vector.fma %[[X2]], %[[V3]], %{{.*}} : vector<8xf32>
// CHECK-NEXT:            %[[X3:.*]] = vector.load %[[X]][%{{.*}}] : memref<16x64xf32>, vector<8xf32>
// CHECK-NEXT:            vector.fma %[[X3]], %[[V1]], %{{.*}} : vector<8xf32>
// CHECK-NEXT:            vector.fma %[[X3]], %[[V3]], %{{.*}} : vector<8xf32>
// CHECK-NEXT:            scf.yield
//   Epilogue, per tile row: silu(w1 . x) * (w3 . x) into MID[r, i].
// CHECK-COUNT-8:       vector.reduction <add>
// CHECK:               %[[NEG:.*]] = arith.negf %[[UP:.*]] : f32
// CHECK-NEXT:          %[[EXP:.*]] = math.exp %[[NEG]] : f32
// CHECK:               %[[DEN:.*]] = arith.addf %{{.*}}, %[[EXP]] : f32
// CHECK-NEXT:          %[[SILU:.*]] = arith.divf %[[UP]], %[[DEN]] : f32
// CHECK-NEXT:          %[[GATED:.*]] = arith.mulf %[[SILU]], %{{.*}} : f32
// CHECK:               memref.store %[[GATED]], %[[MID]][%{{.*}}, %[[I]]] : memref<4x128xf32>
// CHECK-COUNT-3:       math.exp
// CHECK-NOT:           vector.load %[[W2]]
//   GEMM 2 over the H = 64 rows of w2, reading MID, storing the tile's rows.
// CHECK:             scf.for %[[C:[a-z0-9_]+]] =
// CHECK:               scf.for {{.*}} -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>) {
// CHECK-NEXT:            %[[V2:.*]] = vector.load %[[W2]][%[[G]], %[[C]], %{{.*}}] : memref<3x64x128xf32>, vector<8xf32>
// CHECK-NEXT:            %[[M0:.*]] = vector.load %[[MID]][%{{.*}}] : memref<4x128xf32>, vector<8xf32>
// CHECK-NEXT:            vector.fma %[[M0]], %[[V2]], %{{.*}} : vector<8xf32>
// CHECK-NOT:             math.exp
// CHECK-COUNT-4:       memref.store %{{.*}}, %[[OUT]][%{{.*}}, %[[C]]] : memref<32x64xf32>
//   A partial tile: its rows one at a time (2 accumulators in GEMM 1).
// CHECK:           } else {
// CHECK:             scf.for %[[P1:[a-z0-9_]+]] = %[[T0]] to %[[TEND]] step
// CHECK:               memref.load %[[ROWS]]
// CHECK-NOT:           memref.load %[[ROWS]]
// CHECK:                 scf.for {{.*}} -> (vector<8xf32>, vector<8xf32>) {
// CHECK:                 math.exp
// CHECK:                 memref.store %{{.*}}, %[[MID]]
// CHECK:                 scf.for {{.*}} -> (vector<8xf32>) {
// CHECK:                 memref.store %{{.*}}, %[[OUT]]
// CHECK:         } {moe.parallel}
// CHECK-NEXT:    builtin.unrealized_conversion_cast %[[OUT]]

// row-tile=2 vector-width=4: tiles of 2 rows, 4-lane vectors, a [2, I] stack
// buffer, 2 x {w1, w3} accumulators.
// TILE-LABEL: func.func @grouped_swiglu(
// TILE:           %[[RT:.*]] = arith.constant 2 : index
// TILE:           arith.ceildivui %{{.*}}, %[[RT]] : index
// TILE:         scf.for
// TILE-NEXT:      memref.alloca_scope {
// TILE-NEXT:      memref.alloca() : memref<2x128xf32>
// TILE:           scf.if
// TILE-COUNT-2:     memref.load %{{.*}} : memref<32xi32>
// TILE-NOT:         memref.load %{{.*}} : memref<32xi32>
// TILE:             %[[LANES:.*]] = arith.constant 4 : index
// TILE-NEXT:        scf.for %{{.*}} = %{{.*}} to %{{.*}} step %[[LANES]] iter_args({{.*}}) -> (vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>) {
// TILE:             math.exp
// TILE:             memref.store %{{.*}} : memref<2x128xf32>
// TILE:             scf.for {{.*}} -> (vector<4xf32>, vector<4xf32>) {
// TILE-NOT:     vector<8xf32>
// TILE-LABEL: func.func @grouped_lora(

// parallel=false: the same work items, not marked, sharing the entry buffer.
// SEQ-LABEL: func.func @grouped_swiglu(
// SEQ:         %[[MID:[a-z0-9_]+]] = memref.alloca() {{.*}} : memref<4x128xf32>
// SEQ:         scf.for %{{.*}} = %{{.*}} to %{{.*}} step
// SEQ-NOT:       memref.alloca
// SEQ:               memref.store %{{.*}}, %[[MID]]
// SEQ-NOT:     moe.parallel
// SEQ-LABEL: func.func @grouped_lora(
func.func @grouped_swiglu(%x: tensor<16x64xf32>, %rows: tensor<32xi32>, %offsets: tensor<9xi32>,
                          %w1: tensor<3x128x64xf32>, %w3: tensor<3x128x64xf32>,
                          %w2: tensor<3x64x128xf32>) -> tensor<32x64xf32> {
  %acc = tensor.empty() : tensor<32x64xf32>
  %y = moe.grouped_ffn swiglu %x, %rows, %offsets w1(%w1 : tensor<3x128x64xf32>)
      w3(%w3 : tensor<3x128x64xf32>) w2(%w2 : tensor<3x64x128xf32>) into %acc {first_expert = 5}
      : tensor<16x64xf32>, tensor<32xi32>, tensor<9xi32>, tensor<32x64xf32> -> tensor<32x64xf32>
  return %y : tensor<32x64xf32>
}

// LoRA experts (GELU, adapters on w1 and w2, rank 8, alpha 16: scale 2)
// over the shared frozen base, written in place into `acc`. The base
// up-projection w1 . x is computed once per token ([T, I], before the expert
// work items); each (token, expert) row then adds only its rank-r adapter
// terms. (Generic form: the custom form of grouped_lora without w3 does not
// parse back.)
// CHECK-LABEL: func.func @grouped_lora(
// CHECK-SAME:      %[[X:[a-z0-9_]+]]: memref<16x64xf32>, %{{.*}}: memref<32xi32>, %{{.*}}: memref<4xi32>, %[[W1:[a-z0-9_]+]]: memref<32x64xf32>, %[[W2:[a-z0-9_]+]]: memref<64x32xf32>, %[[A1:[a-z0-9_]+]]: memref<3x8x64xf32>, %[[B1:[a-z0-9_]+]]: memref<3x32x8xf32>, %[[A2:[a-z0-9_]+]]: memref<3x8x32xf32>, %[[B2:[a-z0-9_]+]]: memref<3x64x8xf32>, %[[ACC:[a-z0-9_]+]]: memref<32x64xf32>
// CHECK:         %[[TOFF:[a-z0-9_]+]] = memref.alloca() {{.*}} : memref<4xindex>
// CHECK-NOT:     memref.alloc(
//   The base projection of every token, in tiles of tokens.
// CHECK:         %[[T:[a-z0-9_]+]] = memref.dim %[[X]], %{{.*}} : memref<16x64xf32>
// CHECK-NEXT:    %[[BASE1:[a-z0-9_]+]] = memref.alloc(%[[T]]) {{.*}} : memref<?x32xf32>
// CHECK:         scf.for
// CHECK:               vector.load %[[W1]][%{{.*}}, %{{.*}}] : memref<32x64xf32>, vector<8xf32>
// CHECK:             memref.store %{{.*}}, %[[BASE1]][%{{.*}}, %{{.*}}] : memref<?x32xf32>
// CHECK:         } {moe.parallel}
// CHECK-NOT:     vector.load %[[W1]]
// CHECK-NOT:     memref.alloc(
//   The expert work items.
// CHECK:           arith.ceildivui
// CHECK:           memref.store %{{.*}}, %[[TOFF]]
// CHECK:         %[[TOTAL:.*]] = memref.load %[[TOFF]]
// CHECK:         scf.for %[[ITEM:[a-z0-9_]+]] = %{{.*}} to %[[TOTAL]] step
// CHECK-NEXT:      memref.alloca_scope {
// CHECK-NEXT:      %[[MID:[a-z0-9_]+]] = memref.alloca() : memref<4x32xf32>
// CHECK-NEXT:      %[[LOW:[a-z0-9_]+]] = memref.alloca() : memref<4x8xf32>
// CHECK:           %[[G:.*]] = scf.for {{.*}} -> (index) {
// CHECK:           scf.if
//   low[r, q] = a1[g, q] . x[token r]
// CHECK:             scf.for %[[Q:[a-z0-9_]+]] =
// CHECK:               vector.load %[[A1]][%[[G]], %[[Q]], %{{.*}}]
// CHECK:               memref.store %{{.*}}, %[[LOW]][%{{.*}}, %[[Q]]] : memref<4x8xf32>
//   GEMM 1: base1[token, i] + 2 * (b1[g, i] . low), then gelu (erf) into MID.
// CHECK:             scf.for %[[I:[a-z0-9_]+]] =
// CHECK-COUNT-4:       memref.load %[[BASE1]][%{{.*}}, %[[I]]] : memref<?x32xf32>
// CHECK:               vector.load %[[B1]][%[[G]], %[[I]], %{{.*}}]
// CHECK:               vector.load %[[LOW]]
// CHECK:               %[[SCALE:.*]] = arith.constant 2.000000e+00 : f32
// CHECK-NEXT:          %[[UP:.*]] = math.fma %[[SCALE]], %{{.*}}, %{{.*}} : f32
// CHECK:               %[[S:.*]] = arith.mulf %[[UP]], %{{.*}} : f32
// CHECK-NEXT:          math.erf %[[S]] : f32
// CHECK:               memref.store %{{.*}}, %[[MID]][%{{.*}}, %[[I]]] : memref<4x32xf32>
//   w2 adapter: low = a2[g] . MID, then GEMM 2 (base w2 + adapter) into acc.
// CHECK:             vector.load %[[A2]][%[[G]], %{{.*}}]
// CHECK:             vector.load %[[MID]]
// CHECK:             scf.for %[[C:[a-z0-9_]+]] =
// CHECK:               vector.load %[[W2]][%[[C]], %{{.*}}] : memref<64x32xf32>
// CHECK:               vector.load %[[B2]][%[[G]], %[[C]], %{{.*}}]
// CHECK:               memref.store %{{.*}}, %[[ACC]][%{{.*}}, %[[C]]] : memref<32x64xf32>
// CHECK:         } {moe.parallel}
// CHECK-NOT:     memref.alloc(
// CHECK:         builtin.unrealized_conversion_cast %[[ACC]]
func.func @grouped_lora(%x: tensor<16x64xf32>, %rows: tensor<32xi32>, %offsets: tensor<4xi32>,
                        %w1: tensor<32x64xf32>, %w2: tensor<64x32xf32>,
                        %a1: tensor<3x8x64xf32>, %b1: tensor<3x32x8xf32>,
                        %a2: tensor<3x8x32xf32>, %b2: tensor<3x64x8xf32>,
                        %acc: tensor<32x64xf32>) -> tensor<32x64xf32> {
  %y = "moe.grouped_lora"(%x, %rows, %offsets, %w1, %w2, %a1, %b1, %a2, %b2, %acc)
      <{activation = #moe<activation gelu>, alpha = 16.0 : f32, first_expert = 0 : i64,
        operandSegmentSizes = array<i32: 1, 1, 1, 1, 0, 1, 1, 1, 0, 0, 1, 1, 1>}>
      : (tensor<16x64xf32>, tensor<32xi32>, tensor<4xi32>, tensor<32x64xf32>, tensor<64x32xf32>,
         tensor<3x8x64xf32>, tensor<3x32x8xf32>, tensor<3x8x32xf32>, tensor<3x64x8xf32>,
         tensor<32x64xf32>) -> tensor<32x64xf32>
  return %y : tensor<32x64xf32>
}

// A dense moe.ffn (ReLU) is the same kernel over the tokens 0..T directly:
// no offsets or row indirection.
// CHECK-LABEL: func.func @dense(
// CHECK-SAME:      %[[X:[a-z0-9_]+]]: memref<?x64xf32>, %[[W1:[a-z0-9_]+]]: memref<96x64xf32>
// CHECK-NOT:     : memref<{{.*}}xi32>
// CHECK:         %[[T:[a-z0-9_]+]] = memref.dim %[[X]], %{{.*}} : memref<?x64xf32>
// CHECK:         %[[OUT:[a-z0-9_]+]] = memref.alloc(%[[T]]) {{.*}} : memref<?x64xf32>
// CHECK:         scf.for %[[ITEM:[a-z0-9_]+]] =
// CHECK:           arith.muli
// CHECK-NEXT:      %[[T0:.*]] = arith.addi %{{.*}}, %{{.*}} : index
// CHECK:           scf.if
// CHECK:             %[[R0:.*]] = arith.addi %[[T0]], %{{.*}} : index
// CHECK:               vector.load %[[W1]]
// CHECK-NEXT:          vector.load %[[X]][%[[R0]], %{{.*}}]
// CHECK:             arith.maximumf
// CHECK:         } {moe.parallel}
// CHECK-NOT:     : memref<{{.*}}xi32>
// CHECK-NOT:     math.exp
// CHECK:         builtin.unrealized_conversion_cast %[[OUT]]
func.func @dense(%x: tensor<?x64xf32>, %w1: tensor<96x64xf32>, %w2: tensor<64x96xf32>)
    -> tensor<?x64xf32> {
  %y = moe.ffn relu %x w1(%w1 : tensor<96x64xf32>) w2(%w2 : tensor<64x96xf32>)
      : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// STATS:      MoeLowerGroupedExperts
// STATS-NEXT:   (S) 1 dense-ffns-lowered
// STATS-NEXT:   (S) 2 grouped-ops-lowered
