"""Low-precision weights and safetensors files (docs/quantization.md).

    q = moec.quantize(w, "q4_0")         # w: float32 [..., K]
    q.data, q.scales, q.format, q.shape   # stored rows; scales for int8 only
    w2 = moec.dequantize(q)              # float32 [..., K]
    moec.save_safetensors("w.safetensors", {"w1": q, "b": bias}, {"note": "x"})
    f = moec.load_safetensors("w.safetensors")
    f["w1"], f.metadata, f.quantized("w1")

Quantizing and dequantizing go through the C++ moe::quantizeRows /
moe::dequantizeRow, the same code as moe-quantize and the reference
interpreter: one definition of every format. numpy has no bfloat16, so
bf16 data are the uint16 bit patterns; f16 is float16; int8, q8_0 and q4_0
are int8 arrays (the q formats' bytes: rows of K/32 blocks of 34 / 18 bytes).
"""

from __future__ import annotations

import os
from typing import Dict, Mapping, Optional, Tuple, Union

import numpy as _np

from . import _moec

#: The formats quantize() takes.
WEIGHT_FORMATS = ("bf16", "f16", "int8", "q8_0", "q4_0")
#: Bytes per block of 32 values of the block formats.
_BLOCK_BYTES = {"q8_0": 34, "q4_0": 18}


class QuantizedWeight:
    """A weight in a low-precision format: ``data`` (the stored rows),
    ``scales`` (float32, one per row, int8 only; else None) and ``format``.
    ``shape`` is the float shape it stands for ([..., K])."""

    __slots__ = ("format", "data", "scales")

    def __init__(self, format: str, data: _np.ndarray, scales: Optional[_np.ndarray] = None):
        if format not in WEIGHT_FORMATS:
            raise ValueError(f"format must be one of {', '.join(WEIGHT_FORMATS)}, got {format!r}")
        self.format = format
        self.data = data
        self.scales = scales

    @property
    def shape(self) -> Tuple[int, ...]:
        stored = self.data.shape
        k = stored[-1] // _BLOCK_BYTES[self.format] * 32 if self.format in _BLOCK_BYTES \
            else stored[-1]
        return tuple(stored[:-1]) + (k,)

    @property
    def nbytes(self) -> int:
        """Bytes of the stored weight (data and scales)."""
        return self.data.nbytes + (self.scales.nbytes if self.scales is not None else 0)

    def dequantize(self) -> _np.ndarray:
        return dequantize(self)

    def __repr__(self) -> str:
        return (f"<moec.QuantizedWeight {self.format} {list(self.shape)}: data "
                f"{list(self.data.shape)} {self.data.dtype}"
                + (f", scales {list(self.scales.shape)}" if self.scales is not None else "")
                + ">")


def quantize(w, format: str) -> QuantizedWeight:
    """Quantizes float32 ``w`` [..., K] row by row (rows: all leading dims)
    to ``format`` (bf16, f16, int8, q8_0, q4_0; the q formats need K % 32 ==
    0). Raises TypeError for a non-float32 array (never converted),
    ValueError for a bad format or K."""
    if not isinstance(w, _np.ndarray) and hasattr(w, "__dlpack__"):
        w = _np.from_dlpack(w)
    if isinstance(w, _np.ndarray):
        # Layout only (a loaded tensor may be unaligned); the dtype is
        # checked, never converted.
        w = _np.require(w, requirements=("C_CONTIGUOUS", "ALIGNED"))
    data, scales = _moec.quantize(w, format)
    return QuantizedWeight(format, data, scales)


def dequantize(q: QuantizedWeight) -> _np.ndarray:
    """The float32 values [..., K] a QuantizedWeight stands for."""
    if not isinstance(q, QuantizedWeight):
        raise TypeError(f"dequantize() takes a moec.QuantizedWeight, got {type(q).__name__}")
    scales = q.scales
    if isinstance(scales, _np.ndarray):
        scales = _np.require(scales, requirements=("C_CONTIGUOUS", "ALIGNED"))
    return _moec.dequantize(q.data, q.format, scales)


class SafetensorsFile(dict):
    """What load_safetensors returns: a dict name -> numpy array (read-only
    views of the memory-mapped file; the mapping lives as long as any of
    them) with the file's ``metadata`` (dict of str) and ``path``."""

    def __init__(self, path: str, tensors, metadata: Dict[str, str]):
        super().__init__(tensors)
        self.path = path
        self.metadata = metadata

    def quantized(self, name: str) -> QuantizedWeight:
        """The tensor ``name`` as moe-quantize / save_safetensors stored it:
        its format from metadata["<name>.format"], its scales from
        "<name>.scales" (int8)."""
        fmt = self.metadata.get(name + ".format")
        if fmt is None:
            raise KeyError(f"{self.path!r}: tensor {name!r} has no '{name}.format' metadata "
                           "(not a quantized weight)")
        if name not in self:
            raise KeyError(f"{self.path!r}: no tensor {name!r}")
        scales = self.get(name + ".scales") if fmt == "int8" else None
        if fmt == "int8" and scales is None:
            raise KeyError(f"{self.path!r}: int8 tensor {name!r} has no {name + '.scales'!r}")
        return QuantizedWeight(fmt, self[name], scales)


def load_safetensors(path: Union[str, os.PathLike]) -> SafetensorsFile:
    """Maps a safetensors file read-only (C++ loader, validated: offsets,
    sizes, dtypes...; ValueError naming the file and tensor otherwise).
    Arrays: F32 float32, BF16 uint16 (bit patterns), F16 float16, I8 int8,
    U8 uint8, I32 int32, I64 int64."""
    path = os.fspath(path)
    tensors, metadata = _moec.load_safetensors(path)
    return SafetensorsFile(path, tensors, dict(metadata))


def save_safetensors(path: Union[str, os.PathLike],
                     tensors: Mapping[str, Union[_np.ndarray, QuantizedWeight]],
                     metadata: Optional[Mapping[str, str]] = None) -> None:
    """Writes ``tensors`` (name -> numpy array or QuantizedWeight) in their
    order. A QuantizedWeight is stored as moe-quantize stores it: its data
    under the name, int8 scales as "<name>.scales", and
    metadata["<name>.format"] = its format. uint16 arrays are written as
    BF16 (numpy has no bfloat16)."""
    path = os.fspath(path)
    meta = {}
    for k, v in (metadata or {}).items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"metadata must map str to str, got {k!r}: {v!r}")
        meta[k] = v
    items = []
    for name, value in tensors.items():
        if not isinstance(name, str):
            raise TypeError(f"tensor names must be str, got {name!r}")
        if isinstance(value, QuantizedWeight):
            items.append((name, _np.ascontiguousarray(value.data)))
            if value.scales is not None:
                items.append((name + ".scales", _np.ascontiguousarray(value.scales)))
            meta[name + ".format"] = value.format
            continue
        if isinstance(value, _np.ndarray):
            value = _np.ascontiguousarray(value)
        items.append((name, value))
    _moec.save_safetensors(path, items, meta)
