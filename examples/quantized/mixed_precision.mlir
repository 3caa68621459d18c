// Mixed precision per expert (MC-MoE): the experts a router picks most keep
// more bits. Softmax top-2 over 8 SwiGLU experts (H = 64, I = 128): experts
// 0-1 in 8-bit blocks (GGUF Q8_0), experts 2-7 in 4-bit blocks (GGUF Q4_0,
// activations quantized to Q8_0 as llama.cpp does), plus one always-on
// shared expert in BF16 (activations rounded to BF16, as PyTorch's BF16
// path). Stored row lengths: Q8_0 K/32*34 bytes, Q4_0 K/32*18 bytes
// (docs/quantization.md). The token count T is dynamic.
func.func @main(%x: tensor<?x64xf32>, %gate: tensor<8x64xf32>,
                %h1: tensor<2x128x68xi8>, %h3: tensor<2x128x68xi8>, %h2: tensor<2x64x136xi8>,
                %c1: tensor<6x128x36xi8>, %c3: tensor<6x128x36xi8>, %c2: tensor<6x64x72xi8>,
                %s1: tensor<1x128x64xbf16>, %s3: tensor<1x128x64xbf16>,
                %s2: tensor<1x64x128xbf16>) -> tensor<?x64xf32> {
  %ids, %w = moe.topk_router softmax %x, %gate {k = 2, renormalize}
      : tensor<?x64xf32>, tensor<8x64xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  %hot = moe.ffn_experts swiglu w1(%h1 : tensor<2x128x68xi8>) w3(%h3 : tensor<2x128x68xi8>)
      w2(%h2 : tensor<2x64x136xi8>) format q8_0 -> !moe.experts<2, 64>
  %cold = moe.ffn_experts swiglu w1(%c1 : tensor<6x128x36xi8>) w3(%c3 : tensor<6x128x36xi8>)
      w2(%c2 : tensor<6x64x72xi8>) format q4_0 activations q8_0 -> !moe.experts<6, 64>
  %shared = moe.ffn_experts swiglu w1(%s1 : tensor<1x128x64xbf16>)
      w3(%s3 : tensor<1x128x64xbf16>) w2(%s2 : tensor<1x64x128xbf16>) format bf16
      activations bf16 -> !moe.experts<1, 64>
  %y = moe.layer %x, %ids, %w experts(%hot, %cold : !moe.experts<2, 64>, !moe.experts<6, 64>)
      shared(%shared : !moe.experts<1, 64>)
      : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
