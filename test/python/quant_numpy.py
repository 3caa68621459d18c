"""Independent numpy versions of the weight formats (docs/quantization.md),
written from ggml's reference quantizers (ggml-quants.c:
quantize_row_q8_0_ref, quantize_row_q4_0_ref) and the IEEE/bfloat16
rounding rules, not from our C++; plus a safetensors reader and writer of
their own. The moe-quantize lit test and the Python tests check our bytes
against these, bit for bit.
"""
import json
import struct

import numpy as np

QK = 32  # values per Q8_0 / Q4_0 block


def bf16_rne(x):
    """float32 -> bfloat16 bit patterns (uint16), round to nearest even."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def bf16_to_f32(bits):
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def _round_half_away(x):
    """C's roundf on float32 values (exact in float64)."""
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def q8_0(w):
    """ggml quantize_row_q8_0_ref on each row of w [..., K] -> uint8 [..., K/32*34]."""
    w = np.ascontiguousarray(w, dtype=np.float32)
    k = w.shape[-1]
    blocks = w.reshape(-1, QK)
    amax = np.abs(blocks).max(axis=1)
    d = (amax / np.float32(127)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d != 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
    scaled = (blocks * inv[:, None]).astype(np.float32)  # x * id in float32
    qs = _round_half_away(scaled).astype(np.int8)
    out = np.empty((blocks.shape[0], 34), np.uint8)
    out[:, 0:2] = d.astype("<f2").view(np.uint8).reshape(-1, 2)
    out[:, 2:] = qs.view(np.uint8)
    return out.reshape(w.shape[:-1] + (k // QK * 34,))


def q4_0(w):
    """ggml quantize_row_q4_0_ref on each row of w [..., K] -> uint8 [..., K/32*18]."""
    w = np.ascontiguousarray(w, dtype=np.float32)
    k = w.shape[-1]
    blocks = w.reshape(-1, QK)
    # The value of largest magnitude, the first one on ties (ggml: amax < |v|).
    first_max = np.argmax(np.abs(blocks), axis=1)
    vmax = blocks[np.arange(blocks.shape[0]), first_max]
    d = (vmax / np.float32(-8)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d != 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
    x = (blocks * inv[:, None]).astype(np.float32)
    shifted = (x + np.float32(8.5)).astype(np.float32)  # float32 add, then (int8_t) truncation
    q = np.minimum(15, np.trunc(shifted.astype(np.float64)).astype(np.int64)).astype(np.uint8)
    out = np.empty((blocks.shape[0], 18), np.uint8)
    out[:, 0:2] = d.astype("<f2").view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q[:, :16] | (q[:, 16:] << 4)
    return out.reshape(w.shape[:-1] + (k // QK * 18,))


def int8_per_row(w):
    """-> (q int8 [..., K], scale float32 [...]): w = scale[row] * q with
    scale = amax/127 and q = round-half-away(w * (1/scale)), in float32."""
    w = np.ascontiguousarray(w, dtype=np.float32)
    scale = (np.abs(w).max(axis=-1) / np.float32(127)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(scale != 0, np.float32(1) / scale, np.float32(0)).astype(np.float32)
    q = _round_half_away((w * inv[..., None]).astype(np.float32))
    return np.clip(q, -127, 127).astype(np.int8), scale


def dequant_q8_0(data, k):
    b = np.ascontiguousarray(data).view(np.uint8).reshape(-1, 34)
    d = b[:, 0:2].copy().view("<f2").astype(np.float32)
    q = b[:, 2:].view(np.int8).astype(np.float32)
    return (d * q).reshape(data.shape[:-1] + (k,))


def dequant_q4_0(data, k):
    b = np.ascontiguousarray(data).view(np.uint8).reshape(-1, 18)
    d = b[:, 0:2].copy().view("<f2").astype(np.float32)
    qs = b[:, 2:]
    q = np.concatenate([qs & 15, qs >> 4], axis=1).astype(np.float32) - 8
    return (d * q).reshape(data.shape[:-1] + (k,))


_DTYPES = {"F32": np.float32, "BF16": np.uint16, "F16": np.float16, "I8": np.int8,
           "U8": np.uint8, "I32": np.int32, "I64": np.int64}


def read_safetensors(path):
    """-> ({name: array}, metadata); a reader of its own (no moec)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        out[name] = np.frombuffer(data[b:end], dtype=_DTYPES[e["dtype"]]).reshape(e["shape"])
    return out, meta


def write_safetensors(path, tensors, metadata=None):
    """The layout huggingface's writer makes (header padded with spaces to 8)."""
    names = {np.dtype(v): k for k, v in _DTYPES.items()}
    header, blobs, at = {}, [], 0
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        header[name] = {"dtype": names[a.dtype], "shape": list(a.shape),
                        "data_offsets": [at, at + a.nbytes]}
        blobs.append(a.tobytes())
        at += a.nbytes
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
