//===- Passes.td - moe dialect transformation passes --------*- tablegen -*-===//
//
// moe -> moe rewrites. The loop-emitting lowerings are conversions and live
// in include/moe/Conversion/Passes.td.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TRANSFORMS_PASSES_TD
#define MOE_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def MoeStageEnd : Pass<"moe-stage-end", "ModuleOp"> {
  let summary = "Mark the end of a named compilation stage (changes nothing)";
  let description = [{
    The pipelines put one at the end of each stage a user can look at
    (`expanded`, `loops`, `mapped`, ...). It leaves the IR alone; the
    execution engine's pass instrumentation prints the module after it as
    that stage's text, and names the stage a failing pass belongs to, so a
    whole pipeline runs in one pass manager.
  }];
  let options = [
    Option<"stage", "stage", "std::string", "\"\"", "the stage's name">,
  ];
}

def MoeFoldTrivialExperts : Pass<"moe-fold-trivial-experts", "func::FuncOp"> {
  let summary = "Take zero, copy and constant experts out of expert tables";
  let description = [{
    Trivial experts must cost (almost) nothing: a layer's zero banks are
    dropped (their slots become unused), copy and constant banks become
    element-wise terms `y += w * x` and `y += w * c` (moe.trivial_combine),
    and the remaining FFN/LoRA banks are renumbered (moe.remap_experts). A
    layer whose experts are all trivial keeps no moe.layer at all.

    Debian's LLVM is built without LLVM_ENABLE_STATS, which compiles pass
    statistics out; `report` emits the same counts as remarks on each layer.
  }];
  let options = [
    Option<"report", "report", "bool", "false",
           "emit a remark per layer with the experts folded">,
  ];
  let statistics = [
    Statistic<"numZeroExperts", "zero-experts-folded",
              "Zero/null experts dropped from expert tables">,
    Statistic<"numCopyExperts", "copy-experts-folded",
              "Copy experts turned into w * x terms">,
    Statistic<"numConstExperts", "const-experts-folded",
              "Constant experts turned into w * c terms">,
  ];
}

def MoeExpandLayers : Pass<"moe-expand-layers", "func::FuncOp"> {
  let summary = "Split moe.layer into dispatch, grouped expert compute and combine";
  let description = [{
    Each moe.layer becomes moe.dispatch (a counting sort of the (token, slot)
    pairs by expert, shared experts included as always-taken slots so they
    run in the same grouped computation), one moe.grouped_ffn or
    moe.grouped_lora per expert bank over its ragged rows, and moe.combine
    (the weighted scatter-add back to token order).
  }];
  let options = [
    Option<"report", "report", "bool", "false",
           "emit a remark per layer describing its expansion">,
  ];
  let dependentDialects = ["tensor::TensorDialect", "arith::ArithDialect"];
  let statistics = [
    Statistic<"numLayers", "layers-expanded", "moe.layer ops expanded">,
    Statistic<"numSharedExperts", "shared-experts-fused",
              "Shared experts run inside the grouped computation">,
  ];
}

def MoeShardExperts : Pass<"moe-shard-experts", "func::FuncOp"> {
  let summary = "Expert parallelism: exchange each dispatch's rows with the ranks that hold the experts";
  let description = [{
    Runs on expanded layers (after moe-expand-layers) and makes the program
    each rank of an expert-parallel job runs on its own tokens: routing,
    trivial experts (folded terms) and moe.dispatch stay local; a
    moe.all_to_all sends every sorted row to the rank of its expert; the
    grouped experts run on the rows received (experts of other ranks get no
    rows, so no work); moe.all_to_all_combine sends the results back to the
    sorted rows they came from; moe.combine is unchanged. Shared experts
    stay on every rank (placement -1: no traffic).

    Placement of the dispatched (FFN/LoRA) experts, numbered as the
    dispatch numbers them (after trivial-expert folding: the non-trivial
    banks in table order): contiguous blocks of ceil(E / ranks) experts by
    default, or `placement`, one rank per routed expert.

    Ops that choose tokens across the whole batch (moe.capacity_drop,
    moe.expert_choice_router, moe.skip_block with a capacity fraction) see
    only one rank's tokens once the batch is split, so their result would
    differ from one process; the pass rejects functions holding them.
  }];
  let options = [
    Option<"ranks", "ranks", "int64_t", "1", "ranks of the expert-parallel job">,
    ListOption<"placement", "placement", "int64_t",
               "rank of each routed expert (default: contiguous blocks)">,
  ];
  let dependentDialects = ["tensor::TensorDialect", "arith::ArithDialect"];
  let statistics = [
    Statistic<"numExchanges", "dispatches-sharded",
              "moe.dispatch ops given an all-to-all exchange pair">,
  ];
}

