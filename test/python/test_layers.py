"""Every layer kind, built with moec.Layer, compiled for the CPU and checked
against the numpy implementation in moe_numpy.py (float64, written from
docs/dialect.md, independent of the C++ reference)."""

import unittest

import numpy as np

import moec
import moe_numpy as ref
import example_layers as ex

RTOL = 1e-4  # normwise relative error bound


def rand(rng, *shape, scale=1.0):
    """Uniform in [-a, a), a = scale * sqrt(3 / last dim): O(1) dot products."""
    a = scale * (3.0 / shape[-1]) ** 0.5 if len(shape) >= 1 and shape[-1] else 1.0
    return rng.uniform(-a, a, size=shape).astype(np.float32)


def ffn_arrays(rng, activation, n, I, H):
    lead = (n,) if n is not None else ()
    w = {"w1": rand(rng, *lead, I, H)}
    if activation in ref.GATED:
        w["w3"] = rand(rng, *lead, I, H)
    w["w2"] = rand(rng, *lead, H, I)
    return w


def used_slots(ids):
    return set(int(c) for c in (np.asarray(ids) >= 0).sum(axis=1))


class LayerTest(unittest.TestCase):
    T = 37
    H = 16

    def check(self, layer, args, want, rtol=RTOL):
        fn = moec.compile(layer)
        got = fn(*args)
        err = ref.rel_error(got, want)
        self.assertLessEqual(err, rtol, f"compiled vs numpy: relative error {err:.3g}")
        self.assertEqual(got.dtype, np.float32)
        self.assertEqual(got.shape, np.asarray(want).shape)
        return got

    def test_mixtral_topk(self):
        rng = np.random.default_rng(1)
        T, H, E, I = self.T, self.H, 8, 24
        L = ex.mixtral(H=H, E=E, I=I, k=2)
        x, gate = rand(rng, T, H), rand(rng, E, H, scale=4)
        w = ffn_arrays(rng, "swiglu", E, I, H)
        ids, rw = ref.topk_router(x, gate, 2, renormalize=True)
        want = ref.layer(x, ids, rw, [ref.ffn_bank("swiglu", **w)])
        self.check(L, [x, gate, w["w1"], w["w3"], w["w2"]], want)

    def test_topk_sigmoid_scaled_no_renormalize(self):
        rng = np.random.default_rng(2)
        T, H, E, I = self.T, self.H, 6, 20
        L = moec.Layer(hidden=H)
        x, gate, bias = L.hidden(), L.weight("gate", (E, H)), L.weight("bias", (E,))
        w = L.ffn_weights(I, "geglu", experts=E)
        r = L.topk_router(x, gate, k=3, scoring="sigmoid", bias=bias, scaling_factor=0.5)
        L.output(L.layer(x, r, L.ffn_experts("geglu", **w)))
        a = [rand(rng, T, H), rand(rng, E, H, scale=3), rand(rng, E) * 0.3,
             rand(rng, E, I, H), rand(rng, E, I, H), rand(rng, E, H, I)]
        ids, rw = ref.topk_router(a[0], a[1], 3, "sigmoid", bias=a[2], scaling_factor=0.5)
        want = ref.layer(a[0], ids, rw, [ref.ffn_bank("geglu", a[3], a[5], a[4])])
        self.check(L, a, want)

    def test_deepseek_grouped_sigmoid_bias_shared(self):
        rng = np.random.default_rng(3)
        T, H, E, I, S, SI = self.T, self.H, 16, 12, 2, 20
        L = ex.deepseek(H=H, E=E, I=I, S=S, SI=SI, k=4, groups=4, topk_groups=2)
        x, gate, bias = rand(rng, T, H), rand(rng, E, H, scale=3), rand(rng, E) * 0.2
        w = ffn_arrays(rng, "swiglu", E, I, H)
        s = ffn_arrays(rng, "swiglu", S, SI, H)
        ids, rw = ref.grouped_topk_router(x, gate, 4, 4, 2, "sigmoid", bias=bias,
                                          renormalize=True, scaling_factor=2.5)
        want = ref.layer(x, ids, rw, [ref.ffn_bank("swiglu", **w)],
                         shared=[ref.ffn_bank("swiglu", **s)])
        self.check(L, [x, gate, bias, w["w1"], w["w3"], w["w2"], s["w1"], s["w3"], s["w2"]],
                   want)

    def test_moepp_zero_copy_const(self):
        rng = np.random.default_rng(4)
        T, H, F, I, C = self.T, self.H, 4, 24, 2
        L = ex.moepp(H=H, F=F, I=I, C=C, k=2)
        E = F + 2 + C
        x, gate = rand(rng, T, H), rand(rng, E, H, scale=3)
        w = ffn_arrays(rng, "swiglu", F, I, H)
        consts = rand(rng, C, H)
        ids, rw = ref.topk_router(x, gate, 2)
        # every kind of expert is actually routed to
        self.assertTrue(all(np.any(ids == e) for e in range(E)), ids)
        want = ref.layer(x, ids, rw, [ref.ffn_bank("swiglu", **w), ref.zero_bank(1),
                                      ref.copy_bank(1), ref.const_bank(consts)])
        self.check(L, [x, gate, w["w1"], w["w3"], w["w2"], consts], want)

    def test_adamoe_topp_null_experts(self):
        rng = np.random.default_rng(5)
        T, H, E, N, I = self.T, self.H, 6, 4, 20
        L = ex.adamoe(H=H, E=E, N=N, I=I, threshold=0.6, max_k=4)
        x, gate = rand(rng, T, H), rand(rng, E + N, H, scale=6)
        w = ffn_arrays(rng, "swiglu", E, I, H)
        ids, rw = ref.topp_router(x, gate, 0.6, 4)
        self.assertGreater(len(used_slots(ids)), 1, "top-p should give a varying k")
        self.assertTrue(np.any(ids >= E), "some slots should go to null experts")
        want = ref.layer(x, ids, rw, [ref.ffn_bank("swiglu", **w), ref.zero_bank(N)])
        self.check(L, [x, gate, w["w1"], w["w3"], w["w2"]], want)

    def test_topp_renormalize_scaled(self):
        rng = np.random.default_rng(6)
        T, H, E, I = self.T, self.H, 8, 16
        L = moec.Layer(hidden=H)
        x, gate = L.hidden(), L.weight("gate", (E, H))
        w = L.ffn_weights(I, "relu", experts=E)
        r = L.topp_router(x, gate, threshold=0.5, max_k=3, renormalize=True, scaling_factor=2.0)
        L.output(L.layer(x, r, L.ffn_experts("relu", **w)))
        a = [rand(rng, T, H), rand(rng, E, H, scale=5), rand(rng, E, I, H), rand(rng, E, H, I)]
        ids, rw = ref.topp_router(a[0], a[1], 0.5, 3, renormalize=True, scaling_factor=2.0)
        want = ref.layer(a[0], ids, rw, [ref.ffn_bank("relu", a[2], a[3])])
        self.check(L, a, want)

    def test_remoe_relu_routing_two_sizes(self):
        rng = np.random.default_rng(7)
        T, H = self.T, self.H
        L = ex.remoe(H=H, E_small=4, I_small=8, E_big=4, I_big=32)
        x, gate = rand(rng, T, H), rand(rng, 8, H, scale=2)
        s = ffn_arrays(rng, "swiglu", 4, 8, H)
        b = ffn_arrays(rng, "swiglu", 4, 32, H)
        ids, rw = ref.relu_router(x, gate)
        self.assertGreater(len(used_slots(ids)), 1)
        want = ref.layer(x, ids, rw, [ref.ffn_bank("swiglu", **s), ref.ffn_bank("swiglu", **b)])
        self.check(L, [x, gate, s["w1"], s["w3"], s["w2"], b["w1"], b["w3"], b["w2"]], want)

    def test_relu_router_capped_scaled(self):
        rng = np.random.default_rng(8)
        T, H, E, I = self.T, self.H, 8, 16
        L = moec.Layer(hidden=H)
        x, gate = L.hidden(), L.weight("gate", (E, H))
        w = L.ffn_weights(I, "silu", experts=E)
        r = L.relu_router(x, gate, slots=3, scaling_factor=3.0)
        L.output(L.layer(x, r, L.ffn_experts("silu", **w)))
        a = [rand(rng, T, H), rand(rng, E, H, scale=2), rand(rng, E, I, H), rand(rng, E, H, I)]
        ids, rw = ref.relu_router(a[0], a[1], slots=3, scaling_factor=3.0)
        want = ref.layer(a[0], ids, rw, [ref.ffn_bank("silu", a[2], a[3])])
        self.check(L, a, want)

    def test_expert_choice(self):
        rng = np.random.default_rng(9)
        T, H, E, I = self.T, self.H, 8, 24
        L = ex.expert_choice(H=H, E=E, I=I, capacity=5)
        x, gate = rand(rng, T, H), rand(rng, E, H, scale=3)
        w = ffn_arrays(rng, "swiglu", E, I, H)
        ids, rw = ref.expert_choice_router(x, gate, 5)
        self.assertEqual(int((ids >= 0).sum()), 5 * E)
        want = ref.layer(x, ids, rw, [ref.ffn_bank("swiglu", **w)])
        self.check(L, [x, gate, w["w1"], w["w3"], w["w2"]], want)

    def test_expert_choice_sigmoid_capacity_above_T(self):
        rng = np.random.default_rng(10)
        T, H, E, I = 5, self.H, 4, 16
        L = moec.Layer(hidden=H)
        x, gate = L.hidden(), L.weight("gate", (E, H))
        w = L.ffn_weights(I, "gelu", experts=E)
        r = L.expert_choice_router(x, gate, capacity=8, scoring="sigmoid", scaling_factor=2.0)
        L.output(L.layer(x, r, L.ffn_experts("gelu", **w)))
        a = [rand(rng, T, H), rand(rng, E, H), rand(rng, E, I, H), rand(rng, E, H, I)]
        ids, rw = ref.expert_choice_router(a[0], a[1], 8, "sigmoid", 2.0)
        want = ref.layer(a[0], ids, rw, [ref.ffn_bank("gelu", a[2], a[3])])
        self.check(L, a, want)

    def test_hash_i32_and_i64(self):
        for dtype, np_dtype in (("i32", np.int32), ("i64", np.int64)):
            with self.subTest(dtype=dtype):
                rng = np.random.default_rng(11)
                T, H, E, I = self.T, self.H, 6, 16
                L = ex.hash_layer(H=H, E=E, I=I, token_dtype=dtype)
                x = rand(rng, T, H)
                tok = rng.integers(-50, 32000, size=T).astype(np_dtype)
                if dtype == "i64":
                    tok[0] = (1 << 40) + 3  # only the low 32 bits count
                w = ffn_arrays(rng, "swiglu", E, I, H)
                ids, rw = ref.hash_router(tok, E)
                want = ref.layer(x, ids, rw, [ref.ffn_bank("swiglu", **w)])
                self.check(L, [x, tok, w["w1"], w["w3"], w["w2"]], want)

    def test_switch_capacity_drop(self):
        rng = np.random.default_rng(12)
        T, H, E, I = self.T, self.H, 4, 24
        L = ex.switch_capacity(H=H, E=E, I=I, capacity_factor=1.0, k=2)
        x, gate = rand(rng, T, H), rand(rng, E, H, scale=4)
        w = ffn_arrays(rng, "gelu", E, I, H)
        ids0, w0 = ref.topk_router(x, gate, 2)
        ids, rw = ref.capacity_drop(ids0, w0, E, 1.0)
        self.assertTrue(np.any(ids == -1), "the capacity should drop some slots")
        want = ref.layer(x, ids, rw, [ref.ffn_bank("gelu", **w)])
        self.check(L, [x, gate, w["w1"], w["w2"]], want)

    def test_mixlora(self):
        rng = np.random.default_rng(13)
        T, H, E, I, r = self.T, self.H, 4, 24, 4
        L = ex.mixlora(H=H, E=E, I=I, r=r, alpha=8.0, k=2)
        x, gate = rand(rng, T, H), rand(rng, E, H, scale=3)
        base = ffn_arrays(rng, "swiglu", None, I, H)
        ad = {"a1": rand(rng, E, r, H), "b1": rand(rng, E, I, r), "a3": rand(rng, E, r, H),
              "b3": rand(rng, E, I, r), "a2": rand(rng, E, r, I), "b2": rand(rng, E, H, r)}
        ids, rw = ref.topk_router(x, gate, 2, renormalize=True)
        want = ref.layer(x, ids, rw, [ref.lora_bank("swiglu", **base, **ad, alpha=8.0)])
        self.check(L, [x, gate, base["w1"], base["w3"], base["w2"], ad["a1"], ad["b1"],
                       ad["a3"], ad["b3"], ad["a2"], ad["b2"]], want)

    def test_lora_plain_activation(self):
        rng = np.random.default_rng(14)
        T, H, E, I, r = self.T, self.H, 3, 16, 2
        L = moec.Layer(hidden=H)
        x, gate = L.hidden(), L.weight("gate", (E, H))
        w = L.lora_weights(I, r, E, "gelu")
        rt = L.topk_router(x, gate, k=1)
        L.output(L.layer(x, rt, L.lora_experts("gelu", **w, alpha=-2.0)))
        self.assertEqual(list(w), ["w1", "w2", "a1", "b1", "a2", "b2"])
        a = [rand(rng, T, H), rand(rng, E, H, scale=3), rand(rng, I, H), rand(rng, H, I),
             rand(rng, E, r, H), rand(rng, E, I, r), rand(rng, E, r, I), rand(rng, E, H, r)]
        ids, rw = ref.topk_router(a[0], a[1], 1)
        bank = ref.lora_bank("gelu", a[2], a[3], a[4], a[5], a[6], a[7], alpha=-2.0)
        self.check(L, a, ref.layer(a[0], ids, rw, [bank]))

    def test_mixture_of_depths_skip(self):
        rng = np.random.default_rng(15)
        T, H, E, I = self.T, self.H, 4, 24
        L = ex.mod(H=H, E=E, I=I, fraction=0.5)
        x, router, gate = rand(rng, T, H), rand(rng, H), rand(rng, E, H, scale=3)
        w = ffn_arrays(rng, "swiglu", E, I, H)
        bank = ref.ffn_bank("swiglu", **w)

        def block(xs):
            ids, rw = ref.topk_router(xs, gate, 2, renormalize=True)
            return ref.layer(xs, ids, rw, [bank])
        want = ref.skip_block(x, router, block, capacity_fraction=0.5, scale_by_score=True)
        got = self.check(L, [x, router, gate, w["w1"], w["w3"], w["w2"]], want)
        self.assertEqual(int(np.sum(np.any(got != x, axis=1))), (T + 1) // 2)

    def test_threshold_skip(self):
        rng = np.random.default_rng(16)
        T, H, I = self.T, self.H, 24
        L = ex.threshold_skip(H=H, I=I, threshold=0.1)
        x, router = rand(rng, T, H), rand(rng, H)
        w = ffn_arrays(rng, "swiglu", None, I, H)
        want = ref.skip_block(x, router, lambda xs: ref.ffn(xs, "swiglu", **w), threshold=0.1)
        skipped = np.all(want == ref.d(x), axis=1)
        self.assertTrue(0 < skipped.sum() < T)
        self.check(L, [x, router, w["w1"], w["w3"], w["w2"]], want)

    def test_threshold_skip_scaled_no_token_selected(self):
        rng = np.random.default_rng(17)
        T, H, I = self.T, self.H, 8
        L = moec.Layer(hidden=H)
        x, router = L.hidden(), L.weight("router", (H,))
        w = L.ffn_weights(I, "relu")
        L.output(L.skip_block(x, router, lambda r, xs: r.ffn(xs, "relu", **w),
                              threshold=100.0, scale_by_score=True))
        a = [rand(rng, T, H), rand(rng, H), rand(rng, I, H), rand(rng, H, I)]
        got = self.check(L, a, a[0])
        np.testing.assert_array_equal(got, a[0])

    def test_duo_path_select_stack(self):
        rng = np.random.default_rng(18)
        T, H, IS, IB = self.T, self.H, 8, 32
        L = ex.duo(H=H, I_small=IS, I_big=IB, layers=2)
        x = rand(rng, T, H)
        args, want = [x], ref.d(x)
        for n in range(2):
            r = rand(rng, 3, H, scale=3)
            s = ffn_arrays(rng, "swiglu", None, IS, H)
            b = ffn_arrays(rng, "swiglu", None, IB, H)
            args += [r, s["w1"], s["w3"], s["w2"], b["w1"], b["w3"], b["w2"]]
            paths = ref.path_router(want, r)
            self.assertEqual(set(paths.tolist()), {0, 1, 2})
            want = ref.path_select(want, paths, [lambda xs, s=s: ref.ffn(xs, "swiglu", **s),
                                                 lambda xs, b=b: ref.ffn(xs, "swiglu", **b)])
        self.check(L, args, want)

    def test_oracle_routing(self):
        rng = np.random.default_rng(19)
        T, H, E, I, K = self.T, self.H, 8, 24, 3
        L = ex.oracle(H=H, E=E, I=I, K=K)
        x = rand(rng, T, H)
        ids = rng.integers(-1, E, size=(T, K)).astype(np.int32)
        ids[0] = [2, 2, -1]            # an expert twice in one token
        ids[1:, 0] = np.where(np.arange(1, T) % 2, 5, ids[1:, 0])  # a hot expert
        wts = rng.uniform(-1, 1, size=(T, K)).astype(np.float32)
        w = ffn_arrays(rng, "swiglu", E, I, H)
        want = ref.layer(x, ids, wts, [ref.ffn_bank("swiglu", **w)])
        self.check(L, [x, ids, wts, w["w1"], w["w3"], w["w2"]], want)

    def test_stack_of_layers_two_results(self):
        """Three blocks chained in one function (top-k MoE with GeGLU experts
        and a shared SiLU expert, a threshold-skipped dense ReLU FFN, a ReLU-
        routed MoE with SiLU + constant experts); both the middle and the last
        hidden state are returned."""
        rng = np.random.default_rng(20)
        T, H, E1, I1, E2, I2, ID = self.T, self.H, 4, 16, 3, 12, 20
        L = moec.Layer(hidden=H, name="stack")
        x = L.hidden("x")
        g1 = L.weight("g1", (E1, H))
        w1 = L.ffn_weights(I1, "geglu", experts=E1, prefix="l1_")
        ws = L.ffn_weights(I1, "silu", experts=1, prefix="s_")
        router = L.weight("router", (H,))
        wd = L.ffn_weights(ID, "relu", prefix="d_")
        g2 = L.weight("g2", (E2 + 2, H))
        w2 = L.ffn_weights(I2, "silu", experts=E2, prefix="l2_")
        consts = L.weight("consts", (2, H))
        h1 = L.layer(x, L.topk_router(x, g1, k=2, renormalize=True),
                     L.ffn_experts("geglu", **w1), shared=[L.ffn_experts("silu", **ws)])
        h2 = L.skip_block(h1, router, lambda r, xs: r.ffn(xs, "relu", **wd), threshold=0.0)
        h3 = L.layer(h2, L.relu_router(h2, g2, slots=3),
                     [L.ffn_experts("silu", **w2), L.const_experts(consts)])
        L.output(h2, h3)

        a = {"x": rand(rng, T, H), "g1": rand(rng, E1, H, scale=3)}
        a.update({"l1_" + k: v for k, v in ffn_arrays(rng, "geglu", E1, I1, H).items()})
        a.update({"s_" + k: v for k, v in ffn_arrays(rng, "silu", 1, I1, H).items()})
        a["router"] = rand(rng, H)
        a.update({"d_" + k: v for k, v in ffn_arrays(rng, "relu", None, ID, H).items()})
        a["g2"] = rand(rng, E2 + 2, H, scale=2)
        a.update({"l2_" + k: v for k, v in ffn_arrays(rng, "silu", E2, I2, H).items()})
        a["consts"] = rand(rng, 2, H)
        args = [a[v.name] for v in L.arguments]

        ids, rw = ref.topk_router(a["x"], a["g1"], 2, renormalize=True)
        r1 = ref.layer(a["x"], ids, rw,
                       [ref.ffn_bank("geglu", a["l1_w1"], a["l1_w2"], a["l1_w3"])],
                       shared=[ref.ffn_bank("silu", a["s_w1"], a["s_w2"])])
        r2 = ref.skip_block(r1, a["router"],
                            lambda xs: ref.ffn(xs, "relu", a["d_w1"], a["d_w2"]), threshold=0.0)
        ids, rw = ref.relu_router(r2, a["g2"], slots=3)
        r3 = ref.layer(r2, ids, rw, [ref.ffn_bank("silu", a["l2_w1"], a["l2_w2"]),
                                     ref.const_bank(a["consts"])])

        fn = moec.compile(L)
        self.assertEqual(fn.entry, "stack")
        got2, got3 = fn(*args)
        self.assertLessEqual(ref.rel_error(got2, r2), RTOL)
        self.assertLessEqual(ref.rel_error(got3, r3), RTOL)

    def test_stack_example_four_layers(self):
        """examples/stack.mlir (built with the builder, smaller sizes)."""
        rng = np.random.default_rng(23)
        T, H, I = self.T, self.H, 24
        L = ex.stack(H=H, I=I)
        shapes = {v.name: v.shape for v in L.arguments}
        a = {n: rand(rng, *(T if dim is None else dim for dim in shp)) for n, shp in shapes.items()}
        for g in ("g1", "g2", "g3"):
            a[g] *= 4
        a["bias"] *= 0.2
        ids, rw = ref.topk_router(a["x"], a["g1"], 2, renormalize=True)
        e1 = ref.ffn_bank("swiglu", a["a_w1"], a["a_w2"], a["a_w3"])
        h1 = ref.skip_block(a["x"], a["r"], lambda xs: ref.layer(xs, ids, rw, [e1]),
                            threshold=-1e30)
        ids, rw = ref.grouped_topk_router(h1, a["g2"], 2, 4, 2, "sigmoid", bias=a["bias"],
                                          renormalize=True)
        y2 = ref.layer(h1, ids, rw, [ref.ffn_bank("swiglu", a["b_w1"], a["b_w2"], a["b_w3"])],
                       shared=[ref.ffn_bank("swiglu", a["s_w1"], a["s_w2"], a["s_w3"])])
        ids, rw = ref.topp_router(y2, a["g3"], 0.5, 3)
        self.assertTrue(np.any(ids == 3) and np.any(ids == 4), "null and copy experts used")
        y3 = ref.layer(y2, ids, rw, [ref.ffn_bank("gelu", a["c1"], a["c2"]), ref.zero_bank(1),
                                     ref.copy_bank(1)])
        e4 = ref.ffn_bank("relu", a["d_w1"], a["d_w2"])

        def block(xs):
            i4, w4 = ref.relu_router(xs, a["g4"])
            return ref.layer(xs, i4, w4, [e4])
        want = ref.skip_block(y3, a["r"], block, capacity_fraction=0.5, scale_by_score=True)
        self.check(L, [a[v.name] for v in L.arguments], want)

    def test_one_token_and_vector_options(self):
        rng = np.random.default_rng(21)
        H, E, I = self.H, 8, 24
        L = ex.mixtral(H=H, E=E, I=I, k=2)
        w = ffn_arrays(rng, "swiglu", E, I, H)
        gate = rand(rng, E, H, scale=3)
        for T, vw, rt in ((1, 0, 4), (9, 4, 1), (17, 8, 3)):
            with self.subTest(T=T, vector_width=vw, row_tile=rt):
                x = rand(rng, T, H)
                ids, rw = ref.topk_router(x, gate, 2, renormalize=True)
                want = ref.layer(x, ids, rw, [ref.ffn_bank("swiglu", **w)])
                fn = moec.compile(L, vector_width=vw, row_tile=rt)
                got = fn(x, gate, w["w1"], w["w3"], w["w2"])
                self.assertLessEqual(ref.rel_error(got, want), RTOL)

    def test_reference_interpreter_matches_numpy(self):
        rng = np.random.default_rng(22)
        T, H = self.T, self.H
        L = ex.moepp(H=H, F=4, I=16, C=2, k=2)
        x, gate = rand(rng, T, H), rand(rng, 8, H, scale=3)
        w = ffn_arrays(rng, "swiglu", 4, 16, H)
        consts = rand(rng, 2, H)
        ids, rw = ref.topk_router(x, gate, 2)
        want = ref.layer(x, ids, rw, [ref.ffn_bank("swiglu", **w), ref.zero_bank(1),
                                      ref.copy_bank(1), ref.const_bank(consts)])
        got = moec.reference(L, x, gate, w["w1"], w["w3"], w["w2"], consts)
        self.assertEqual(got.dtype, np.float32)
        self.assertLessEqual(ref.rel_error(got, want), 1e-6)


if __name__ == "__main__":
    unittest.main()
