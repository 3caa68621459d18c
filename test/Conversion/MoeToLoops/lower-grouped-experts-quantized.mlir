// RUN: moe-opt %s --moe-call-slots "--moe-lower-grouped-experts=ukernel-isa=avx512vnni block-bytes=4096" %bufferize | FileCheck %s
// RUN: moe-opt %s --moe-call-slots "--moe-lower-grouped-experts=ukernel-isa=generic parallel=false" %bufferize | FileCheck %s --check-prefix=SEQ
// RUN: moe-opt %s --moe-call-slots "--moe-lower-grouped-experts=vector-width=8" %bufferize | FileCheck %s --check-prefix=ISA8
// RUN: moe-opt %s --moe-call-slots "--moe-lower-grouped-experts=ukernel-isa=amx block-bytes=4096" %bufferize | FileCheck %s --check-prefix=AMX
// RUN: %if moe-pass-stats %{ moe-opt %s --moe-call-slots "--moe-lower-grouped-experts=ukernel-isa=avx2" -mlir-pass-statistics -o /dev/null 2>&1 | FileCheck %s --check-prefix=STATS %}

// A bank in a low-precision format (here GGUF Q4_0: [N, rows, K/32 * 18]
// bytes, activations quantized to Q8_0 blocks) keeps the FP32 kernel's two
// phases of (expert, block of weight rows) work items, each one call of a
// micro-kernel of the runtime named for the format and the ISA
// (moe_ukernels.h): phase A the up/gate projection with the activation
// fused into a [P, I] intermediate, phase B the down projection into the
// accumulator. Items of an expert without rows do nothing. Weights and
// the int8 scales are passed as addresses with byte row strides, so a
// packed (row-padded) weight needs no copy.

// The micro-kernels are declared once per module.
// CHECK-DAG:   func.func private @moe_uk_ffn_up_q4_0_avx512vnni(
// CHECK-DAG:   func.func private @moe_uk_ffn_down_q4_0_avx512vnni(

// Bank of 3 SwiGLU experts, global ids 5..7; H = 64, I = 128.
//   Phase A: w1+w3 rows of 36 bytes, 4096-byte items: at most 56 rows, so
//   3 equal blocks of 48 rows (multiples of 16) per expert, 9 items.
// CHECK-LABEL: func.func @grouped_q4_0(
// CHECK:         %[[MID:.*]] = memref.alloc(%{{.*}}) {alignment = 64 : i64} : memref<?x128xf32>
// CHECK:         scf.for %{{.*}} = %{{.*}} to %c9 step
// CHECK:           arith.cmpi ult
// CHECK:           scf.if
// CHECK:             func.call @moe_uk_ffn_up_q4_0_avx512vnni({{.*}}) : (!llvm.ptr, i64, !llvm.ptr, i64, !llvm.ptr, !llvm.ptr, i64, !llvm.ptr, !llvm.ptr, i64, i64, i64, i32, i32, !llvm.ptr, i64) -> ()
// CHECK:         } {moe.parallel}
//   Phase B: w2 rows of 72 bytes: at most 56 rows, 2 blocks of 32, 6 items.
// CHECK:         scf.for %{{.*}} = %{{.*}} to %c6 step
// CHECK:             func.call @moe_uk_ffn_down_q4_0_avx512vnni({{.*}}) : (!llvm.ptr, i64, i64, !llvm.ptr, i64, !llvm.ptr, i64, i64, i64, i32, !llvm.ptr, i64) -> ()
// CHECK:         } {moe.parallel}
// CHECK:         memref.dealloc %[[MID]]

// SEQ-LABEL: func.func @grouped_q4_0(
// SEQ:         func.call @moe_uk_ffn_up_q4_0_generic(
// SEQ-NOT:     moe.parallel
// SEQ:         func.call @moe_uk_ffn_down_q4_0_generic(

// Without ukernel-isa the host's best, no wider than the vector width: on
// any x86-64 host this test runs on, vector-width=8 picks avx2 or generic.
// ISA8-LABEL: func.func @grouped_q4_0(
// ISA8:         func.call @moe_uk_ffn_up_q4_0_{{avx2|generic}}(

