"""Prepared layers in Python: fn.prepare(*weights) packs the weights once and
returns a callable of the activations; checked against the reference
interpreter, with bad input rejected by name and calls
from several threads on one prepared layer."""

import pathlib
import threading
import unittest

import numpy as np

import moec

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def rel_error(got, want):
    scale = float(np.abs(want).max()) or 1.0
    return float(np.abs(got.astype(np.float64) - want).max()) / scale


def weight_mask(fn):
    """Which arguments are weights (static shape, f32: moe-hoist-weight-packing's rule)."""
    return [all(d is not None for d in s) and len(s) >= 1 and t == "float32"
            for s, t in fn.signature[0]]


def split(fn, args):
    """(weights, activations) in prepare()'s and the prepared call's order."""
    mask = weight_mask(fn)
    return ([a for a, w in zip(args, mask) if w], [a for a, w in zip(args, mask) if not w])


def with_weights(fn, args, weights):
    """`args` with its weights replaced by `weights` (one prepared layer, many T)."""
    it = iter(weights)
    return [next(it) if w else a for a, w in zip(args, weight_mask(fn))]


def reference_or_none(layer, args):
    """None when random inputs are not a valid call (e.g. random expert ids
    of an oracle routing outside [-1, E))."""
    try:
        return moec.reference(layer, *args)
    except moec.RuntimeError:
        return None


class PreparedTest(unittest.TestCase):
    def test_examples_match_reference(self):
        # Every example runs prepared in test/Integration/prepared-vs-reference.test
        # (moe-run); here a few kinds: routed FFN banks, shared experts and a
        # dense FFN, a skip region, trivial experts.
        for name in ("mixtral", "deepseek", "mod", "moepp"):
            path = EXAMPLES / (name + ".mlir")
            with self.subTest(example=path.name):
                layer = moec.load(str(path))
                fn = moec.compile(layer)
                weights, _ = split(fn, moec.random_inputs(layer, tokens=1, seed=0))
                prepared = fn.prepare(*weights)
                self.assertGreater(prepared.packed_bytes, 0)
                checked = 0
                for t in (1, 7, 64):
                    args = with_weights(fn, moec.random_inputs(layer, tokens=t, seed=t), weights)
                    want = reference_or_none(layer, args)
                    if want is None:
                        continue
                    checked += 1
                    got = prepared(*split(fn, args)[1])
                    if not isinstance(got, tuple):
                        got, want = (got,), (want,)
                    for g, r in zip(got, want):
                        self.assertLess(rel_error(g, r), 1e-4, f"T = {t}")
                self.assertEqual(checked, 3)

    def test_weights_are_copied_and_checked(self):
        layer = moec.load(str(EXAMPLES / "mixtral.mlir"))
        fn = moec.compile(layer)
        self.assertEqual(fn.weight_names, ["gate", "w1", "w3", "w2"])
        args = moec.random_inputs(layer, tokens=16, seed=3)
        want = moec.reference(layer, *args)
        weights = [a.copy() for a in args[1:]]
        prepared = fn.prepare(*weights)
        for w in weights:
            w[...] = np.nan  # the prepared layer owns its packed copy
        self.assertLess(rel_error(prepared(args[0]), want), 1e-4)
        out = np.full_like(want, 7.0)
        with self.assertRaisesRegex(ValueError, r"argument #0 \('x'\): expected shape \[T, 64\]"):
            prepared(args[0][:, :32].copy(), out=out)
        self.assertTrue((out == 7.0).all())
        with self.assertRaisesRegex(TypeError, r"takes 4 arrays \(gate: \[8, 64\] f32"):
            fn.prepare(*args[1:4])
        with self.assertRaisesRegex(ValueError, r"w2"):
            fn.prepare(args[1], args[2], args[3], args[2])

    def test_concurrent_calls_on_one_prepared_layer(self):
        layer = moec.load(str(EXAMPLES / "deepseek.mlir"))
        fn = moec.compile(layer)
        base = moec.random_inputs(layer, tokens=1, seed=5)
        weights, _ = split(fn, base)
        prepared = fn.prepare(*weights)
        cases = []
        for k in range(4):
            args = with_weights(fn, moec.random_inputs(layer, tokens=1 + 21 * k, seed=k), weights)
            cases.append((split(fn, args)[1], moec.reference(layer, *args)))
        errors = [0.0] * len(cases)
        failures = []

        def worker(k):
            acts, want = cases[k]
            try:
                for _ in range(20):
                    errors[k] = max(errors[k], rel_error(prepared(*acts), want))
            except Exception as e:  # reported below
                failures.append(repr(e))

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(len(cases))]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        self.assertEqual(failures, [])
        for k, e in enumerate(errors):
            self.assertLess(e, 1e-4, f"thread {k}")


if __name__ == "__main__":
    unittest.main()
