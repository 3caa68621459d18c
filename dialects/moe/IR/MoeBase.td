//===- MoeBase.td - moe dialect, enums and types ------------*- tablegen -*-===//
//
// The `moe` dialect describes adaptive-computation layers: routers, expert
// tables, the weighted combine, and per-token skips. docs/dialect.md is the
// normative specification; the reference interpreter (lib/Reference) executes it.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_BASE_TD
#define MOE_BASE_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def Moe_Dialect : Dialect {
  let name = "moe";
  let cppNamespace = "::mlir::moe";
  let summary = "Adaptive-computation (mixture-of-experts, per-token skip) layers";
  let description = [{
    Routers produce an explicit, ragged-aware routing: per token `K` slots of
    (expert id : i32, weight : f32); an unused slot has id -1 and weight 0, so
    a dynamic number of experts per token is first class. Expert ops describe
    banks of experts (`!moe.experts<N, H>`); `moe.layer` combines a routing
    with an ordered expert table. `moe.skip_block` and `moe.path_select`
    run regions on a per-token subset of the tokens.
  }];
  let useDefaultTypePrinterParser = 1;
  let useDefaultAttributePrinterParser = 1;
  let extraClassDeclaration = [{
    /// Adds the ops of MoeLoweringOps.td (kept in their own file).
    void registerLoweringOps();
  }];
  // `moe.parallel` (unit) on an scf.for over [0, n) by 1 without results:
  // its iterations are independent work items, which moe-outline-parallel
  // hands to the runtime's thread pool. Set by the CPU lowerings; the
  // verifier (MoeLoweringOps.cpp) checks its value is a unit attribute.
  let discardableAttrs = (ins "::mlir::UnitAttr":$parallel);
  let hasOperationAttrVerify = 1;
}

//===----------------------------------------------------------------------===//
// Op traits
//===----------------------------------------------------------------------===//

// Every moe op rejects an attribute it does not define unless the name has a
// dialect prefix ('moe.random_range', 'foo.bar': MLIR's discardable
// attributes). Without it a misspelled optional attribute (`renormalise`)
// parses as a discardable attribute and silently leaves the default in
// place. Implemented by mlir::moe::verifyKnownAttributes (MoeOps.cpp).
def Moe_KnownAttributesOnly : NativeOpTrait<"KnownAttributesOnly"> {
  let cppNamespace = "::mlir::moe";
}

//===----------------------------------------------------------------------===//
// Enums
//===----------------------------------------------------------------------===//

def Moe_Scoring : I32EnumAttr<"Scoring", "router scoring function", [
    I32EnumAttrCase<"softmax", 0>,
    I32EnumAttrCase<"sigmoid", 1>]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}
def Moe_ScoringAttr : EnumAttr<Moe_Dialect, Moe_Scoring, "scoring">;

def Moe_Activation : I32EnumAttr<"Activation", "expert FFN activation", [
    // Gated: W2 (act(W1 x) * (W3 x)). Need w3.
    I32EnumAttrCase<"swiglu", 0>,
    I32EnumAttrCase<"geglu", 1>,
    // Plain: W2 act(W1 x). Take no w3.
    I32EnumAttrCase<"gelu", 2>,
    I32EnumAttrCase<"relu", 3>,
    I32EnumAttrCase<"silu", 4>]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}
def Moe_ActivationAttr : EnumAttr<Moe_Dialect, Moe_Activation, "activation">;

// How an FFN bank's weights are stored (docs/quantization.md has the byte
// layouts; moe/Support/Quant.h and moe_ukernels.h number them the same).
def Moe_WeightFormat : I32EnumAttr<"WeightFormat", "expert weight format", [
    I32EnumAttrCase<"f32", 0>,
    I32EnumAttrCase<"bf16", 1>,
    I32EnumAttrCase<"f16", 2>,
    // w = scale[row] * q, q int8 in [-127, 127], one f32 scale per row.
    I32EnumAttrCase<"int8", 3>,
    // GGUF blocks of 32 along K, as bytes: {f16 d; i8 q[32]} and
    // {f16 d; u8 q[16]} (two 4-bit values per byte, w = d * (q - 8)).
    I32EnumAttrCase<"q8_0", 4>,
    I32EnumAttrCase<"q4_0", 5>]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}
def Moe_WeightFormatAttr : EnumAttr<Moe_Dialect, Moe_WeightFormat, "weight_format">;

// What the expert products see of the activations: exact FP32, rounded to
// BF16 (as PyTorch's BF16 path), or quantized to Q8_0 blocks (as llama.cpp
// before its integer dot products). Part of the semantics, so the
// reference interpreter applies the same rounding.
def Moe_ActivationPrecision : I32EnumAttr<"ActivationPrecision",
                                          "precision of the activations in the expert products", [
    I32EnumAttrCase<"f32", 0>,
    I32EnumAttrCase<"bf16", 1>,
    I32EnumAttrCase<"q8_0", 2>]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}
// FFN bank weights in any #moe.weight_format: [N, rows, stored cols].
def Moe_WeightBank : TensorRankOf<[F32, BF16, F16, I8], [3]>;
def Moe_RowScales : TensorRankOf<[F32], [2]>;  // int8: [N, rows]
def Moe_WeightMatrix : TensorRankOf<[F32, BF16, F16, I8], [2]>; // dense FFN: [rows, stored(K)]
def Moe_MatrixRowScales : TensorRankOf<[F32], [1]>;  // dense int8: [rows]

def Moe_ActivationPrecisionAttr
    : EnumAttr<Moe_Dialect, Moe_ActivationPrecision, "activation_precision">;

//===----------------------------------------------------------------------===//
// Types
//===----------------------------------------------------------------------===//

class Moe_Type<string name, string typeMnemonic> : TypeDef<Moe_Dialect, name> {
  let mnemonic = typeMnemonic;
}

def Moe_ExpertsType : Moe_Type<"Experts", "experts"> {
  let summary = "a bank of `count` experts over hidden size `hidden`";
  let description = [{
    The value of an expert op: `count` consecutive entries of a layer's
    expert table, each mapping a token's hidden state `[hidden]` to
    `[hidden]`. Carries no data; the weights are the defining op's operands.
  }];
  let parameters = (ins "int64_t":$count, "int64_t":$hidden);
  let assemblyFormat = "`<` $count `,` $hidden `>`";
  let genVerifyDecl = 1;
}


//===----------------------------------------------------------------------===//
// Attributes
//===----------------------------------------------------------------------===//

def Moe_PackLayoutAttr : AttrDef<Moe_Dialect, "PackLayout"> {
  let mnemonic = "pack_layout";
  let summary = "the physical layout of a weight packed once by moe.pack";
  let description = [{
    A weight `[..., R, C]` (row-major, the caller's layout) is stored as
    `[..., R, row_stride]`: every row starts `row_stride` elements after the
    one before (`row_stride >= C`; the elements past C are zero), and the
    leading dimensions (the expert index of a bank) stay outermost, so each
    expert's weights are one contiguous block. The compiler picks
    `row_stride` (moe-hoist-weight-packing): for the FFN experts' weights,
    rows padded to an odd number of 64-byte lines, so that the rows one
    register tile of the packed kernel reads together (up to 12) fall into
    distinct L1 sets; a power-of-two row (H = 1024: 4 KiB) maps them all to
    one set. `row_stride = C` is a plain copy (weights the layer still
    needs, owned by the prepared buffers).
  }];
  let parameters = (ins "int64_t":$rowStride);
  let assemblyFormat = "`<` `row_stride` `=` $rowStride `>`";
  let genVerifyDecl = 1;
}

#endif // MOE_BASE_TD
