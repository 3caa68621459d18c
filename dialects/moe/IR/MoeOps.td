//===- MoeOps.td - moe dialect operations -------------------*- tablegen -*-===//
//
// Every op here has a C++ verifier (MoeOps.cpp) built from shared helpers,
// and a reference semantics in docs/dialect.md, executed by lib/Reference.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_OPS_TD
#define MOE_OPS_TD

include "moe/IR/MoeBase.td"
include "mlir/IR/OpBase.td"
include "mlir/IR/SymbolInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/ControlFlowInterfaces.td"

class Moe_Op<string mnemonic, list<Trait> traits = []>
    : Op<Moe_Dialect, mnemonic, !listconcat([Moe_KnownAttributesOnly], traits)>;

// Operand/result constraints shared by the ops. Element types are checked
// here; shape agreement (T, H, E, I, K) is checked by the C++ verifiers.
def Moe_Hidden : TensorRankOf<[F32], [2]>;     // [T, H]
def Moe_Vector : TensorRankOf<[F32], [1]>;     // [E] or [H]
def Moe_Matrix : TensorRankOf<[F32], [2]>;     // weights [rows, cols]
def Moe_Bank : TensorRankOf<[F32], [3]>;       // per-expert weights [N, rows, cols]
def Moe_RoutingIds : TensorRankOf<[I32], [2]>;     // [T, K]
def Moe_RoutingWeights : TensorRankOf<[F32], [2]>; // [T, K]
def Moe_TokenInts : TensorRankOf<[I32, I64], [1]>; // [T]
def Moe_PathIds : TensorRankOf<[I32], [1]>;        // [T]

//===----------------------------------------------------------------------===//
// Routers: hidden [T, H], gate [E, H] -> ids [T, K] (i32), weights [T, K] (f32)
//===----------------------------------------------------------------------===//

class Moe_RouterOp<string mnemonic, list<Trait> traits = []>
    : Moe_Op<mnemonic, !listconcat([Pure], traits)> {
  let results = (outs Moe_RoutingIds:$ids, Moe_RoutingWeights:$weights);
  let hasVerifier = 1;
  code routerDecls = [{
    /// Number of routed experts this router chooses among (E).
    int64_t getNumExperts();
  }];
}

def Moe_TopKRouterOp : Moe_RouterOp<"topk_router"> {
  let summary = "softmax/sigmoid scores (+ selection bias), top-k per token";
  let description = [{
    Logits z = gate · x. Scores s = softmax(z) or sigmoid(z). The k experts
    with the largest s + bias are selected (ties: lower expert id first), in
    descending order of s + bias. Weights are s of the selected experts;
    with `renormalize` they are divided by their sum; then multiplied by
    `scaling_factor`. The bias only affects selection (DeepSeek-V3).

    ```mlir
    %ids, %w = moe.topk_router softmax %x, %gate {k = 2, renormalize}
        : tensor<16x64xf32>, tensor<8x64xf32> -> tensor<16x2xi32>, tensor<16x2xf32>
    ```
  }];
  let arguments = (ins Moe_ScoringAttr:$scoring, Moe_Hidden:$hidden,
                   Moe_Matrix:$gate, Optional<Moe_Vector>:$bias,
                   I64Attr:$k, UnitAttr:$renormalize,
                   DefaultValuedAttr<F32Attr, "1.0f">:$scaling_factor);
  let assemblyFormat = [{
    `` $scoring $hidden `,` $gate (`bias` $bias^)? attr-dict `:` type($hidden) `,`
    type($gate) (`,` type($bias)^)? `->` type($ids) `,` type($weights)
  }];
  let extraClassDeclaration = routerDecls;
}

