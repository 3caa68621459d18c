// MixLoRA layer: one frozen SwiGLU FFN shared by 4 LoRA experts (rank 8,
// alpha 16, adapters on w1, w3 and w2), routed by softmax top-2.
// H = 64, I = 128.
// The token count T is dynamic (moe-run --tokens=T).
func.func @main(%x: tensor<?x64xf32>, %gate: tensor<4x64xf32>,
                %w1: tensor<128x64xf32>, %w3: tensor<128x64xf32>, %w2: tensor<64x128xf32>,
                %a1: tensor<4x8x64xf32>, %b1: tensor<4x128x8xf32>,
                %a3: tensor<4x8x64xf32>, %b3: tensor<4x128x8xf32>,
                %a2: tensor<4x8x128xf32>, %b2: tensor<4x64x8xf32>) -> tensor<?x64xf32> {
  %ids, %w = moe.topk_router softmax %x, %gate {k = 2, renormalize}
      : tensor<?x64xf32>, tensor<4x64xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  %lora = moe.lora_experts swiglu
      base(w1 %w1 : tensor<128x64xf32>, w3 %w3 : tensor<128x64xf32>, w2 %w2 : tensor<64x128xf32>)
      adapters(w1 %a1, %b1 : tensor<4x8x64xf32>, tensor<4x128x8xf32>,
               w3 %a3, %b3 : tensor<4x8x64xf32>, tensor<4x128x8xf32>,
               w2 %a2, %b2 : tensor<4x8x128xf32>, tensor<4x64x8xf32>)
      {alpha = 16.0 : f32} -> !moe.experts<4, 64>
  %y = moe.layer %x, %ids, %w experts(%lora : !moe.experts<4, 64>)
      : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
