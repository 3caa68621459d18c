"""ACT (moe.halting_stack): the compiled stack against a numpy version
written here from docs/dialect.md §4.22 (the MoE layer math from
moe_numpy.py), the ponder counts, and the builder's checks."""

import unittest

import numpy as np

import moec
import moe_numpy as ref
import example_layers as ex

RTOL = 1e-4


def rand(rng, *shape, scale=1.0):
    a = scale * (3.0 / shape[-1]) ** 0.5
    return rng.uniform(-a, a, size=shape).astype(np.float32)


def sigmoid(z):
    return np.where(z >= 0, 1.0 / (1.0 + np.exp(-np.abs(z))),
                    np.exp(-np.abs(z)) / (1.0 + np.exp(-np.abs(z))))


def act_stack(x, halt_w, halt_b, layers, epsilon):
    """Graves' ACT over residual MoE layers: halting read after each layer,
    halt at cumulative >= 1 - eps (f32 sums, as specified) or at the last
    layer with the remainder."""
    T, H = x.shape
    s = x.astype(np.float32).copy()
    cum = np.zeros(T, np.float32)
    out = np.zeros((T, H))
    steps = np.zeros(T, np.int32)
    tau = np.float32(1.0 - float(np.float32(epsilon)))
    running = np.arange(T)
    for l, (gate, w) in enumerate(layers):
        if running.size:
            hs = ref.d(s[running])
            ids, rw = ref.topk_router(hs, gate, 2, renormalize=True)
            s[running] = (hs + ref.layer(hs, ids, rw, [ref.ffn_bank("swiglu", **w)])).astype(np.float32)
        keep = []
        for t in running:
            z = np.float32(s[t].astype(np.float64) @ halt_w[l].astype(np.float64) + halt_b[l])
            p = np.float32(sigmoid(np.float64(z)))
            after = np.float32(cum[t] + p)
            halts = l == len(layers) - 1 or after >= tau
            weight = np.float32(1.0) - cum[t] if halts else p
            out[t] += float(weight) * s[t].astype(np.float64)
            cum[t], steps[t] = after, l + 1
            if not halts:
                keep.append(t)
        running = np.array(keep, dtype=np.int64)
    return out, steps


class HaltingStackTest(unittest.TestCase):
    H, E, I, LAYERS = 16, 4, 24, 4

    def inputs(self, rng, T, bias=None):
        x = rand(rng, T, self.H)
        halt_w = rand(rng, self.LAYERS, self.H, scale=2)
        halt_b = (rng.uniform(-1, 1, self.LAYERS) if bias is None else np.asarray(bias)).astype(np.float32)
        layers, args = [], [x, halt_w, halt_b]
        for _ in range(self.LAYERS):
            gate = rand(rng, self.E, self.H, scale=3)
            w = {"w1": rand(rng, self.E, self.I, self.H), "w3": rand(rng, self.E, self.I, self.H),
                 "w2": rand(rng, self.E, self.H, self.I)}
            layers.append((gate, w))
            args += [gate, w["w1"], w["w3"], w["w2"]]
        return x, halt_w, halt_b, layers, args

    def test_matches_numpy_for_token_counts(self):
        fn = moec.compile(ex.act(H=self.H, E=self.E, I=self.I, layers=self.LAYERS, epsilon=0.05))
        for T in (1, 7, 64, 513):
            with self.subTest(T=T):
                rng = np.random.default_rng(100 + T)
                x, hw, hb, layers, args = self.inputs(rng, T)
                want, want_steps = act_stack(x, hw, hb, layers, 0.05)
                y, steps = fn(*args)
                self.assertLessEqual(ref.rel_error(y, want), RTOL)
                np.testing.assert_array_equal(steps, want_steps)
                if T >= 64:  # the tokens really halt at different layers
                    self.assertGreater(len(set(steps.tolist())), 1)

    def test_bias_decides_the_ponder_count(self):
        """halt_w = 0: every token halts where the bias first pushes the
        cumulative halting over 1 - eps, and its output is that state."""
        fn = moec.compile(ex.act(H=self.H, E=self.E, I=self.I, layers=self.LAYERS))
        rng = np.random.default_rng(7)
        x, _, _, layers, args = self.inputs(rng, 9, bias=[-30, 30, 30, 30])
        args[1] = np.zeros_like(args[1])
        y, steps = fn(*args)
        np.testing.assert_array_equal(steps, np.full(9, 2, np.int32))
        want, _ = act_stack(x, args[1], args[2], layers, 0.01)
        self.assertLessEqual(ref.rel_error(y, want), RTOL)

    def test_builder_checks(self):
        L = moec.Layer(hidden=8)
        x = L.hidden()
        hw, hb = L.weight("hw", (2, 8)), L.weight("hb", (2,))
        with self.assertRaisesRegex(ValueError, "at least one layer"):
            L.halting_stack(x, hw, hb, [])
        with self.assertRaisesRegex(ValueError, r"1 layers need halt_weights \[1, 8\]"):
            L.halting_stack(x, hw, hb, [lambda r, xs: xs])
        with self.assertRaisesRegex(ValueError, "epsilon"):
            L.halting_stack(x, hw, hb, [lambda r, xs: xs] * 2, epsilon=1.0)


if __name__ == "__main__":
    unittest.main()