def Moe_GroupedTopKRouterOp : Moe_RouterOp<"grouped_topk_router"> {
  let summary = "DeepSeek-V3 grouped top-k: best groups first, then top-k inside them";
  let description = [{
    As `moe.topk_router`, but the E experts are split into `num_groups`
    consecutive groups. A group's score is the sum of its top-min(2, E/G)
    biased scores s + bias; the `topk_groups` best groups are kept (ties:
    lower group index) and the top-k biased scores are taken among their
    experts only. Weights are unbiased s, optionally renormalized, times
    `scaling_factor`.
  }];
  let arguments = (ins Moe_ScoringAttr:$scoring, Moe_Hidden:$hidden,
                   Moe_Matrix:$gate, Optional<Moe_Vector>:$bias,
                   I64Attr:$k, I64Attr:$num_groups, I64Attr:$topk_groups,
                   UnitAttr:$renormalize,
                   DefaultValuedAttr<F32Attr, "1.0f">:$scaling_factor);
  let assemblyFormat = [{
    `` $scoring $hidden `,` $gate (`bias` $bias^)? attr-dict `:` type($hidden) `,`
    type($gate) (`,` type($bias)^)? `->` type($ids) `,` type($weights)
  }];
  let extraClassDeclaration = routerDecls;
}

def Moe_TopPRouterOp : Moe_RouterOp<"topp_router"> {
  let summary = "top-p (nucleus) routing: dynamic k per token, capped at max_k";
  let description = [{
    p = softmax(gate · x). Experts are taken in descending p (ties: lower id)
    until their cumulative probability reaches `threshold` or `max_k`
    experts are taken; at least one expert is always taken. Remaining slots
    are unused (id -1, weight 0). Weights are p (divided by the kept sum with
    `renormalize`), times `scaling_factor`.
  }];
  let arguments = (ins Moe_Hidden:$hidden, Moe_Matrix:$gate,
                   F32Attr:$threshold, I64Attr:$max_k, UnitAttr:$renormalize,
                   DefaultValuedAttr<F32Attr, "1.0f">:$scaling_factor);
  let assemblyFormat = [{
    $hidden `,` $gate attr-dict `:` type($hidden) `,` type($gate) `->`
    type($ids) `,` type($weights)
  }];
  let extraClassDeclaration = routerDecls;
}

def Moe_ReluRouterOp : Moe_RouterOp<"relu_router"> {
  let summary = "ReLU routing (ReMoE): every expert with a positive logit is active";
  let description = [{
    r = relu(gate · x). The experts with r > 0 fill the K slots in descending
    r (ties: lower id); if more than K are positive only the K largest are
    kept (K = E keeps all). Weights are r times `scaling_factor`.
  }];
  let arguments = (ins Moe_Hidden:$hidden, Moe_Matrix:$gate,
                   DefaultValuedAttr<F32Attr, "1.0f">:$scaling_factor);
  let assemblyFormat = [{
    $hidden `,` $gate attr-dict `:` type($hidden) `,` type($gate) `->`
    type($ids) `,` type($weights)
  }];
  let extraClassDeclaration = routerDecls;
}

def Moe_ExpertChoiceRouterOp : Moe_RouterOp<"expert_choice_router"> {
  let summary = "expert choice: each expert takes its top-`capacity` tokens";
  let description = [{
    S = softmax over experts (or sigmoid) of gate · x, a [T, E] matrix.
    Expert e takes the min(capacity, T) tokens with the largest S[:, e]
    (ties: lower token index). A token gets 0..E experts; its slots (K = E)
    hold the experts that took it in ascending expert id, then unused slots.
    Weights are S times `scaling_factor`.
  }];
  let arguments = (ins Moe_ScoringAttr:$scoring, Moe_Hidden:$hidden,
                   Moe_Matrix:$gate, I64Attr:$capacity,
                   DefaultValuedAttr<F32Attr, "1.0f">:$scaling_factor);
  let assemblyFormat = [{
    `` $scoring $hidden `,` $gate attr-dict `:` type($hidden) `,` type($gate) `->`
    type($ids) `,` type($weights)
  }];
  let extraClassDeclaration = routerDecls;
}

