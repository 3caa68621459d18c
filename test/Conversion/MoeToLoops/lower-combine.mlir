// RUN: moe-opt %s --moe-call-slots --moe-lower-combine=vector-width=8 %bufferize | FileCheck %s
// RUN: moe-opt %s --moe-call-slots --moe-lower-combine=vector-width=8 %bufferize | FileCheck %s --check-prefix=NONE
// RUN: moe-opt %s --moe-call-slots "--moe-lower-combine=vector-width=8 token-chunk=32" %bufferize | FileCheck %s --check-prefix=CHUNK
// RUN: %if moe-pass-stats %{ moe-opt %s --moe-call-slots --moe-lower-combine=vector-width=8 -mlir-pass-statistics -o /dev/null 2>&1 | FileCheck %s --check-prefix=STATS %}

// moe-lower-combine: moe.combine is a weighted scatter-add back to token
// order (per token, per slot: y[t] += w * sorted[slot_rows[t, s]] as vector
// FMAs over H; weight 1 for the shared slots K..K+S-1); moe.trivial_combine
// adds w * x (copy) and w * c (constant) per slot through a per-expert kind
// table; moe.remap_experts maps ids through a table, dropped slots zeroed.

// K = 2 routed slots and 1 shared slot.
// CHECK-LABEL: func.func @combine(
// CHECK-SAME:      %[[SORTED:[a-z0-9_]+]]: memref<48x64xf32>, %[[SLOTS:[a-z0-9_]+]]: memref<16x3xi32>, %[[W:[a-z0-9_]+]]: memref<16x2xf32>
// CHECK:         %[[T:[a-z0-9_]+]] = memref.dim %[[SLOTS]], %{{.*}} : memref<16x3xi32>
// CHECK:         %[[Y:[a-z0-9_]+]] = memref.alloc() {{.*}} : memref<16x64xf32>
//   y = 0
// CHECK:         scf.for %[[I:[a-z0-9_]+]] = %{{.*}} to %[[T]] step
// CHECK:           scf.for %[[J:[a-z0-9_]+]] =
// CHECK:             memref.store %{{.*}}, %[[Y]][%[[I]], %[[J]]]
//   one loop over the tokens, the K + S slots unrolled
// CHECK:         scf.for %[[TOK:[a-z0-9_]+]] = %{{.*}} to %[[T]] step
// CHECK:           %[[P0:.*]] = memref.load %[[SLOTS]][%[[TOK]], %[[S0:[a-z0-9_]+]]] : memref<16x3xi32>
// CHECK:           %[[USED0:.*]] = arith.cmpi sge, %[[P0]], %{{.*}} : i32
// CHECK:           scf.if %[[USED0]] {
// CHECK:             %[[W0:.*]] = memref.load %[[W]][%[[TOK]], %[[S0]]] : memref<16x2xf32>
// CHECK:             %[[ROW0:.*]] = arith.index_cast %[[P0]] : i32 to index
// CHECK:             %[[WV0:.*]] = vector.broadcast %[[W0]] : f32 to vector<8xf32>
// CHECK:             scf.for %[[C:[a-z0-9_]+]] =
// CHECK-NEXT:          %[[SV:.*]] = vector.load %[[SORTED]][%[[ROW0]], %[[C]]] : memref<48x64xf32>, vector<8xf32>
// CHECK-NEXT:          %[[YV:.*]] = vector.load %[[Y]][%[[TOK]], %[[C]]] : memref<16x64xf32>, vector<8xf32>
// CHECK-NEXT:          %[[R:.*]] = vector.fma %[[SV]], %[[WV0]], %[[YV]] : vector<8xf32>
// CHECK-NEXT:          vector.store %[[R]], %[[Y]][%[[TOK]], %[[C]]] : memref<16x64xf32>, vector<8xf32>
// CHECK:           memref.load %[[SLOTS]][%[[TOK]], %{{.*}}] : memref<16x3xi32>
// CHECK:             memref.load %[[W]][%[[TOK]], %{{.*}}] : memref<16x2xf32>
// CHECK:             vector.fma
//   The shared slot: no weight load, weight 1.
// CHECK:           %[[P2:.*]] = memref.load %[[SLOTS]][%[[TOK]], %{{.*}}] : memref<16x3xi32>
// CHECK:           scf.if
// CHECK-NOT:         memref.load %[[W]]
// CHECK:             %[[ONE:.*]] = arith.constant 1.000000e+00 : f32
// CHECK:             vector.broadcast %[[ONE]] : f32 to vector<8xf32>
// CHECK:             vector.fma
// CHECK:         memref.copy %[[Y]], %{{.*}}
// token-chunk=32 (the CPU pipeline): both token loops become moe.parallel
// loops over ceil(T/32) items, each running tokens [32c, min(32c+32, T)).
// CHUNK-LABEL: func.func @combine(
// CHUNK:         %[[T:[a-z0-9_]+]] = memref.dim
// CHUNK:         %[[N0:.*]] = arith.ceildivui %[[T]], %{{.*}} : index
// CHUNK:         scf.for %[[C0:[a-z0-9_]+]] = %{{.*}} to %[[N0]]
// CHUNK-NEXT:      memref.alloca_scope
// CHUNK:             %[[B0:.*]] = arith.muli %[[C0]], %{{.*}} : index
// CHUNK:             %[[E0:.*]] = arith.minui %{{.*}}, %[[T]] : index
// CHUNK:             scf.for %{{.*}} = %[[B0]] to %[[E0]] step
// CHUNK:           } {moe.gpu.parallel}
// CHUNK:         } {moe.parallel}
// CHUNK:         %[[N1:.*]] = arith.ceildivui %[[T]], %{{.*}} : index
// CHUNK:         scf.for %{{.*}} = %{{.*}} to %[[N1]]
// CHUNK:             scf.for
// CHUNK:               vector.fma
// CHUNK:         } {moe.parallel}
func.func @combine(%sorted: tensor<48x64xf32>, %slot_rows: tensor<16x3xi32>, %w: tensor<16x2xf32>)
    -> tensor<16x64xf32> {
  %y = moe.combine %sorted, %slot_rows, %w
      : tensor<48x64xf32>, tensor<16x3xi32>, tensor<16x2xf32> -> tensor<16x64xf32>
  return %y : tensor<16x64xf32>
}

