//===- MoeLoweringOps.td - moe ops produced by the lowering -*- tablegen -*-===//
//
// Ops that only the lowering passes create: the layer split into trivial-term
// folding, dispatch (counting sort), grouped expert compute and combine.
// They still work on tensors so each pass's output can be read and tested on
// its own; the loop-emitting passes then turn them into scf/memref/vector.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LOWERING_OPS_TD
#define MOE_LOWERING_OPS_TD

include "moe/IR/MoeBase.td"
include "mlir/IR/OpBase.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

class Moe_LoweringOp<string mnemonic, list<Trait> traits = []>
    : Op<Moe_Dialect, mnemonic, !listconcat([Moe_KnownAttributesOnly], traits)>;

def Moe_RemapExpertsOp : Moe_LoweringOp<"remap_experts", [Pure]> {
  let summary = "renumber a routing's expert ids; ids mapped to -1 are dropped";
  let description = [{
    For every slot with id e >= 0: the new id is map[e]; when map[e] is -1
    the slot becomes unused (id -1, weight 0). Produced by trivial-expert
    folding to take zero/copy/constant experts out of the expert table.
  }];
  let arguments = (ins TensorRankOf<[I32], [2]>:$in_ids,
                   TensorRankOf<[F32], [2]>:$in_weights,
                   DenseI64ArrayAttr:$map);
  let results = (outs TensorRankOf<[I32], [2]>:$ids,
                 TensorRankOf<[F32], [2]>:$weights);
  let assemblyFormat = [{
    $in_ids `,` $in_weights attr-dict `:` type($in_ids) `,` type($in_weights)
    `->` type($ids) `,` type($weights)
  }];
  let hasVerifier = 1;
}

