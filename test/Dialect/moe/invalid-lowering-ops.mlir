// RUN: moe-opt %s --split-input-file --verify-diagnostics

// One case per verifier rule of the ops the lowering passes create
// (MoeLoweringOps.cpp). Users do not write these ops, but a pass that builds
// them wrongly must be caught at the op, not by a crash in the next pass.

//===----------------------------------------------------------------------===//
// moe.remap_experts
//===----------------------------------------------------------------------===//

func.func @remap_result_types(%ids: tensor<4x2xi32>, %w: tensor<4x2xf32>) {
  // expected-error @+1 {{results must have the types of the inputs}}
  %i, %v = moe.remap_experts %ids, %w {map = array<i64: 0, 1>}
      : tensor<4x2xi32>, tensor<4x2xf32> -> tensor<4x3xi32>, tensor<4x2xf32>
  return
}

// -----

func.func @remap_map_entry(%ids: tensor<4x2xi32>, %w: tensor<4x2xf32>) {
  // expected-error @+1 {{map entries must be >= -1, got -2}}
  %i, %v = moe.remap_experts %ids, %w {map = array<i64: 0, -2>}
      : tensor<4x2xi32>, tensor<4x2xf32> -> tensor<4x2xi32>, tensor<4x2xf32>
  return
}

//===----------------------------------------------------------------------===//
// moe.trivial_combine
//===----------------------------------------------------------------------===//

// -----

func.func @trivial_combine_kind(%x: tensor<4x8xf32>, %ids: tensor<4x2xi32>, %w: tensor<4x2xf32>,
                                %c: tensor<1x8xf32>) {
  // expected-error @+1 {{kind 3 must be 0 (none), 1 (copy) or 2 + a const bank index < 3}}
  %y = moe.trivial_combine %x, %ids, %w consts(%c : tensor<1x8xf32>) {kinds = array<i32: 0, 3>}
      : tensor<4x8xf32>, tensor<4x2xi32>, tensor<4x2xf32> -> tensor<4x8xf32>
  return
}

// -----

func.func @trivial_combine_negative_kind(%x: tensor<4x8xf32>, %ids: tensor<4x2xi32>,
                                         %w: tensor<4x2xf32>) {
  // expected-error @+1 {{kind -1 must be 0 (none), 1 (copy) or 2 + a const bank index < 2}}
  %y = moe.trivial_combine %x, %ids, %w {kinds = array<i32: -1, 1>}
      : tensor<4x8xf32>, tensor<4x2xi32>, tensor<4x2xf32> -> tensor<4x8xf32>
  return
}

// -----

func.func @trivial_combine_hidden(%x: tensor<4x8xf32>, %ids: tensor<4x2xi32>, %w: tensor<4x2xf32>) {
  // expected-error @+1 {{result hidden size must match 'hidden'}}
  %y = moe.trivial_combine %x, %ids, %w {kinds = array<i32: 0, 1>}
      : tensor<4x8xf32>, tensor<4x2xi32>, tensor<4x2xf32> -> tensor<4x16xf32>
  return
}

//===----------------------------------------------------------------------===//
// moe.dispatch
//===----------------------------------------------------------------------===//

// -----

func.func @dispatch_no_experts(%ids: tensor<4x2xi32>) {
  // expected-error @+1 {{needs at least one expert}}
  %o, %r, %s = moe.dispatch %ids {num_experts = 0 : i64, num_shared = 0 : i64}
      : tensor<4x2xi32> -> tensor<1xi32>, tensor<8xi32>, tensor<4x2xi32>
  return
}

// -----

func.func @dispatch_negative_shared(%ids: tensor<4x2xi32>) {
  // expected-error @+1 {{needs at least one expert}}
  %o, %r, %s = moe.dispatch %ids {num_experts = 4 : i64, num_shared = -1 : i64}
      : tensor<4x2xi32> -> tensor<4xi32>, tensor<8xi32>, tensor<4x2xi32>
  return
}

