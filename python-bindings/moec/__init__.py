"""moec: build, compile and run adaptive-computation layers (the ``moe`` dialect).

    import numpy as np, moec
    fn = moec.compile("examples/mixtral.mlir")                  # or a moec.Layer, MLIR text
    y = fn(x, gate, w1, w3, w2)                                 # numpy in, numpy out
    print(fn.stage("loops"))                                    # what the compiler made

API
---
``parse(text, filename="<string>")`` / ``load(path)``
    Parse and verify MLIR text -> :class:`Module`.
``compile(module, target="cpu", entry=None, *, pipeline_options="", vector_width=None, row_tile=None, chip=None, block_size=None)``
    ``module``: a :class:`Layer`, MLIR text, a :class:`Module`, or the path
    of an .mlir file (``str`` or ``pathlib.Path``).  ``entry`` defaults to
    the Layer's name, else the module's only function, else ``main``.
    ``target="cpu"`` returns a :class:`Compiled` (callable on numpy arrays
    or DLPack producers; ``.stages`` lists (name, text) of every stage: moe,
    expanded, loops, llvm, llvm-ir).  ``target="gpu-host"``
    returns a :class:`Compiled` that runs the GPU's block/thread-mapped
    kernels on the host CPU (stages moe, expanded, mapped, loops, llvm,
    llvm-ir): the GPU tiling, checkable against :func:`reference` without a
    GPU.  ``target="nvptx"`` returns a :class:`CompiledPtx`: the PTX of the
    kernels for ``chip`` (default sm_90) and their launch description, run
    through the CUDA runtime when called.
``cuda_available()``
    ``(True, "")`` when the CUDA driver loads and has a device, else
    ``(False, why)``.
``reference(module, *arrays, entry=None)``
    Runs the C++ reference interpreter (the dialect's semantics).
``random_inputs(module, tokens, seed=0, entry=None)``
    Arrays for every argument, generated like ``moe-run --input=random``.
``quantize(w, format)`` / ``dequantize(q)``
    float32 ``w`` [..., K] -> :class:`QuantizedWeight` (``.format``,
    ``.data``: uint16 bf16 bits, float16, or int8 for int8/q8_0/q4_0;
    ``.scales``: float32 per row, int8 only) and back (moec.quantization).
``load_safetensors(path)`` / ``save_safetensors(path, tensors, metadata=None)``
    A memory-mapped safetensors file as a dict of read-only arrays with
    ``.metadata`` and ``.quantized(name)``; writing takes arrays and
    QuantizedWeights (docs/quantization.md).
:class:`Layer`
    The builder (see :mod:`moec.builder`).

Errors: :class:`CompileError` (parse / verify / compile diagnostics, with
file:line:col; a layer the GPU path cannot take, such as a skip layer, with
target="nvptx"), :class:`RuntimeError` (a subclass of the built-in
RuntimeError: bad expert ids, non-finite router logits...; nothing is
written), :class:`DeviceError` (a moec.RuntimeError: a CompiledPtx called
where the GPU cannot run it, e.g. "no CUDA driver: ..."; nothing is
written), TypeError / ValueError for arguments of the wrong kind, dtype,
shape or layout (the message names the argument).  Arrays are never
converted or copied: pass C-contiguous float32 / int32 / int64 arrays of
the declared element type (bf16: uint16 bit patterns; f16: float16; i8:
int8, or uint8 read as int8).

Results: a function with one result returns one array, otherwise a tuple.
``out=``: one array for a function with one result, or a tuple/list with
one array per result. Arguments go by position or by name
(``fn(x, **weights)``, ``fn.prepare(**weights)``). DLPack producers (CPU
torch tensors...) are read as writable views of their memory; torch tensors
in give torch tensors out.

Model families: ``from_config(config)`` (a Layer from a Mixtral, Qwen3-MoE,
OLMoE, DeepSeek-V2/V3 or Switch config.json), ``map_layer_weights`` and
``load_layer_weights`` (their checkpoints' tensors; moec.models);
``moec.torch.MoE`` (``import moec.torch``) is the torch.nn.Module.
"""

