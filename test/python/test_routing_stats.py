"""Routing statistics (issue 30): a layer compiled with stats=True reports,
per call and per moe.layer, tokens per expert, slots per token, dropped
pairs, skipped tokens and the FLOPs saved. Every count is compared with the
routing an independent numpy version (moe_numpy) computes for the same
inputs; the FLOPs with docs/routing-stats.md's definition."""

import os
import pathlib
import subprocess
import sys
import tempfile
import unittest

import numpy as np

import moec
import moe_numpy as mn

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def skewed_x(T, H, seed, gate, favourite=0, strength=2.0):
    """Inputs leaning toward one expert's gate row: a skewed expert load."""
    rng = np.random.default_rng(seed)
    a = (3.0 / H) ** 0.5
    x = rng.uniform(-a, a, size=(T, H))
    x += strength * a * gate[favourite] / np.linalg.norm(gate[favourite])
    return x.astype(np.float32)


def expected(ids, E, K, tokens, expert_flops, shared_flops=0, before=None):
    """The statistics of one layer from its routing ids (numpy)."""
    ids = np.asarray(ids)
    valid = (ids >= 0) & (ids < E)
    per_token = valid.sum(axis=1)
    rows = np.bincount(ids[valid], minlength=E)
    flops = float((rows * expert_flops).sum() + ids.shape[0] * shared_flops)
    full = float(tokens * (K * max(expert_flops) + shared_flops))
    out = {
        "num_experts": E, "k": K, "tokens": tokens, "tokens_routed": ids.shape[0],
        "tokens_skipped": tokens - ids.shape[0], "routed_pairs": int(valid.sum()),
        "tokens_per_expert": rows, "slots_per_token": np.bincount(per_token, minlength=K + 1),
        "flops": flops, "flops_full": full,
        "flops_saved_fraction": 1.0 - flops / full if full else 0.0,
        "dropped_pairs": None,
    }
    if before is not None:
        out["dropped_pairs"] = int(((before >= 0) & (before < E)).sum()) - out["routed_pairs"]
    return out


