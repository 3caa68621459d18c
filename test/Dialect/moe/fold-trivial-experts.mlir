// RUN: moe-opt %s --moe-fold-trivial-experts | FileCheck %s
// RUN: %if moe-pass-stats %{ moe-opt %s --moe-fold-trivial-experts -mlir-pass-statistics -o /dev/null 2>&1 | FileCheck %s --check-prefix=STATS %}

// moe-fold-trivial-experts takes zero, copy and constant banks out of a
// layer's expert table: the routing is renumbered by moe.remap_experts (a
// trivial expert's id maps to -1, so its slot is never dispatched), the
// remaining FFN/LoRA banks form a smaller moe.layer, and moe.trivial_combine
// adds the copy (kind 1) and constant (kind 2 + bank) terms, reading the
// ORIGINAL routing. (Statistics are printed only by an MLIR built with
// LLVM_ENABLE_STATS: see lit.local.cfg.)

// MoE++: ids 0-3 FFN, 4 zero, 5 copy, 6-7 constant.
// CHECK-LABEL: func.func @moepp(
// CHECK-SAME:      %[[X:[a-z0-9_]+]]: tensor<?x64xf32>
// CHECK-SAME:      %[[C:[a-z0-9_]+]]: tensor<2x64xf32>)
// CHECK:         %[[IDS:[a-z0-9_]+]], %[[W:[a-z0-9_]+]] = moe.topk_router
// CHECK:         %[[FFN:.*]] = moe.ffn_experts swiglu
// CHECK:         %[[RIDS:[a-z0-9_]+]], %[[RW:[a-z0-9_]+]] = moe.remap_experts %[[IDS]], %[[W]] {map = array<i64: 0, 1, 2, 3, -1, -1, -1, -1>}
// CHECK:         %[[Y:.*]] = moe.layer %[[X]], %[[RIDS]], %[[RW]] experts(%[[FFN]] : !moe.experts<4, 64>) :
// CHECK:         %[[T:.*]] = moe.trivial_combine %[[X]], %[[IDS]], %[[W]] base(%[[Y]] : tensor<?x64xf32>) consts(%[[C]] : tensor<2x64xf32>) {kinds = array<i32: 0, 0, 0, 0, 0, 1, 2, 2>}
// CHECK-NOT:     moe.layer
// CHECK:         return %[[T]]
func.func @moepp(%x: tensor<?x64xf32>, %gate: tensor<8x64xf32>,
                 %w1: tensor<4x128x64xf32>, %w3: tensor<4x128x64xf32>, %w2: tensor<4x64x128xf32>,
                 %consts: tensor<2x64xf32>) -> tensor<?x64xf32> {
  %ids, %w = moe.topk_router softmax %x, %gate {k = 2}
      : tensor<?x64xf32>, tensor<8x64xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  %ffn = moe.ffn_experts swiglu w1(%w1 : tensor<4x128x64xf32>)
      w3(%w3 : tensor<4x128x64xf32>) w2(%w2 : tensor<4x64x128xf32>) -> !moe.experts<4, 64>
  %zero = moe.zero_experts : !moe.experts<1, 64>
  %copy = moe.copy_experts : !moe.experts<1, 64>
  %const = moe.const_experts %consts : tensor<2x64xf32> -> !moe.experts<2, 64>
  %y = moe.layer %x, %ids, %w
      experts(%ffn, %zero, %copy, %const : !moe.experts<4, 64>, !moe.experts<1, 64>,
                                           !moe.experts<1, 64>, !moe.experts<2, 64>)
      : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// Trivial banks between FFN/LoRA banks: the kept banks are renumbered
// densely (2 + 3 kept experts), two constant banks get kinds 2 and 3 and
// their values in bank order, and the shared experts stay on the layer.
// Table: 0-1 zero, 2-3 FFN, 4 const A, 5-7 LoRA, 8 copy, 9-10 const B.
// CHECK-LABEL: func.func @interleaved(
// CHECK-SAME:      %[[X:[a-z0-9_]+]]: tensor<16x64xf32>
// CHECK-SAME:      %[[CA:[a-z0-9_]+]]: tensor<1x64xf32>, %[[CB:[a-z0-9_]+]]: tensor<2x64xf32>
// CHECK-DAG:     %[[FFN:.*]] = moe.ffn_experts gelu
// CHECK-DAG:     %[[LORA:.*]] = moe.lora_experts silu
// CHECK-DAG:     %[[SH:.*]] = moe.ffn_experts relu
// CHECK:         %[[RIDS:[a-z0-9_]+]], %[[RW:[a-z0-9_]+]] = moe.remap_experts %[[IDS:[a-z0-9_]+]], %[[W:[a-z0-9_]+]] {map = array<i64: -1, -1, 0, 1, -1, 2, 3, 4, -1, -1, -1>}
// CHECK:         %[[Y:.*]] = moe.layer %[[X]], %[[RIDS]], %[[RW]] experts(%[[FFN]], %[[LORA]] : !moe.experts<2, 64>, !moe.experts<3, 64>) shared(%[[SH]] : !moe.experts<1, 64>)
// CHECK:         moe.trivial_combine %[[X]], %[[IDS]], %[[W]] base(%[[Y]] : tensor<16x64xf32>) consts(%[[CA]], %[[CB]] : tensor<1x64xf32>, tensor<2x64xf32>) {kinds = array<i32: 0, 0, 0, 0, 2, 0, 0, 0, 1, 3, 3>}
func.func @interleaved(%x: tensor<16x64xf32>, %ids: tensor<16x3xi32>, %w: tensor<16x3xf32>,
                       %w1: tensor<2x32x64xf32>, %w2: tensor<2x64x32xf32>,
                       %lw1: tensor<32x64xf32>, %lw2: tensor<64x32xf32>,
                       %a1: tensor<3x4x64xf32>, %b1: tensor<3x32x4xf32>,
                       %a2: tensor<3x4x32xf32>, %b2: tensor<3x64x4xf32>,
                       %s1: tensor<1x16x64xf32>, %s2: tensor<1x64x16xf32>,
                       %ca: tensor<1x64xf32>, %cb: tensor<2x64xf32>) -> tensor<16x64xf32> {
  %zero = moe.zero_experts : !moe.experts<2, 64>
  %ffn = moe.ffn_experts gelu w1(%w1 : tensor<2x32x64xf32>) w2(%w2 : tensor<2x64x32xf32>)
      -> !moe.experts<2, 64>
  %consta = moe.const_experts %ca : tensor<1x64xf32> -> !moe.experts<1, 64>
  %lora = moe.lora_experts silu base(w1 %lw1 : tensor<32x64xf32>, w2 %lw2 : tensor<64x32xf32>)
      adapters(w1 %a1, %b1 : tensor<3x4x64xf32>, tensor<3x32x4xf32>,
               w2 %a2, %b2 : tensor<3x4x32xf32>, tensor<3x64x4xf32>)
      {alpha = 8.0 : f32} -> !moe.experts<3, 64>
  %copy = moe.copy_experts : !moe.experts<1, 64>
  %constb = moe.const_experts %cb : tensor<2x64xf32> -> !moe.experts<2, 64>
  %shared = moe.ffn_experts relu w1(%s1 : tensor<1x16x64xf32>) w2(%s2 : tensor<1x64x16xf32>)
      -> !moe.experts<1, 64>
  %y = moe.layer %x, %ids, %w
      experts(%zero, %ffn, %consta, %lora, %copy, %constb
              : !moe.experts<2, 64>, !moe.experts<2, 64>, !moe.experts<1, 64>,
                !moe.experts<3, 64>, !moe.experts<1, 64>, !moe.experts<2, 64>)
      shared(%shared : !moe.experts<1, 64>)
      : tensor<16x64xf32>, tensor<16x3xi32>, tensor<16x3xf32> -> tensor<16x64xf32>
  return %y : tensor<16x64xf32>
}

// Only zero experts are trivial (AdaMoE): slots of ids 6-9 become unused;
// there is no copy/constant term, so trivial_combine has no consts. The
// layer sits in a skip_block region: nested layers are folded too.
// CHECK-LABEL: func.func @zero_only_nested(
// CHECK:         moe.skip_block
// CHECK:           %[[FFN:.*]] = moe.ffn_experts swiglu
// CHECK:           %[[RIDS:[a-z0-9_]+]], %[[RW:[a-z0-9_]+]] = moe.remap_experts %{{.*}} {map = array<i64: 0, 1, 2, 3, 4, 5, -1, -1, -1, -1>}
// CHECK:           %[[Y:.*]] = moe.layer %{{.*}}, %[[RIDS]], %[[RW]] experts(%[[FFN]] : !moe.experts<6, 64>) :
// CHECK:           %[[T:.*]] = moe.trivial_combine %{{.*}} base(%[[Y]] : tensor<?x64xf32>) {kinds = array<i32: 0, 0, 0, 0, 0, 0, 0, 0, 0, 0>}
// CHECK:           moe.yield %[[T]]
func.func @zero_only_nested(%x: tensor<?x64xf32>, %router: tensor<64xf32>, %gate: tensor<10x64xf32>,
                            %w1: tensor<6x96x64xf32>, %w3: tensor<6x96x64xf32>,
                            %w2: tensor<6x64x96xf32>) -> tensor<?x64xf32> {
  %y = moe.skip_block %x, %router {threshold = 0.0 : f32}
      : tensor<?x64xf32>, tensor<64xf32> -> tensor<?x64xf32> {
  ^bb0(%xs: tensor<?x64xf32>):
    %ids, %w = moe.topp_router %xs, %gate {threshold = 0.6 : f32, max_k = 4}
        : tensor<?x64xf32>, tensor<10x64xf32> -> tensor<?x4xi32>, tensor<?x4xf32>
    %ffn = moe.ffn_experts swiglu w1(%w1 : tensor<6x96x64xf32>)
        w3(%w3 : tensor<6x96x64xf32>) w2(%w2 : tensor<6x64x96xf32>) -> !moe.experts<6, 64>
    %null = moe.zero_experts : !moe.experts<4, 64>
    %f = moe.layer %xs, %ids, %w experts(%ffn, %null : !moe.experts<6, 64>, !moe.experts<4, 64>)
        : tensor<?x64xf32>, tensor<?x4xi32>, tensor<?x4xf32> -> tensor<?x64xf32>
    moe.yield %f : tensor<?x64xf32>
  }
  return %y : tensor<?x64xf32>
}

// Only trivial routed experts and no shared ones: no moe.layer is left (and
// nothing is dispatched); trivial_combine alone, without a base, is the
// layer's output.
// CHECK-LABEL: func.func @only_trivial(
// CHECK-SAME:      %[[X:[a-z0-9_]+]]: tensor<16x64xf32>, %[[IDS:[a-z0-9_]+]]: tensor<16x2xi32>, %[[W:[a-z0-9_]+]]: tensor<16x2xf32>, %[[C:[a-z0-9_]+]]: tensor<1x64xf32>)
// CHECK-NOT:     moe.remap_experts
// CHECK-NOT:     moe.layer
// CHECK:         %[[T:.*]] = moe.trivial_combine %[[X]], %[[IDS]], %[[W]] consts(%[[C]] : tensor<1x64xf32>) {kinds = array<i32: 0, 1, 2>}
// CHECK-NOT:     moe.layer
// CHECK:         return %[[T]]
func.func @only_trivial(%x: tensor<16x64xf32>, %ids: tensor<16x2xi32>, %w: tensor<16x2xf32>,
                        %c: tensor<1x64xf32>) -> tensor<16x64xf32> {
  %zero = moe.zero_experts : !moe.experts<1, 64>
  %copy = moe.copy_experts : !moe.experts<1, 64>
  %const = moe.const_experts %c : tensor<1x64xf32> -> !moe.experts<1, 64>
  %y = moe.layer %x, %ids, %w
      experts(%zero, %copy, %const : !moe.experts<1, 64>, !moe.experts<1, 64>, !moe.experts<1, 64>)
      : tensor<16x64xf32>, tensor<16x2xi32>, tensor<16x2xf32> -> tensor<16x64xf32>
  return %y : tensor<16x64xf32>
}

// Only trivial routed experts but shared experts: the shared experts still
// need a layer, whose routed table is a single placeholder zero expert that
// every slot skips (map all -1).
// CHECK-LABEL: func.func @only_trivial_shared(
// CHECK-SAME:      %[[X:[a-z0-9_]+]]: tensor<?x64xf32>, %[[IDS:[a-z0-9_]+]]: tensor<?x2xi32>, %[[W:[a-z0-9_]+]]: tensor<?x2xf32>
// CHECK:         %[[SH:.*]] = moe.ffn_experts geglu
// CHECK:         %[[PH:.*]] = moe.zero_experts : !moe.experts<1, 64>
// CHECK:         %[[RIDS:[a-z0-9_]+]], %[[RW:[a-z0-9_]+]] = moe.remap_experts %[[IDS]], %[[W]] {map = array<i64: -1, -1>}
// CHECK:         %[[Y:.*]] = moe.layer %[[X]], %[[RIDS]], %[[RW]] experts(%[[PH]] : !moe.experts<1, 64>) shared(%[[SH]] : !moe.experts<2, 64>)
// CHECK:         moe.trivial_combine %[[X]], %[[IDS]], %[[W]] base(%[[Y]] : tensor<?x64xf32>) {kinds = array<i32: 1, 1>}
func.func @only_trivial_shared(%x: tensor<?x64xf32>, %ids: tensor<?x2xi32>, %w: tensor<?x2xf32>,
                               %s1: tensor<2x32x64xf32>, %s3: tensor<2x32x64xf32>,
                               %s2: tensor<2x64x32xf32>) -> tensor<?x64xf32> {
  %copy = moe.copy_experts : !moe.experts<2, 64>
  %shared = moe.ffn_experts geglu w1(%s1 : tensor<2x32x64xf32>) w3(%s3 : tensor<2x32x64xf32>)
      w2(%s2 : tensor<2x64x32xf32>) -> !moe.experts<2, 64>
  %y = moe.layer %x, %ids, %w experts(%copy : !moe.experts<2, 64>)
      shared(%shared : !moe.experts<2, 64>)
      : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// No trivial expert: the layer is left exactly as it was.
// CHECK-LABEL: func.func @no_trivial(
// CHECK-SAME:      %[[X:[a-z0-9_]+]]: tensor<16x64xf32>, %[[IDS:[a-z0-9_]+]]: tensor<16x2xi32>, %[[W:[a-z0-9_]+]]: tensor<16x2xf32>
// CHECK-NOT:     moe.remap_experts
// CHECK:         %[[A:.*]] = moe.ffn_experts swiglu
// CHECK:         %[[B:.*]] = moe.ffn_experts gelu
// CHECK-NOT:     moe.remap_experts
// CHECK:         %[[Y:.*]] = moe.layer %[[X]], %[[IDS]], %[[W]] experts(%[[A]], %[[B]] : !moe.experts<2, 64>, !moe.experts<2, 64>) :
// CHECK-NOT:     moe.trivial_combine
// CHECK:         return %[[Y]]
func.func @no_trivial(%x: tensor<16x64xf32>, %ids: tensor<16x2xi32>, %w: tensor<16x2xf32>,
                      %w1: tensor<2x32x64xf32>, %w3: tensor<2x32x64xf32>, %w2: tensor<2x64x32xf32>,
                      %v1: tensor<2x32x64xf32>, %v2: tensor<2x64x32xf32>) -> tensor<16x64xf32> {
  %a = moe.ffn_experts swiglu w1(%w1 : tensor<2x32x64xf32>) w3(%w3 : tensor<2x32x64xf32>)
      w2(%w2 : tensor<2x64x32xf32>) -> !moe.experts<2, 64>
  %b = moe.ffn_experts gelu w1(%v1 : tensor<2x32x64xf32>) w2(%v2 : tensor<2x64x32xf32>)
      -> !moe.experts<2, 64>
  %y = moe.layer %x, %ids, %w experts(%a, %b : !moe.experts<2, 64>, !moe.experts<2, 64>)
      : tensor<16x64xf32>, tensor<16x2xi32>, tensor<16x2xf32> -> tensor<16x64xf32>
  return %y : tensor<16x64xf32>
}

// Counts over the whole file, in experts (not banks):
// zero 1 + 2 + 4 + 1 = 8, copy 1 + 1 + 1 + 2 = 5, const 2 + 3 + 1 = 6.
// STATS:      MoeFoldTrivialExperts
// STATS-NEXT:   (S) 6 const-experts-folded
// STATS-NEXT:   (S) 5 copy-experts-folded
// STATS-NEXT:   (S) 8 zero-experts-folded