from __future__ import annotations

import difflib
import numbers
import os
import pathlib
import re
import sys
from typing import List, Optional, Tuple, Union

import numpy as _np

from . import _moec
from . import stats as _stats
from ._moec import CompileError, DeviceError, Module, RuntimeError  # noqa: A004 (moec.RuntimeError)
from .builder import (ACTIVATIONS, GATED_ACTIVATIONS, SCORINGS, Experts, Layer, Routing,
                      Value)
from .models import MoeConfig, from_config, load_layer_weights, map_layer_weights
from .quantization import (WEIGHT_FORMATS, QuantizedWeight, SafetensorsFile, dequantize,
                           load_safetensors, quantize, save_safetensors)

__all__ = ["CompileError", "RuntimeError", "DeviceError", "Module", "Compiled", "Prepared", "CompiledPtx",
           "Layer", "Value", "Experts", "Routing", "parse", "load", "compile", "reference",
           "random_inputs", "cuda_available", "TARGETS", "ACTIVATIONS", "GATED_ACTIVATIONS",
           "SCORINGS", "WEIGHT_FORMATS", "QuantizedWeight", "SafetensorsFile", "quantize",
           "dequantize", "load_safetensors", "save_safetensors", "MoeConfig", "from_config",
           "map_layer_weights", "load_layer_weights"]

# Shown as moec.CompileError / moec.RuntimeError / moec.DeviceError in tracebacks.
CompileError.__module__ = RuntimeError.__module__ = DeviceError.__module__ = "moec"

#: Targets compile() knows: the host CPU, the GPU's mapping run on the host
#: CPU, NVIDIA GPUs (PTX).
TARGETS = ("cpu", "gpu-host", "nvptx")
STAGES = ("moe", "expanded", "loops", "llvm", "llvm-ir")
GPU_HOST_STAGES = ("moe", "expanded", "mapped", "loops", "llvm", "llvm-ir")
PTX_STAGES = ("moe", "expanded", "mapped", "kernels", "nvvm", "ptx", "launch")


def parse(text: str, filename: str = "<string>") -> Module:
    """Parses and verifies MLIR text; raises CompileError with the diagnostics."""
    if not isinstance(text, str):
        raise TypeError(f"parse() takes MLIR text (str), got {type(text).__name__}")
    return _moec.parse(text, filename)


def load(path: Union[str, os.PathLike]) -> Module:
    """Parses and verifies an .mlir file."""
    path = os.fspath(path)
    with open(path, encoding="utf-8") as f:
        return _moec.parse(f.read(), path)


def _looks_like_a_path(text: str) -> bool:
    """One line with no MLIR punctuation that names an .mlir file or a
    directory: what a user who meant a file passes (MLIR text always has an
    op, hence '(' or '{' or '@' or '=')."""
    if "\n" in text or any(c in text for c in "{}()@=%"):
        return False
    text = text.strip()
    return text.endswith(".mlir") or os.sep in text


def _as_module(source) -> Tuple[Module, Optional[Layer]]:
    if isinstance(source, Module):
        return source, None
    if isinstance(source, Layer):
        return _moec.parse(source.to_mlir(), f"<moec.Layer '{source.name}'>"), source
    if isinstance(source, pathlib.PurePath):
        return load(source), None
    if isinstance(source, str):
        # A path string is the common first try (moec.compile("x.mlir")):
        # load it, or say it is missing rather than reporting the path as
        # an MLIR syntax error.
        if _looks_like_a_path(source):
            if os.path.isfile(source):
                return load(source), None
            raise FileNotFoundError(
                f"no such file {source!r} (moec.load takes a path; moec.compile takes a "
                "Layer, a module or MLIR text)")
        return _moec.parse(source, "<string>"), None
    raise TypeError("expected a moec.Layer, MLIR text (str), a moec.Module or a path "
                    f"(str or pathlib.Path), got {type(source).__name__}")


