//===- Passes.td - moe dialect transformation passes --------*- tablegen -*-===//
//
// moe -> moe rewrites. The loop-emitting lowerings are conversions and live
// in include/moe/Conversion/Passes.td.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TRANSFORMS_PASSES_TD
#define MOE_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

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
