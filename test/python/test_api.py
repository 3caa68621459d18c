"""The moec API around the layers: builder text vs examples/, stage texts,
errors (compile-time and run-time), argument checks, DLPack, out=."""

import os
import pathlib
import unittest

import numpy as np

import moec
import moe_numpy as ref
import example_layers as ex

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def rand(rng, *shape):
    a = (3.0 / shape[-1]) ** 0.5
    return rng.uniform(-a, a, size=shape).astype(np.float32)


class DLPackOnly:
    """A foreign tensor: only the DLPack protocol, backed by a numpy array."""

    def __init__(self, array):
        self._a = array

    def __dlpack__(self, stream=None):
        return self._a.__dlpack__()

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()


class BuilderTest(unittest.TestCase):
    def test_builder_reproduces_every_example(self):
        """Parsed and printed, the builder's text and the example's are identical."""
        self.assertEqual(sorted(ex.EXAMPLES), sorted(p.stem for p in EXAMPLES.glob("*.mlir")))
        for name, build in ex.EXAMPLES.items():
            with self.subTest(example=name):
                example = str(moec.load(EXAMPLES / f"{name}.mlir"))
                built = str(moec.parse(build().to_mlir()))
                self.assertEqual(built, example)

    def test_builder_mixtral_runs_like_the_example(self):
        a = moec.random_inputs(moec.load(EXAMPLES / "mixtral.mlir"), tokens=11, seed=3)
        from_file = moec.compile(EXAMPLES / "mixtral.mlir")
        from_builder = moec.compile(ex.mixtral())
        np.testing.assert_array_equal(from_file(*a), from_builder(*a))
        self.assertEqual(from_builder.argument_names, ["x", "gate", "w1", "w3", "w2"])
        self.assertEqual(from_file.argument_names, ["x", "gate", "w1", "w3", "w2"])

    def test_module_with_two_functions(self):
        a, b = ex.mixtral(H=8, E=2, I=8, k=1), ex.threshold_skip(H=8, I=8)
        b.name = "skip"
        text = a.to_mlir() + b.to_mlir()
        mod = moec.parse(text)
        self.assertEqual(mod.functions(), ["main", "skip"])
        self.assertEqual(mod.argument_names("skip"), ["x", "router", "w1", "w3", "w2"])
        self.assertEqual(mod.signature("skip")[0][1], ((8,), "float32"))
        fn = moec.compile(mod, entry="skip")
        self.assertEqual(fn.entry, "skip")
        args = moec.random_inputs(mod, tokens=4, entry="skip")
        np.testing.assert_allclose(fn(*args), moec.reference(mod, *args, entry="skip"),
                                   rtol=1e-5, atol=1e-6)

    def test_to_mlir_text(self):
        L = moec.Layer(hidden=8, name="tiny")
        x = L.hidden()
        ids = L.input("ids", (None, 1), "i32", random_range=(-1, 2))
        w = L.input("w", (None, 1))
        vals = L.weight("vals", (2, 8))
        L.output(L.layer(x, (ids, w), [L.copy_experts(), L.const_experts(vals)]))
        text = L.to_mlir()
        self.assertIn("func.func @tiny(", text)
        self.assertIn("%ids: tensor<?x1xi32> {moe.random_range = array<i64: -1, 2>}", text)
        self.assertIn("moe.copy_experts : !moe.experts<1, 8>", text)
        self.assertIn("moe.const_experts %vals : tensor<2x8xf32> -> !moe.experts<2, 8>", text)
        self.assertIn("return %y : tensor<?x8xf32>", text)
        self.assertEqual(str(L), text)
        moec.parse(text)  # verifies

    def test_builder_names_are_unique(self):
        L = moec.Layer(hidden=8)
        x = L.hidden()
        e = L.zero_experts(2)
        y1 = L.layer(x, L.hash_router(L.input("t", (None,), "i64"), 2), e)
        y2 = L.layer(y1, L.hash_router(L.input("t2", (None,), "i64"), 2), e)
        self.assertNotEqual(y1.name, y2.name)
        L.output(y2)
        moec.parse(L.to_mlir())

    def test_builder_argument_errors(self):
        L = moec.Layer(hidden=8)
        x = L.hidden()
        gate = L.weight("gate", (4, 8))
        with self.assertRaisesRegex(ValueError, "already used"):
            L.weight("gate", (4, 8))
        with self.assertRaisesRegex(ValueError, "activation must be one of"):
            L.ffn_weights(16, "tanh", experts=4)
        w = L.ffn_weights(16, "swiglu", experts=4)
        with self.assertRaisesRegex(ValueError, "needs w3"):
            L.ffn_experts("swiglu", w1=w["w1"], w2=w["w2"])
        with self.assertRaisesRegex(ValueError, "takes no w3"):
            L.ffn_experts("gelu", **w)
        with self.assertRaisesRegex(TypeError, "gate must be a Value"):
            L.topk_router(x, "gate", k=2)
        with self.assertRaisesRegex(ValueError, "exactly one of"):
            L.skip_block(x, L.weight("r", (8,)), lambda r, xs: xs)
        with self.assertRaisesRegex(ValueError, r"threshold must be in \(0, 1\]"):
            L.topp_router(x, gate, threshold=1.5, max_k=2)
        with self.assertRaisesRegex(ValueError, "scoring must be one of"):
            L.topk_router(x, gate, k=2, scoring="tanh")
        with self.assertRaisesRegex(ValueError, "before to_mlir"):
            L.to_mlir()
        with self.assertRaisesRegex(ValueError, "another Layer"):
            moec.Layer(hidden=8).layer(x, L.topk_router(x, gate, k=1), L.zero_experts())

    def test_builder_semantic_error_is_caught_by_the_verifier(self):
        L = moec.Layer(hidden=8)
        x = L.hidden()
        gate = L.weight("gate", (4, 8))
        r = L.topk_router(x, gate, k=9)  # k > E: the verifier's rule, not the builder's
        L.output(L.layer(x, r, L.zero_experts(4)))
        with self.assertRaises(moec.CompileError) as cm:
            moec.compile(L)
        msg = str(cm.exception)
        self.assertIn("moe.topk_router", msg)
        self.assertRegex(msg, r"<moec.Layer 'main'>:\d+:\d+: error")


class StagesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fn = moec.compile(ex.moepp(H=16, F=4, I=16, C=2))

    def test_stage_names_and_contents(self):
        fn = self.fn
        self.assertEqual(fn.stage_names, ["moe", "expanded", "loops", "llvm", "llvm-ir"])
        self.assertEqual([n for n, _ in fn.stages], fn.stage_names)
        self.assertIn("moe.layer", fn.stage("moe"))
        self.assertIn("moe.zero_experts", fn.stage("moe"))
        self.assertIn("moe.dispatch", fn.stage("expanded"))
        self.assertNotIn("moe.layer ", fn.stage("expanded"))
        self.assertIn("scf.for", fn.stage("loops"))
        self.assertIn("llvm.func", fn.stage("llvm"))
        self.assertIn("define", fn.stage("llvm-ir"))
        self.assertIn("_mlir_ciface_main", fn.stage("llvm-ir"))
        with self.assertRaisesRegex(KeyError, "no stage 'ptx'"):
            fn.stage("ptx")

    def test_signature_and_repr(self):
        args, results = self.fn.signature
        self.assertEqual(args[0], ((None, 16), "float32"))
        self.assertEqual(results, [((None, 16), "float32")])
        self.assertIn("x: [T, 16] float32", repr(self.fn))
        self.assertGreater(self.fn.compile_seconds, 0)


class ErrorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.layer = ex.oracle(H=16, E=4, I=8, K=2)
        cls.fn = moec.compile(cls.layer)
        rng = np.random.default_rng(5)
        T = 6
        cls.args = [rand(rng, T, 16), rng.integers(-1, 4, size=(T, 2)).astype(np.int32),
                    rand(rng, T, 2), rand(rng, 4, 8, 16), rand(rng, 4, 8, 16), rand(rng, 4, 16, 8)]

    def test_syntax_error_has_location(self):
        text = (EXAMPLES / "mixtral.mlir").read_text().replace("moe.layer %x,", "moe.layer %x")
        with self.assertRaises(moec.CompileError) as cm:
            moec.compile(text)
        self.assertRegex(str(cm.exception), r"<string>:\d+:\d+: error")

    def test_file_errors_name_the_file(self):
        import tempfile
        with tempfile.NamedTemporaryFile("w", suffix=".mlir", delete=False) as f:
            f.write("func.func @main(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {\n"
                    "  return %y : tensor<?x8xf32>\n}\n")
        try:
            with self.assertRaises(moec.CompileError) as cm:
                moec.compile(pathlib.Path(f.name))
            self.assertIn(f"{f.name}:2:10: error: use of undeclared SSA value", str(cm.exception))
        finally:
            os.unlink(f.name)

    def test_verifier_error_names_the_op(self):
        text = (EXAMPLES / "mixtral.mlir").read_text().replace("{k = 2, renormalize}",
                                                                 "{k = 3, renormalize}")
        with self.assertRaises(moec.CompileError) as cm:
            moec.parse(text)
        msg = str(cm.exception)
        self.assertIn("'moe.topk_router' op", msg)
        self.assertRegex(msg, r"<string>:7:\d+: error")

    def test_unknown_entry(self):
        with self.assertRaisesRegex(KeyError, "no function 'nope'"):
            moec.compile(ex.mixtral(H=8, E=2, I=8, k=1), entry="nope")

    def test_only_function_is_the_default_entry(self):
        """A module with one function, whatever its name, needs no entry=."""
        text = (EXAMPLES / "mixtral.mlir").read_text().replace("@main", "@mixtral")
        fn = moec.compile(text)
        self.assertEqual(fn.entry, "mixtral")
        args = moec.random_inputs(text, tokens=5, seed=1)
        self.assertEqual(args[0].shape, (5, 64))
        self.assertLessEqual(ref.rel_error(fn(*args), moec.reference(text, *args)), 1e-4)

    def test_several_functions_default_to_main_else_list_them(self):
        a, b = ex.mixtral(H=8, E=2, I=8, k=1), ex.threshold_skip(H=8, I=8)
        b.name = "skip"
        self.assertEqual(moec.compile(a.to_mlir() + b.to_mlir()).entry, "main")
        a.name = "moe"
        text = a.to_mlir() + b.to_mlir()
        for call in (lambda: moec.compile(text), lambda: moec.random_inputs(text, tokens=2),
                     lambda: moec.reference(text)):
            with self.assertRaisesRegex(KeyError, "the module has several functions "
                                                  r"\('moe', 'skip'\) and none is 'main': "
                                                  "pass entry=NAME"):
                call()
        self.assertEqual(moec.compile(text, entry="skip").entry, "skip")

    def test_compile_takes_a_path_string(self):
        """moec.compile("examples/x.mlir") loads the file (it used to parse the
        path as MLIR text and report a syntax error at <string>:1:1)."""
        fn = moec.compile(str(EXAMPLES / "hash.mlir"))
        self.assertEqual(fn.argument_names[0], "x")
        self.assertEqual(fn.module.filename, str(EXAMPLES / "hash.mlir"))
        cwd = os.getcwd()
        try:
            os.chdir(ROOT)
            self.assertEqual(moec.compile("examples/hash.mlir").entry, "main")
            self.assertEqual([a.shape for a in moec.random_inputs("examples/hash.mlir", tokens=3)][:2], [(3, 64), (3,)])
            with self.assertRaises(FileNotFoundError) as cm:
                moec.compile("examples/x.mlir")
        finally:
            os.chdir(cwd)
        self.assertEqual(str(cm.exception),
                         "no such file 'examples/x.mlir' (moec.load takes a path; moec.compile "
                         "takes a Layer, a module or MLIR text)")
        # MLIR text is still text, also on one line.
        one_line = "func.func @f(%x: tensor<?x8xf32>) -> tensor<?x8xf32> { return %x : tensor<?x8xf32> }"
        self.assertEqual(moec.parse(one_line).functions(), ["f"])
        with self.assertRaises(moec.CompileError):
            moec.compile("func.func @f(")

    def test_targets(self):
        """Every target compiles; the GPU ones are tested in test_gpu.py."""
        self.assertEqual(moec.TARGETS, ("cpu", "gpu-host", "nvptx"))
        small = ex.mixtral(H=8, E=2, I=8, k=1)
        self.assertIsInstance(moec.compile(small, target="nvptx"), moec.CompiledPtx)
        self.assertIsInstance(moec.compile(small, target="gpu-host"), moec.Compiled)
        with self.assertRaisesRegex(ValueError, "unknown target 'tpu'"):
            moec.compile(ex.mixtral(), target="tpu")

    def test_wrong_dtype_names_the_argument(self):
        args = list(self.args)
        args[3] = args[3].astype(np.float64)
        with self.assertRaisesRegex(TypeError, r"argument #3 \('w1'\): expected dtype float32, got float64"):
            self.fn(*args)
        args = list(self.args)
        args[1] = args[1].astype(np.int64)
        with self.assertRaisesRegex(TypeError, r"argument #1 \('ids'\): expected dtype int32"):
            self.fn(*args)

    def test_wrong_shape_names_the_argument(self):
        args = list(self.args)
        args[4] = args[4][:, :4].copy()
        with self.assertRaisesRegex(ValueError, r"argument #4 \('w3'\): expected shape \[4, 8, 16\], got \[4, 4, 16\]"):
            self.fn(*args)
        args = list(self.args)
        args[2] = args[2][:5].copy()
        with self.assertRaisesRegex(ValueError, r"argument #2 \('w'\).*T = 6"):
            self.fn(*args)
        with self.assertRaisesRegex(TypeError, "takes 6 arrays"):
            self.fn(*self.args[:5])

    def test_non_contiguous_names_the_argument(self):
        args = list(self.args)
        args[0] = np.asfortranarray(args[0])
        with self.assertRaisesRegex(ValueError, r"argument #0 \('x'\).*non-contiguous"):
            self.fn(*args)
        args = list(self.args)
        big = np.zeros((4, 16, 16), np.float32)
        args[5] = big[:, :, ::2]
        with self.assertRaisesRegex(ValueError, r"argument #5 \('w2'\).*non-contiguous"):
            self.fn(*args)

    def test_not_an_array(self):
        args = list(self.args)
        args[0] = args[0].tolist()
        with self.assertRaisesRegex(TypeError, r"argument #0 \('x'\).*got an object of type 'list'"):
            self.fn(*args)

    def test_bad_expert_id_raises_and_writes_nothing(self):
        args = list(self.args)
        args[1] = args[1].copy()
        args[1][3, 1] = 4  # E = 4
        out = np.full((6, 16), 7.0, np.float32)
        with self.assertRaises(moec.RuntimeError) as cm:
            self.fn(*args, out=[out])
        self.assertIsInstance(cm.exception, RuntimeError)
        self.assertIn("expert id", str(cm.exception))
        np.testing.assert_array_equal(out, 7.0)
        with self.assertRaises(moec.RuntimeError):
            moec.reference(self.layer, *args)

    def test_nan_logits_raise(self):
        fn = moec.compile(ex.mixtral(H=8, E=4, I=8, k=2))
        rng = np.random.default_rng(1)
        x = rand(rng, 5, 8)
        x[2, 3] = np.nan
        with self.assertRaisesRegex(moec.RuntimeError, "NaN|not finite"):
            fn(x, rand(rng, 4, 8), rand(rng, 4, 8, 8), rand(rng, 4, 8, 8), rand(rng, 4, 8, 8))

    def test_bad_path_id_raises(self):
        L = moec.Layer(hidden=8)
        x = L.hidden()
        paths = L.input("paths", (None,), "i32")
        w = L.ffn_weights(8, "relu")
        L.output(L.path_select(x, paths, [lambda r, xs: r.ffn(xs, "relu", **w)]))
        fn = moec.compile(L)
        rng = np.random.default_rng(2)
        x_, w1, w2 = rand(rng, 4, 8), rand(rng, 8, 8), rand(rng, 8, 8)
        good = np.array([0, 1, 1, 0], np.int32)
        want = ref.path_select(x_, good, [lambda xs: ref.ffn(xs, "relu", w1, w2)])
        self.assertLessEqual(ref.rel_error(fn(x_, good, w1, w2), want), 1e-4)
        with self.assertRaises(moec.RuntimeError):
            fn(x_, np.array([0, 2, 1, 0], np.int32), w1, w2)