def Moe_TrivialCombineOp : Moe_LoweringOp<"trivial_combine",
    [Pure, AttrSizedOperandSegments]> {
  let summary = "adds the folded copy and constant expert terms";
  let description = [{
    kinds[e] says what expert e of the original table contributes:
    0 nothing here (an FFN expert, handled by `base`, or a zero expert),
    1 copy (w * x), 2 + b constant from `consts[b]`, row e - (first id of
    that bank). y[t] = base[t] (0 without base) + sum over the slots of t,
    in slot order, of those terms.
  }];
  let arguments = (ins Optional<TensorRankOf<[F32], [2]>>:$base,
                   TensorRankOf<[F32], [2]>:$hidden,
                   TensorRankOf<[I32], [2]>:$ids,
                   TensorRankOf<[F32], [2]>:$weights,
                   Variadic<TensorRankOf<[F32], [2]>>:$consts,
                   DenseI32ArrayAttr:$kinds);
  let results = (outs TensorRankOf<[F32], [2]>:$result);
  let assemblyFormat = [{
    $hidden `,` $ids `,` $weights (`base` `(` $base^ `:` type($base) `)`)?
    (`consts` `(` $consts^ `:` type($consts) `)`)? attr-dict `:`
    type($hidden) `,` type($ids) `,` type($weights) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Moe_DispatchOp : Moe_LoweringOp<"dispatch", [Pure]> {
  let summary = "counting sort of the (token, slot) pairs by expert";
  let description = [{
    Experts 0..E-1 are routed by `ids` [T, K]; experts E..E+S-1 are shared:
    every token takes each of them, in slots K..K+S-1. Outputs:
    offsets [E+S+1]: exclusive prefix sum of the per-expert counts (expert
    e's rows are offsets[e]..offsets[e+1]); rows [T*(K+S)]: the token of each
    sorted row (tokens ascending within an expert; entries past
    offsets[E+S] are unused); slot_rows [T, K+S]: the sorted row of each
    slot, -1 for an unused slot. An id outside [-1, E) is a run-time error.
  }];
  let arguments = (ins TensorRankOf<[I32], [2]>:$ids, I64Attr:$num_experts,
                   I64Attr:$num_shared);
  let results = (outs TensorRankOf<[I32], [1]>:$offsets,
                 TensorRankOf<[I32], [1]>:$rows,
                 TensorRankOf<[I32], [2]>:$slot_rows);
  let assemblyFormat = [{
    $ids attr-dict `:` type($ids) `->` type($offsets) `,` type($rows) `,`
    type($slot_rows)
  }];
  let hasVerifier = 1;
}

def Moe_GroupedFfnOp : Moe_LoweringOp<"grouped_ffn", [Pure, AttrSizedOperandSegments]> {
  let summary = "a bank's FFN experts over their ragged groups of sorted rows";
  let description = [{
    For each expert n of the bank (global id first_expert + n), for each
    sorted row p in offsets[id]..offsets[id+1]: result[p] = FFN_n(x[rows[p]]).
    Other rows of `acc` pass through unchanged (destination style: the
    lowering writes in place, so `acc` must have no other use). `format`,
    `activations` and `scales` are moe.ffn_experts' (the weights' storage
    and the activations' precision); the verifier is the same.
  }];
  let arguments = (ins Moe_ActivationAttr:$activation,
                   TensorRankOf<[F32], [2]>:$hidden,
                   TensorRankOf<[I32], [1]>:$rows,
                   TensorRankOf<[I32], [1]>:$offsets,
                   Moe_WeightBank:$w1,
                   Optional<Moe_WeightBank>:$w3,
                   Moe_WeightBank:$w2,
                   Variadic<Moe_RowScales>:$scales,
                   TensorRankOf<[F32], [2]>:$acc, I64Attr:$first_expert,
                   OptionalAttr<Moe_WeightFormatAttr>:$format,
                   OptionalAttr<Moe_ActivationPrecisionAttr>:$activation_precision);
  let results = (outs TensorRankOf<[F32], [2]>:$result);
  let assemblyFormat = [{
    `` $activation $hidden `,` $rows `,` $offsets `w1` `(` $w1 `:` type($w1) `)`
    (`w3` `(` $w3^ `:` type($w3) `)`)? `w2` `(` $w2 `:` type($w2) `)`
    (`format` `` $format^)? (`activations` `` $activation_precision^)?
    (`scales` `(` $scales^ `:` type($scales) `)`)?
    `into` $acc attr-dict `:` type($hidden) `,` type($rows) `,` type($offsets)
    `,` type($acc) `->` type($result)
  }];
  let extraClassDeclaration = [{
    ::mlir::moe::WeightFormat getWeightFormat() {
      return getFormat().value_or(::mlir::moe::WeightFormat::f32);
    }
    ::mlir::moe::ActivationPrecision getActivationPrecisionOrDefault() {
      return getActivationPrecision().value_or(::mlir::moe::ActivationPrecision::f32);
    }
  }];
  let hasVerifier = 1;
}

def Moe_GroupedLoraOp : Moe_LoweringOp<"grouped_lora", [Pure, AttrSizedOperandSegments]> {
  let summary = "a bank's LoRA experts over their ragged groups of sorted rows";
  let description = [{
    As moe.grouped_ffn with the LoRA-adapted weights of moe.lora_experts.
  }];
  let arguments = (ins Moe_ActivationAttr:$activation, F32Attr:$alpha,
                   TensorRankOf<[F32], [2]>:$hidden,
                   TensorRankOf<[I32], [1]>:$rows,
                   TensorRankOf<[I32], [1]>:$offsets,
                   TensorRankOf<[F32], [2]>:$w1,
                   Optional<TensorRankOf<[F32], [2]>>:$w3,
                   TensorRankOf<[F32], [2]>:$w2,
                   TensorRankOf<[F32], [3]>:$a1, TensorRankOf<[F32], [3]>:$b1,
                   Optional<TensorRankOf<[F32], [3]>>:$a3,
                   Optional<TensorRankOf<[F32], [3]>>:$b3,
                   TensorRankOf<[F32], [3]>:$a2, TensorRankOf<[F32], [3]>:$b2,
                   TensorRankOf<[F32], [2]>:$acc, I64Attr:$first_expert);
  let results = (outs TensorRankOf<[F32], [2]>:$result);
  let assemblyFormat = [{
    `` $activation $hidden `,` $rows `,` $offsets
    `base` `(` `w1` $w1 `:` type($w1) (`w3` $w3^ `:` type($w3))? `w2` $w2 `:` type($w2) `)`
    `adapters` `(` `w1` $a1 `,` $b1 `:` type($a1) `,` type($b1)
    (`w3` $a3^ `,` $b3 `:` type($a3) `,` type($b3))?
    `w2` $a2 `,` $b2 `:` type($a2) `,` type($b2) `)`
    `into` $acc attr-dict `:` type($hidden) `,` type($rows) `,` type($offsets)
    `,` type($acc) `->` type($result)
  }];
}

def Moe_CombineOp : Moe_LoweringOp<"combine", [Pure]> {
  let summary = "weighted scatter-add of the sorted expert rows to token order";
  let description = [{
    y[t] = sum over routed slots s < K with slot_rows[t, s] >= 0, in slot
    order, of weights[t, s] * sorted[slot_rows[t, s]], then plus
    sorted[slot_rows[t, s]] for the shared slots K..K+S-1 (weight 1).
  }];
  let arguments = (ins TensorRankOf<[F32], [2]>:$sorted,
                   TensorRankOf<[I32], [2]>:$slot_rows,
                   TensorRankOf<[F32], [2]>:$weights);
  let results = (outs TensorRankOf<[F32], [2]>:$result);
  let assemblyFormat = [{
    $sorted `,` $slot_rows `,` $weights attr-dict `:` type($sorted) `,`
    type($slot_rows) `,` type($weights) `->` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Expert parallelism (moe-shard-experts): the two all-to-all exchanges of a
// sharded layer. Each rank runs the same program on its own tokens.
//===----------------------------------------------------------------------===//

def Moe_AllToAllOp : Moe_LoweringOp<"all_to_all"> {
  let summary = "sends each sorted row to the rank that holds its expert";
  let description = [{
    The forward exchange of expert parallelism, between moe.dispatch and the
    grouped experts. `rows` [P] and `offsets` [N+1] are a moe.dispatch's
    (N = routed + shared experts); `placement` [N] gives each expert's rank,
    -1 for "this rank" (shared experts: no traffic). Every rank sends the row
    hidden[rows[p]] of each sorted row p to the rank of p's expert (expert by
    expert, sorted order within an expert) and receives the rows of its own
    experts from every rank. Results: recv_hidden [Q, H], the received rows
    in arrival order (source rank, then expert, then the source's sorted
    order); recv_rows [Q]: for each expert-major position q, its row of
    recv_hidden, so that the grouped experts run unchanged on
    (recv_hidden, recv_rows, recv_offsets); recv_offsets [N+1]: expert n's
    received rows are recv_offsets[n]..recv_offsets[n+1] (empty for experts
    of other ranks); plan [R, N]: rows of expert n received from rank r,
    which moe.all_to_all_combine needs to send them back. Lowers to
    moe_mpi_dispatch_counts / moe_mpi_dispatch_rows (moe_runtime_mpi.h);
    a failed or timed-out exchange records MOE_ERR_EXCHANGE. Not Pure: it
    communicates, and every rank must execute it.
  }];
  let arguments = (ins TensorRankOf<[F32], [2]>:$hidden,
                   TensorRankOf<[I32], [1]>:$rows,
                   TensorRankOf<[I32], [1]>:$offsets,
                   I64Attr:$ranks, DenseI32ArrayAttr:$placement);
  let results = (outs TensorRankOf<[F32], [2]>:$recv_hidden,
                 TensorRankOf<[I32], [1]>:$recv_rows,
                 TensorRankOf<[I32], [1]>:$recv_offsets,
                 TensorRankOf<[I32], [2]>:$plan);
  let assemblyFormat = [{
    $hidden `,` $rows `,` $offsets attr-dict `:` type($hidden) `,` type($rows)
    `,` type($offsets) `->` type($recv_hidden) `,` type($recv_rows) `,`
    type($recv_offsets) `,` type($plan)
  }];
  let hasVerifier = 1;
}

def Moe_AllToAllCombineOp : Moe_LoweringOp<"all_to_all_combine"> {
  let summary = "sends the expert outputs back to the ranks their rows came from";
  let description = [{
    The reverse exchange: `expert_out` [Q, H] holds, at each expert-major
    position q of a moe.all_to_all's results, the expert's output for that
    received row (a grouped expert's accumulator over recv_rows). Each row
    goes back to its source rank, which places it at its sorted row: the
    result [P, H] is what the grouped experts would have produced on one
    process for this rank's sorted rows. `recv_rows`, `plan`, `offsets`,
    `ranks` and `placement` are those of the matching moe.all_to_all.
    Lowers to moe_mpi_combine_rows.
  }];
  let arguments = (ins TensorRankOf<[F32], [2]>:$expert_out,
                   TensorRankOf<[I32], [1]>:$recv_rows,
                   TensorRankOf<[I32], [2]>:$plan,
                   TensorRankOf<[I32], [1]>:$offsets,
                   I64Attr:$ranks, DenseI32ArrayAttr:$placement);
  let results = (outs TensorRankOf<[F32], [2]>:$result);
  let assemblyFormat = [{
    $expert_out `,` $recv_rows `,` $plan `,` $offsets attr-dict `:`
    type($expert_out) `,` type($recv_rows) `,` type($plan) `,` type($offsets)
    `->` type($result)
  }];
  let hasVerifier = 1;
}

#endif // MOE_LOWERING_OPS_TD