class RoutingStatsTest(unittest.TestCase):
    def check(self, got, want):
        for key, value in want.items():
            g = getattr(got, key)
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(g, value, err_msg=key)
            elif isinstance(value, float):
                self.assertAlmostEqual(g, value, places=9, msg=key)
            else:
                self.assertEqual(g, value, key)

    def run_both(self, path, args):
        """The statistics of a plain and of a prepared call (must agree)."""
        fn = moec.compile(path, stats=True)
        y, stats = fn(*args, stats=True)
        self.assertIs(stats, fn.last_stats)
        np.testing.assert_allclose(y, moec.reference(fn, *args), rtol=1e-4, atol=1e-5)
        weights = [a for a, (shape, _) in zip(args, fn.signature[0]) if None not in shape]
        acts = [a for a, (shape, _) in zip(args, fn.signature[0]) if None in shape]
        prepared = fn.prepare(*weights)
        prepared(*acts)
        self.assertEqual(len(prepared.last_stats), len(stats))
        for a, b in zip(stats, prepared.last_stats):
            self.assertEqual(a.as_dict().keys(), b.as_dict().keys())
            np.testing.assert_array_equal(a.tokens_per_expert, b.tokens_per_expert)
            np.testing.assert_array_equal(a.slots_per_token, b.slots_per_token)
        return stats

    def test_topk_skewed(self):
        T = 97
        args = moec.random_inputs(moec.load(EXAMPLES / "mixtral.mlir"), tokens=T, seed=3)
        args[0] = skewed_x(T, 64, 4, args[1], favourite=5)
        stats = self.run_both(EXAMPLES / "mixtral.mlir", args)
        ids, _ = mn.topk_router(args[0], args[1], 2, renormalize=True)
        self.assertEqual(len(stats), 1)
        self.check(stats[0], expected(ids, 8, 2, T, [6 * 64 * 128] * 8))
        self.assertEqual(stats[0].flops_saved_fraction, 0.0)  # dense top-2: nothing saved
        self.assertEqual(stats[0].line, 11)
        # The skew shows: expert 5 takes more than its even share.
        self.assertGreater(stats[0].tokens_per_expert[5], 2 * T / 8)

    def test_capacity_drop_dropped_pairs(self):
        T = 50
        args = moec.random_inputs(moec.load(EXAMPLES / "switch_capacity.mlir"), tokens=T, seed=5)
        args[0] = skewed_x(T, 64, 6, args[1], favourite=2)
        stats = self.run_both(EXAMPLES / "switch_capacity.mlir", args)
        before, w0 = mn.topk_router(args[0], args[1], 1)
        after, _ = mn.capacity_drop(before, w0, 8, 1.0)
        want = expected(after, 8, 1, T, [4 * 64 * 128] * 8, before=before)
        self.assertGreater(want["dropped_pairs"], 0)  # the skew overflows expert 2
        self.check(stats[0], want)
        self.assertAlmostEqual(stats[0].flops_saved_fraction, want["dropped_pairs"] / T)

    def test_mixture_of_depths_skipped_tokens(self):
        T = 31
        layer = moec.load(EXAMPLES / "mod.mlir")
        args = moec.random_inputs(layer, tokens=T, seed=7)
        stats = self.run_both(EXAMPLES / "mod.mlir", args)
        seen = []

        def body(xs):
            seen.append(xs)
            return np.zeros_like(xs)
        mn.skip_block(args[0], args[1], body, capacity_fraction=0.5)
        ids, _ = mn.topk_router(seen[0], args[2], 2, renormalize=True)
        want = expected(ids, 4, 2, T, [6 * 64 * 128] * 4)
        self.assertEqual(want["tokens_routed"], 16)  # ceil(0.5 * 31)
        self.check(stats[0], want)
        self.assertAlmostEqual(stats[0].flops_saved_fraction, 15 / 31)

    def test_top_p_slots_per_token(self):
        T = 64
        args = moec.random_inputs(moec.load(EXAMPLES / "adamoe.mlir"), tokens=T, seed=9)
        # Logits large enough that the top-p cut falls after 1..4 experts.
        args[0] = 16 * skewed_x(T, 64, 10, args[1], favourite=1, strength=1.0)
        stats = self.run_both(EXAMPLES / "adamoe.mlir", args)
        ids, _ = mn.topp_router(args[0], args[1], 0.6, 4)
        # 6 SwiGLU experts (I = 96), then 4 null experts: free.
        want = expected(ids, 10, 4, T, [6 * 64 * 96] * 6 + [0] * 4)
        self.assertGreater(len(np.nonzero(want["slots_per_token"])[0]), 1)  # k varies
        self.check(stats[0], want)
        np.testing.assert_array_equal(stats[0].expert_flops, [6 * 64 * 96] * 6 + [0] * 4)
        self.assertAlmostEqual(stats[0].mean_slots,
                               float(np.dot(np.arange(5), want["slots_per_token"])) / T)

    def test_several_layers_and_shared_experts(self):
        # stack.mlir: four adaptive layers in one function, in pre-order.
        fn = moec.compile(EXAMPLES / "stack.mlir", stats=True)
        args = moec.random_inputs(fn, tokens=40, seed=11)
        fn(*args)
        stats = fn.last_stats
        self.assertEqual([s.layer for s in stats], list(range(len(stats))))
        self.assertGreaterEqual(len(stats), 4)
        for s in stats:
            self.assertEqual(s.tokens, 40)
            self.assertEqual(int(s.tokens_per_expert.sum()), s.routed_pairs)
            self.assertEqual(int(s.slots_per_token.sum()), s.tokens_routed)
            self.assertGreaterEqual(s.flops_saved_fraction, 0.0)
        self.assertTrue(any(s.shared_flops > 0 for s in stats))  # the DeepSeek-like layer
        self.assertTrue(any(s.tokens_skipped > 0 for s in stats))  # the MoD block

    def test_numbers_follow_each_call(self):
        fn = moec.compile(EXAMPLES / "mod.mlir", stats=True)
        for T in (1, 10, 0):
            args = moec.random_inputs(fn, tokens=T, seed=T)
            _, stats = fn(*args, stats=True)
            self.assertEqual(stats[0].tokens, T)
            self.assertEqual(stats[0].tokens_routed, -(-T // 2))

    def test_without_stats_and_bad_arguments(self):
        plain = moec.compile(EXAMPLES / "mixtral.mlir")
        args = moec.random_inputs(plain, tokens=4)
        plain(*args)
        self.assertIsNone(plain.last_stats)
        with self.assertRaisesRegex(ValueError, "compiled without routing statistics"):
            plain(*args, stats=True)
        with self.assertRaisesRegex(TypeError, "stats must be a bool"):
            moec.compile(EXAMPLES / "mixtral.mlir", stats="yes")
        with self.assertRaisesRegex(ValueError, "target='cpu' only"):
            moec.compile(EXAMPLES / "mixtral.mlir", target="gpu-host", stats=True)
        with self.assertRaisesRegex(moec.CompileError, "CPU pipeline only"):
            moec.compile(EXAMPLES / "mixtral.mlir", pipeline_options="gpu-host=true stats=true")
        fn = moec.compile(EXAMPLES / "mixtral.mlir", stats=True)
        with self.assertRaisesRegex(TypeError, "stats must be a bool"):
            fn(*args, stats=1)
        # The pipeline option spelled out records too.
        opt = moec.compile(EXAMPLES / "mixtral.mlir", pipeline_options="stats=true")
        self.assertEqual(opt(*args, stats=True)[1][0].tokens, 4)

    def test_failed_call_keeps_no_statistics(self):
        fn = moec.compile(EXAMPLES / "oracle.mlir", stats=True)
        args = moec.random_inputs(fn, tokens=6, seed=1)
        args[1][:] = np.array([[0, 1]] * 6, np.int32)
        _, good = fn(*args, stats=True)
        self.assertEqual(good[0].tokens_per_expert.tolist(), [6, 6, 0, 0, 0, 0, 0, 0])
        args[1][3, 1] = 9
        with self.assertRaises(moec.RuntimeError):
            fn(*args)
        self.assertEqual(moec._moec.last_stats(), [])   # the runtime kept none
        self.assertIs(fn.last_stats, good)              # the wrapper's last good call


@unittest.skipUnless(__import__("importlib").util.find_spec("torch"), "needs torch")
class TorchStatsTest(unittest.TestCase):
    def test_module_last_stats(self):
        import torch
        import moec.torch
        layer = moec.load(EXAMPLES / "mixtral.mlir")
        fn = moec.compile(layer)
        args = moec.random_inputs(fn, tokens=12, seed=2)
        names = fn.argument_names
        weights = {n: torch.from_numpy(a) for n, a in zip(names[1:], args[1:])}
        block = moec.torch.MoE(EXAMPLES / "mixtral.mlir", weights, stats=True)
        block(torch.from_numpy(args[0]).reshape(3, 4, 64))
        ids, _ = mn.topk_router(args[0], args[1], 2, renormalize=True)
        np.testing.assert_array_equal(block.last_stats[0].tokens_per_expert,
                                      np.bincount(ids.ravel(), minlength=8))


@unittest.skipUnless(__import__("importlib").util.find_spec("matplotlib"), "needs matplotlib")
class RoutingReportTest(unittest.TestCase):
    def test_writes_a_png(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = pathlib.Path(tmp) / "report.png"
            env = dict(os.environ, MPLBACKEND="Agg")
            run = subprocess.run([sys.executable, str(EXAMPLES / "python" / "routing_report.py"),
                                  "--output", str(out), "--tokens", "256"],
                                 env=env, capture_output=True, text=True, timeout=300)
            self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
            data = out.read_bytes()
            self.assertEqual(data[:8], b"\x89PNG\r\n\x1a\n")
            self.assertGreater(len(data), 1000)
            self.assertIn("tokens per expert", run.stdout)


if __name__ == "__main__":
    unittest.main()
