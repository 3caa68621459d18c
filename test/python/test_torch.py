"""moec with PyTorch: torch tensors in and out of compiled and prepared
calls, writable torch outputs, arguments by name, errors naming the
argument; moec.torch.MoE replacing sparse MoE blocks written in plain torch
(torch_blocks.py: Mixtral, DeepSeek-V3, MoE++) with the same parameters.
Skipped without torch (scripts/setup.sh installs python3-torch)."""

import unittest

import numpy as np

import moec

try:
    import torch
    import moec.torch as moec_torch
    import torch_blocks as tb
except ImportError:  # pragma: no cover - CI installs python3-torch
    torch = None

MIXTRAL = dict(model_type="mixtral", hidden_size=32, intermediate_size=64, num_local_experts=4,
               num_experts_per_tok=2, hidden_act="silu")


def rel_error(got, want):
    got, want = torch.as_tensor(got).double(), torch.as_tensor(want).double()
    return float((got - want).abs().max() / want.abs().max())


@unittest.skipIf(torch is None, "python3-torch is not installed")
class TorchCallsTest(unittest.TestCase):
    def setUp(self):
        self.fn = moec.compile(moec.from_config(MIXTRAL))
        args = moec.random_inputs(self.fn, tokens=6, seed=1)
        self.x = torch.from_numpy(args[0])
        self.weights = {n: torch.from_numpy(a) for n, a in zip(self.fn.argument_names[1:], args[1:])}
        self.want = moec.reference(self.fn, *args)

    def test_torch_in_torch_out_numpy_in_numpy_out(self):
        y = self.fn(self.x, *self.weights.values())
        self.assertIsInstance(y, torch.Tensor)
        self.assertLess(rel_error(y, self.want), 1e-4)
        y_np = self.fn(self.x.numpy(), *(w.numpy() for w in self.weights.values()))
        self.assertIsInstance(y_np, np.ndarray)
        np.testing.assert_array_equal(y_np, y.numpy())
        want = moec.reference(self.fn, self.x, *self.weights.values())
        self.assertIsInstance(want, torch.Tensor)
        np.testing.assert_array_equal(want.numpy(), self.want)

    def test_arguments_by_name(self):
        y = self.fn(self.x, **self.weights)
        self.assertLess(rel_error(y, self.want), 1e-4)
        shuffled = dict(reversed(list(self.weights.items())))
        np.testing.assert_array_equal(self.fn(x=self.x, **shuffled).numpy(), y.numpy())
        prepared = self.fn.prepare(**shuffled)
        np.testing.assert_array_equal(prepared(x=self.x).numpy(), y.numpy())
        with self.assertRaisesRegex(TypeError, r"no argument 'gat' \(did you mean 'gate'\?\)"):
            self.fn(self.x, gat=self.weights["gate"])
        with self.assertRaisesRegex(TypeError, r"'x' \(#0\) is given twice"):
            self.fn(self.x, x=self.x, **self.weights)
        partial = dict(self.weights)
        del partial["w3"]
        with self.assertRaisesRegex(TypeError, "missing the arguments w3"):
            self.fn(self.x, **partial)
        with self.assertRaisesRegex(TypeError, "missing the arguments w2"):
            self.fn.prepare(gate=self.weights["gate"], w1=self.weights["w1"], w3=self.weights["w3"])

    def test_writable_torch_out(self):
        out = torch.full((6, 32), 7.0)
        got = self.fn(self.x, **self.weights, out=out)
        self.assertIs(got, out)
        self.assertLess(rel_error(out, self.want), 1e-4)
        prepared = self.fn.prepare(**self.weights)
        out2 = torch.zeros(6, 32)
        prepared(self.x, out=out2)
        self.assertTrue(torch.equal(out, out2))

    def test_any_writable_dlpack_producer_as_out(self):
        class Producer:  # DLPack only: no buffer protocol, no torch type
            def __init__(self, tensor):
                self._t = tensor

            def __dlpack__(self, stream=None):
                return self._t.__dlpack__()

            def __dlpack_device__(self):
                return self._t.__dlpack_device__()

        out = torch.zeros(6, 32)
        self.fn(Producer(self.x), **self.weights, out=Producer(out))
        self.assertLess(rel_error(out, self.want), 1e-4)
        with self.assertRaisesRegex(TypeError, r"argument #0 \('x'\): the DLPack element type "
                                               "complex64 has no numpy equivalent"):
            self.fn(Producer(self.x.to(torch.complex64)), **self.weights)

    def test_errors_name_the_argument(self):
        before = torch.full((6, 32), 7.0)
        cases = [
            ({"x": self.x.bfloat16()}, TypeError, r"argument #0 \('x'\): expected dtype float32, got bfloat16"),
            ({"x": self.x.clone().requires_grad_()}, TypeError, r"argument #0 \('x'\): the tensor requires grad"),
            ({"w1": torch.nn.Parameter(self.weights["w1"].clone())}, TypeError, r"argument #2 \('w1'\): the tensor requires grad"),
            ({"w2": self.weights["w2"].double()}, TypeError, r"argument #4 \('w2'\): expected dtype float32, got float64"),
            ({"x": self.x.t().contiguous().t()}, ValueError, r"argument #0 \('x'\).*non-contiguous"),
            ({"gate": self.weights["gate"].to("meta")}, ValueError, r"argument #1 \('gate'\): the tensor is on meta; moec runs on the CPU"),
        ]
        for change, error, message in cases:
            with self.subTest(change=list(change)):
                args = {"x": self.x, **self.weights, **change}
                with self.assertRaisesRegex(error, message):
                    self.fn(**args, out=before)
                self.assertTrue(torch.all(before == 7.0))
        with self.assertRaisesRegex(TypeError, r"weight #1 \('w1'\): the tensor requires grad"):
            self.fn.prepare(**{**self.weights, "w1": torch.nn.Parameter(self.weights["w1"])})
        with self.assertRaisesRegex(ValueError, r"out #0.*expected shape \[6, 32\]"):
            self.fn(self.x, **self.weights, out=torch.zeros(6, 31))

    def test_bf16_tensors_for_bf16_weights(self):
        # A bf16 bank reads torch.bfloat16 tensors as their bits: the same
        # layer in f32 with the weights widened exactly computes the same.
        text = moec.from_config(MIXTRAL).to_mlir()
        for shape in ("4x64x32", "4x32x64"):  # w1, w3 and w2: nothing else has these shapes
            text = text.replace(f"tensor<{shape}xf32>", f"tensor<{shape}xbf16>")
        text = text.replace("-> !moe.experts<4, 32>", "format bf16 -> !moe.experts<4, 32>")
        fn_bf16 = moec.compile(text)
        bf16 = {n: (w.bfloat16() if n != "gate" else w) for n, w in self.weights.items()}
        got = fn_bf16.prepare(**bf16)(self.x)
        want = self.fn(self.x, **{n: w.float() for n, w in bf16.items()})
        self.assertLess(rel_error(got, want), 1e-5)
        with self.assertRaisesRegex(TypeError, r"argument #1 \('gate'\): expected dtype float32, got bfloat16"):
            fn_bf16(self.x, **{**bf16, "gate": self.weights["gate"].bfloat16()})


