"""SkipDecode early exit (moe.exit_layers / moe.exit_paths + path_select):
the compiled stack against a numpy version written here (the schedule and
the per-layer skipping; the MoE layer math from moe_numpy.py), and the
schedule's properties (shared per position, non-increasing)."""

import unittest

import numpy as np

import moec
import moe_numpy as ref
import example_layers as ex

RTOL = 1e-4


def rand(rng, *shape, scale=1.0):
    a = scale * (3.0 / shape[-1]) ** 0.5
    return rng.uniform(-a, a, size=shape).astype(np.float32)


def skipdecode_exits(positions, max_exit, min_exit, decay):
    """SkipDecode's linear schedule, in exact integer arithmetic."""
    p = np.minimum(positions.astype(np.int64), decay)
    return max_exit - (max_exit - min_exit) * p // decay


def skipdecode_stack(x, positions, layers, max_exit, min_exit, decay):
    """Layer n runs (h += moe_layer(h)) only for tokens with n < exit."""
    exits = skipdecode_exits(positions, max_exit, min_exit, decay)
    h = ref.d(x).copy()
    for n, (gate, w) in enumerate(layers):
        run = np.nonzero(n < exits)[0]
        if run.size == 0:
            continue
        hs = h[run]
        ids, rw = ref.topk_router(hs, gate, 2, renormalize=True)
        h[run] = hs + ref.layer(hs, ids, rw, [ref.ffn_bank("swiglu", **w)])
    return h, exits


class SkipDecodeTest(unittest.TestCase):
    H, E, I, LAYERS = 16, 4, 24, 4

    def inputs(self, rng, positions):
        T = len(positions)
        x = rand(rng, T, self.H)
        layers, args = [], [x, np.asarray(positions, dtype=np.int32)]
        for _ in range(self.LAYERS):
            gate = rand(rng, self.E, self.H, scale=3)
            w = {"w1": rand(rng, self.E, self.I, self.H), "w3": rand(rng, self.E, self.I, self.H),
                 "w2": rand(rng, self.E, self.H, self.I)}
            layers.append((gate, w))
            args += [gate, w["w1"], w["w3"], w["w2"]]
        return x, layers, args

    def test_stack_matches_numpy_for_token_counts(self):
        L = ex.skipdecode(H=self.H, E=self.E, I=self.I, layers=self.LAYERS, max_exit=4,
                          min_exit=1, decay_positions=10)
        fn = moec.compile(L)
        for T in (1, 7, 64, 513):
            with self.subTest(T=T):
                rng = np.random.default_rng(T)
                positions = rng.integers(0, 20, size=T)
                x, layers, args = self.inputs(rng, positions)
                want, exits = skipdecode_stack(x, positions, layers, 4, 1, 10)
                got = fn(*args)
                self.assertLessEqual(ref.rel_error(got, want), RTOL)
                # Tokens that exit before layer 0 would pass through; here
                # min_exit = 1, so every token ran at least one layer.
                self.assertTrue(np.all(exits >= 1))

    def test_schedule_is_shared_per_position_and_non_increasing(self):
        positions = np.arange(0, 40)
        exits = skipdecode_exits(positions, 6, 2, 16)
        self.assertEqual(exits[0], 6)
        self.assertTrue(np.all(exits[16:] == 2))
        self.assertTrue(np.all(np.diff(exits) <= 0))
        # Tokens that exited pass through unchanged: a stack whose every
        # token exits at 0 is the identity.
        L = ex.skipdecode(H=self.H, E=self.E, I=self.I, layers=self.LAYERS, max_exit=0,
                          min_exit=0, decay_positions=1)
        rng = np.random.default_rng(5)
        x, _, args = self.inputs(rng, [0, 3, 9])
        np.testing.assert_array_equal(moec.compile(L)(*args), x)

    def test_negative_position_is_an_error_naming_it(self):
        L = ex.skipdecode(H=self.H, E=self.E, I=self.I, layers=self.LAYERS)
        rng = np.random.default_rng(6)
        _, _, args = self.inputs(rng, [0, 5, -3])
        with self.assertRaisesRegex(RuntimeError, "first bad position: -3 of token 2"):
            moec.compile(L)(*args)
        with self.assertRaisesRegex(RuntimeError, "position -3 of token 2 is negative"):
            moec.reference(L, *args)

    def test_builder_rejects_bad_schedules(self):
        L = moec.Layer(hidden=8)
        pos = L.input("positions", (None,), "i32")
        with self.assertRaisesRegex(ValueError, "min_exit"):
            L.exit_layers(pos, max_exit=1, min_exit=2, decay_positions=4)
        with self.assertRaisesRegex(ValueError, "decay_positions"):
            L.exit_layers(pos, max_exit=2, min_exit=1, decay_positions=0)
        with self.assertRaisesRegex(ValueError, "layer"):
            L.exit_paths(L.exit_layers(pos, 2, 1, 4), layer=-1)


if __name__ == "__main__":
    unittest.main()