def _entry_of(mod: Module, layer: Optional[Layer], entry: Optional[str]) -> str:
    """The function to run: ``entry`` when given, else the Layer's name, else
    the module's only function, else ``main`` (as moe-run and moe-compile,
    tools/common/EntryFunction.h); with several functions and no ``main`` a
    KeyError lists them."""
    if entry is not None:
        return entry
    if layer is not None:
        return layer.name
    names = mod.functions()
    if len(names) == 1:
        return names[0]
    if "main" in names or not names:
        return "main"  # with no function at all, the lookup says so
    raise KeyError(f"the module has several functions ({', '.join(map(repr, names))}) and none "
                   "is 'main': pass entry=NAME")


def _torch():
    """The torch module when the caller has imported it (moec never imports it)."""
    return sys.modules.get("torch")


def _is_torch_tensor(a) -> bool:
    torch = _torch()
    return torch is not None and isinstance(a, torch.Tensor)


def _check_torch(t, what: str) -> None:
    """Torch's own refusals, said as ours (naming the argument) before DLPack."""
    if t.device.type != "cpu":
        raise ValueError(f"{what}: the tensor is on {t.device}; moec runs on the CPU: pass .cpu()")
    if t.requires_grad:
        raise TypeError(f"{what}: the tensor requires grad and moec computes no gradients: "
                        "pass .detach() or call under torch.no_grad()")


def _as_array(a, what: str, dtype: str = ""):
    """A numpy array as is; a DLPack producer (a torch tensor...) as a
    writable numpy view of its memory, zero copy (_moec.array_from_dlpack:
    numpy.from_dlpack would make it read-only, refusing it as out=);
    ``what`` names the argument in errors and ``dtype`` is the numpy dtype
    the function takes there (a bfloat16 tensor is read as its uint16 bits
    for bf16 weights). Anything else is passed on for the C++ checks."""
    if isinstance(a, _np.ndarray) or not hasattr(a, "__dlpack__"):
        return a
    if _is_torch_tensor(a):
        _check_torch(a, what)
    try:
        capsule = a.__dlpack__()
    except (TypeError, RuntimeError, BufferError, ValueError) as e:
        raise TypeError(f"{what}: cannot be read through DLPack: {e}") from None
    return _moec.array_from_dlpack(capsule, what, dtype)


def _label(kind: str, i: int, name: str) -> str:
    """As the C++ checks name arguments: argument #3 ('w1')."""
    return f"{kind} #{i}" + (f" ('{name}')" if name else "")


def _bind_names(entry: str, names: List[str], arrays, named: dict) -> list:
    """The positional arrays followed by those given by name, in argument
    order: ``fn(x, **weights)``. Unknown, repeated or missing names are
    TypeErrors that list the arguments."""
    arrays = list(arrays)
    if not named:
        return arrays
    missing = object()
    slots = arrays + [missing] * max(0, len(names) - len(arrays))
    for key, value in named.items():
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise TypeError(f"'{entry}' has no argument {key!r}{hint}; its arguments are "
                            f"{', '.join(n or '#' + str(i) for i, n in enumerate(names))}")
        i = names.index(key)
        if i < len(arrays):
            raise TypeError(f"argument {key!r} (#{i}) is given twice: by position and by name")
        slots[i] = value
    absent = [n or f"#{i}" for i, (n, s) in enumerate(zip(names, slots)) if s is missing]
    if absent:
        raise TypeError(f"'{entry}' is missing the arguments {', '.join(absent)}")
    return slots


def _results(arrays: List[_np.ndarray]):
    return arrays[0] if len(arrays) == 1 else tuple(arrays)


def _torch_results(arrays: List[_np.ndarray]):
    """Fresh result arrays as torch tensors sharing their memory (DLPack)."""
    torch = _torch()
    return _results([torch.from_dlpack(a) for a in arrays])


