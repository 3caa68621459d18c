// RUN: moe-opt %s --moe-call-slots "--moe-lower-grouped-experts=vector-width=8 row-tile=4 pack-min-rows=0" %bufferize | FileCheck %s
// RUN: moe-opt %s --moe-call-slots "--moe-lower-grouped-experts=row-tile=2 vector-width=4 block-bytes=4096 slice-bytes=64 pack-min-rows=0" %bufferize | FileCheck %s --check-prefix=TILE
// RUN: moe-opt %s --moe-call-slots "--moe-lower-grouped-experts=vector-width=8 row-tile=4 parallel=false pack-min-rows=0" %bufferize | FileCheck %s --check-prefix=SEQ
// RUN: moe-opt %s --moe-call-slots "--moe-lower-grouped-experts=vector-width=8 row-tile=4" %bufferize | FileCheck %s --check-prefix=PACK
// RUN: moe-opt %s --moe-call-slots "--moe-lower-grouped-experts=vector-width=8 row-tile=4 pack-slice-bytes=64" %bufferize | FileCheck %s --check-prefix=SLICED
// RUN: moe-opt %s --moe-call-slots "--moe-lower-grouped-experts=vector-width=4 row-tile=4 pack-tiles=1" %bufferize | FileCheck %s --check-prefix=PACKTMP
// RUN: moe-opt %s --moe-call-slots "--moe-lower-grouped-experts=vector-width=16 row-tile=8" %bufferize | FileCheck %s --check-prefix=WIDE
// RUN: %if moe-pass-stats %{ moe-opt %s --moe-call-slots "--moe-lower-grouped-experts=vector-width=8 row-tile=4" -mlir-pass-statistics -o /dev/null 2>&1 | FileCheck %s --check-prefix=STATS %}

// moe-lower-grouped-experts on FFN experts: two phases of work items, each
// a (expert, output block) pair, so a skewed routing still splits evenly
// (each loop marked `moe.parallel` for the thread pool unless
// parallel=false). Phase A runs all of an expert's rows (in tiles of
// `row-tile` rows, here 4, then remainder tiles of 2 and 1) against one
// block of w1/w3 rows, each loaded weight vector used by the whole tile,
// with silu(w1 . x) * (w3 . x) as the epilogue into a [P, I] intermediate;
// phase B runs the down projection over blocks of w2 rows, reading the
// intermediate in K slices. Experts are global ids n + first_expert.
// That is the "dot" kernel (pack-min-rows=0, and any group with fewer
// rows than pack-min-rows, i.e. decode); the PACK checks below cover the
// packed outer-product kernel that groups with enough rows take.

