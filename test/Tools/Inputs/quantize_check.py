"""The moe-quantize lit test's helper, numpy only (no moec):

    quantize_check.py make IN.safetensors ODD.safetensors
    quantize_check.py check IN.safetensors OUT.safetensors FORMAT NAME...

`check` reads both files with a reader of its own and checks, for each
NAME, the stored form against an independent numpy implementation of the
format (test/python/quant_numpy.py: ggml's reference quantizers, bf16 RNE):
bytes equal, dequantized values within the format's error bound, metadata
"<name>.format"; and that every other tensor and the metadata are unchanged.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python"))
import quant_numpy as qn  # noqa: E402

# Largest error of a dequantized value relative to its row's (block's)
# largest magnitude (docs/quantization.md).
BOUND = {"bf16": 1 / 256, "f16": 1 / 2048, "int8": 1 / 254, "q8_0": 1 / 254 + 1 / 2048,
         "q4_0": 1 / 8 + 1 / 2048}


def make(path, odd_path):
    rng = np.random.default_rng(26)
    w1 = rng.standard_normal((2, 4, 64)).astype(np.float32)
    w1[0, 0, :32] = 0.0  # an all-zero block: d = 0
    w1[0, 1, 5] = -7.0   # a negative extreme (q4_0: d = max / -8 > 0)
    w2 = qn.bf16_rne(rng.standard_normal((2, 32, 32)).astype(np.float32))
    qn.write_safetensors(path, {
        "experts.w1": w1,
        "experts.w2": w2,  # BF16: quantized from its bf16 values
        "norm": rng.standard_normal(64).astype(np.float32),
        "ids": np.arange(6, dtype=np.int32).reshape(2, 3),
    }, {"source": "moe-quantize.test"})
    qn.write_safetensors(odd_path, {"odd": np.ones((3, 40), np.float32)})


def as_f32(a):
    return qn.bf16_to_f32(a) if a.dtype == np.uint16 else a.astype(np.float32)


def check_one(name, w, out, meta, fmt):
    assert meta.get(name + ".format") == fmt, (name, meta)
    q = out[name]
    if fmt == "bf16":
        assert q.dtype == np.uint16 and np.array_equal(q, qn.bf16_rne(w)), name
        back = qn.bf16_to_f32(q)
    elif fmt == "f16":
        assert q.dtype == np.float16 and np.array_equal(q.view(np.uint16),
                                                        w.astype(np.float16).view(np.uint16))
        back = q.astype(np.float32)
    elif fmt == "int8":
        want_q, want_s = qn.int8_per_row(w)
        scales = out[name + ".scales"]
        assert q.dtype == np.int8 and np.array_equal(q, want_q), name
        assert scales.dtype == np.float32 and np.array_equal(scales, want_s), name
        back = q.astype(np.float32) * scales[..., None]
    else:
        want = qn.q8_0(w) if fmt == "q8_0" else qn.q4_0(w)
        assert q.dtype == np.int8 and q.shape == want.shape, (q.shape, want.shape)
        assert np.array_equal(q.view(np.uint8), want), name + ": bytes differ from ggml's"
        k = w.shape[-1]
        back = (qn.dequant_q8_0 if fmt == "q8_0" else qn.dequant_q4_0)(q, k)
    group = w.shape[-1] if fmt in ("bf16", "f16", "int8") else 32
    blocks = w.reshape(-1, group)
    amax = np.abs(blocks).max(axis=1, keepdims=True)
    err = np.abs(back.reshape(-1, group) - blocks)
    # (1 + 1e-5): the float32 rounding of the scale and the product.
    assert np.all(err <= BOUND[fmt] * (1 + 1e-5) * amax), (name, float((err / amax).max()))
    print(f"OK {name} {fmt} max error {float((err / np.maximum(amax, 1e-30)).max()):.2g} of amax")


def check(in_path, out_path, fmt, names):
    src, src_meta = qn.read_safetensors(in_path)
    out, meta = qn.read_safetensors(out_path)
    for name in names:
        check_one(name, as_f32(src[name]), out, meta, fmt)
    for name, a in src.items():
        if name not in names:
            assert np.array_equal(out[name], a) and out[name].dtype == a.dtype, name
    extra = set(out) - set(src) - {n + ".scales" for n in names}
    assert not extra, extra
    assert {k: v for k, v in meta.items() if not k.endswith(".format")} == src_meta, meta
    print("OK unchanged:", " ".join(sorted(n for n in src if n not in names)))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3])
    else:
        check(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