def _call_recording(owner, *arrays, out=None, stats: bool = False, **named):
    """A call of ``owner`` (Compiled or Prepared) that keeps the routing
    statistics it recorded as ``owner.last_stats`` (compiled with stats);
    with ``stats=True`` returns (result, statistics)."""
    if not isinstance(stats, bool):
        raise TypeError(f"stats must be a bool, got {type(stats).__name__}")
    if stats and not owner._records_stats:
        raise ValueError(f"'{owner.entry}' was compiled without routing statistics: compile it "
                         f"with moec.compile(..., stats=True) to get them")
    result = _call(owner._fn, owner.entry, owner.argument_names, arrays, named, out)
    if owner._records_stats:
        # Read on this thread, right after the call: the runtime keeps the
        # statistics per thread, until that thread's next layer call.
        owner.last_stats = _stats.collect(_moec)
    return (result, owner.last_stats) if stats else result


def _call(fn, entry: str, names: List[str], arrays, named: dict, out):
    """One call of a compiled or prepared function (``fn.run``): arguments by
    position and by name, numpy arrays or DLPack producers (torch tensors in
    give torch tensors out), ``out=`` one array or one per result."""
    arrays = _bind_names(entry, names, arrays, named)
    dtypes = [d for _, d in fn.signature[0]]
    wants_torch = any(_is_torch_tensor(a) for a in arrays)
    views = [_as_array(a, _label("argument", i, names[i] if i < len(names) else ""),
                       dtypes[i] if i < len(dtypes) else "")
             for i, a in enumerate(arrays)]
    if out is None:
        results = fn.run(views, None)
        return _torch_results(results) if wants_torch else _results(results)
    n = len(fn.signature[1])
    if isinstance(out, (list, tuple)):
        outs = list(out)
    elif isinstance(out, _np.ndarray) or hasattr(out, "__dlpack__"):
        # One array is the one result, never a sequence of its rows.
        if n != 1:
            raise TypeError(f"out= is one array but '{entry}' has {n} results: "
                            f"pass a tuple of {n} arrays")
        outs = [out]
    else:
        raise TypeError(f"out= takes an array or a tuple/list of arrays, got {type(out).__name__}")
    fn.run(views, [_as_array(o, _label("out", i, "")) for i, o in enumerate(outs)])
    return _results(outs)


class _CompiledBase:
    """What Compiled and CompiledPtx answer alike: both wrap a _moec function
    that carries the entry, the stages, the signature and run()."""

    def __init__(self, fn, module: Module, layer: Optional[Layer], records_stats: bool = False):
        self._fn = fn
        self.module = module
        self.layer = layer
        self._records_stats = records_stats
        #: The routing statistics of the last call (compiled with stats=True):
        #: a list of moec.stats.LayerStats, one per moe.layer; None before a call.
        self.last_stats: Optional[List[_stats.LayerStats]] = None

    @property
    def entry(self) -> str:
        return self._fn.entry

    @property
    def stages(self) -> List[Tuple[str, str]]:
        """(name, text) of every stage."""
        return self._fn.stages

    @property
    def stage_names(self) -> List[str]:
        return [name for name, _ in self._fn.stages]

    def stage(self, name: str) -> str:
        """The text of one stage."""
        for n, text in self._fn.stages:
            if n == name:
                return text
        raise KeyError(f"no stage {name!r}; the stages are {self.stage_names}")

    @property
    def argument_names(self) -> List[str]:
        return list(self._fn.argument_names)

    @property
    def signature(self):
        """([(shape, dtype) per argument], [(shape, dtype) per result]); None = T."""
        return self._fn.signature

    @property
    def compile_seconds(self) -> float:
        return self._fn.compile_seconds

    def __call__(self, *arrays, out=None, stats: bool = False, **named):
        """One array per argument, by position or by name (``fn(x, **weights)``,
        the names of ``argument_names``); ``out``: None, one array (a function
        with one result) or a tuple/list of arrays, one per result. Torch
        tensors in give torch tensors out (sharing the results' memory).
        ``stats=True`` (compiled with stats=True) returns (result, the
        call's routing statistics: ``last_stats``)."""
        return _call_recording(self, *arrays, out=out, stats=stats, **named)