// Bank of 3 SwiGLU experts, global ids 5..7 (first_expert = 5).
//   Packed: a group with >= pack-min-rows rows (width/2 = 4 by default) gets
//   ceil(rows / 8) panels, counted into tileOff[g]; x is gathered once into
//   [panels, H, 8] (lane = sorted row, padding lanes zero), in parallel.
// PACK-LABEL: func.func @grouped_swiglu(
// PACK-SAME:      %[[X:[a-z0-9_]+]]: memref<16x64xf32>, %[[ROWS:[a-z0-9_]+]]: memref<32xi32>, %[[OFF:[a-z0-9_]+]]: memref<9xi32>, %[[W1:[a-z0-9_]+]]: memref<3x128x64xf32>, %[[W3:[a-z0-9_]+]]: memref<3x128x64xf32>, %[[W2:[a-z0-9_]+]]: memref<3x64x128xf32>
// PACK:         %[[TOFF:[a-z0-9_]+]] = memref.alloc() {{.*}} : memref<4xindex>
// PACK:         scf.for %[[G0:[a-z0-9_]+]] =
// PACK:           %[[N:.*]] = arith.subi
// PACK-NEXT:      %[[MIN:.*]] = arith.constant 4 : index
// PACK-NEXT:      %[[BIG:.*]] = arith.cmpi uge, %[[N]], %[[MIN]] : index
// PACK-NEXT:      %[[W:.*]] = arith.constant 8 : index
// PACK-NEXT:      %[[NP:.*]] = arith.ceildivui %[[N]], %[[W]] : index
// PACK:           arith.select %[[BIG]], %[[NP]], %{{.*}} : index
// PACK:           memref.store %{{.*}}, %[[TOFF]][%{{.*}}] : memref<4xindex>
// PACK-NEXT:    }
// PACK:         %[[TOTAL:.*]] = memref.load %[[TOFF]][%{{.*}}] : memref<4xindex>
//   Padded by one register tile of panels (2): a group's last panel tile
//   may read past its panels; those lanes are computed, never stored.
// PACK-NEXT:    %[[PAD:.*]] = arith.constant 2 : index
// PACK-NEXT:    %[[NPAN:.*]] = arith.addi %[[TOTAL]], %[[PAD]] : index
// PACK-NEXT:    %[[PX:[a-z0-9_]+]] = memref.alloc(%[[NPAN]]) {{.*}} : memref<?x64x8xf32>
// PACK-NEXT:    %[[PMID:[a-z0-9_]+]] = memref.alloc(%[[NPAN]]) {{.*}} : memref<?x128x8xf32>
//   Packing: per panel, each lane's token (its row clamped to the group's
//   last, the lane zeroed past it), then 8 x 8 blocks: 8 row loads,
//   3 butterfly stages of 8 shuffles (the transpose), 8 k-vector stores.
// PACK:         scf.for
// PACK:             %[[IN0:.*]] = arith.cmpi ult, %{{.*}}, %[[GEND:[a-z0-9_]+]] : index
// PACK-NEXT:        %[[ROW0:.*]] = arith.minui %{{.*}}, %{{.*}} : index
// PACK-NEXT:        %[[TOK_I:.*]] = memref.load %[[ROWS]][%[[ROW0]]] : memref<32xi32>
// PACK-NEXT:        %[[TOK:.*]] = arith.index_cast %[[TOK_I]] : i32 to index
// PACK:             scf.for %[[K0:[a-z0-9_]+]] = %{{.*}} to %c64{{.*}} step %c8
// PACK-NEXT:          %[[XV:.*]] = vector.load %[[X]][%[[TOK]], %[[K0]]] : memref<16x64xf32>, vector<8xf32>
// PACK-NEXT:          %[[XZ:.*]] = arith.select %[[IN0]], %[[XV]], %{{.*}} : vector<8xf32>
// PACK:               %[[S0:.*]] = vector.shuffle %[[XZ]], %{{.*}} [0, 1, 2, 3, 8, 9, 10, 11] : vector<8xf32>, vector<8xf32>
// PACK-COUNT-7:       vector.shuffle {{.*}} [{{0, 1, 2, 3, 8, 9, 10, 11|4, 5, 6, 7, 12, 13, 14, 15}}]
// PACK-COUNT-8:       vector.shuffle {{.*}} [{{0, 1, 8, 9, 4, 5, 12, 13|2, 3, 10, 11, 6, 7, 14, 15}}]
// PACK-COUNT-8:       vector.shuffle {{.*}} [{{0, 8, 2, 10, 4, 12, 6, 14|1, 9, 3, 11, 5, 13, 7, 15}}]
// PACK-COUNT-8:       vector.store %{{.*}}, %[[PX]][%{{.*}}, %{{.*}}, %{{.*}}] : memref<?x64x8xf32>, vector<8xf32>
// PACK-NOT:           memref.store
// PACK:         } {moe.parallel}
//   Phase A, packed groups: 2 panels x 3 rows of w1 and of w3 (12
//   accumulators); each K step loads two panel vectors and broadcasts one
//   weight per row, one FMA per (row, panel). Once per cache line of k, on
//   the first panel tile (PT0), the next row tile's lines (first row
//   ROW0 + 3, clamped to 125 so its 3 rows exist) are prefetched into L2.
// PACK:         scf.for
// PACK:           scf.if
// PACK:             scf.for
// PACK:               scf.for %[[PT:[a-z0-9_]+]] = %[[PT0:[a-z0-9_]+]] to
// PACK:               %[[FIRSTPT:.*]] = arith.cmpi eq, %[[PT]], %[[PT0]] : index
// PACK:               %[[NEXT:.*]] = arith.addi %[[ROW0:[a-z0-9_]+]], %c3{{.*}} : index
// PACK:               %[[NEXTB:.*]] = arith.minui %[[NEXT]], %c125{{.*}} : index
// PACK:               %{{.*}}:12 = scf.for %[[K:[a-z0-9_]+]] = {{.*}} iter_args(
// PACK:                 %[[XA:.*]] = vector.load %[[PX]][%{{.*}}, %[[K]], %{{.*}}] : memref<?x64x8xf32>, vector<8xf32>
// PACK-NEXT:            %[[XB:.*]] = vector.load %[[PX]][%{{.*}}, %[[K]], %{{.*}}] : memref<?x64x8xf32>, vector<8xf32>
// PACK-NEXT:            %[[C15:.*]] = arith.constant 15 : index
// PACK-NEXT:            %[[KLOW:.*]] = arith.andi %[[K]], %[[C15]] : index
// PACK-NEXT:            %[[ATLINE:.*]] = arith.cmpi eq, %[[KLOW]], %{{.*}} : index
// PACK-NEXT:            %[[PF:.*]] = arith.andi %[[ATLINE]], %[[FIRSTPT]] : i1
// PACK-NEXT:            scf.if %[[PF]] {
// PACK:                   %[[R0:.*]] = arith.addi %[[NEXTB]], %c0{{.*}} : index
// PACK-NEXT:              memref.prefetch %[[W1]][%{{.*}}, %[[R0]], %[[K]]], read, locality<2>, data : memref<3x128x64xf32>
// PACK-COUNT-5:           memref.prefetch
// PACK-NEXT:            }
// PACK-NEXT:            %[[A:.*]] = memref.load %[[W1]][%{{.*}}, %[[ROW0]], %[[K]]] : memref<3x128x64xf32>
// PACK-NEXT:            %[[AV:.*]] = vector.broadcast %[[A]] : f32 to vector<8xf32>
// PACK-NEXT:            vector.fma %[[AV]], %[[XA]], %{{.*}} : vector<8xf32>
// PACK-NEXT:            vector.fma %[[AV]], %[[XB]], %{{.*}} : vector<8xf32>
// PACK:                 memref.load %[[W3]][%{{.*}}, %{{.*}}, %[[K]]] : memref<3x128x64xf32>
//   The SwiGLU epilogue on whole vectors, stored as phase B's panels.
// PACK:               math.exp %{{.*}} : vector<8xf32>
// PACK:               vector.store %{{.*}}, %[[PMID]][%{{.*}}, %{{.*}}, %{{.*}}] : memref<?x128x8xf32>, vector<8xf32>
//   Phase A, groups below pack-min-rows: n < row-tile / 2 rows go one row at
//   a time (1-row dot tiles, each row's results stored to mid[row]), else
//   one 4-row tile body with the last rows clamped.
// PACK:           } else {
// PACK-NEXT:        %[[N:.*]] = arith.subi %[[END:[a-z0-9_]+]], %[[START:[a-z0-9_]+]] : index
// PACK-NEXT:        %[[C2:.*]] = arith.constant 2 : index
// PACK-NEXT:        %[[N2:.*]] = arith.muli %[[N]], %[[C2]] : index
// PACK-NEXT:        %[[C4:.*]] = arith.constant 4 : index
// PACK-NEXT:        %[[FEW:.*]] = arith.cmpi ult, %[[N2]], %[[C4]] : index
// PACK-NEXT:        scf.if %[[FEW]] {
// PACK-NEXT:          %[[C1:.*]] = arith.constant 1 : index
// PACK-NEXT:          scf.for %[[ROW:[a-z0-9_]+]] = %[[START]] to %[[END]] step %[[C1]] {
// PACK:                   memref.store %{{.*}}, %[[MID:[a-z0-9_]+]][%[[ROW]], %{{.*}}] : memref<?x128xf32>
// PACK:               } else {
// PACK:                 scf.for %{{.*}} = %[[START]] to %[[END]] step %c4
// PACK:         } {moe.parallel}
//   Phase B, packed: the w2 outer products over the mid panels (6 w2 rows
//   x 2 panels), then per panel the 6 accumulators (lane = row p) padded to
//   8 and transposed (3 stages of 8 shuffles): row p's 6 columns are one
//   masked store to out[p, first column], for the rows inside the group.
// PACK:         scf.for
// PACK:           scf.if
// PACK-NOT:         memref.alloca
// PACK:               %[[B:.*]]:12 = scf.for {{.*}} iter_args(
// PACK:                   vector.load %[[PMID]]
// PACK:                   memref.load %[[W2]]
// PACK:                   vector.fma
// PACK:               %[[MASK:.*]] = vector.from_elements %true{{.*}}, %true{{.*}}, %true{{.*}}, %true{{.*}}, %true{{.*}}, %true{{.*}}, %false{{.*}}, %false{{.*}} : vector<8xi1>
// PACK:               %[[T0:.*]] = vector.shuffle %[[B]]#0, %[[B]]#8 [0, 1, 2, 3, 8, 9, 10, 11]
// PACK-COUNT-23:      vector.shuffle
// PACK:               %[[IN:.*]] = arith.cmpi ult, %[[P:.*]], %{{.*}} : index
// PACK-NEXT:          scf.if %[[IN]] {
// PACK-NEXT:            vector.maskedstore %[[OUT:[a-z0-9_]+]][%[[P]], %{{.*}}], %[[MASK]], %{{.*}} : memref<32x64xf32>, vector<8xi1>, vector<8xf32>
// PACK-COUNT-7:         vector.maskedstore %[[OUT]]
// PACK:         } {moe.parallel}
//   With 4 lanes and 12-row tiles (pack-tiles=1) the tile does not
//   transpose: each valid lane is copied from a stack tile (one per
//   parallel item) to its sorted row.
//   16 lanes (24 accumulators): phase A has two packed bodies, 3 panels x
//   (4 + 4) rows for groups whose padded panel count (x 5) is below the
//   2-panel one's (x 6), else 2 panels x (6 + 6) rows.
// WIDE-LABEL: func.func @grouped_swiglu(
// WIDE:         } {moe.parallel}
// WIDE:             %[[N:.*]] = arith.subi %[[TE:[a-z0-9_]+]], %[[TB:[a-z0-9_]+]] : index
// WIDE-NEXT:        %[[C3:.*]] = arith.constant 3 : index
// WIDE-NEXT:        %[[T3:.*]] = arith.ceildivui %[[N]], %[[C3]] : index
// WIDE-NEXT:        %[[C15:.*]] = arith.constant 15 : index
// WIDE-NEXT:        %[[P3:.*]] = arith.muli %[[T3]], %[[C15]] : index
// WIDE-NEXT:        %[[C2:.*]] = arith.constant 2 : index
// WIDE-NEXT:        %[[T2:.*]] = arith.ceildivui %[[N]], %[[C2]] : index
// WIDE-NEXT:        %[[C12:.*]] = arith.constant 12 : index
// WIDE-NEXT:        %[[P2:.*]] = arith.muli %[[T2]], %[[C12]] : index
// WIDE-NEXT:        %[[USEWIDE:.*]] = arith.cmpi ult, %[[P3]], %[[P2]] : index
// WIDE-NEXT:        scf.if %[[USEWIDE]] {
// WIDE:               scf.for %{{.*}} step %c4
// WIDE:                 scf.for %{{.*}} = %[[TB]] to %[[TE]] step %c3
// WIDE:                   %{{.*}}:24 = scf.for
// WIDE-COUNT-3:             vector.load %{{.*}} : memref<?x64x16xf32>, vector<16xf32>
// WIDE:             } else {
// WIDE:               scf.for %{{.*}} step %c6
// WIDE:                 scf.for %{{.*}} = %[[TB]] to %[[TE]] step %c2
// WIDE:                   %{{.*}}:24 = scf.for
// WIDE-COUNT-2:             vector.load %{{.*}} : memref<?x64x16xf32>, vector<16xf32>
// WIDE:         } {moe.parallel}
// PACKTMP-LABEL: func.func @grouped_swiglu(
// PACKTMP:         } {moe.parallel}
// PACKTMP:         } {moe.parallel}
// PACKTMP:           scf.if
// PACKTMP:             memref.alloca_scope {
// PACKTMP:               %[[TMP:.*]] = memref.alloca() {{.*}} : memref<12x4xf32>
// PACKTMP:                   vector.fma
// PACKTMP:                 vector.store %{{.*}}, %[[TMP]]
// PACKTMP:                   memref.load %[[TMP]]
// PACKTMP:                   memref.store %{{.*}}, %{{.*}}[%{{.*}}, %{{.*}}] : memref<32x64xf32>
// PACKTMP:         } {moe.parallel}
//   K-sliced (pack-slice-bytes=64, 2 rows x 8 K per slice): the partial sums
//   live in panel-shaped scratch; only the last slice writes out.
// SLICED-LABEL: func.func @grouped_swiglu(
// SLICED:         %[[PGATE:[a-z0-9_]+]] = memref.alloc(%{{.*}}) {{.*}} : memref<?x128x8xf32>
// SLICED:         %[[PACC:[a-z0-9_]+]] = memref.alloc(%{{.*}}) {{.*}} : memref<?x64x8xf32>
// SLICED:         scf.if %{{.*}} {
// SLICED:           vector.load %[[PACC]]
// CHECK-LABEL: func.func @grouped_swiglu(
// CHECK-SAME:      %[[X:[a-z0-9_]+]]: memref<16x64xf32>, %[[ROWS:[a-z0-9_]+]]: memref<32xi32>, %[[OFF:[a-z0-9_]+]]: memref<9xi32>, %[[W1:[a-z0-9_]+]]: memref<3x128x64xf32>, %[[W3:[a-z0-9_]+]]: memref<3x128x64xf32>, %[[W2:[a-z0-9_]+]]: memref<3x64x128xf32>
//   tensor.empty (the sorted accumulator) becomes the output buffer; the
//   intermediate has one row per sorted row.
// CHECK:         %[[OUT:[a-z0-9_]+]] = memref.alloc() {{.*}} : memref<32x64xf32>
// CHECK:         %[[P:[a-z0-9_]+]] = memref.dim %[[ROWS]], %{{.*}} : memref<32xi32>
// CHECK-NEXT:    %[[MID:[a-z0-9_]+]] = memref.alloc(%[[P]]) {{.*}} : memref<?x128xf32>
// CHECK-NOT:     memref.alloc
// CHECK-NOT:     tensor.empty
//   Phase A: 3 experts x 1 block of I (the 128 rows of w1/w3 fit 256 KiB).
// CHECK:         scf.for %[[ITEM:[a-z0-9_]+]] = %{{.*}} to %[[NA:[a-z0-9_]+]] step
// CHECK-NEXT:      %[[BLOCKS:.*]] = arith.constant 1 : index
// CHECK-NEXT:      %[[G:.*]] = arith.divui %[[ITEM]], %[[BLOCKS]] : index
// CHECK-NEXT:      arith.constant 1 : index
// CHECK-NEXT:      %[[BLK:.*]] = arith.remui %[[ITEM]], %{{.*}} : index
// CHECK-NEXT:      %[[FIRST:.*]] = arith.constant 5 : index
// CHECK-NEXT:      %[[ID:.*]] = arith.addi %[[G]], %[[FIRST]] : index
// CHECK-NEXT:      %[[START_I:.*]] = memref.load %[[OFF]][%[[ID]]] : memref<9xi32>
// CHECK-NEXT:      %[[START:.*]] = arith.index_cast %[[START_I]] : i32 to index
// CHECK:           %[[ID1:.*]] = arith.addi %[[ID]], %{{.*}} : index
// CHECK-NEXT:      %[[END_I:.*]] = memref.load %[[OFF]][%[[ID1]]] : memref<9xi32>
// CHECK-NEXT:      %[[END:.*]] = arith.index_cast %[[END_I]] : i32 to index
//   Full tiles of 4 rows, each row's token through the sorted order.
// CHECK:           scf.for %[[P0:[a-z0-9_]+]] = %[[START]] to %{{.*}} step
// CHECK-COUNT-4:     memref.load %[[ROWS]][%{{.*}}] : memref<32xi32>
// CHECK:             scf.for %[[I0:[a-z0-9_]+]] =
// CHECK-NEXT:          arith.constant 0 : index
// CHECK-NEXT:          %[[I:.*]] = arith.addi %[[I0]], %{{.*}} : index
//   The two weight vectors of row I of expert G, each used by all 4 rows.
// CHECK:               scf.for {{.*}} -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>) {
// CHECK-NEXT:            %[[V1:.*]] = vector.load %[[W1]][%[[G]], %[[I]], %{{.*}}] : memref<3x128x64xf32>, vector<8xf32>
// CHECK-NEXT:            %[[V3:.*]] = vector.load %[[W3]][%[[G]], %[[I]], %{{.*}}] : memref<3x128x64xf32>, vector<8xf32>
// CHECK-NEXT:            %[[X0:.*]] = vector.load %[[X]][%{{.*}}] : memref<16x64xf32>, vector<8xf32>
// CHECK-NEXT:            vector.fma %[[X0]], %[[V1]], %{{.*}} : vector<8xf32>
// CHECK-NEXT:            vector.fma %[[X0]], %[[V3]], %{{.*}} : vector<8xf32>
// CHECK-COUNT-3:         vector.load %[[X]]
// CHECK:                 scf.yield
//   Epilogue, per tile row: silu(w1 . x) * (w3 . x) into MID[p, i].
// CHECK-COUNT-8:       vector.reduction <add>, %{{.*}} fastmath<reassoc>
// CHECK:               %[[NEG:.*]] = arith.negf %[[UP:.*]] : f32
// CHECK-NEXT:          %[[EXP:.*]] = math.exp %[[NEG]] : f32
// CHECK:               %[[DEN:.*]] = arith.addf %{{.*}}, %[[EXP]] : f32
// CHECK-NEXT:          %[[SILU:.*]] = arith.divf %[[UP]], %[[DEN]] : f32
// CHECK-NEXT:          %[[GATED:.*]] = arith.mulf %[[SILU]], %{{.*}} : f32
// CHECK-NEXT:          memref.store %[[GATED]], %[[MID]][%{{.*}}, %[[I]]] : memref<?x128xf32>
// CHECK-COUNT-3:       math.exp
//   A remainder tile of 2 rows (two columns at a time: 8 accumulators) ...
// CHECK:           arith.cmpi uge, %{{.*}}, %{{.*}} : index
// CHECK-NEXT:      scf.if
// CHECK-COUNT-2:     memref.load %[[ROWS]]
// CHECK:               scf.for {{.*}} -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>) {
//   ... and one of 1 row.
// CHECK:           scf.if
// CHECK:             memref.load %[[ROWS]]
// CHECK-NOT:         memref.load %[[ROWS]]
// CHECK:               scf.for {{.*}} -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>) {
// CHECK:         } {moe.parallel}
// CHECK-NOT:     vector.load %[[W1]]
//   Phase B: 3 experts x 1 block of H; tiles of 4 rows x 3 rows of w2
//   (12 accumulators), one K slice (I = 128), stored into OUT.
// CHECK:         scf.for %[[ITEMB:[a-z0-9_]+]] =
// CHECK:           %[[GB:.*]] = arith.divui %[[ITEMB]], %{{.*}} : index
// CHECK:           scf.for
// CHECK:             scf.for %[[C0:[a-z0-9_]+]] =
// CHECK-NEXT:          arith.constant 0 : index
// CHECK-NEXT:          %[[C:.*]] = arith.addi %[[C0]], %{{.*}} : index
// CHECK:               scf.for {{.*}} -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>) {
// CHECK:                 vector.load %[[W2]][%[[GB]], %[[C]], %{{.*}}] : memref<3x64x128xf32>, vector<8xf32>
// CHECK-COUNT-2:         vector.load %[[W2]][%[[GB]], %{{.*}}, %{{.*}}] : memref<3x64x128xf32>, vector<8xf32>
// CHECK:                 vector.load %[[MID]][%{{.*}}, %{{.*}}] : memref<?x128xf32>, vector<8xf32>
// CHECK-NOT:             math.exp
// CHECK-COUNT-12:      vector.reduction <add>
// CHECK-NEXT:          memref.store %{{.*}}, %[[OUT]][%{{.*}}, %[[C]]] : memref<32x64xf32>
// CHECK:         } {moe.parallel}
// CHECK:    memref.copy %[[OUT]], %{{.*}}

