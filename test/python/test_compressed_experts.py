"""moe.compress_slots (compressed experts), compiled for the CPU and for the
GPU mapped stage on the host, against a numpy implementation written here
from docs/dialect.md §4.7.3: the routing exactly (for T in {1, 7, 64, 513},
with many tied weights and unused slots) and the layer with full and
compressed banks to 1e-4; NaN weights follow the documented count; bad ids
are run-time errors with outputs untouched."""

import unittest

import numpy as np

import moec
import moe_numpy as ref
import example_layers as ex


def compress_slots(ids, w, compressed, keep):
    """§4.7.3: per token, used slots of rank >= keep (descending weight, ties:
    lower slot) move to E + compressed[e]; weights unchanged."""
    ids = np.array(ids, dtype=np.int64)
    w = np.asarray(w, dtype=np.float32)
    E = len(compressed)
    if np.any((ids < -1) | (ids >= E)):
        raise ValueError("expert id outside [-1, E)")
    out = ids.copy()
    T, K = ids.shape
    for t in range(T):
        used = [q for q in range(K) if ids[t, q] != -1]
        order = sorted(used, key=lambda q: (-float(w[t, q]), q))
        for rank, s in enumerate(order):
            if rank >= keep:
                out[t, s] = E + compressed[ids[t, s]]
    return out, w.copy()


def oracle_layer(K, compressed, keep):
    L = moec.Layer(hidden=8, name="compress")
    ids0 = L.input("ids0", (None, K), "i32")
    w0 = L.input("w0", (None, K), "f32")
    r = L.compress_slots(moec.Routing(ids0, w0), keep=keep, compressed=compressed)
    L.output(r.ids, r.weights)
    return L


class CompressSlotsTest(unittest.TestCase):
    def test_routing_matches_numpy(self):
        rng = np.random.default_rng(3)
        # A chain of selects, the identity and one shared stand-in: the three
        # forms of the map the lowering emits.
        maps = ([2, 0, 1, 1, 0, 2], list(range(6)), [0] * 6)
        for compressed in maps:
            for K, keep in ((3, 1), (3, 0), (3, 3), (4, 2)):
                for target in ("cpu", "gpu-host"):
                    fn = moec.compile(oracle_layer(K, compressed, keep), target=target)
                    for T in (1, 7, 64, 513):
                        with self.subTest(map=compressed, K=K, keep=keep, target=target, T=T):
                            ids0 = rng.integers(-1, 6, size=(T, K)).astype(np.int32)
                            # Weights from a few values: many ties.
                            w0 = rng.choice(np.float32([0.1, 0.25, 0.5, -0.25]), size=(T, K))
                            got_ids, got_w = fn(ids0, w0)
                            want_ids, want_w = compress_slots(ids0, w0, compressed, keep)
                            np.testing.assert_array_equal(got_ids, want_ids)
                            np.testing.assert_array_equal(got_w, want_w)

    def test_nan_weight_ranks_first_and_counts_ahead_of_none(self):
        # §4.7.3: every comparison with NaN is false, so slot 0 (NaN) has rank
        # 0 and slot 1 (0.5) has rank 0 too (NaN is not ahead of it); slot 2
        # (0.25) has rank 1 and is demoted. Token 1 has no NaN: one stays full.
        L = oracle_layer(3, [1, 0, 2], 1)
        ids0 = np.array([[0, 1, 2], [0, 1, 2]], dtype=np.int32)
        w0 = np.array([[np.nan, 0.5, 0.25], [0.1, 0.5, 0.25]], dtype=np.float32)
        want = np.array([[0, 1, 5], [4, 1, 5]], dtype=np.int32)
        for target in ("cpu", "gpu-host"):
            got_ids, got_w = moec.compile(L, target=target)(ids0, w0)
            np.testing.assert_array_equal(got_ids, want)
            np.testing.assert_array_equal(got_w, w0)
        ref_ids, _ = moec.reference(L, ids0, w0)
        np.testing.assert_array_equal(ref_ids, want)

    def test_layer_matches_numpy(self):
        rng = np.random.default_rng(11)
        T, H, E, I, IC = 53, 16, 6, 32, 8
        for keep in (0, 1, 2):
            with self.subTest(keep=keep):
                L = ex.compressed_experts(H=H, E=E, I=I, IC=IC, keep=keep)
                x = rng.uniform(-0.4, 0.4, size=(T, H)).astype(np.float32)
                gate = rng.uniform(-1.5, 1.5, size=(E, H)).astype(np.float32)
                a = lambda *s: rng.uniform(-0.4, 0.4, size=s).astype(np.float32)
                w = {"w1": a(E, I, H), "w3": a(E, I, H), "w2": a(E, H, I)}
                c = {"w1": a(E, IC, H), "w3": a(E, IC, H), "w2": a(E, H, IC)}
                ids0, w0 = ref.topk_router(x, gate, 2, renormalize=True)
                ids, rw = compress_slots(ids0, w0, list(range(E)), keep)
                self.assertEqual(int((ids >= E).sum()), T * (2 - keep))
                want = ref.layer(x, ids, rw, [ref.ffn_bank("swiglu", **w),
                                              ref.ffn_bank("swiglu", **c)])
                for target in ("cpu", "gpu-host"):
                    got = moec.compile(L, target=target)(x, gate, w["w1"], w["w3"], w["w2"],
                                                         c["w1"], c["w3"], c["w2"])
                    self.assertLessEqual(ref.rel_error(got, want), 1e-4)

    def test_bad_id_is_an_error_and_outputs_stay(self):
        fn = moec.compile(oracle_layer(2, [0, 0, 0], 1))
        ids0 = np.array([[0, 1], [2, 3]], dtype=np.int32)
        w0 = np.ones((2, 2), dtype=np.float32)
        out = (np.full((2, 2), 9, dtype=np.int32), np.full((2, 2), 9.0, dtype=np.float32))
        with self.assertRaisesRegex(moec.RuntimeError, "outside"):
            fn(ids0, w0, out=out)
        self.assertTrue(np.all(out[0] == 9) and np.all(out[1] == 9.0))


if __name__ == "__main__":
    unittest.main()
