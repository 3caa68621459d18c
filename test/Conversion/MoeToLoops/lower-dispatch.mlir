// RUN: moe-opt %s --moe-call-slots --moe-lower-dispatch %bufferize | FileCheck %s
// RUN: moe-opt %s --moe-call-slots --moe-lower-dispatch %bufferize | FileCheck %s --check-prefix=NONE
// RUN: %if moe-pass-stats %{ moe-opt %s --moe-call-slots --moe-lower-dispatch -mlir-pass-statistics -o /dev/null 2>&1 | FileCheck %s --check-prefix=STATS %}

// moe-lower-dispatch emits a counting sort, O(T * (K + S) + E + S): per-
// expert counts in a stack buffer [E + S] (one pass over the slots), an
// exclusive prefix sum writing the offsets and turning the counts into
// cursors, and a stable scatter (tokens ascending within an expert) writing
// rows and slot_rows. No loop runs over the experts times the tokens.

// Routed only: E = 8, K = 2, T = 16.
// CHECK-LABEL: func.func @routed(
// CHECK-SAME:      %[[IDS:[a-z0-9_]+]]: memref<16x2xi32>
// CHECK:         %[[CURSOR:[a-z0-9_]+]] = memref.alloca() {{.*}} : memref<8xi32>
// CHECK:         %[[T:[a-z0-9_]+]] = memref.dim %[[IDS]], %{{.*}} : memref<16x2xi32>
// CHECK:         %[[OFF:[a-z0-9_]+]] = memref.alloc() {{.*}} : memref<9xi32>
// CHECK:         %[[ROWS:[a-z0-9_]+]] = memref.alloc() {{.*}} : memref<32xi32>
// CHECK:         %[[SLOTS:[a-z0-9_]+]] = memref.alloc() {{.*}} : memref<16x2xi32>
//   1. counts: zeroed, then one pass over the (token, slot) pairs.
// CHECK:         scf.for %[[J:[a-z0-9_]+]] = %{{.*}} to %{{.*}} step
// CHECK:           memref.store %{{.*}}, %[[CURSOR]][%[[J]]]
// CHECK-NOT:     scf.for
// CHECK:         scf.for %[[TOK:[a-z0-9_]+]] = %{{.*}} to %[[T]] step
// CHECK-NOT:       scf.for
// CHECK:           scf.for %[[S:[a-z0-9_]+]] =
// CHECK:             %[[ID:.*]] = scf.if %{{.*}} -> (i32) {
// CHECK:               memref.load %[[IDS]][%[[TOK]], %[[S]]]
// CHECK:             %[[USED:.*]] = arith.cmpi sge, %[[ID]], %{{.*}} : i32
// CHECK:             scf.if %[[USED]] {
// CHECK:               %[[E:.*]] = arith.index_cast %[[ID]] : i32 to index
// CHECK:               %[[N:.*]] = memref.load %[[CURSOR]][%[[E]]]
// CHECK:               %[[N1:.*]] = arith.addi %[[N]], %{{.*}} : i32
// CHECK:               memref.store %[[N1]], %[[CURSOR]][%[[E]]]
// CHECK-NOT:           memref.store
// CHECK-NOT:     scf.for
//   2. exclusive prefix sum into offsets; the cursors start at the offsets.
// CHECK:         %[[END:.*]] = scf.for %[[J:[a-z0-9_]+]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%[[ACC:.*]] = %{{.*}}) -> (i32) {
// CHECK-NEXT:      %[[COUNT:.*]] = memref.load %[[CURSOR]][%[[J]]]
// CHECK-NEXT:      memref.store %[[ACC]], %[[OFF]][%[[J]]] : memref<9xi32>
// CHECK-NEXT:      memref.store %[[ACC]], %[[CURSOR]][%[[J]]]
// CHECK-NEXT:      %[[NEXT:.*]] = arith.addi %[[ACC]], %[[COUNT]] : i32
// CHECK-NEXT:      scf.yield %[[NEXT]] : i32
// CHECK-NEXT:    }
// CHECK-NEXT:    %[[LAST:.*]] = arith.constant 8 : index
// CHECK-NEXT:    memref.store %[[END]], %[[OFF]][%[[LAST]]] : memref<9xi32>
//   3. stable scatter: each used slot takes its expert's next row.
// CHECK-NOT:     scf.for
// CHECK:         scf.for %[[TOK:[a-z0-9_]+]] = %{{.*}} to %[[T]] step
// CHECK-NOT:       scf.for
// CHECK:           scf.for %[[S:[a-z0-9_]+]] =
// CHECK:             %[[ID:.*]] = scf.if %{{.*}} -> (i32) {
// CHECK:             %[[USED:.*]] = arith.cmpi sge, %[[ID]], %{{.*}} : i32
// CHECK:             scf.if %[[USED]] {
// CHECK:               %[[E:.*]] = arith.index_cast %[[ID]] : i32 to index
// CHECK:               %[[P:.*]] = memref.load %[[CURSOR]][%[[E]]]
// CHECK:               %[[P1:.*]] = arith.addi %[[P]], %{{.*}} : i32
// CHECK:               memref.store %[[P1]], %[[CURSOR]][%[[E]]]
// CHECK:               %[[TOKI:.*]] = arith.index_cast %[[TOK]] : index to i32
// CHECK:               %[[PI:.*]] = arith.index_cast %[[P]] : i32 to index
// CHECK:               memref.store %[[TOKI]], %[[ROWS]][%[[PI]]] : memref<32xi32>
// CHECK:               memref.store %[[P]], %[[SLOTS]][%[[TOK]], %[[S]]] : memref<16x2xi32>
// CHECK:             } else {
// CHECK:               memref.store %{{.*}}, %[[SLOTS]][%[[TOK]], %[[S]]] : memref<16x2xi32>
// CHECK-NOT:     scf.for
// CHECK:         memref.copy %[[OFF]], %{{.*}}
// CHECK:    memref.copy %[[ROWS]], %{{.*}}
// CHECK:    memref.copy %[[SLOTS]], %{{.*}}
// CHECK-NOT:     scf.for
// CHECK:         return
func.func @routed(%ids: tensor<16x2xi32>) -> (tensor<9xi32>, tensor<32xi32>, tensor<16x2xi32>) {
  %offsets, %rows, %slot_rows = moe.dispatch %ids {num_experts = 8 : i64, num_shared = 0 : i64}
      : tensor<16x2xi32> -> tensor<9xi32>, tensor<32xi32>, tensor<16x2xi32>
  return %offsets, %rows, %slot_rows : tensor<9xi32>, tensor<32xi32>, tensor<16x2xi32>
}

