"""moe.capacity_reroute (and moe.router_scores), compiled for the CPU, against
a numpy implementation written here from docs/dialect.md §4.7.1-4.7.2, with
Zipf-skewed routings: ids and weights exactly, the layer output to 1e-4, the
expert loads before and after, and run-time errors (outputs untouched)."""

import math
import unittest

import numpy as np

import moec
import moe_numpy as ref
import example_layers as ex


def router_scores(x, gate, scoring="softmax"):
    """§4.7.1: the f32 scores a topk_router ranks, [T, E]."""
    return ref.score(ref.logits(x, gate), scoring).astype(np.float32)


def capacity_reroute(ids, w, scores, capacity_factor):
    """§4.7.2, step by step: admission in descending score (ties: token,
    slot), then re-routing of the dropped pairs in the same order."""
    ids = np.array(ids, dtype=np.int64)
    w_in = np.asarray(w, dtype=np.float32)
    scores = np.asarray(scores, dtype=np.float32)
    T, K = ids.shape
    E = scores.shape[1]
    if np.any((ids < -1) | (ids >= E)):
        raise ValueError("expert id outside [-1, E)")
    if not np.all(np.isfinite(scores)):
        raise ValueError("non-finite score")
    C = math.ceil(float(np.float32(capacity_factor)) * T * K / E)
    pairs = [(t, s) for t in range(T) for s in range(K) if ids[t, s] != -1]
    pairs.sort(key=lambda p: -float(scores[p[0], ids[p]]))  # stable: ties keep (t, s)
    out_ids, out_w = ids.copy(), w_in.copy()
    load = np.zeros(E, dtype=np.int64)
    dropped = []
    for t, s in pairs:
        e = ids[t, s]
        if load[e] < C:
            load[e] += 1
        else:
            out_ids[t, s], out_w[t, s] = -1, 0.0
            dropped.append((t, s))
    for t, s in dropped:
        old = scores[t, ids[t, s]]
        if old == 0:
            continue
        cand = [j for j in range(E) if load[j] < C and j not in out_ids[t]]
        if not cand:
            continue
        j = max(cand, key=lambda c: (float(scores[t, c]), -c))  # ties: lower id
        load[j] += 1
        out_ids[t, s] = j
        out_w[t, s] = np.float32(w_in[t, s] * np.float32(scores[t, j] / old))
    return out_ids, out_w


def loads(ids, E):
    return np.bincount(ids[ids >= 0], minlength=E)


def zipf_routing(rng, T, E, K, s=1.2):
    """Scores whose per-expert mean follows a Zipf law (expert 0 most popular),
    the top-K of each token as its routing, weights = scores."""
    prior = np.log(1.0 / np.arange(1, E + 1) ** s)
    z = prior[None, :] + rng.gumbel(size=(T, E))
    scores = np.exp(z - z.max(axis=1, keepdims=True))
    scores = (scores / scores.sum(axis=1, keepdims=True)).astype(np.float32)
    ids = np.argsort(-scores, axis=1, kind="stable")[:, :K].astype(np.int32)
    w = np.take_along_axis(scores, ids, axis=1).astype(np.float32)
    return ids, w, scores


def oracle_layer(E, K, cf):
    L = moec.Layer(hidden=8, name="reroute")
    ids0 = L.input("ids0", (None, K), "i32")
    w0 = L.input("w0", (None, K), "f32")
    scores = L.input("scores", (None, E), "f32")
    r = L.capacity_reroute(moec.Routing(ids0, w0), scores, capacity_factor=cf)
    L.output(r.ids, r.weights)
    return L