def stack(experts, name):
    return torch.stack([getattr(e, name).weight for e in experts])


@unittest.skipIf(torch is None, "python3-torch is not installed")
class TorchModuleTest(unittest.TestCase):
    def check(self, block, module, hidden, tokens=(1, 9, 40)):
        for t in tokens:
            x = torch.rand(t, hidden, generator=torch.Generator().manual_seed(t)) * 2 - 1
            with torch.no_grad():
                want = block(x)
            got = module(x)
            self.assertEqual(got.shape, want.shape)
            self.assertLess(rel_error(got, want), 1e-4, f"T = {t}")
        # Leading dimensions are flattened into tokens, as a [B, S, H] model calls it.
        x = torch.rand(2, 3, hidden) - 0.5
        with torch.no_grad():
            self.assertLess(rel_error(module(x), block(x.reshape(6, hidden)).reshape(2, 3, hidden)), 1e-4)

    def test_mixtral_block(self):
        block = tb.randomize(tb.SoftmaxTopK(32, 64, 8, 2, renormalize=True, names=("w1", "w3", "w2")))
        L = moec.from_config(MIXTRAL, num_local_experts=8)
        weights = {"gate": block.gate.weight, "w1": stack(block.experts, "w1"),
                   "w3": stack(block.experts, "w3"), "w2": stack(block.experts, "w2")}
        module = moec_torch.MoE(L, weights)
        self.check(block, module, 32)
        # The same from the block's own state dict, by Mixtral's tensor names.
        named = tb.prefixed(block.state_dict(), "model.layers.0.block_sparse_moe.")
        self.check(block, moec_torch.MoE.from_config(MIXTRAL, named, num_local_experts=8), 32)

    def test_deepseek_v3_block(self):
        block = tb.randomize(tb.DeepSeekV3(32, 16, experts=16, k=4, n_group=4, topk_group=2,
                                           scaling=2.5, n_shared=2))
        with torch.no_grad():  # a small bias keeps sigmoid + bias positive (DeepSeek masks with 0)
            block.gate.e_score_correction_bias.mul_(0.05)
        L = moec.Layer(hidden=32)
        x, gate, bias = L.hidden("x"), L.weight("gate", (16, 32)), L.weight("bias", (16,))
        w = L.ffn_weights(16, experts=16)
        s = L.ffn_weights(32, experts=1, prefix="s")
        routing = L.grouped_topk_router(x, gate, k=4, num_groups=4, topk_groups=2, scoring="sigmoid",
                                        bias=bias, renormalize=True, scaling_factor=2.5)
        L.output(L.layer(x, routing, L.ffn_experts("swiglu", **w),
                         shared=[L.ffn_experts("swiglu", **s)]))
        se = [block.shared_experts]
        weights = {"gate": block.gate.weight, "bias": block.gate.e_score_correction_bias,
                   "w1": stack(block.experts, "gate_proj"), "w3": stack(block.experts, "up_proj"),
                   "w2": stack(block.experts, "down_proj"), "sw1": stack(se, "gate_proj"),
                   "sw3": stack(se, "up_proj"), "sw2": stack(se, "down_proj")}
        self.check(block, moec_torch.MoE(L, weights), 32)

    def test_moepp_block(self):
        block = tb.randomize(tb.MoEPlusPlus(32, 64, ffn=4, consts=2, k=2))
        L = moec.Layer(hidden=32)
        x, gate = L.hidden("x"), L.weight("gate", (8, 32))
        w = L.ffn_weights(64, experts=4)
        consts = L.weight("consts", (2, 32))
        banks = [L.ffn_experts("swiglu", **w), L.zero_experts(), L.copy_experts(),
                 L.const_experts(consts)]
        L.output(L.layer(x, L.topk_router(x, gate, k=2), banks))
        module = moec_torch.MoE(L)
        self.assertIsNone(module.prepared)
        # An nn.Module binds by its parameter names, which are not this layer's.
        with self.assertRaisesRegex(TypeError, "has no argument 'gate.weight'"):
            module.bind(block)
        module.bind({"gate": block.gate.weight, "w1": stack(block.experts, "w1"),
                     "w3": stack(block.experts, "w3"), "w2": stack(block.experts, "w2"),
                     "consts": block.consts})
        self.check(block, module, 32)
        # Every kind of expert is used by some token.
        with torch.no_grad():
            ids = torch.topk(block.gate(torch.rand(40, 32) * 2 - 1), 2, dim=-1)[1]
        self.assertEqual(set(ids.flatten().tolist()), set(range(8)))

    def test_module_errors(self):
        module = moec_torch.MoE(moec.from_config(MIXTRAL))
        with self.assertRaisesRegex(RuntimeError, "no weights yet"):
            module(torch.zeros(2, 32))
        module.bind({n: torch.zeros(s) for n, (s, _) in
                     zip(module.compiled.weight_names, module.compiled.signature[0][1:])})
        with self.assertRaisesRegex(ValueError, r"x must be \[\.\.\., 32\]"):
            module(torch.zeros(2, 31))
        with self.assertRaisesRegex(TypeError, r"argument #0 \('x'\): expected dtype float32"):
            module(torch.zeros(2, 32, dtype=torch.float64))


if __name__ == "__main__":
    unittest.main()