// Shared experts (E = 16, S = 2, K = 4, T dynamic): slots 4..5 are always
// taken by experts 16 + (s - 4); only routed ids are range-checked (the
// error is recorded once, in the counting pass). Rows: T * (K + S).
// CHECK-LABEL: func.func @shared(
// CHECK-SAME:      %[[IDS:[a-z0-9_]+]]: memref<?x4xi32>
// CHECK:         %[[CURSOR:[a-z0-9_]+]] = memref.alloca() {{.*}} : memref<18xi32>
// CHECK:         %[[STATUS:[a-z0-9_]+]] = memref.alloca() {moe.status} : memref<i32>
// CHECK:         %[[T:[a-z0-9_]+]] = memref.dim %[[IDS]], %{{.*}} : memref<?x4xi32>
// CHECK:         %[[SIX:.*]] = arith.constant 6 : index
// CHECK:         %[[NROWS:.*]] = arith.muli %[[T]], %[[SIX]] : index
// CHECK:         memref.alloc() {{.*}} : memref<19xi32>
// CHECK:         memref.alloc(%[[NROWS]]) {{.*}} : memref<?xi32>
// CHECK:         memref.alloc(%[[T]]) {{.*}} : memref<?x6xi32>
//   counts
// CHECK:         scf.for %[[TOK:[a-z0-9_]+]] = %{{.*}} to %[[T]] step
// CHECK:           scf.for %[[S:[a-z0-9_]+]] = %{{.*}} to %{{.*}} step
// CHECK:             %[[ROUTED:.*]] = arith.cmpi slt, %[[S]], %{{.*}} : index
// CHECK:             scf.if %[[ROUTED]] -> (i32) {
// CHECK:               %[[ID:.*]] = memref.load %[[IDS]][%[[TOK]], %[[S]]] : memref<?x4xi32>
// CHECK:               %[[LOW:.*]] = arith.cmpi slt, %[[ID]], %{{.*}} : i32
// CHECK:               %[[HIGH:.*]] = arith.cmpi sge, %[[ID]], %{{.*}} : i32
// CHECK:               %[[BAD:.*]] = arith.ori %[[LOW]], %[[HIGH]] : i1
// CHECK:               scf.if %[[BAD]] {
// CHECK:                 memref.store %{{.*}}, %[[STATUS]][] : memref<i32>
// CHECK:               }
// CHECK:               arith.select %[[BAD]], %{{.*}}, %[[ID]] : i32
// CHECK:             } else {
// CHECK:               %[[SK:.*]] = arith.subi %[[S]], %{{.*}} : index
// CHECK:               %[[SKI:.*]] = arith.index_cast %[[SK]] : index to i32
// CHECK:               %[[SHARED:.*]] = arith.addi %[[SKI]], %[[E:.*]] : i32
// CHECK:               scf.yield %[[SHARED]] : i32
// CHECK:             }
//   prefix sum over E + S = 18 experts, offsets[18] = total
// CHECK:         scf.for {{.*}} iter_args({{.*}}) -> (i32)
// CHECK:         %[[LAST:.*]] = arith.constant 18 : index
// CHECK:         memref.store %{{.*}}, %{{.*}}[%[[LAST]]] : memref<19xi32>
//   scatter: same slot decoding, no second error record.
// CHECK:         scf.for %[[TOK:[a-z0-9_]+]] = %{{.*}} to %[[T]] step
// CHECK-NOT:       memref.store %{{.*}}, %[[STATUS]]
// CHECK:         memref.copy
func.func @shared(%ids: tensor<?x4xi32>) -> (tensor<19xi32>, tensor<?xi32>, tensor<?x6xi32>) {
  %offsets, %rows, %slot_rows = moe.dispatch %ids {num_experts = 16 : i64, num_shared = 2 : i64}
      : tensor<?x4xi32> -> tensor<19xi32>, tensor<?xi32>, tensor<?x6xi32>
  return %offsets, %rows, %slot_rows : tensor<19xi32>, tensor<?xi32>, tensor<?x6xi32>
}

// NONE-NOT: moe.dispatch

// STATS:      MoeLowerDispatch
// STATS-NEXT:   (S) 2 dispatches-lowered