def Moe_HashRouterOp : Moe_RouterOp<"hash_router"> {
  let summary = "hash routing: a fixed hash of the token id picks one expert";
  let description = [{
    ids[t, 0] = (uint32(token_ids[t]) * 2654435761) mod 2^32 mod num_experts,
    weight 1. K must be 1.
  }];
  let arguments = (ins Moe_TokenInts:$token_ids, I64Attr:$num_experts);
  let assemblyFormat = [{
    $token_ids attr-dict `:` type($token_ids) `->` type($ids) `,` type($weights)
  }];
  
}

def Moe_CapacityDropOp : Moe_RouterOp<"capacity_drop"> {
  let summary = "per-expert capacity: slots over capacity are dropped";
  let description = [{
    C = ceil(capacity_factor * T * K / num_experts). Slots are visited
    slot-major (every token's slot 0, in token order, then slot 1, ...); the
    first C slots naming an expert keep it, later ones are dropped (id -1,
    weight 0). Kept weights are unchanged (no renormalization after the
    drop). Without this op a layer is dropless.
  }];
  let arguments = (ins Moe_RoutingIds:$in_ids, Moe_RoutingWeights:$in_weights,
                   I64Attr:$num_experts, F32Attr:$capacity_factor);
  let assemblyFormat = [{
    $in_ids `,` $in_weights attr-dict `:` type($in_ids) `,` type($in_weights)
    `->` type($ids) `,` type($weights)
  }];
  
}

//===----------------------------------------------------------------------===//
// Capacity-aware inference (issue 29): the full router scores and re-routing
// of the pairs an over-full expert cannot take.
//===----------------------------------------------------------------------===//

def Moe_RouterScoresOp : Moe_Op<"router_scores", [Pure]> {
  let summary = "the full [T, E] router scores: softmax/sigmoid of gate · x";
  let description = [{
    scores[t, e] = softmax over e (or sigmoid) of the logits gate[e] · x[t],
    exactly the scores `moe.topk_router` ranks (docs/dialect.md §4.7.1).
    They feed `moe.capacity_reroute`, which needs every expert's score.

    ```mlir
    %s = moe.router_scores softmax %x, %gate
        : tensor<?x64xf32>, tensor<8x64xf32> -> tensor<?x8xf32>
    ```
  }];
  let arguments = (ins Moe_ScoringAttr:$scoring, Moe_Hidden:$hidden, Moe_Matrix:$gate);
  let results = (outs Moe_Matrix:$scores);
  let assemblyFormat = [{
    `` $scoring $hidden `,` $gate attr-dict `:` type($hidden) `,` type($gate) `->`
    type($scores)
  }];
  let hasVerifier = 1;
}

def Moe_CapacityRerouteOp : Moe_RouterOp<"capacity_reroute"> {
  let summary = "per-expert capacity: over-full pairs move to the token's next-best expert";
  let description = [{
    C = ceil(capacity_factor * T * K / E), E the column count of `scores`
    [T, E]. The used (token, slot) pairs are visited in descending score
    scores[t, in_ids[t, s]] (ties: lower token, then lower slot); each
    expert keeps its first C. Then the dropped pairs, in the same order,
    each move to the token's best-scoring expert that has room and that the
    token does not hold in another slot (ties: lower id), with weight
    in_weight * (score of the new expert / score of the old one); a pair
    that finds no room is dropped (id -1, weight 0).

    ```mlir
    %ids, %w = moe.capacity_reroute %ids0, %w0, %scores {capacity_factor = 1.0 : f32}
        : tensor<?x2xi32>, tensor<?x2xf32>, tensor<?x8xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
    ```
  }];
  let arguments = (ins Moe_RoutingIds:$in_ids, Moe_RoutingWeights:$in_weights,
                   Moe_Matrix:$scores, F32Attr:$capacity_factor);
  let assemblyFormat = [{
    $in_ids `,` $in_weights `,` $scores attr-dict `:` type($in_ids) `,` type($in_weights)
    `,` type($scores) `->` type($ids) `,` type($weights)
  }];
  let extraClassDeclaration = routerDecls;
}

//===----------------------------------------------------------------------===//
// Compressed experts (issue 29): slots beyond a token's top `keep` run the
// compressed stand-ins placed after the full experts in the expert table.
//===----------------------------------------------------------------------===//

def Moe_CompressSlotsOp : Moe_RouterOp<"compress_slots"> {
  let summary = "compressed experts: slots beyond a token's top `keep` go to compressed stand-ins";
  let description = [{
    E = the length of `compressed`, the full experts; N_c = max(compressed)
    + 1 compressed experts follow them in the layer's expert table, so the
    result chooses among E + N_c experts. Per token, the used slots are
    ranked by descending weight (ties: lower slot); the first `keep` keep
    their expert e, the others take E + compressed[e], the compressed
    stand-in of e, with the same weight. Unused slots stay unused.

    ```mlir
    %ids, %w = moe.compress_slots %ids0, %w0 {keep = 1, compressed = array<i64: 0, 1, 2, 3>}
        : tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
    ```
  }];
  let arguments = (ins Moe_RoutingIds:$in_ids, Moe_RoutingWeights:$in_weights,
                   I64Attr:$keep, DenseI64ArrayAttr:$compressed);
  let assemblyFormat = [{
    $in_ids `,` $in_weights attr-dict `:` type($in_ids) `,` type($in_weights)
    `->` type($ids) `,` type($weights)
  }];
  let extraClassDeclaration = routerDecls # [{
    /// E: the full experts (the length of `compressed`).
    int64_t getNumFull() { return getCompressed().size(); }
    /// N_c: the compressed experts after them (max(compressed) + 1).
    int64_t getNumCompressed();
  }];
}