def MoeQuantizeWeights : Pass<"moe-quantize-weights", "ModuleOp"> {
  let summary = "Make FFN banks whose weights are entry arguments take them in a low-precision format";
  let description = [{
    The IR side of quantizing a model: for every moe.ffn_experts and dense
    moe.ffn in FP32 whose w1/w3/w2 are arguments of a public function used
    by that op alone, the arguments' types become the format's storage
    ([N, rows, stored(K)], or [rows, stored(K)] for moe.ffn, of bf16, f16
    or i8; docs/quantization.md), the op gets `format` and `activations`,
    and for int8 one [N, rows] (or [rows]) f32 scale argument per weight
    is appended to the function (named by a
    `moe.scales_of = <argument number>` argument attribute). The caller
    then passes quantized weights (moe-quantize, moec.quantize); moe-run
    generates them from random FP32 weights. Banks with any other weight
    use (a shared argument, a computed weight) are left in FP32, and so
    are banks whose K does not suit the format (a block format needs K a
    multiple of 32): `report` names them.
  }];
  let options = [
    Option<"format", "format", "std::string", "\"q8_0\"",
           "the weight format: bf16, f16, int8, q8_0, q4_0">,
    Option<"activations", "activations", "std::string", "\"f32\"",
           "what the products see of the activations: f32, bf16 (bf16 weights), q8_0 "
           "(int8/q8_0/q4_0 weights)">,
    Option<"report", "report", "bool", "false",
           "emit a remark per bank converted or left in FP32">,
  ];
  let statistics = [
    Statistic<"numBanks", "banks-quantized", "FFN banks converted">,
    Statistic<"numKept", "banks-kept", "FFN banks left in FP32">,
  ];
}

def MoeHoistWeightPacking : Pass<"moe-hoist-weight-packing", "ModuleOp"> {
  let summary = "Split an entry into @<entry>_prepare (weights -> packed buffers) and a run entry";
  let description = [{
    Users load weights once and call a layer many times. For each entry
    function, the weights are its arguments of static shape (activations
    carry the token count T, a dynamic dimension). Every op of the entry's
    body that depends only on weights (pure, no regions, static tensor
    results) and one `moe.pack` per weight value the rest of the body uses
    move into a new public function `@<entry>_prepare(weights...) ->
    (packed...)`; the entry then takes its activations (in their original
    order) followed by the packed buffers (in `_prepare`'s result order),
    and reads each weight as a `tensor.extract_slice` of its packed buffer
    (the slice is omitted when the layout adds no padding).

    The layout is the compiler's choice (#moe.pack_layout): weights used
    only as FFN expert weights (moe.ffn_experts, moe.ffn) get rows padded to
    an odd number of 64-byte lines (`pad-rows`), so the rows a register tile
    of the packed kernel reads together fall into distinct L1 sets; the
    others are copied as they are.

    With `keep-unprepared`, the entry stays as it was and the run entry is
    a new function `@<entry>_run` (moe-compile exports all three). Debian's
    LLVM compiles pass statistics out; `report` emits them as a remark per
    entry.
  }];
  let options = [
    Option<"entry", "entry", "std::string", "\"\"",
           "the entry function to split (default: every public function)">,
    Option<"keepUnprepared", "keep-unprepared", "bool", "false",
           "keep the entry unchanged and name the run entry @<entry>_run">,
    Option<"padRows", "pad-rows", "bool", "true",
           "pad the rows of FFN expert weights to an odd number of 64-byte lines">,
    Option<"report", "report", "bool", "false",
           "emit a remark per entry with the weights packed and the padding">,
  ];
  let dependentDialects = ["tensor::TensorDialect", "func::FuncDialect"];
  let statistics = [
    Statistic<"numEntries", "entries-split", "Entries split into prepare + run">,
    Statistic<"numPacked", "weights-packed", "Weight values packed by the prepare function">,
    Statistic<"numPadded", "weights-padded", "Packed weights whose rows were padded">,
    Statistic<"numHoisted", "ops-hoisted", "Weight-only ops moved into the prepare function">,
    Statistic<"paddingBytes", "padding-bytes", "Bytes of padding added to packed rows">,
  ];
}

#endif // MOE_TRANSFORMS_PASSES_TD