class CapacityRerouteTest(unittest.TestCase):
    E, K = 8, 2

    def test_oracle_matches_numpy_and_balances_zipf_load(self):
        fn = moec.compile(oracle_layer(self.E, self.K, 1.0))
        rng = np.random.default_rng(5)
        for T in (1, 7, 64, 513):
            with self.subTest(T=T):
                ids0, w0, scores = zipf_routing(rng, T, self.E, self.K)
                got_ids, got_w = fn(ids0, w0, scores)
                want_ids, want_w = capacity_reroute(ids0, w0, scores, 1.0)
                np.testing.assert_array_equal(got_ids, want_ids)
                np.testing.assert_allclose(got_w, want_w, rtol=1e-6, atol=0)
                C = math.ceil(T * self.K / self.E)
                before, after = loads(ids0, self.E), loads(want_ids, self.E)
                self.assertLessEqual(after.max(), C)
                if T >= 64:
                    # Zipf routing overloads expert 0; with cf = 1 the total
                    # capacity equals the pairs, so re-routing keeps nearly
                    # all of them (only a token holding every expert with
                    # room loses one), where a drop loses the overflow.
                    self.assertGreater(before.max(), C)
                    self.assertGreaterEqual(after.sum(), 0.95 * before.sum())
                    kept_by_drop = np.minimum(before, C).sum()
                    self.assertGreater(after.sum(), kept_by_drop)
                    print(f"\nZipf T={T}: max/mean load before "
                          f"{before.max() / before.mean():.2f}, after "
                          f"{after.max() / after.mean():.2f} (C = {C}, pairs kept "
                          f"{after.sum()}/{before.sum()}, capacity drop alone {kept_by_drop})")

    def test_ties_and_duplicates(self):
        # Equal scores everywhere: the order is (token, slot); a token never
        # gets an expert it already holds.
        fn = moec.compile(oracle_layer(4, 2, 0.5))
        T = 9
        ids0 = np.zeros((T, 2), dtype=np.int32)
        ids0[:, 1] = 1
        ids0[3, 1] = -1
        w0 = np.full((T, 2), 0.5, dtype=np.float32)
        scores = np.full((T, 4), 0.25, dtype=np.float32)
        got_ids, got_w = fn(ids0, w0, scores)
        want_ids, want_w = capacity_reroute(ids0, w0, scores, 0.5)
        np.testing.assert_array_equal(got_ids, want_ids)
        np.testing.assert_array_equal(got_w, want_w)
        self.assertEqual(got_ids[3, 1], -1)
        for t in range(T):
            used = got_ids[t][got_ids[t] >= 0]
            self.assertEqual(len(used), len(set(used.tolist())))

    def test_layer_matches_numpy(self):
        rng = np.random.default_rng(9)
        T, H, E, I = 41, 16, 8, 24
        L = ex.capacity_reroute(H=H, E=E, I=I, capacity_factor=0.75)
        x = rng.uniform(-0.4, 0.4, size=(T, H)).astype(np.float32)
        gate = rng.uniform(-1.5, 1.5, size=(E, H)).astype(np.float32)
        gate[0] += 0.8  # skew towards expert 0
        w = {k: rng.uniform(-0.4, 0.4, size=shape).astype(np.float32)
             for k, shape in (("w1", (E, I, H)), ("w3", (E, I, H)), ("w2", (E, H, I)))}
        ids0, w0 = ref.topk_router(x, gate, 2, renormalize=True)
        ids, rw = capacity_reroute(ids0, w0, router_scores(x, gate), 0.75)
        self.assertTrue(np.any(ids != ids0), "the capacity should re-route some pairs")
        want = ref.layer(x, ids, rw, [ref.ffn_bank("swiglu", **w)])
        got = moec.compile(L)(x, gate, w["w1"], w["w3"], w["w2"])
        self.assertLessEqual(ref.rel_error(got, want), 1e-4)

    def test_bad_input_is_an_error_and_outputs_stay(self):
        fn = moec.compile(oracle_layer(4, 1, 1.0))
        ids0 = np.array([[0], [1], [2]], dtype=np.int32)
        w0 = np.ones((3, 1), dtype=np.float32)
        scores = np.full((3, 4), 0.25, dtype=np.float32)
        out = (np.full((3, 1), 7, dtype=np.int32), np.full((3, 1), 7.0, dtype=np.float32))
        scores[1, 3] = np.nan
        with self.assertRaises(moec.RuntimeError):
            fn(ids0, w0, scores, out=out)
        scores[1, 3] = 0.25
        ids0[2, 0] = 4
        with self.assertRaisesRegex(moec.RuntimeError, "outside"):
            fn(ids0, w0, scores, out=out)
        self.assertTrue(np.all(out[0] == 7) and np.all(out[1] == 7.0))
        with self.assertRaisesRegex(ValueError, "scores"):
            moec.compile(oracle_layer(4, 1, 1.0))(np.array([[0]], np.int32),
                                                  np.ones((1, 1), np.float32),
                                                  np.ones((2, 4), np.float32))


if __name__ == "__main__":
    unittest.main()