class Compiled(_CompiledBase):
    """A function compiled for the host CPU (moe pipeline + LLVM JIT; with
    target="gpu-host", through the GPU's block/thread-mapped stage).

    Call it with one array per argument: ``fn(x, gate, ...)``; ``out=`` takes
    preallocated result arrays (written only on success): one array for a
    function with one result, or a tuple/list of one array per result.
    Inputs are read in place (zero copy) and must be C-contiguous with the
    declared dtype."""

    # Overridden only for the docstring: each target has its own stages.
    @property
    def stages(self) -> List[Tuple[str, str]]:
        """(name, text) of every stage: moe, expanded, loops, llvm, llvm-ir
        (target="gpu-host": mapped, the GPU kernels as block/thread-mapped
        loops, before loops)."""
        return self._fn.stages

    def prepare(self, *weights, **named) -> "Prepared":
        """Binds the weights once: the compiler's ``<entry>_prepare`` packs
        them into the layout the kernels read (moe-hoist-weight-packing),
        and the returned :class:`Prepared` is called with the activations
        only. The weights are the arguments of static shape, by position in
        their order or by name (``weight_names``: ``fn.prepare(**weights)``);
        numpy arrays or DLPack producers such as torch tensors; they are not
        referenced afterwards. Compiles the prepared form on the first call
        (target="cpu" only)."""
        names = self.weight_names
        weights = _bind_names(self.entry + " weights", names, weights, named)
        dtypes = [d for _, d in self._weight_signatures()]
        views = [_as_array(w, _label("weight", i, names[i] if i < len(names) else ""),
                           dtypes[i] if i < len(dtypes) else "")
                 for i, w in enumerate(weights)]
        return Prepared(self._fn.prepare(views), self.entry, self._records_stats)

    def _weight_signatures(self):
        return [sig for sig in self.signature[0] if _is_weight(sig)]

    @property
    def weight_names(self) -> List[str]:
        """The names of the weights prepare() takes (static-shaped arguments)."""
        return [n for n, sig in zip(self.argument_names, self.signature[0]) if _is_weight(sig)]

    def __repr__(self) -> str:
        args, results = self.signature
        fmt = lambda s: "[" + ", ".join("T" if d is None else str(d) for d in s[0]) + "] " + s[1]
        names = self.argument_names
        a = ", ".join(f"{n or '#' + str(i)}: {fmt(s)}" for i, (n, s) in enumerate(zip(names, args)))
        return (f"<moec.Compiled '{self.entry}' ({a}) -> ({', '.join(fmt(s) for s in results)}); "
                f"stages {self.stage_names}>")


def _is_weight(signature) -> bool:
    """moe-hoist-weight-packing's rule: a static-shaped floating-point (or
    low-precision storage) argument is a weight, the rest are activations."""
    shape, dtype = signature
    return (len(shape) >= 1 and all(d is not None for d in shape)
            and dtype in ("float32", "uint16", "float16", "int8"))


class Prepared:
    """A compiled layer with its weights packed once (``Compiled.prepare``).
    Call it with the activations (the arguments with a token dimension, in
    their order): ``y = prepared(x)``; ``out=`` as for ``Compiled``. Calls
    from several threads may run at once."""

    def __init__(self, impl, entry: str, records_stats: bool = False):
        self._fn = impl
        self.entry = entry
        self._records_stats = records_stats
        #: As Compiled.last_stats.
        self.last_stats: Optional[List[_stats.LayerStats]] = None

    @property
    def argument_names(self) -> List[str]:
        """The activations' names."""
        return list(self._fn.argument_names)

    @property
    def signature(self):
        """([(shape, dtype) per activation], [(shape, dtype) per result])."""
        return self._fn.signature

    @property
    def packed_bytes(self) -> int:
        """Bytes of packed weights this layer owns."""
        return self._fn.packed_bytes

    @property
    def prepare_seconds(self) -> float:
        return self._fn.prepare_seconds

    def __call__(self, *arrays, out=None, stats: bool = False, **named):
        """The activations by position or by name; ``out=``, ``stats=`` and
        torch tensors as for :class:`Compiled`."""
        return _call_recording(self, *arrays, out=out, stats=stats, **named)

    def __repr__(self) -> str:
        return (f"<moec.Prepared '{self.entry}' ({', '.join(self.argument_names)}); "
                f"{self.packed_bytes} packed bytes>")