class MalformedInputTest(unittest.TestCase):
    """The malformed-input classes not covered by ErrorTest/BuffersTest: each
    raises with the argument named, and an out= buffer keeps its contents."""

    @classmethod
    def setUpClass(cls):
        cls.layer = ex.oracle(H=16, E=4, I=8, K=2)
        cls.fn = moec.compile(cls.layer)
        rng = np.random.default_rng(6)
        T = 5
        cls.args = [rand(rng, T, 16), rng.integers(0, 4, size=(T, 2)).astype(np.int32),
                    rand(rng, T, 2), rand(rng, 4, 8, 16), rand(rng, 4, 8, 16), rand(rng, 4, 16, 8)]

    def assert_untouched(self, out):
        np.testing.assert_array_equal(out, 7.0)

    def test_wrong_rank_names_the_argument(self):
        args = list(self.args)
        args[0] = args[0][None]
        with self.assertRaisesRegex(ValueError, r"argument #0 \('x'\): expected shape \[T, 16\], got \[1, 5, 16\]"):
            self.fn(*args)
        args = list(self.args)
        args[3] = args[3][0]
        with self.assertRaisesRegex(ValueError, r"argument #3 \('w1'\): expected shape \[4, 8, 16\], got \[8, 16\]"):
            self.fn(*args)

    def test_bad_out_buffers_are_rejected_and_untouched(self):
        out = np.full((5, 16), 7.0, np.float32)
        with self.assertRaisesRegex(TypeError, "out= must hold 1 arrays, got 2"):
            self.fn(*self.args, out=[out, out])
        big = np.full((5, 32), 7.0, np.float32)
        with self.assertRaisesRegex(ValueError, r"out #0.*non-contiguous"):
            self.fn(*self.args, out=[big[:, ::2]])
        np.testing.assert_array_equal(big, 7.0)
        out.flags.writeable = False
        with self.assertRaisesRegex(ValueError, "out #0: the output array is read-only"):
            self.fn(*self.args, out=[out])
        self.assert_untouched(out)

    def test_sentinel_ids_are_accepted(self):
        args = list(self.args)
        args[1] = args[1].copy()
        args[1][:, 1] = -1
        args[1][2, 0] = -1
        got = self.fn(*args)
        want = moec.reference(self.layer, *args)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(got[2], 0.0)

    def test_out_of_range_ids_raise_and_write_nothing(self):
        for bad in (-2, 4, 2**31 - 1, -2**31):
            args = list(self.args)
            args[1] = args[1].copy()
            args[1][4, 0] = bad
            out = np.full((5, 16), 7.0, np.float32)
            with self.assertRaisesRegex(moec.RuntimeError, r"expert id .*outside \[-1, E\)"):
                self.fn(*args, out=[out])
            self.assert_untouched(out)
            with self.assertRaisesRegex(moec.RuntimeError, "expert id"):
                moec.reference(self.layer, *args)

    def test_nonfinite_logits_raise_and_write_nothing(self):
        fn = moec.compile(ex.mixtral(H=8, E=4, I=8, k=2))
        rng = np.random.default_rng(7)
        args = [rand(rng, 3, 8), rand(rng, 4, 8), rand(rng, 4, 8, 8), rand(rng, 4, 8, 8),
                rand(rng, 4, 8, 8)]
        for where, bad in ((0, np.nan), (0, np.inf), (1, -np.inf)):
            bad_args = [a.copy() for a in args]
            bad_args[where][1, 2] = bad
            out = np.full((3, 8), 7.0, np.float32)
            with self.assertRaisesRegex(moec.RuntimeError, "NaN or infinite"):
                fn(*bad_args, out=[out])
            self.assert_untouched(out)

    def test_large_logits_route_like_the_reference(self):
        fn = moec.compile(ex.mixtral(H=8, E=4, I=8, k=2))
        rng = np.random.default_rng(8)
        args = [rand(rng, 6, 8), rand(rng, 4, 8) * 2e4, rand(rng, 4, 8, 8), rand(rng, 4, 8, 8),
                rand(rng, 4, 8, 8)]
        got = fn(*args)
        self.assertTrue(np.all(np.isfinite(got)))
        self.assertLessEqual(ref.rel_error(got, moec.reference(fn, *args)), 1e-4)

    def test_bad_path_id_names_the_problem_and_writes_nothing(self):
        L = moec.Layer(hidden=8)
        x = L.hidden()
        paths = L.input("paths", (None,), "i32")
        w = L.ffn_weights(8, "relu")
        L.output(L.path_select(x, paths, [lambda r, xs: r.ffn(xs, "relu", **w)]))
        fn = moec.compile(L)
        rng = np.random.default_rng(9)
        x_, w1, w2 = rand(rng, 4, 8), rand(rng, 8, 8), rand(rng, 8, 8)
        for bad in (-1, 2, 1000):
            out = np.full((4, 8), 7.0, np.float32)
            with self.assertRaisesRegex(moec.RuntimeError, r"path id .*outside \[0, P\]"):
                fn(x_, np.array([0, bad, 1, 0], np.int32), w1, w2, out=[out])
            self.assert_untouched(out)


class BuffersTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.layer = ex.mixtral(H=16, E=4, I=8, k=2)
        cls.fn = moec.compile(cls.layer)
        cls.args = moec.random_inputs(cls.layer, tokens=9, seed=4)

    def test_dlpack_inputs(self):
        want = self.fn(*self.args)
        got = self.fn(*[DLPackOnly(a) for a in self.args])
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(moec.reference(self.layer, *[DLPackOnly(a) for a in self.args]),
                                      moec.reference(self.layer, *self.args))

    def test_out_buffers(self):
        out = np.empty((9, 16), np.float32)
        got = self.fn(*self.args, out=[out])
        self.assertIs(got, out)
        np.testing.assert_array_equal(out, self.fn(*self.args))
        with self.assertRaisesRegex(ValueError, r"out #0.*expected shape \[9, 16\]"):
            self.fn(*self.args, out=[np.empty((8, 16), np.float32)])
        with self.assertRaisesRegex(TypeError, "out #0: expected dtype float32"):
            self.fn(*self.args, out=[np.empty((9, 16), np.float64)])

    def test_out_takes_a_single_array_for_a_single_result(self):
        """out=array (the natural spelling for one result) is that result;
        it used to be iterated as a sequence of its rows ('out= must hold 1
        arrays, got 9')."""
        want = self.fn(*self.args)
        out = np.full((9, 16), np.nan, np.float32)
        got = self.fn(*self.args, out=out)
        self.assertIs(got, out)
        np.testing.assert_array_equal(out, want)
        # A tuple or list of one array, as before.
        for wrap in (tuple, list):
            out = np.full((9, 16), np.nan, np.float32)
            self.assertIs(self.fn(*self.args, out=wrap([out])), out)
            np.testing.assert_array_equal(out, want)
        # Checked like any out= array, and left untouched when rejected.
        bad = np.full((8, 16), 7.0, np.float32)
        with self.assertRaisesRegex(ValueError, r"out #0.*expected shape \[9, 16\]"):
            self.fn(*self.args, out=bad)
        self.assertTrue((bad == 7.0).all())
        with self.assertRaisesRegex(TypeError, "out= takes an array or a tuple/list of arrays, "
                                               "got int"):
            self.fn(*self.args, out=5)

    def test_out_single_array_for_two_results_is_refused(self):
        L = moec.Layer(hidden=8, name="two")
        x = L.hidden()
        w = L.ffn_weights(8, "relu")
        v = L.ffn_weights(8, "relu", prefix="v")
        L.output(L.ffn(x, "relu", **w), L.ffn(x, "relu", **v))
        fn = moec.compile(L)
        args = moec.random_inputs(L, tokens=3, seed=2)
        out = np.full((2, 3, 8), 7.0, np.float32)
        with self.assertRaisesRegex(TypeError, "out= is one array but 'two' has 2 results: "
                                               "pass a tuple of 2 arrays"):
            fn(*args, out=out)
        self.assertTrue((out == 7.0).all())
        a, b = fn(*args, out=(out[0], out[1]))
        self.assertIs(a.base, out)
        np.testing.assert_array_equal(out[0], fn(*args)[0])
        np.testing.assert_array_equal(out[1], fn(*args)[1])

    def test_out_cannot_alias_an_input(self):
        with self.assertRaisesRegex(ValueError, r"out #0 overlaps argument #0 \('x'\)"):
            self.fn(*self.args, out=[self.args[0]])

    def test_calls_from_several_threads(self):
        import threading
        want = self.fn(*self.args)
        results, errors = [], []

        def work():
            try:
                for _ in range(20):
                    results.append(self.fn(*self.args))
            except Exception as e:  # pragma: no cover
                errors.append(e)
        threads = [threading.Thread(target=work) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(len(results), 60)
        for r in results:
            np.testing.assert_array_equal(r, want)

    def test_inputs_are_not_copied_or_modified(self):
        before = [a.copy() for a in self.args]
        self.fn(*self.args)
        for a, b in zip(self.args, before):
            np.testing.assert_array_equal(a, b)

    def test_compiled_matches_reference(self):
        got = self.fn(*self.args)
        want = moec.reference(self.fn, *self.args)
        self.assertLessEqual(ref.rel_error(got, want), 1e-4)

    def test_zero_tokens(self):
        args = list(self.args)
        args[0] = np.zeros((0, 16), np.float32)
        y = self.fn(*args)
        self.assertEqual(y.shape, (0, 16))

    def test_random_inputs_follow_random_range(self):
        arrays = moec.random_inputs(ex.oracle(H=8, E=4, I=8, K=2), tokens=50, seed=1)
        self.assertEqual(arrays[1].dtype, np.int32)
        self.assertEqual(arrays[1].shape, (50, 2))
        self.assertEqual(arrays[1].min(), -1)
        self.assertLess(arrays[1].max(), 4)


if __name__ == "__main__":
    unittest.main()
