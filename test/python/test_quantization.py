"""moec.quantize / dequantize, the safetensors files and low-precision
arguments of compiled functions (issue 26).

The stored bytes are checked against quant_numpy.py, an independent numpy
version of each format (ggml's reference quantizers for Q8_0 / Q4_0, bf16
round-to-nearest-even), and the files against its own safetensors reader
and writer.
"""
import gc
import os
import struct
import tempfile
import unittest

import numpy as np

import moec
import quant_numpy as qn

BOUND = {"bf16": 1 / 256, "f16": 1 / 2048, "int8": 1 / 254, "q8_0": 1 / 254 + 1 / 2048,
         "q4_0": 1 / 8 + 1 / 2048}


def weights(shape, seed=0):
    """Normal values with the blocks' edge cases: an all-zero block, a
    negative extreme, ties of the largest magnitude, exact halves."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(shape).astype(np.float32)
    flat = w.reshape(-1, 32)
    flat[0] = 0.0
    if flat.shape[0] > 3:
        flat[1, 7] = -9.0                     # q4_0: d = max / -8 > 0
        flat[2, 3], flat[2, 9] = 4.0, -4.0    # tie of |max|: the first one wins
        flat[3] = np.arange(32, dtype=np.float32) - 15.5  # halves after scaling
    return w


class QuantizeTest(unittest.TestCase):
    def test_block_formats_are_ggml_bytes(self):
        w = weights((3, 5, 96))
        for fmt, ref, block in (("q8_0", qn.q8_0, 34), ("q4_0", qn.q4_0, 18)):
            q = moec.quantize(w, fmt)
            self.assertEqual(q.data.dtype, np.int8)
            self.assertEqual(q.data.shape, (3, 5, 3 * block))
            self.assertIsNone(q.scales)
            np.testing.assert_array_equal(q.data.view(np.uint8), ref(w), err_msg=fmt)
            self.assertEqual(q.shape, w.shape)
            self.assertEqual(q.nbytes, 3 * 5 * 3 * block)
            deq = (qn.dequant_q8_0 if fmt == "q8_0" else qn.dequant_q4_0)(q.data, 96)
            np.testing.assert_array_equal(moec.dequantize(q), deq)

    def test_bf16_is_round_to_nearest_even(self):
        w = weights((4, 64), seed=1)
        # Exact halfway cases: low half 0x8000 rounds to the even neighbour.
        w.view(np.uint32)[0, :4] = [0x3F808000, 0x3F818000, 0xBF808000, 0x3F807FFF]
        q = moec.quantize(w, "bf16")
        self.assertEqual(q.data.dtype, np.uint16)
        np.testing.assert_array_equal(q.data, qn.bf16_rne(w))
        np.testing.assert_array_equal(q.data[0, :4], [0x3F80, 0x3F82, 0xBF80, 0x3F80])
        np.testing.assert_array_equal(moec.dequantize(q), qn.bf16_to_f32(q.data))

    def test_f16_and_int8(self):
        w = weights((2, 3, 64), seed=2)
        h = moec.quantize(w, "f16")
        self.assertEqual(h.data.dtype, np.float16)
        np.testing.assert_array_equal(h.data.view(np.uint16), w.astype(np.float16).view(np.uint16))
        q = moec.quantize(w, "int8")
        want_q, want_s = qn.int8_per_row(w)
        self.assertEqual(q.data.dtype, np.int8)
        np.testing.assert_array_equal(q.data, want_q)
        np.testing.assert_array_equal(q.scales, want_s)
        self.assertEqual(q.scales.shape, (2, 3))
        np.testing.assert_array_equal(moec.dequantize(q),
                                      q.data.astype(np.float32) * q.scales[..., None])

    def test_dequantized_values_within_each_formats_bound(self):
        w = weights((6, 128), seed=3)
        for fmt in moec.WEIGHT_FORMATS:
            back = moec.quantize(w, fmt).dequantize()
            self.assertEqual(back.dtype, np.float32)
            group = 32 if fmt.startswith("q") else 128
            blocks, err = w.reshape(-1, group), np.abs(back - w).reshape(-1, group)
            amax = np.abs(blocks).max(axis=1, keepdims=True)
            self.assertTrue(np.all(err <= BOUND[fmt] * (1 + 1e-5) * amax), fmt)
            # The bound is not vacuous: every lossy format loses something.
            self.assertGreater(err.max(), 0, fmt)

    def test_errors_name_the_argument(self):
        w = np.ones((2, 40), np.float32)
        with self.assertRaisesRegex(ValueError, r"w: K = 40 \(the last dimension\) is not a "
                                                r"multiple of 32, as q4_0 needs"):
            moec.quantize(w, "q4_0")
        self.assertEqual(moec.quantize(w, "int8").data.shape, (2, 40))  # no block constraint
        with self.assertRaisesRegex(TypeError, "w: expected dtype float32, got float64"):
            moec.quantize(w.astype(np.float64), "q8_0")
        with self.assertRaisesRegex(ValueError, "format must be one of bf16, f16, int8, q8_0, "
                                                "q4_0, got 'q5_k'"):
            moec.quantize(w, "q5_k")
        with self.assertRaisesRegex(ValueError, "a scalar cannot be quantized"):
            moec.quantize(np.ones((), np.float32), "bf16")
        q = moec.quantize(np.ones((2, 64), np.float32), "int8")
        with self.assertRaisesRegex(ValueError, r"scales: expected shape \[2\]"):
            moec.dequantize(moec.QuantizedWeight("int8", q.data, np.ones(3, np.float32)))
        with self.assertRaisesRegex(ValueError, "scales: int8 weights need their scales"):
            moec.dequantize(moec.QuantizedWeight("int8", q.data))
        with self.assertRaisesRegex(ValueError, "data: rows of 35 bytes are not whole q8_0 blocks"):
            moec.dequantize(moec.QuantizedWeight("q8_0", np.zeros((1, 35), np.int8)))
        with self.assertRaisesRegex(TypeError, "data: expected dtype uint16, got float16"):
            moec.dequantize(moec.QuantizedWeight("bf16", np.zeros(4, np.float16)))
        with self.assertRaisesRegex(TypeError, "takes a moec.QuantizedWeight"):
            moec.dequantize(q.data)
        with self.assertRaisesRegex(ValueError, "format must be one of"):
            moec.QuantizedWeight("f32", q.data)

    def test_uint8_block_bytes_are_accepted(self):
        q = moec.quantize(weights((2, 64), seed=4), "q4_0")
        same = moec.QuantizedWeight("q4_0", q.data.view(np.uint8))
        np.testing.assert_array_equal(moec.dequantize(same), moec.dequantize(q))


class SafetensorsTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)

    def path(self, name):
        return os.path.join(self.dir.name, name)

    def test_round_trip_of_every_dtype_and_quantized_weights(self):
        rng = np.random.default_rng(5)
        w = weights((4, 64), seed=5)
        tensors = {
            "f32": rng.standard_normal((2, 3)).astype(np.float32),
            "bf16": qn.bf16_rne(rng.standard_normal(5).astype(np.float32)),
            "f16": rng.standard_normal((1, 4)).astype(np.float16),
            "i8": np.array([-127, 0, 127], np.int8),
            "u8": np.array([[0, 255]], np.uint8),
            "i32": np.arange(6, dtype=np.int32).reshape(3, 2),
            "i64": np.array(7, np.int64),
            "empty": np.zeros((0, 3), np.float32),
            "w4": moec.quantize(w, "q4_0"),
            "w8": moec.quantize(w, "int8"),
        }
        path = self.path("all.safetensors")
        moec.save_safetensors(path, tensors, {"note": "test"})
        f = moec.load_safetensors(path)
        self.assertEqual(f.metadata, {"note": "test", "w4.format": "q4_0", "w8.format": "int8"})
        self.assertEqual(set(f), set(tensors) | {"w8.scales"})
        for name, a in tensors.items():
            if isinstance(a, moec.QuantizedWeight):
                q = f.quantized(name)
                self.assertEqual(q.format, a.format)
                np.testing.assert_array_equal(q.dequantize(), a.dequantize())
                continue
            self.assertEqual(f[name].dtype, a.dtype, name)
            np.testing.assert_array_equal(f[name], a, err_msg=name)
            self.assertFalse(f[name].flags.writeable, name)
        # Our file reads back with an independent reader, and theirs with ours.
        theirs, meta = qn.read_safetensors(path)
        np.testing.assert_array_equal(theirs["w4"].view(np.uint8), qn.q4_0(w))
        self.assertEqual(meta["w4.format"], "q4_0")
        other = self.path("theirs.safetensors")
        qn.write_safetensors(other, {"a": tensors["f32"], "b": tensors["bf16"]}, {"k": "v"})
        g = moec.load_safetensors(other)
        np.testing.assert_array_equal(g["a"], tensors["f32"])
        self.assertEqual(g["b"].dtype, np.uint16)
        self.assertEqual(g.metadata, {"k": "v"})
        with self.assertRaisesRegex(KeyError, "has no 'a.format' metadata"):
            g.quantized("a")

    def test_arrays_keep_the_mapping_alive(self):
        path = self.path("alive.safetensors")
        data = np.arange(1024, dtype=np.float32)
        moec.save_safetensors(path, {"x": data})
        x = moec.load_safetensors(path)["x"]  # the dict is gone at once
        gc.collect()
        np.testing.assert_array_equal(x, data)
        with self.assertRaises(ValueError):
            x[0] = 1.0  # read-only view of a read-only mapping

    def test_malformed_files_raise_naming_the_file(self):
        path = self.path("bad.safetensors")
        header = b'{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}'
        with open(path, "wb") as f:
            f.write(struct.pack("<Q", len(header)) + header + b"\0" * 8)  # 8 of 16 bytes
        with self.assertRaisesRegex(ValueError, f"'{path}': tensor 'w': data_offsets end at 16, "
                                                "past the 8 bytes of data"):
            moec.load_safetensors(path)
        with self.assertRaisesRegex(ValueError, "cannot open '.*missing.safetensors'"):
            moec.load_safetensors(self.path("missing.safetensors"))

    def test_save_errors(self):
        path = self.path("bad.safetensors")
        with self.assertRaisesRegex(TypeError, "tensor 'x': dtype float64 has no safetensors type"):
            moec.save_safetensors(path, {"x": np.zeros(2)})
        with self.assertRaisesRegex(TypeError, "tensor 'x': expected a numpy array, got 'list'"):
            moec.save_safetensors(path, {"x": [1, 2]})
        with self.assertRaisesRegex(TypeError, "metadata must map str to str"):
            moec.save_safetensors(path, {"x": np.zeros(2, np.float32)}, {"k": 1})
        q = moec.quantize(np.ones((2, 32), np.float32), "int8")
        with self.assertRaisesRegex(ValueError, "tensor 'w.scales' is given twice"):
            moec.save_safetensors(path, {"w": q, "w.scales": np.zeros(2, np.float32)})
        self.assertFalse(os.path.exists(path))


LOW_PRECISION_FN = """
func.func @widen(%a: tensor<4xbf16>, %h: tensor<4xf16>, %q: tensor<4xi8>)
    -> (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) {
  %e = tensor.empty() : tensor<4xf32>
  %ra = linalg.generic {indexing_maps = [affine_map<(i) -> (i)>, affine_map<(i) -> (i)>],
                        iterator_types = ["parallel"]} ins(%a : tensor<4xbf16>) outs(%e : tensor<4xf32>) {
  ^bb0(%x: bf16, %o: f32):
    %y = arith.extf %x : bf16 to f32
    linalg.yield %y : f32
  } -> tensor<4xf32>
  %rh = linalg.generic {indexing_maps = [affine_map<(i) -> (i)>, affine_map<(i) -> (i)>],
                        iterator_types = ["parallel"]} ins(%h : tensor<4xf16>) outs(%e : tensor<4xf32>) {
  ^bb0(%x: f16, %o: f32):
    %y = arith.extf %x : f16 to f32
    linalg.yield %y : f32
  } -> tensor<4xf32>
  %rq = linalg.generic {indexing_maps = [affine_map<(i) -> (i)>, affine_map<(i) -> (i)>],
                        iterator_types = ["parallel"]} ins(%q : tensor<4xi8>) outs(%e : tensor<4xf32>) {
  ^bb0(%x: i8, %o: f32):
    %y = arith.sitofp %x : i8 to f32
    linalg.yield %y : f32
  } -> tensor<4xf32>
  return %ra, %rh, %rq : tensor<4xf32>, tensor<4xf32>, tensor<4xf32>
}
"""


class LowPrecisionArgumentsTest(unittest.TestCase):
    """Compiled functions take bf16 (uint16), f16 (float16) and i8 (int8 or
    uint8) arrays where their signature says so, never converted."""

    @classmethod
    def setUpClass(cls):
        cls.fn = moec.compile(LOW_PRECISION_FN)

    def test_values_arrive_as_the_signature_says(self):
        self.assertEqual(self.fn.signature[0],
                         [((4,), "uint16"), ((4,), "float16"), ((4,), "int8")])
        w = np.array([1.0, -2.0, 0.5, 3.0], np.float32)
        a = moec.quantize(w, "bf16").data
        h = w.astype(np.float16)
        q = np.array([-127, 0, 5, 127], np.int8)
        ra, rh, rq = self.fn(a, h, q)
        np.testing.assert_array_equal(ra, w)
        np.testing.assert_array_equal(rh, w)
        np.testing.assert_array_equal(rq, q.astype(np.float32))
        # uint8 bytes are read as int8.
        np.testing.assert_array_equal(self.fn(a, h, q.view(np.uint8))[2], q.astype(np.float32))

    def test_wrong_dtypes_name_the_argument(self):
        a = np.zeros(4, np.uint16)
        h = np.zeros(4, np.float16)
        q = np.zeros(4, np.int8)
        with self.assertRaisesRegex(TypeError, r"argument #0 \('a'\): expected dtype uint16 "
                                               r"\(bf16\), got int16 .*moec.quantize"):
            self.fn(a.view(np.int16), h, q)
        with self.assertRaisesRegex(TypeError, r"argument #1 \('h'\): expected dtype float16 "
                                               r"\(f16\), got float32"):
            self.fn(a, h.astype(np.float32), q)
        with self.assertRaisesRegex(TypeError, r"argument #2 \('q'\): expected dtype int8 "
                                               r"\(i8\), got int16"):
            self.fn(a, h, q.astype(np.int16))


if __name__ == "__main__":
    unittest.main()