class CompiledPtx(_CompiledBase):
    """A function compiled for an NVIDIA GPU: the PTX of its kernels and the
    launch description (docs/gpu-launch.md) the CUDA runtime reads.

    ``.ptx`` and ``.launch`` are the texts ``moe-compile --target=nvptx``
    writes; ``.write("x.ptx")`` writes both (x.ptx, x.launch).  Calling it
    runs the layer on the GPU through the CUDA runtime (the driver is loaded
    on the first call); where there is no driver or device it raises
    :class:`DeviceError` saying so, before any output is written."""

    @property
    def chip(self) -> str:
        return self._fn.chip

    @property
    def ptx(self) -> str:
        return self._fn.ptx

    @property
    def launch(self) -> str:
        return self._fn.launch

    @property
    def kernels(self) -> List[str]:
        """The kernels the launch description runs, in launch order."""
        return list(self._fn.kernels)

    @property
    def stages(self) -> List[Tuple[str, str]]:
        """(name, text) of every stage: moe, expanded, mapped (block/thread-mapped
        loops), kernels (gpu.module + launches), nvvm, ptx, launch."""
        return self._fn.stages

    def write(self, path: Union[str, os.PathLike]) -> Tuple[str, str]:
        """Writes the PTX to ``path`` and the launch description beside it
        (x.ptx -> x.launch; another name gets .launch appended), as
        ``moe-compile -o path`` does. Returns (ptx path, launch path)."""
        return tuple(self._fn.write(os.fspath(path)))

    def __repr__(self) -> str:
        return (f"<moec.CompiledPtx '{self.entry}' for {self.chip}: {len(self.kernels)} kernels, "
                f"{len(self.ptx)} bytes of PTX; stages {self.stage_names}>")


def _pipeline_options(target: str, pipeline_options: str, vector_width, row_tile, chip,
                      block_size) -> str:
    """The pipeline options text (the tools' --pipeline-options) with the
    keyword arguments that were given appended: no defaults of Python's own,
    so an unset keyword means what the tools' omitted option means."""
    if not isinstance(pipeline_options, str):
        raise TypeError(f"pipeline_options must be a str like \"row-tile=8\", got "
                        f"{type(pipeline_options).__name__}")
    given = {"vector-width": vector_width, "row-tile": row_tile, "chip": chip,
             "block-size": block_size}
    allowed = {"cpu": ("vector-width", "row-tile"), "gpu-host": ("vector-width", "row-tile"),
               "nvptx": ("vector-width", "chip", "block-size")}[target]
    parts = [pipeline_options] if pipeline_options else []
    for name, value in given.items():
        if value is None:
            continue
        keyword = name.replace("-", "_")
        if name not in allowed:
            raise ValueError(f"{keyword}= is not an option of target={target!r}")
        if name == "chip":
            parts.append(f"chip={value}")
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{keyword} must be an int, got {type(value).__name__}")
        parts.append(f"{name}={int(value)}")
    if target == "gpu-host":
        parts.append("gpu-host=true")
    return " ".join(parts)