// -----

// A count whose E + S + 1 does not fit in 64 bits (was a signed overflow).
func.func @dispatch_huge_count(%ids: tensor<4x2xi32>) {
  // expected-error @+1 {{expert counts E = 9223372036854775807 and S = 1 are too large (ids are i32)}}
  %o, %r, %s = moe.dispatch %ids {num_experts = 9223372036854775807 : i64, num_shared = 1 : i64}
      : tensor<4x2xi32> -> tensor<4xi32>, tensor<8xi32>, tensor<4x3xi32>
  return
}

// -----

func.func @dispatch_offsets(%ids: tensor<4x2xi32>) {
  // expected-error @+1 {{'offsets' must have E + S + 1 = 5 entries}}
  %o, %r, %s = moe.dispatch %ids {num_experts = 4 : i64, num_shared = 0 : i64}
      : tensor<4x2xi32> -> tensor<4xi32>, tensor<8xi32>, tensor<4x2xi32>
  return
}

// -----

func.func @dispatch_slot_rows(%ids: tensor<4x2xi32>) {
  // expected-error @+1 {{'slot_rows' must have K + S columns}}
  %o, %r, %s = moe.dispatch %ids {num_experts = 4 : i64, num_shared = 1 : i64}
      : tensor<4x2xi32> -> tensor<6xi32>, tensor<12xi32>, tensor<4x2xi32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.grouped_ffn (the weight checks are moe.ffn_experts'; invalid.mlir)
//===----------------------------------------------------------------------===//

func.func @grouped_ffn_dynamic_hidden(%x: tensor<?x?xf32>, %rows: tensor<8xi32>, %offsets: tensor<5xi32>,
                                      %w1: tensor<4x64x36xi8>, %w2: tensor<4x64x36xi8>, %acc: tensor<8x64xf32>) {
  // expected-error @+1 {{needs a static hidden size and expert count}}
  %r = moe.grouped_ffn gelu %x, %rows, %offsets w1(%w1 : tensor<4x64x36xi8>) w2(%w2 : tensor<4x64x36xi8>)
      format q4_0 into %acc {first_expert = 0 : i64}
      : tensor<?x?xf32>, tensor<8xi32>, tensor<5xi32>, tensor<8x64xf32> -> tensor<8x64xf32>
  return
}

// -----

func.func @grouped_ffn_format(%x: tensor<8x64xf32>, %rows: tensor<8xi32>, %offsets: tensor<5xi32>,
                              %w1: tensor<4x64x64xi8>, %w2: tensor<4x64x36xi8>, %acc: tensor<8x64xf32>) {
  // expected-error @+1 {{'w1' of a q4_0 bank must be [N, I, stored(H)] = [4, 64, 36], got [4, 64, 64]}}
  %r = moe.grouped_ffn gelu %x, %rows, %offsets w1(%w1 : tensor<4x64x64xi8>) w2(%w2 : tensor<4x64x36xi8>)
      format q4_0 into %acc {first_expert = 0 : i64}
      : tensor<8x64xf32>, tensor<8xi32>, tensor<5xi32>, tensor<8x64xf32> -> tensor<8x64xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.combine
//===----------------------------------------------------------------------===//

// -----

func.func @combine_slot_rows_tokens(%sorted: tensor<8x16xf32>, %rows: tensor<3x2xi32>,
                                    %w: tensor<4x2xf32>) {
  // expected-error @+1 {{'slot_rows' must be [T, K + S] for weights [T, K]}}
  %y = moe.combine %sorted, %rows, %w
      : tensor<8x16xf32>, tensor<3x2xi32>, tensor<4x2xf32> -> tensor<4x16xf32>
  return
}

// -----

func.func @combine_slot_rows_columns(%sorted: tensor<8x16xf32>, %rows: tensor<4x1xi32>,
                                     %w: tensor<4x2xf32>) {
  // expected-error @+1 {{'slot_rows' must be [T, K + S] for weights [T, K]}}
  %y = moe.combine %sorted, %rows, %w
      : tensor<8x16xf32>, tensor<4x1xi32>, tensor<4x2xf32> -> tensor<4x16xf32>
  return
}

// -----

func.func @combine_hidden(%sorted: tensor<8x16xf32>, %rows: tensor<4x2xi32>, %w: tensor<4x2xf32>) {
  // expected-error @+1 {{result hidden size must match 'sorted'}}
  %y = moe.combine %sorted, %rows, %w
      : tensor<8x16xf32>, tensor<4x2xi32>, tensor<4x2xf32> -> tensor<4x32xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.parallel (the discardable attribute marking thread-pool loops)
//===----------------------------------------------------------------------===//

func.func @parallel_not_unit(%n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  // expected-error @+1 {{'moe.parallel' must be a unit attribute, got 1 : i64}}
  scf.for %i = %c0 to %n step %c1 {
  } {moe.parallel = 1 : i64}
  return
}

//===----------------------------------------------------------------------===//
// moe.all_to_all, moe.all_to_all_combine (expert parallelism)
//===----------------------------------------------------------------------===//

// -----

func.func @a2a_ranks(%x: tensor<?x8xf32>, %rows: tensor<?xi32>, %off: tensor<3xi32>) {
  // expected-error @+1 {{'ranks' must be in [1, 2^31), got 0}}
  %rx, %rr, %ro, %plan = moe.all_to_all %x, %rows, %off {ranks = 0, placement = array<i32: 0, 0>}
      : tensor<?x8xf32>, tensor<?xi32>, tensor<3xi32> -> tensor<?x8xf32>, tensor<?xi32>, tensor<3xi32>, tensor<0x2xi32>
  return
}

// -----

func.func @a2a_dynamic_offsets(%x: tensor<?x8xf32>, %rows: tensor<?xi32>, %off: tensor<?xi32>) {
  // expected-error @+1 {{'offsets' must have a static size (N + 1)}}
  %rx, %rr, %ro, %plan = moe.all_to_all %x, %rows, %off {ranks = 2, placement = array<i32: 0, 1>}
      : tensor<?x8xf32>, tensor<?xi32>, tensor<?xi32> -> tensor<?x8xf32>, tensor<?xi32>, tensor<?xi32>, tensor<2x2xi32>
  return
}

// -----

func.func @a2a_placement_size(%x: tensor<?x8xf32>, %rows: tensor<?xi32>, %off: tensor<3xi32>) {
  // expected-error @+1 {{'placement' must have one rank per expert (N = 2), got 3}}
  %rx, %rr, %ro, %plan = moe.all_to_all %x, %rows, %off {ranks = 2, placement = array<i32: 0, 1, 1>}
      : tensor<?x8xf32>, tensor<?xi32>, tensor<3xi32> -> tensor<?x8xf32>, tensor<?xi32>, tensor<3xi32>, tensor<2x2xi32>
  return
}

// -----

func.func @a2a_placement_rank(%x: tensor<?x8xf32>, %rows: tensor<?xi32>, %off: tensor<3xi32>) {
  // expected-error @+1 {{expert 1 is placed on rank 2, outside [-1, 2)}}
  %rx, %rr, %ro, %plan = moe.all_to_all %x, %rows, %off {ranks = 2, placement = array<i32: 0, 2>}
      : tensor<?x8xf32>, tensor<?xi32>, tensor<3xi32> -> tensor<?x8xf32>, tensor<?xi32>, tensor<3xi32>, tensor<2x2xi32>
  return
}

// -----

func.func @a2a_plan(%x: tensor<?x8xf32>, %rows: tensor<?xi32>, %off: tensor<3xi32>) {
  // expected-error @+1 {{'plan' must be [ranks, N] = [2, 2]}}
  %rx, %rr, %ro, %plan = moe.all_to_all %x, %rows, %off {ranks = 2, placement = array<i32: 0, 1>}
      : tensor<?x8xf32>, tensor<?xi32>, tensor<3xi32> -> tensor<?x8xf32>, tensor<?xi32>, tensor<3xi32>, tensor<2x3xi32>
  return
}

// -----

func.func @a2a_recv_offsets(%x: tensor<?x8xf32>, %rows: tensor<?xi32>, %off: tensor<3xi32>) {
  // expected-error @+1 {{'recv_offsets' must have the type of 'offsets'}}
  %rx, %rr, %ro, %plan = moe.all_to_all %x, %rows, %off {ranks = 2, placement = array<i32: 0, 1>}
      : tensor<?x8xf32>, tensor<?xi32>, tensor<3xi32> -> tensor<?x8xf32>, tensor<?xi32>, tensor<4xi32>, tensor<2x2xi32>
  return
}

// -----

func.func @a2a_recv_hidden(%x: tensor<?x8xf32>, %rows: tensor<?xi32>, %off: tensor<3xi32>) {
  // expected-error @+1 {{'recv_hidden' must have the hidden size of 'hidden'}}
  %rx, %rr, %ro, %plan = moe.all_to_all %x, %rows, %off {ranks = 2, placement = array<i32: 0, 1>}
      : tensor<?x8xf32>, tensor<?xi32>, tensor<3xi32> -> tensor<?x16xf32>, tensor<?xi32>, tensor<3xi32>, tensor<2x2xi32>
  return
}

// -----

func.func @a2a_recv_rows(%x: tensor<?x8xf32>, %rows: tensor<?xi32>, %off: tensor<3xi32>) {
  // expected-error @+1 {{'recv_rows' must have one entry per row of 'recv_hidden'}}
  %rx, %rr, %ro, %plan = moe.all_to_all %x, %rows, %off {ranks = 2, placement = array<i32: 0, 1>}
      : tensor<?x8xf32>, tensor<?xi32>, tensor<3xi32> -> tensor<4x8xf32>, tensor<5xi32>, tensor<3xi32>, tensor<2x2xi32>
  return
}

// -----

func.func @a2a_back_hidden(%out: tensor<?x8xf32>, %rr: tensor<?xi32>, %plan: tensor<2x2xi32>, %off: tensor<3xi32>) {
  // expected-error @+1 {{result hidden size must match 'expert_out'}}
  %y = moe.all_to_all_combine %out, %rr, %plan, %off {ranks = 2, placement = array<i32: 0, 1>}
      : tensor<?x8xf32>, tensor<?xi32>, tensor<2x2xi32>, tensor<3xi32> -> tensor<?x4xf32>
  return
}

// -----

func.func @a2a_back_rows(%out: tensor<3x8xf32>, %rr: tensor<4xi32>, %plan: tensor<2x2xi32>, %off: tensor<3xi32>) {
  // expected-error @+1 {{'expert_out' must have one row per entry of 'recv_rows'}}
  %y = moe.all_to_all_combine %out, %rr, %plan, %off {ranks = 2, placement = array<i32: 0, 1>}
      : tensor<3x8xf32>, tensor<4xi32>, tensor<2x2xi32>, tensor<3xi32> -> tensor<?x8xf32>
  return
}

// -----

func.func @a2a_back_plan(%out: tensor<?x8xf32>, %rr: tensor<?xi32>, %plan: tensor<3x2xi32>, %off: tensor<3xi32>) {
  // expected-error @+1 {{'plan' must be [ranks, N] = [2, 2]}}
  %y = moe.all_to_all_combine %out, %rr, %plan, %off {ranks = 2, placement = array<i32: 0, -1>}
      : tensor<?x8xf32>, tensor<?xi32>, tensor<3x2xi32>, tensor<3xi32> -> tensor<?x8xf32>
  return
}