// Trivial terms over a base: ids 1 (const bank A row 0), 3 (copy), 4-5
// (const bank B rows 0-1); 0 and 2 are FFN experts (nothing to add here).
// The kind and row tables live in stack buffers filled at the entry.
// CHECK-LABEL: func.func @trivial(
// CHECK-SAME:      %[[X:[a-z0-9_]+]]: memref<?x64xf32>, %[[IDS:[a-z0-9_]+]]: memref<?x2xi32>, %[[W:[a-z0-9_]+]]: memref<?x2xf32>, %[[BASE:[a-z0-9_]+]]: memref<?x64xf32>, %[[CA:[a-z0-9_]+]]: memref<1x64xf32>, %[[CB:[a-z0-9_]+]]: memref<2x64xf32>
// CHECK:         %[[ROWS:[a-z0-9_]+]] = memref.alloca() {{.*}} : memref<6xi32>
// CHECK:         %[[RV0:.*]] = arith.constant 0 : i32
// CHECK-NEXT:    %[[RI0:.*]] = arith.constant 0 : index
// CHECK-NEXT:    memref.store %[[RV0]], %[[ROWS]][%[[RI0]]]
// CHECK-NEXT:    %[[RV1:.*]] = arith.constant 0 : i32
// CHECK-NEXT:    %[[RI1:.*]] = arith.constant 1 : index
// CHECK-NEXT:    memref.store %[[RV1]], %[[ROWS]][%[[RI1]]]
// CHECK-NEXT:    %[[RV2:.*]] = arith.constant 0 : i32
// CHECK-NEXT:    %[[RI2:.*]] = arith.constant 2 : index
// CHECK-NEXT:    memref.store %[[RV2]], %[[ROWS]][%[[RI2]]]
// CHECK-NEXT:    %[[RV3:.*]] = arith.constant 0 : i32
// CHECK-NEXT:    %[[RI3:.*]] = arith.constant 3 : index
// CHECK-NEXT:    memref.store %[[RV3]], %[[ROWS]][%[[RI3]]]
// CHECK-NEXT:    %[[RV4:.*]] = arith.constant 0 : i32
// CHECK-NEXT:    %[[RI4:.*]] = arith.constant 4 : index
// CHECK-NEXT:    memref.store %[[RV4]], %[[ROWS]][%[[RI4]]]
// CHECK-NEXT:    %[[RV5:.*]] = arith.constant 1 : i32
// CHECK-NEXT:    %[[RI5:.*]] = arith.constant 5 : index
// CHECK-NEXT:    memref.store %[[RV5]], %[[ROWS]][%[[RI5]]]
// CHECK:         %[[KINDS:[a-z0-9_]+]] = memref.alloca() {{.*}} : memref<6xi32>
// CHECK:         %[[KV0:.*]] = arith.constant 0 : i32
// CHECK-NEXT:    %[[KI0:.*]] = arith.constant 0 : index
// CHECK-NEXT:    memref.store %[[KV0]], %[[KINDS]][%[[KI0]]]
// CHECK-NEXT:    %[[KV1:.*]] = arith.constant 2 : i32
// CHECK-NEXT:    %[[KI1:.*]] = arith.constant 1 : index
// CHECK-NEXT:    memref.store %[[KV1]], %[[KINDS]][%[[KI1]]]
// CHECK-NEXT:    %[[KV2:.*]] = arith.constant 0 : i32
// CHECK-NEXT:    %[[KI2:.*]] = arith.constant 2 : index
// CHECK-NEXT:    memref.store %[[KV2]], %[[KINDS]][%[[KI2]]]
// CHECK-NEXT:    %[[KV3:.*]] = arith.constant 1 : i32
// CHECK-NEXT:    %[[KI3:.*]] = arith.constant 3 : index
// CHECK-NEXT:    memref.store %[[KV3]], %[[KINDS]][%[[KI3]]]
// CHECK-NEXT:    %[[KV4:.*]] = arith.constant 3 : i32
// CHECK-NEXT:    %[[KI4:.*]] = arith.constant 4 : index
// CHECK-NEXT:    memref.store %[[KV4]], %[[KINDS]][%[[KI4]]]
// CHECK-NEXT:    %[[KV5:.*]] = arith.constant 3 : i32
// CHECK-NEXT:    %[[KI5:.*]] = arith.constant 5 : index
// CHECK-NEXT:    memref.store %[[KV5]], %[[KINDS]][%[[KI5]]]
// CHECK:         %[[T:[a-z0-9_]+]] = memref.dim %[[X]], %{{.*}} : memref<?x64xf32>
// CHECK:         %[[Y:[a-z0-9_]+]] = memref.alloc(%[[T]]) {{.*}} : memref<?x64xf32>
// CHECK-NEXT:    memref.copy %[[BASE]], %[[Y]]
// CHECK:         scf.for %[[TOK:[a-z0-9_]+]] = %{{.*}} to %[[T]] step
// CHECK:           scf.for %[[S:[a-z0-9_]+]] =
// CHECK:             %[[ID:.*]] = memref.load %[[IDS]][%[[TOK]], %[[S]]] : memref<?x2xi32>
// CHECK:             %[[SAFE:.*]] = arith.select %{{.*}}, %[[ID]], %{{.*}} : i32
// CHECK:             %[[E:.*]] = arith.index_cast %[[SAFE]] : i32 to index
// CHECK:             scf.if
// CHECK:               %[[KIND:.*]] = memref.load %[[KINDS]][%[[E]]] : memref<6xi32>
// CHECK:               %[[WT:.*]] = memref.load %[[W]][%[[TOK]], %[[S]]] : memref<?x2xf32>
//   copy: y[t] += w * x[t]
// CHECK:               %[[ISCOPY:.*]] = arith.cmpi eq, %[[KIND]], %{{.*}} : i32
// CHECK:               scf.if %[[ISCOPY]] {
// CHECK:                 vector.broadcast %[[WT]]
// CHECK:                   vector.load %[[X]][%[[TOK]], %{{.*}}] : memref<?x64xf32>, vector<8xf32>
// CHECK:                   vector.fma
//   constant bank A (kind 2), then B (kind 3): y[t] += w * c[row of e]
// CHECK:               %[[ISA:.*]] = arith.cmpi eq, %[[KIND]], %{{.*}} : i32
// CHECK:               scf.if %[[ISA]] {
// CHECK:                 %[[RA:.*]] = memref.load %[[ROWS]][%[[E]]] : memref<6xi32>
// CHECK:                 %[[RAI:.*]] = arith.index_cast %[[RA]] : i32 to index
// CHECK:                   vector.load %[[CA]][%[[RAI]], %{{.*}}] : memref<1x64xf32>, vector<8xf32>
// CHECK:               %[[ISB:.*]] = arith.cmpi eq, %[[KIND]], %{{.*}} : i32
// CHECK:               scf.if %[[ISB]] {
// CHECK:                 %[[RB:.*]] = memref.load %[[ROWS]][%[[E]]] : memref<6xi32>
// CHECK:                 %[[RBI:.*]] = arith.index_cast %[[RB]] : i32 to index
// CHECK:                   vector.load %[[CB]][%[[RBI]], %{{.*}}] : memref<2x64xf32>, vector<8xf32>
// CHECK:         memref.copy %[[Y]], %{{.*}}
func.func @trivial(%x: tensor<?x64xf32>, %ids: tensor<?x2xi32>, %w: tensor<?x2xf32>,
                   %base: tensor<?x64xf32>, %ca: tensor<1x64xf32>, %cb: tensor<2x64xf32>)
    -> tensor<?x64xf32> {
  %y = moe.trivial_combine %x, %ids, %w base(%base : tensor<?x64xf32>)
      consts(%ca, %cb : tensor<1x64xf32>, tensor<2x64xf32>) {kinds = array<i32: 0, 2, 0, 1, 3, 3>}
      : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// Without a base (a layer of trivial experts only) the output starts at 0.
// CHECK-LABEL: func.func @trivial_no_base(
// CHECK-SAME:      %[[X:[a-z0-9_]+]]: memref<16x64xf32>
// CHECK:         %[[Y:[a-z0-9_]+]] = memref.alloc() {{.*}} : memref<16x64xf32>
// CHECK-NOT:     memref.copy
// CHECK:         scf.for %[[I:[a-z0-9_]+]] =
// CHECK:           scf.for %[[J:[a-z0-9_]+]] =
// CHECK:             %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:        memref.store %[[ZERO]], %[[Y]][%[[I]], %[[J]]]
// CHECK:         scf.for
// CHECK:               vector.load %[[X]]
// CHECK:         memref.copy %[[Y]], %{{.*}}
func.func @trivial_no_base(%x: tensor<16x64xf32>, %ids: tensor<16x2xi32>, %w: tensor<16x2xf32>)
    -> tensor<16x64xf32> {
  %y = moe.trivial_combine %x, %ids, %w {kinds = array<i32: 0, 1>}
      : tensor<16x64xf32>, tensor<16x2xi32>, tensor<16x2xf32> -> tensor<16x64xf32>
  return %y : tensor<16x64xf32>
}

// Remap through a stack table; ids outside [-1, 4) record an error and are
// dropped; a slot whose new id is -1 gets weight 0.
// CHECK-LABEL: func.func @remap(
// CHECK-SAME:      %[[IDS:[a-z0-9_]+]]: memref<16x2xi32>, %[[W:[a-z0-9_]+]]: memref<16x2xf32>
// CHECK:         %[[MAP:[a-z0-9_]+]] = memref.alloca() {{.*}} : memref<4xi32>
// CHECK:         %[[MV0:.*]] = arith.constant 0 : i32
// CHECK-NEXT:    %[[MI0:.*]] = arith.constant 0 : index
// CHECK-NEXT:    memref.store %[[MV0]], %[[MAP]][%[[MI0]]]
// CHECK-NEXT:    %[[MV1:.*]] = arith.constant -1 : i32
// CHECK-NEXT:    %[[MI1:.*]] = arith.constant 1 : index
// CHECK-NEXT:    memref.store %[[MV1]], %[[MAP]][%[[MI1]]]
// CHECK-NEXT:    %[[MV2:.*]] = arith.constant 1 : i32
// CHECK-NEXT:    %[[MI2:.*]] = arith.constant 2 : index
// CHECK-NEXT:    memref.store %[[MV2]], %[[MAP]][%[[MI2]]]
// CHECK-NEXT:    %[[MV3:.*]] = arith.constant -1 : i32
// CHECK-NEXT:    %[[MI3:.*]] = arith.constant 3 : index
// CHECK-NEXT:    memref.store %[[MV3]], %[[MAP]][%[[MI3]]]
// CHECK:         %[[STATUS:[a-z0-9_]+]] = memref.alloca() {moe.status}
// CHECK:         %[[NEW_IDS:[a-z0-9_]+]] = memref.alloc() {{.*}} : memref<16x2xi32>
// CHECK:         %[[NEW_W:[a-z0-9_]+]] = memref.alloc() {{.*}} : memref<16x2xf32>
// CHECK:         scf.for %[[TOK:[a-z0-9_]+]] =
// CHECK:           scf.for %[[S:[a-z0-9_]+]] =
// CHECK:             %[[ID:.*]] = memref.load %[[IDS]][%[[TOK]], %[[S]]]
// CHECK:             %[[VALID:.*]] = arith.andi
// CHECK:             %[[BAD:.*]] = arith.ori
// CHECK:             scf.if %[[BAD]] {
// CHECK:               memref.store %{{.*}}, %[[STATUS]][]
// CHECK:             %[[SAFE:.*]] = arith.select %[[VALID]], %[[ID]], %{{.*}} : i32
// CHECK:             %[[E:.*]] = arith.index_cast %[[SAFE]] : i32 to index
// CHECK:             %[[MAPPED:.*]] = memref.load %[[MAP]][%[[E]]] : memref<4xi32>
// CHECK:             %[[NEW:.*]] = arith.select %[[VALID]], %[[MAPPED]], %{{.*}} : i32
// CHECK:             %[[KEEP:.*]] = arith.cmpi sge, %[[NEW]], %{{.*}} : i32
// CHECK:             %[[OLD_W:.*]] = memref.load %[[W]][%[[TOK]], %[[S]]]
// CHECK:             %[[NEW_WV:.*]] = arith.select %[[KEEP]], %[[OLD_W]], %{{.*}} : f32
// CHECK:             memref.store %[[NEW]], %[[NEW_IDS]][%[[TOK]], %[[S]]]
// CHECK:             memref.store %[[NEW_WV]], %[[NEW_W]][%[[TOK]], %[[S]]]
func.func @remap(%ids: tensor<16x2xi32>, %w: tensor<16x2xf32>)
    -> (tensor<16x2xi32>, tensor<16x2xf32>) {
  %i, %v = moe.remap_experts %ids, %w {map = array<i64: 0, -1, 1, -1>}
      : tensor<16x2xi32>, tensor<16x2xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
  return %i, %v : tensor<16x2xi32>, tensor<16x2xf32>
}

// NONE-NOT: = moe.

// STATS:      MoeLowerCombine
// STATS-NEXT:   (S) 4 combines-lowered