def Moe_PathRouterOp : Moe_Op<"path_router", [Pure]> {
  let summary = "per-token argmax over P path logits (Duo-LLM learned router)";
  let description = [{
    path[t] = argmax_p (gate · x_t)[p], ties to the lower p.
  }];
  let arguments = (ins Moe_Hidden:$hidden, Moe_Matrix:$gate);
  let results = (outs Moe_PathIds:$paths);
  let assemblyFormat = [{
    $hidden `,` $gate attr-dict `:` type($hidden) `,` type($gate) `->` type($paths)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Experts: each op defines `count` consecutive entries of an expert table.
//===----------------------------------------------------------------------===//

def Moe_FfnExpertsOp : Moe_Op<"ffn_experts", [Pure, AttrSizedOperandSegments]> {
  let summary = "a bank of N FFN experts with stacked weights";
  let description = [{
    Expert n maps x to w2[n] · act(w1[n] · x) (plain activations) or
    w2[n] · (act(w1[n] · x) ⊙ (w3[n] · x)) (gated: swiglu, geglu).
    w1, w3: [N, I, H]; w2: [N, H, I]. Banks of different I may share a layer.

    `format` (default f32) says how the weights are stored: bf16/f16 as
    such; int8 as i8 with `scales` (one f32 per row: [N, I] for w1 and w3,
    [N, H] for w2, in that order); q8_0/q4_0 as the bytes of GGUF blocks of
    32 along each row, so the last dimension is K/32 * 34 or K/32 * 18
    (K = H for w1/w3, I for w2; K must be a multiple of 32). The weights
    are dequantized exactly as docs/quantization.md says. `activations`
    (default f32) says what the products see of their inputs (x for w1/w3,
    the activation output for w2): exact, rounded to bf16 (bf16 weights
    only), or quantized to Q8_0 blocks (int8/q8_0/q4_0 weights; K a
    multiple of 32). Different banks of one layer may hold different
    formats (mixed precision per expert).
    ```mlir
    %e = moe.ffn_experts swiglu w1(%a : tensor<8x128x36xi8>) w3(%b : tensor<8x128x36xi8>)
        w2(%c : tensor<8x64x72xi8>) format q4_0 activations q8_0 -> !moe.experts<8, 64>
    ```
  }];
  let arguments = (ins Moe_ActivationAttr:$activation, Moe_WeightBank:$w1,
                   Optional<Moe_WeightBank>:$w3, Moe_WeightBank:$w2,
                   Variadic<Moe_RowScales>:$scales,
                   OptionalAttr<Moe_WeightFormatAttr>:$format,
                   OptionalAttr<Moe_ActivationPrecisionAttr>:$activation_precision);
  let results = (outs Moe_ExpertsType:$experts);
  let assemblyFormat = [{
    `` $activation `w1` `(` $w1 `:` type($w1) `)` (`w3` `(` $w3^ `:` type($w3) `)`)?
    `w2` `(` $w2 `:` type($w2) `)` (`format` `` $format^)?
    (`activations` `` $activation_precision^)?
    (`scales` `(` $scales^ `:` type($scales) `)`)? attr-dict `->` qualified(type($experts))
  }];
  let extraClassDeclaration = [{
    /// The format, f32 when not given.
    ::mlir::moe::WeightFormat getWeightFormat() {
      return getFormat().value_or(::mlir::moe::WeightFormat::f32);
    }
    ::mlir::moe::ActivationPrecision getActivationPrecisionOrDefault() {
      return getActivationPrecision().value_or(::mlir::moe::ActivationPrecision::f32);
    }
  }];
  let hasVerifier = 1;
}

def Moe_LoraExpertsOp : Moe_Op<"lora_experts", [Pure, AttrSizedOperandSegments]> {
  let summary = "N LoRA experts over one frozen base FFN (MixLoRA)";
  let description = [{
    Expert n is the FFN with weights W + (alpha / r) · B[n] · A[n] for each
    of W1 (a1: [N, r, H], b1: [N, I, r]), W3 (a3, b3, gated only) and W2
    (a2: [N, r, I], b2: [N, H, r]); base w1, w3: [I, H], w2: [H, I].
  }];
  let arguments = (ins Moe_ActivationAttr:$activation, F32Attr:$alpha,
                   Moe_Matrix:$w1, Optional<Moe_Matrix>:$w3, Moe_Matrix:$w2,
                   Moe_Bank:$a1, Moe_Bank:$b1,
                   Optional<Moe_Bank>:$a3, Optional<Moe_Bank>:$b3,
                   Moe_Bank:$a2, Moe_Bank:$b2);
  let results = (outs Moe_ExpertsType:$experts);
  let assemblyFormat = [{
    `` $activation `base` `(` `w1` $w1 `:` type($w1) `,`
    (`w3` $w3^ `:` type($w3) `,`)? `w2` $w2 `:` type($w2) `)`
    `adapters` `(` `w1` $a1 `,` $b1 `:` type($a1) `,` type($b1) `,`
    (`w3` $a3^ `,` $b3 `:` type($a3) `,` type($b3) `,`)?
    `w2` $a2 `,` $b2 `:` type($a2) `,` type($b2) `)`
    attr-dict `->` qualified(type($experts))
  }];
  let hasVerifier = 1;
}

def Moe_ZeroExpertsOp : Moe_Op<"zero_experts", [Pure]> {
  let summary = "null/zero experts: output 0, cost nothing (AdaMoE, MoE++)";
  let results = (outs Moe_ExpertsType:$experts);
  let assemblyFormat = "attr-dict `:` qualified(type($experts))";
}

def Moe_CopyExpertsOp : Moe_Op<"copy_experts", [Pure]> {
  let summary = "copy experts: output the token's input x (MoE++ 'skip')";
  let results = (outs Moe_ExpertsType:$experts);
  let assemblyFormat = "attr-dict `:` qualified(type($experts))";
}

def Moe_ConstExpertsOp : Moe_Op<"const_experts", [Pure]> {
  let summary = "constant experts: expert n outputs the learned vector values[n]";
  let arguments = (ins Moe_Matrix:$values);
  let results = (outs Moe_ExpertsType:$experts);
  let assemblyFormat = "$values attr-dict `:` type($values) `->` qualified(type($experts))";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Layer and dense FFN
//===----------------------------------------------------------------------===//

def Moe_LayerOp : Moe_Op<"layer", [Pure, AttrSizedOperandSegments]> {
  let summary = "routing + ordered expert table -> weighted sum per token";
  let description = [{
    The expert table is the concatenation of the `experts` banks in order
    (bank 0 holds ids 0..N0-1, ...). For token t:
      y[t] = sum over slots s = 0..K-1 with ids[t, s] != -1, in slot order,
             of weights[t, s] * expert_{ids[t, s]}(x[t]),
             then plus each `shared` expert's output, in order.
    An id outside [-1, E) is a run-time error.
  }];
  let arguments = (ins Moe_Hidden:$hidden, Moe_RoutingIds:$ids,
                   Moe_RoutingWeights:$weights,
                   Variadic<Moe_ExpertsType>:$experts,
                   Variadic<Moe_ExpertsType>:$shared);
  let results = (outs Moe_Hidden:$result);
  let assemblyFormat = [{
    $hidden `,` $ids `,` $weights `experts` `(` $experts `:` qualified(type($experts)) `)`
    (`shared` `(` $shared^ `:` qualified(type($shared)) `)`)? attr-dict `:`
    type($hidden) `,` type($ids) `,` type($weights) `->` type($result)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// Total number of routed experts E (sum of the banks' counts).
    int64_t getNumExperts();
  }];
}

def Moe_FfnOp : Moe_Op<"ffn", [Pure, AttrSizedOperandSegments]> {
  let summary = "a dense FFN applied to every token";
  let description = [{
    y[t] = w2 · act(w1 · x[t]) or w2 · (act(w1 · x[t]) ⊙ (w3 · x[t])).
    w1, w3: [I, H]; w2: [H, I].

    `format`, `activations` and `scales` as for `moe.ffn_experts`, without
    the expert dimension: weights [rows, stored(K)] in the format's storage
    type, int8 scales [rows] (w1, w3, w2 in that order).
    ```mlir
    %y = moe.ffn swiglu %x w1(%a : tensor<128x68xi8>) w3(%b : tensor<128x68xi8>)
        w2(%c : tensor<64x136xi8>) format q8_0 activations q8_0
        : tensor<?x64xf32> -> tensor<?x64xf32>
    ```
  }];
  let arguments = (ins Moe_ActivationAttr:$activation, Moe_Hidden:$hidden,
                   Moe_WeightMatrix:$w1, Optional<Moe_WeightMatrix>:$w3, Moe_WeightMatrix:$w2,
                   Variadic<Moe_MatrixRowScales>:$scales,
                   OptionalAttr<Moe_WeightFormatAttr>:$format,
                   OptionalAttr<Moe_ActivationPrecisionAttr>:$activation_precision);
  let results = (outs Moe_Hidden:$result);
  let assemblyFormat = [{
    `` $activation $hidden `w1` `(` $w1 `:` type($w1) `)` (`w3` `(` $w3^ `:` type($w3) `)`)?
    `w2` `(` $w2 `:` type($w2) `)` (`format` `` $format^)?
    (`activations` `` $activation_precision^)?
    (`scales` `(` $scales^ `:` type($scales) `)`)? attr-dict `:` type($hidden) `->` type($result)
  }];
  let extraClassDeclaration = [{
    /// The format, f32 when not given.
    ::mlir::moe::WeightFormat getWeightFormat() {
      return getFormat().value_or(::mlir::moe::WeightFormat::f32);
    }
    ::mlir::moe::ActivationPrecision getActivationPrecisionOrDefault() {
      return getActivationPrecision().value_or(::mlir::moe::ActivationPrecision::f32);
    }
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Per-token skips
//===----------------------------------------------------------------------===//

def Moe_YieldOp : Moe_Op<"yield", [Pure, Terminator, ReturnLike,
    ParentOneOf<["SkipBlockOp", "PathSelectOp", "HaltingStackOp"]>]> {
  let summary = "yields a region's [T', H] branch output";
  let arguments = (ins Moe_Hidden:$value);
  let assemblyFormat = "$value attr-dict `:` type($value)";
}

def Moe_SkipBlockOp : Moe_Op<"skip_block", [RecursiveMemoryEffects]> {
  let summary = "Mixture-of-Depths / threshold per-token block skip";
  let description = [{
    r[t] = router · x[t] (router: [H]). Selected tokens: the
    ceil(capacity_fraction * T) largest r (ties: lower token index), or those
    with r > threshold; exactly one of the two attributes is given. The body
    receives the selected rows of x, compacted in ascending token order
    ([T', H], T' may be 0), and yields the branch f: [T', H].
      y[t] = x[t] + g[t] * f[t]  for a selected t (g = r[t] with
             `scale_by_score`, else 1);  y[t] = x[t] otherwise.
  }];
  let arguments = (ins Moe_Hidden:$hidden, Moe_Vector:$router,
                   OptionalAttr<F32Attr>:$capacity_fraction,
                   OptionalAttr<F32Attr>:$threshold,
                   UnitAttr:$scale_by_score);
  let results = (outs Moe_Hidden:$result);
  let regions = (region SizedRegion<1>:$body);
  let assemblyFormat = [{
    $hidden `,` $router attr-dict `:` type($hidden) `,` type($router) `->`
    type($result) $body
  }];
  let hasVerifier = 1;
  let hasRegionVerifier = 1;
}

def Moe_PathSelectOp : Moe_Op<"path_select", [RecursiveMemoryEffects]> {
  let summary = "per-token choice among {skip, path 1, ..., path P} (Duo-LLM)";
  let description = [{
    paths[t] = 0: y[t] = x[t] (skip). paths[t] = p in 1..P: the tokens that
    chose p are compacted in ascending token order, region p-1 runs on them
    and yields f; y[t] = x[t] + f[t]. A path outside [0, P] is a run-time
    error. When `paths` comes from a `moe.path_router`, that router's gate
    must have P + 1 rows (skip plus one per region). Duo-LLM: two regions,
    small then big.
  }];
  let arguments = (ins Moe_Hidden:$hidden, Moe_PathIds:$paths);
  let results = (outs Moe_Hidden:$result);
  let regions = (region VariadicRegion<SizedRegion<1>>:$branches);
  let assemblyFormat = [{
    $hidden `,` $paths attr-dict `:` type($hidden) `,` type($paths) `->`
    type($result) $branches
  }];
  let hasVerifier = 1;
  let hasRegionVerifier = 1;
}


//===----------------------------------------------------------------------===//
// Early exit (SkipDecode): a stack of layers, each a moe.path_select whose
// paths come from moe.exit_paths.
//===----------------------------------------------------------------------===//

def Moe_ExitLayersOp : Moe_Op<"exit_layers", [Pure]> {
  let summary = "SkipDecode's exit layer per token from its position (linear schedule)";
  let description = [{
    exits[t] = max_exit - floor((max_exit - min_exit) * min(p, decay_positions)
    / decay_positions) with p = positions[t]: max_exit at position 0, falling
    linearly to min_exit at decay_positions and after, so the exit layer is
    shared by every token at one position and non-increasing in the
    position (SkipDecode). A negative position is a run-time error.
  }];
  let arguments = (ins Moe_PathIds:$positions, I64Attr:$max_exit, I64Attr:$min_exit,
                   I64Attr:$decay_positions);
  let results = (outs Moe_PathIds:$exits);
  let assemblyFormat = [{
    $positions attr-dict `:` type($positions) `->` type($exits)
  }];
  let hasVerifier = 1;
}

def Moe_ExitPathsOp : Moe_Op<"exit_paths", [Pure]> {
  let summary = "path 1 (run) for the tokens whose exit layer is above `layer`, 0 (skip) otherwise";
  let description = [{
    paths[t] = layer < exits[t] ? 1 : 0. The paths of layer `layer` of an
    early-exit stack, for a moe.path_select with one region: a token runs
    layers 0 .. exits[t] - 1 and passes its hidden state through the rest.
  }];
  let arguments = (ins Moe_PathIds:$exits, I64Attr:$layer);
  let results = (outs Moe_PathIds:$paths);
  let assemblyFormat = [{
    $exits attr-dict `:` type($exits) `->` type($paths)
  }];
  let hasVerifier = 1;
}

def Moe_HaltingStackOp : Moe_Op<"halting_stack", [RecursiveMemoryEffects]> {
  let summary = "adaptive computation time (ACT): a stack of layers each token leaves once it halts";
  let description = [{
    L regions, one per layer, each a residual branch on the tokens still
    running (compacted, ascending token order): s[t] += f[j]. After layer l
    a token's halting probability is h = sigmoid(halt_weights[l] · s[t] +
    halt_bias[l]); it halts at the first layer where its cumulative
    halting reaches 1 - epsilon, or at the last layer, taking the remainder
    R = 1 - (cumulative before that layer) as that layer's weight. result[t]
    = sum over the layers it ran of weight * s[t] after that layer; steps[t]
    = the number of layers it ran (the ponder count). Halted tokens are not
    given to later layers. docs/dialect.md §4.22 has the exact rounding.
  }];
  let arguments = (ins Moe_Hidden:$hidden, Moe_Matrix:$halt_weights, Moe_Vector:$halt_bias,
                   F32Attr:$epsilon);
  let results = (outs Moe_Hidden:$result, Moe_PathIds:$steps);
  let regions = (region VariadicRegion<SizedRegion<1>>:$layers);
  let assemblyFormat = [{
    $hidden `,` $halt_weights `,` $halt_bias attr-dict `:` type($hidden) `,`
    type($halt_weights) `,` type($halt_bias) `->` type($result) `,` type($steps) $layers
  }];
  let hasVerifier = 1;
  let hasRegionVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Prepared weights
//===----------------------------------------------------------------------===//

def Moe_PackOp : Moe_Op<"pack", [Pure]> {
  let summary = "a weight copied once into the layout the kernels read";
  let description = [{
    `%p = moe.pack %w layout(#moe.pack_layout<row_stride = S>)
        : tensor<...xRxCxf32> -> tensor<...xRxSxf32>`
    p[..., r, c] = w[..., r, c] for c < C, 0 for C <= c < S. The result is
    the packed storage; the logical weight is its slice
    `tensor.extract_slice %p[0, ..., 0] [..., R, C] [1, ..., 1]`, which the
    CPU lowering reads in place (a strided view: no copy). Made by
    moe-hoist-weight-packing, which moves every moe.pack of a weight
    argument into the entry's `_prepare` function, so a layer packs its
    weights once, not per call. Weights have static shapes.
  }];
  let arguments = (ins TensorRankOf<[F32, BF16, F16, I8], [1, 2, 3, 4]>:$source, Moe_PackLayoutAttr:$layout);
  let results = (outs TensorRankOf<[F32, BF16, F16, I8], [1, 2, 3, 4]>:$packed);
  let assemblyFormat = [{
    $source `layout` `(` qualified($layout) `)` attr-dict `:` type($source) `->` type($packed)
  }];
  let hasVerifier = 1;
}

#endif // MOE_OPS_TD