// row-tile=2 vector-width=4 block-bytes=4096 slice-bytes=64: tiles of 2
// rows x 3 columns of {w1, w3} (12 accumulators), 4-lane vectors; blocks of
// 6 rows of w1/w3 (at most 4 KiB, a multiple of 3: 22 blocks per expert, 66
// items); K slices of 8 elements (64 bytes / (4 bytes x 2 rows)): the first
// slice stores, the others add to what is there.
// TILE-LABEL: func.func @grouped_swiglu(
// TILE:         %[[OUT:[a-z0-9_]+]] = memref.alloc() {{.*}} : memref<32x64xf32>
// TILE:         %[[ITEMS:.*]] = arith.constant 66 : index
// TILE:         scf.for %{{.*}} = %{{.*}} to %[[ITEMS]] step
// TILE-NEXT:      %[[BLOCKS:.*]] = arith.constant 22 : index
// TILE-NEXT:      arith.divui %{{.*}}, %[[BLOCKS]] : index
// TILE:             %[[LANES:.*]] = arith.constant 4 : index
// TILE-NEXT:        scf.for %{{.*}} = %{{.*}} to %{{.*}} step %[[LANES]] iter_args({{.*}}) -> (vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>) {
// TILE:             math.exp
// TILE:         } {moe.parallel}
//   Phase B: one loop over the 16 K slices; slice 0 stores its sums, the
//   others add to what is there (a select on s == 0: one unrolled body).
// TILE:             %[[SLICES:.*]] = arith.constant 16 : index
// TILE:             scf.for %[[S:.*]] = %{{.*}} to %[[SLICES]] step
// TILE:               %[[FIRST:.*]] = arith.cmpi eq, %[[S]]
// TILE:                   %[[OLD:.*]] = memref.load %[[OUT]]
// TILE-NEXT:              %[[NEW:.*]] = arith.addf %[[OLD]], %{{.*}} : f32
// TILE-NEXT:              arith.select %[[FIRST]], %{{.*}}, %[[NEW]] : f32
// TILE:                   memref.store %{{.*}}, %[[OUT]]
// TILE:         } {moe.parallel}
// TILE-NOT:     vector<8xf32>
// TILE-LABEL: func.func @grouped_lora(

