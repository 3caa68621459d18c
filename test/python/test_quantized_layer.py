"""A layer with low-precision expert weights end to end in Python: weights
quantized by moec.quantize (checked bit for bit against quant_numpy.py),
saved and loaded as safetensors, compiled and prepared, and the output
checked against an independent numpy model that dequantizes with
quant_numpy.py and computes in float64 (moe_numpy.py): experts 0-1 in
Q8_0, 2-7 in Q4_0 and a BF16 shared expert, all with exact (f32)
activations, so the bound is the FP32 one."""

import os
import tempfile
import unittest

import numpy as np

import moec
import moe_numpy as ref
import quant_numpy as qn

H, I, K = 64, 96, 2
HOT, COLD = 2, 6
E = HOT + COLD


def stored(fmt, k):
    return {"q8_0": k // 32 * 34, "q4_0": k // 32 * 18}.get(fmt, k)


LAYER = f"""
func.func @main(%x: tensor<?x{H}xf32>, %gate: tensor<{E}x{H}xf32>,
                %h1: tensor<{HOT}x{I}x{stored('q8_0', H)}xi8>, %h3: tensor<{HOT}x{I}x{stored('q8_0', H)}xi8>,
                %h2: tensor<{HOT}x{H}x{stored('q8_0', I)}xi8>,
                %c1: tensor<{COLD}x{I}x{stored('q4_0', H)}xi8>, %c3: tensor<{COLD}x{I}x{stored('q4_0', H)}xi8>,
                %c2: tensor<{COLD}x{H}x{stored('q4_0', I)}xi8>,
                %s1: tensor<1x{I}x{H}xbf16>, %s3: tensor<1x{I}x{H}xbf16>, %s2: tensor<1x{H}x{I}xbf16>)
    -> tensor<?x{H}xf32> {{
  %ids, %w = moe.topk_router softmax %x, %gate {{k = {K}, renormalize}}
      : tensor<?x{H}xf32>, tensor<{E}x{H}xf32> -> tensor<?x{K}xi32>, tensor<?x{K}xf32>
  %hot = moe.ffn_experts swiglu w1(%h1 : tensor<{HOT}x{I}x{stored('q8_0', H)}xi8>)
      w3(%h3 : tensor<{HOT}x{I}x{stored('q8_0', H)}xi8>) w2(%h2 : tensor<{HOT}x{H}x{stored('q8_0', I)}xi8>)
      format q8_0 -> !moe.experts<{HOT}, {H}>
  %cold = moe.ffn_experts swiglu w1(%c1 : tensor<{COLD}x{I}x{stored('q4_0', H)}xi8>)
      w3(%c3 : tensor<{COLD}x{I}x{stored('q4_0', H)}xi8>) w2(%c2 : tensor<{COLD}x{H}x{stored('q4_0', I)}xi8>)
      format q4_0 -> !moe.experts<{COLD}, {H}>
  %shared = moe.ffn_experts swiglu w1(%s1 : tensor<1x{I}x{H}xbf16>) w3(%s3 : tensor<1x{I}x{H}xbf16>)
      w2(%s2 : tensor<1x{H}x{I}xbf16>) format bf16 -> !moe.experts<1, {H}>
  %y = moe.layer %x, %ids, %w experts(%hot, %cold : !moe.experts<{HOT}, {H}>, !moe.experts<{COLD}, {H}>)
      shared(%shared : !moe.experts<1, {H}>)
      : tensor<?x{H}xf32>, tensor<?x{K}xi32>, tensor<?x{K}xf32> -> tensor<?x{H}xf32>
  return %y : tensor<?x{H}xf32>
}}
"""


def rand(rng, *shape):
    a = (3.0 / shape[-1]) ** 0.5
    return rng.uniform(-a, a, size=shape).astype(np.float32)


class QuantizedLayerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rng = np.random.default_rng(26)
        cls.gate = rand(rng, E, H)
        cls.fp32 = {n: rand(rng, *s) for n, s in [
            ("h1", (HOT, I, H)), ("h3", (HOT, I, H)), ("h2", (HOT, H, I)),
            ("c1", (COLD, I, H)), ("c3", (COLD, I, H)), ("c2", (COLD, H, I)),
            ("s1", (1, I, H)), ("s3", (1, I, H)), ("s2", (1, H, I))]}
        fmt = {"h": "q8_0", "c": "q4_0", "s": "bf16"}
        cls.q = {n: moec.quantize(w, fmt[n[0]]) for n, w in cls.fp32.items()}
        cls.compiled = moec.compile(LAYER)

    def weights(self):
        return [self.gate] + [self.q[n].data for n in
                              ["h1", "h3", "h2", "c1", "c3", "c2", "s1", "s3", "s2"]]

    def numpy_layer(self, x):
        """Dequantized with quant_numpy (not moec), computed in float64."""
        def deq(n):
            w, k = self.fp32[n], self.fp32[n].shape[-1]
            if n[0] == "h":
                return qn.dequant_q8_0(qn.q8_0(w), k)
            if n[0] == "c":
                return qn.dequant_q4_0(qn.q4_0(w), k)
            return qn.bf16_to_f32(qn.bf16_rne(w))
        banks = [ref.ffn_bank("swiglu", deq("h1"), deq("h2"), deq("h3")),
                 ref.ffn_bank("swiglu", deq("c1"), deq("c2"), deq("c3"))]
        shared = [ref.ffn_bank("swiglu", deq("s1"), deq("s2"), deq("s3"))]
        ids, w = ref.topk_router(x, self.gate, K, renormalize=True)
        return ref.layer(x, ids, w, banks, shared)

    def test_bytes_are_ggmls(self):
        for n, w in self.fp32.items():
            want = {"h": qn.q8_0, "c": qn.q4_0, "s": qn.bf16_rne}[n[0]](w)
            np.testing.assert_array_equal(self.q[n].data.view(want.dtype), want, err_msg=n)

    def check(self, got, x):
        want = self.numpy_layer(x)
        err = np.abs(got - want).max() / max(np.abs(want).max(), 1e-30)
        self.assertLess(err, 1e-4)

    def test_compiled_and_prepared_match_numpy(self):
        prepared = self.compiled.prepare(*self.weights())
        for tokens in (1, 7, 64, 513):
            x = rand(np.random.default_rng(tokens), tokens, H)
            self.check(self.compiled(x, *self.weights()), x)
            self.check(prepared(x), x)

    def test_reference_takes_quantized_weights(self):
        x = rand(np.random.default_rng(3), 5, H)
        got = moec.reference(LAYER, x, *self.weights())
        self.check(got, x)

    def test_weights_through_safetensors(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "layer.safetensors")
            moec.save_safetensors(path, dict(self.q, gate=self.gate))
            f = moec.load_safetensors(path)
            names = ["h1", "h3", "h2", "c1", "c3", "c2", "s1", "s3", "s2"]
            loaded = [f["gate"]] + [f[n] for n in names]
            x = rand(np.random.default_rng(9), 9, H)
            self.check(self.compiled.prepare(*loaded)(x), x)

    def test_wrong_weight_dtype_names_the_argument(self):
        w = self.weights()
        w[1] = self.fp32["h1"]  # float32 where the layer takes q8_0 bytes
        with self.assertRaisesRegex(TypeError, "h1"):
            self.compiled(rand(np.random.default_rng(1), 2, H), *w)


if __name__ == "__main__":
    unittest.main()