// STATS: 1 micro-kernel-banks
func.func @grouped_q4_0(%x: tensor<16x64xf32>, %rows: tensor<32xi32>, %offsets: tensor<9xi32>,
                        %w1: tensor<3x128x36xi8>, %w3: tensor<3x128x36xi8>,
                        %w2: tensor<3x64x72xi8>, %acc: tensor<32x64xf32>) -> tensor<32x64xf32> {
  %r = moe.grouped_ffn swiglu %x, %rows, %offsets w1(%w1 : tensor<3x128x36xi8>)
      w3(%w3 : tensor<3x128x36xi8>) w2(%w2 : tensor<3x64x72xi8>) format q4_0 activations q8_0
      into %acc {first_expert = 5 : i64}
      : tensor<16x64xf32>, tensor<32xi32>, tensor<9xi32>, tensor<32x64xf32> -> tensor<32x64xf32>
  return %r : tensor<32x64xf32>
}

// int8: the row scales of each expert are passed with its weights.
// CHECK-LABEL: func.func @grouped_int8(
// CHECK:         memref.extract_strided_metadata %{{.*}} : memref<2x32xf32>
// CHECK:         func.call @moe_uk_ffn_up_int8_avx512vnni(
// CHECK:         func.call @moe_uk_ffn_down_int8_avx512vnni(
func.func @grouped_int8(%x: tensor<16x64xf32>, %rows: tensor<32xi32>, %offsets: tensor<9xi32>,
                        %w1: tensor<2x32x64xi8>, %w2: tensor<2x64x32xi8>,
                        %s1: tensor<2x32xf32>, %s2: tensor<2x64xf32>,
                        %acc: tensor<32x64xf32>) -> tensor<32x64xf32> {
  %r = moe.grouped_ffn relu %x, %rows, %offsets w1(%w1 : tensor<2x32x64xi8>)
      w2(%w2 : tensor<2x64x32xi8>) format int8
      scales(%s1, %s2 : tensor<2x32xf32>, tensor<2x64xf32>)
      into %acc {first_expert = 0 : i64}
      : tensor<16x64xf32>, tensor<32xi32>, tensor<9xi32>, tensor<32x64xf32> -> tensor<32x64xf32>
  return %r : tensor<32x64xf32>
}

// bf16 on AMX tiles: the up kernel packs its tokens once per item, so its
// items are a quarter of an expert's rows (I = 256: 64 rows, 4 items per
// expert, 12 in all) where 4096-byte items would be 16 rows (48 items);
// the down items keep the byte budget (w2 rows of 512 bytes: 16 rows, 4
// blocks per expert).
// AMX-LABEL: func.func @grouped_bf16(
// AMX:         scf.for %{{.*}} = %{{.*}} to %c12{{(_[0-9]+)?}} step
// AMX:             func.call @moe_uk_ffn_up_bf16_amx(
// AMX:         } {moe.parallel}
// AMX:         scf.for %{{.*}} = %{{.*}} to %c12{{(_[0-9]+)?}} step
// AMX:             func.call @moe_uk_ffn_down_bf16_amx(
// AMX:         } {moe.parallel}
func.func @grouped_bf16(%x: tensor<16x64xf32>, %rows: tensor<32xi32>, %offsets: tensor<9xi32>,
                        %w1: tensor<3x256x64xbf16>, %w3: tensor<3x256x64xbf16>,
                        %w2: tensor<3x64x256xbf16>, %acc: tensor<32x64xf32>) -> tensor<32x64xf32> {
  %r = moe.grouped_ffn swiglu %x, %rows, %offsets w1(%w1 : tensor<3x256x64xbf16>)
      w3(%w3 : tensor<3x256x64xbf16>) w2(%w2 : tensor<3x64x256xbf16>) format bf16 activations bf16
      into %acc {first_expert = 0 : i64}
      : tensor<16x64xf32>, tensor<32xi32>, tensor<9xi32>, tensor<32x64xf32> -> tensor<32x64xf32>
  return %r : tensor<32x64xf32>
}