// parallel=false: the same work items, not marked.
// SEQ-LABEL: func.func @grouped_swiglu(
// SEQ:         memref.alloc({{.*}}) {{.*}} : memref<?x128xf32>
// SEQ-COUNT-2: scf.for %{{.*}} = %{{.*}} to %{{.*}} step
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
// CHECK-SAME:      %[[X:[a-z0-9_]+]]: memref<16x64xf32>, %{{.*}}: memref<32xi32>, %{{.*}}: memref<4xi32>, %[[W1:[a-z0-9_]+]]: memref<32x64xf32>, %[[W2:[a-z0-9_]+]]: memref<64x32xf32>, %[[A1:[a-z0-9_]+]]: memref<3x8x64xf32>, %[[B1:[a-z0-9_]+]]: memref<3x32x8xf32>, %[[A2:[a-z0-9_]+]]: memref<3x8x32xf32>, %[[B2:[a-z0-9_]+]]: memref<3x64x8xf32>, %[[ACC_IN:[a-z0-9_]+]]: memref<32x64xf32>
// CHECK:         %[[TOFF:[a-z0-9_]+]] = memref.alloca() {{.*}} : memref<4xindex>
//   The accumulator, an argument here, is written into a copy: the caller's
//   buffer keeps its value.
// CHECK:         %[[ACC:[a-z0-9_]+]] = memref.alloc() {{.*}} : memref<32x64xf32>
// CHECK-NEXT:    memref.copy %[[ACC_IN]], %[[ACC]]
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
// CHECK:         memref.copy %[[ACC]], %{{.*}}
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