def compile(module, target: str = "cpu", entry: Optional[str] = None, *,
            pipeline_options: str = "", vector_width: Optional[int] = None,
            row_tile: Optional[int] = None, chip: Optional[str] = None,
            block_size: Optional[int] = None, stats: bool = False) -> Union[Compiled, CompiledPtx]:
    """Compiles ``entry`` of ``module`` (a Layer, MLIR text, Module, or the
    path of an .mlir file as str or Path). ``entry`` defaults to the Layer's
    name, else the module's only function, else ``main``.

    ``target``: "cpu" (a :class:`Compiled`), "gpu-host" (a :class:`Compiled`
    running the GPU's block/thread mapping on the host CPU) or "nvptx" (a
    :class:`CompiledPtx` for ``chip``, default "sm_90").
    ``pipeline_options``: the pipeline's options as the tools take them
    (``moe-run --pipeline-options``, ``moe-opt --moe-to-cpu="..."``), e.g.
    ``"row-tile=8 pack-tiles=3"``; the CPU pipeline's for "cpu"/"gpu-host",
    the GPU pipeline's for "nvptx". Keyword sugar, appended to it when given:
    ``vector_width`` (f32 lanes per vector), ``row_tile`` (rows per expert
    GEMM tile; "cpu"/"gpu-host"), ``chip`` and ``block_size`` ("nvptx").
    Nothing given means the pipeline's own defaults, as in the tools (e.g.
    the vector width and row tile from the host CPU). ``stats=True``
    ("cpu" only; the pipeline option ``stats``) records each call's routing
    statistics per layer (``fn.last_stats``, ``fn(..., stats=True)``;
    :mod:`moec.stats`). Raises CompileError, ValueError for an unknown
    target, option or chip."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; the targets are {TARGETS}")
    if chip is not None and target != "nvptx":
        raise ValueError(f"chip={chip!r} is for target='nvptx', not target={target!r}")
    if not isinstance(stats, bool):
        raise TypeError(f"stats must be a bool, got {type(stats).__name__}")
    if stats and target != "cpu":
        raise ValueError(f"stats=True records routing statistics with target='cpu' only, "
                         f"not target={target!r}")
    options = _pipeline_options(target, pipeline_options, vector_width, row_tile, chip,
                                block_size)
    records = stats or bool(re.search(r"(^|\s)stats(=(true|1))?(\s|$)", pipeline_options))
    if stats:
        options = (options + " stats=true").strip()
    mod, layer = _as_module(module)
    entry = _entry_of(mod, layer, entry)
    if target == "nvptx":
        return CompiledPtx(_moec.compile_ptx(mod, entry, options), mod, layer)
    return Compiled(_moec.compile(mod, entry, options), mod, layer, records)


def cuda_available() -> Tuple[bool, str]:
    """(True, "") when the CUDA driver loads and has a device; else (False, why)."""
    ok, why = _moec.cuda_available()
    return bool(ok), why


def reference(module, *arrays, entry: Optional[str] = None):
    """Runs ``entry`` with the reference interpreter (C++, double accumulation);
    torch tensors in give torch tensors out."""
    mod, layer = ((module.module, module.layer) if isinstance(module, _CompiledBase)
                  else _as_module(module))
    entry = _entry_of(mod, layer, entry)
    results = _moec.reference(mod, entry, [_as_array(a, _label("argument", i, ""))
                                           for i, a in enumerate(arrays)])
    return _torch_results(results) if any(map(_is_torch_tensor, arrays)) else _results(results)


def random_inputs(module, tokens: int, seed: int = 0, entry: Optional[str] = None):
    """One array per argument, like ``moe-run --input=random:SEED``: floats
    uniform in [-a, a) with a = sqrt(3 / last dim) for rank >= 2 (else 1),
    integers uniform in the argument's random_range (Layer inputs) or [0, 100).
    Every dynamic dimension is ``tokens``."""
    layer = None
    if isinstance(module, _CompiledBase):
        layer, module = module.layer, module.module
    if isinstance(module, Layer):
        layer = module
        sigs = [(tuple(v.shape), {"f32": "float32", "i32": "int32", "i64": "int64"}[v.dtype])
                for v in layer.arguments]
        ranges = [layer.random_range(i) for i in range(len(sigs))]
    else:
        mod, layer = _as_module(module)
        sigs = mod.signature(_entry_of(mod, layer, entry))[0]
        ranges = [layer.random_range(i) if layer is not None else None for i in range(len(sigs))]
    rng = _np.random.default_rng(seed)
    arrays = []
    for (shape, dtype), rr in zip(sigs, ranges):
        shape = tuple(tokens if d is None else d for d in shape)
        if dtype == "float32":
            a = (3.0 / shape[-1]) ** 0.5 if len(shape) >= 2 and shape[-1] > 0 else 1.0
            arrays.append(rng.uniform(-a, a, size=shape).astype(_np.float32))
        else:
            lo, hi = rr if rr is not None else (0, 100)
            arrays.append(rng.integers(lo, hi, size=shape).astype(dtype))
    return arrays