// A dense moe.ffn (ReLU) is the same kernel over the tokens 0..T directly
// (one group, unprefixed weights): no offsets or row indirection.
// CHECK-LABEL: func.func @dense(
// CHECK-SAME:      %[[X:[a-z0-9_]+]]: memref<?x64xf32>, %[[W1:[a-z0-9_]+]]: memref<96x64xf32>, %[[W2:[a-z0-9_]+]]: memref<64x96xf32>
// CHECK-NOT:     : memref<{{.*}}xi32>
// CHECK:         %[[T:[a-z0-9_]+]] = memref.dim %[[X]], %{{.*}} : memref<?x64xf32>
// CHECK:         %[[OUT:[a-z0-9_]+]] = memref.alloc(%[[T]]) {{.*}} : memref<?x64xf32>
// CHECK:         %[[MID:[a-z0-9_]+]] = memref.alloc(%[[T]]) {{.*}} : memref<?x96xf32>
// CHECK:         scf.for %[[ITEM:[a-z0-9_]+]] =
// CHECK:           scf.for %[[P0:[a-z0-9_]+]] =
// CHECK:             %[[R0:.*]] = arith.addi %[[P0]], %{{.*}} : index
// CHECK:               vector.load %[[W1]][%{{.*}}, %{{.*}}] : memref<96x64xf32>
// CHECK:               vector.load %[[X]][%[[R0]], %{{.*}}]
// CHECK:             arith.maximumf
// CHECK:         } {moe.parallel}
// CHECK:               vector.load %[[W2]]
// CHECK:         } {moe.parallel}
// CHECK-NOT:     : memref<{{.*}}xi32>
// CHECK-NOT:     math.exp
// CHECK:         memref.copy %[[OUT]], %{{.*}}
func.func @dense(%x: tensor<?x64xf32>, %w1: tensor<96x64xf32>, %w2: tensor<64x96xf32>)
    -> tensor<?x64xf32> {
  %y = moe.ffn relu %x w1(%w1 : tensor<96x64xf32>) w2(%w2 : tensor<64x96xf32>)
      : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// STATS:      MoeLowerGroupedExperts
// STATS-NEXT:   (S) 1 dense-ffns-lowered
// STATS-NEXT:   (S) 2 grouped-ops-lowered
