"""Build layers of the ``moe`` dialect from Python; ``Layer.to_mlir()`` gives the text.

A :class:`Layer` is one ``func.func`` under construction.  Its methods
declare the function's arguments (``hidden``, ``weight``, ``input``) and emit
ops (routers, expert banks, ``layer``, ``ffn``, ``skip_block``,
``path_select``) in call order; each returns a :class:`Value` (a tensor), an
:class:`Experts` bank or a :class:`Routing` to pass to later calls.  A stack
of layers is simply several ops chained in one ``Layer``.  Region bodies
(``skip_block``, ``path_select``) are Python callables ``body(r, xs)`` that
receive a nested builder ``r`` (same op methods) and the region's tokens
``xs`` and return the value to yield.

Example (``examples/mixtral.mlir``)::

    L = Layer(hidden=64)
    x = L.hidden("x")
    gate = L.weight("gate", (8, 64))
    w = L.ffn_weights(128, "swiglu", experts=8)      # declares w1, w3, w2
    routing = L.topk_router(x, gate, k=2, renormalize=True)
    experts = L.ffn_experts("swiglu", **w)
    L.output(L.layer(x, routing, experts))
    print(L.to_mlir())

The builder checks what it needs to write correct types (ranks, which value
kinds go where, attribute ranges that have no meaning otherwise); the
dialect's verifier checks everything else when the text is parsed.
"""

from __future__ import annotations

import math
import numbers
import re
from collections import namedtuple
from typing import Callable, Iterable, Optional, Sequence, Tuple, Union

__all__ = ["Layer", "Value", "Experts", "Routing", "ACTIVATIONS", "GATED_ACTIVATIONS",
           "SCORINGS"]

ACTIVATIONS = ("swiglu", "geglu", "gelu", "relu", "silu")
GATED_ACTIVATIONS = ("swiglu", "geglu")
SCORINGS = ("softmax", "sigmoid")
_DTYPES = {"f32": "f32", "float32": "f32", "i32": "i32", "int32": "i32",
           "i64": "i64", "int64": "i64"}


class Value:
    """A tensor value: an SSA name, a shape (``None`` = the dynamic token
    count T) and an element type (``"f32"``, ``"i32"``, ``"i64"``)."""

    __slots__ = ("name", "shape", "dtype", "_root")

    def __init__(self, name: str, shape: Sequence[Optional[int]], dtype: str, root: "Layer"):
        self.name = name
        self.shape = tuple(shape)
        self.dtype = dtype
        self._root = root

    @property
    def type(self) -> str:
        return _tensor_type(self.shape, self.dtype)

    @property
    def ref(self) -> str:
        return "%" + self.name

    def __repr__(self) -> str:
        return f"Value(%{self.name}: {self.type})"


class Experts:
    """A bank of ``count`` experts of hidden size ``hidden`` (``!moe.experts<N, H>``)."""

    __slots__ = ("name", "count", "hidden", "kind", "_root")

    def __init__(self, name: str, count: int, hidden: int, kind: str, root: "Layer"):
        self.name, self.count, self.hidden, self.kind, self._root = name, count, hidden, kind, root

    @property
    def type(self) -> str:
        return f"!moe.experts<{self.count}, {self.hidden}>"

    @property
    def ref(self) -> str:
        return "%" + self.name

    def __repr__(self) -> str:
        return f"Experts(%{self.name}: {self.kind} x{self.count}, H={self.hidden})"


class Routing(namedtuple("Routing", ["ids", "weights"])):
    """A routing: ``ids`` [T, K] i32 and ``weights`` [T, K] f32 (slot unused: id -1)."""

    @property
    def slots(self) -> int:
        return self.ids.shape[1]


def _tensor_type(shape, dtype) -> str:
    dims = "x".join("?" if d is None else str(d) for d in shape)
    return f"tensor<{dims}x{dtype}>" if dims else f"tensor<{dtype}>"


def _f32(value, what: str) -> str:
    """An f32 attribute literal MLIR parses (it needs a '.')."""
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{what} must be finite, got {value!r}")
    text = repr(v)
    if "." not in text and "inf" not in text and "nan" not in text:
        mantissa, _, exponent = text.partition("e")
        text = mantissa + ".0" + ("e" + exponent if exponent else "")
    return f"{text} : f32"


def _int(value, what: str, minimum: Optional[int] = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{what} must be an int, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {value}")
    return value


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$.]*", name):
        raise ValueError(f"bad value name {name!r}: use letters, digits and '_' "
                         "(starting with a letter or '_')")
    return name


class _Builder:
    """The op methods, shared by a Layer and the nested builders of regions."""

    def __init__(self, root: "Layer", indent: int):
        self._root = root if root is not None else self
        self._indent = indent
        self._lines = []

    # -- plumbing ---------------------------------------------------------

    def _emit(self, first: str, *continuation: str) -> None:
        pad = " " * self._indent
        self._lines.append(pad + first)
        for line in continuation:
            self._lines.append(pad + "    " + line)

    def _fresh(self, hint: str) -> str:
        return self._root._fresh(hint)

    def _tensor(self, v, what: str, dtype=None, rank=None) -> Value:
        if not isinstance(v, Value):
            raise TypeError(f"{what} must be a Value (a tensor from this builder), got {v!r}")
        if v._root is not self._root:
            raise ValueError(f"{what} ({v!r}) belongs to another Layer")
        if dtype is not None and v.dtype not in (dtype if isinstance(dtype, tuple) else (dtype,)):
            raise TypeError(f"{what} must have element type {dtype}, got {v.type}")
        if rank is not None and len(v.shape) != rank:
            raise ValueError(f"{what} must have rank {rank}, got {v.type}")
        return v

    def _weight_value(self, v, what: str, rank: int) -> Value:
        v = self._tensor(v, what, "f32", rank)
        if any(d is None for d in v.shape):
            raise ValueError(f"{what} must have a static shape, got {v.type}")
        return v

    def _hidden_value(self, x, what: str = "hidden") -> Value:
        x = self._tensor(x, what, "f32", 2)
        if x.shape[1] is None:
            raise ValueError(f"{what}'s hidden size must be static, got {x.type}")
        return x

    def _experts_list(self, banks, what: str):
        if isinstance(banks, Experts):
            banks = [banks]
        banks = list(banks)
        for b in banks:
            if not isinstance(b, Experts):
                raise TypeError(f"{what} must hold Experts banks, got {b!r}")
        return banks

    def _routing(self, routing, what: str = "routing") -> Routing:
        if not isinstance(routing, tuple) or len(routing) != 2:
            raise TypeError(f"{what} must be a Routing or an (ids, weights) pair, got {routing!r}")
        ids = self._tensor(routing[0], what + ".ids", "i32", 2)
        w = self._tensor(routing[1], what + ".weights", "f32", 2)
        return Routing(ids, w)

    def _router_results(self, name: Optional[str], tokens, slots: int) -> Routing:
        ids = Value(self._fresh(name or "ids"), (tokens, slots), "i32", self._root)
        w = Value(self._fresh((name + "_w") if name else "w"), (tokens, slots), "f32", self._root)
        return Routing(ids, w)

    def _routing_transform(self, r: Routing, op: str, attrs: str,
                           name: Optional[str]) -> Routing:
        """``%ids, %w = <op> %in_ids, %in_w {attrs}``: an op that rewrites a
        routing into one of the same [T, K] shape."""
        out = self._router_results(name, r.ids.shape[0], r.ids.shape[1])
        self._emit(f"{out.ids.ref}, {out.weights.ref} = {op} {r.ids.ref}, {r.weights.ref} "
                   f"{{{attrs}}}",
                   f": {r.ids.type}, {r.weights.type} -> {out.ids.type}, {out.weights.type}")
        return out

    @staticmethod
    def _attrs(*items) -> str:
        items = [i for i in items if i]
        return "{" + ", ".join(items) + "}" if items else ""

    @staticmethod
    def _scale(scaling_factor) -> str:
        if float(scaling_factor) == 1.0:
            return ""
        if not float(scaling_factor) > 0:
            raise ValueError(f"scaling_factor must be positive, got {scaling_factor!r}")
        return "scaling_factor = " + _f32(scaling_factor, "scaling_factor")

    @staticmethod
    def _scoring(scoring) -> str:
        if scoring not in SCORINGS:
            raise ValueError(f"scoring must be one of {SCORINGS}, got {scoring!r}")
        return scoring

    # -- declarations (always arguments of the enclosing function) --------

    def weight(self, name: str, shape: Sequence[int]) -> Value:
        """Declares a static f32 weight argument of the given shape."""
        shape = tuple(_int(d, f"weight {name!r} dimension", 1) for d in shape)
        return self._root._add_argument(name, shape, "f32", None)

    def input(self, name: str, shape: Sequence[Optional[int]], dtype: str = "f32",
              random_range: Optional[Tuple[int, int]] = None) -> Value:
        """Declares an argument; ``None`` dimensions are the token count T.

        ``random_range=(lo, hi)`` (integer inputs) records
        ``moe.random_range`` for ``moe-run`` and :func:`moec.random_inputs`."""
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of f32, i32, i64, got {dtype!r}")
        shape = tuple(None if d is None or d == -1 else _int(d, f"input {name!r} dimension", 0)
                      for d in shape)
        return self._root._add_argument(name, shape, _DTYPES[dtype], random_range)

    def hidden(self, name: str = "x", size: Optional[int] = None) -> Value:
        """Declares the hidden-state argument [T, H] (f32, T dynamic)."""
        size = self._root._hidden_size(size)
        return self.input(name, (None, size), "f32")

    def ffn_weights(self, intermediate: int, activation: str = "swiglu",
                    experts: Optional[int] = None, prefix: str = "",
                    hidden: Optional[int] = None) -> dict:
        """Declares FFN weights ``w1`` [I, H], ``w3`` [I, H] (gated only), ``w2``
        [H, I], each with a leading [N] when ``experts`` is given, in that order.
        Returns ``{"w1": ..., "w3": ..., "w2": ...}`` for ``ffn_experts(**w)`` /
        ``ffn(**w)``."""
        _activation(activation)
        h = self._root._hidden_size(hidden)
        i = _int(intermediate, "intermediate", 1)
        lead = () if experts is None else (_int(experts, "experts", 1),)
        w = {"w1": self.weight(prefix + "w1", lead + (i, h))}
        if activation in GATED_ACTIVATIONS:
            w["w3"] = self.weight(prefix + "w3", lead + (i, h))
        w["w2"] = self.weight(prefix + "w2", lead + (h, i))
        return w

    def lora_weights(self, intermediate: int, rank: int, experts: int,
                     activation: str = "swiglu", prefix: str = "",
                     hidden: Optional[int] = None) -> dict:
        """Declares a frozen base FFN (``w1``, ``w3``, ``w2``) and per-expert
        adapters (``a1``, ``b1``, ``a3``, ``b3``, ``a2``, ``b2``) in the order of
        ``examples/mixlora.mlir``. Returns them as a dict for ``lora_experts(**w)``."""
        _activation(activation)
        h = self._root._hidden_size(hidden)
        i, r, n = _int(intermediate, "intermediate", 1), _int(rank, "rank", 1), _int(experts, "experts", 1)
        gated = activation in GATED_ACTIVATIONS
        w = {"w1": self.weight(prefix + "w1", (i, h))}
        if gated:
            w["w3"] = self.weight(prefix + "w3", (i, h))
        w["w2"] = self.weight(prefix + "w2", (h, i))
        w["a1"] = self.weight(prefix + "a1", (n, r, h))
        w["b1"] = self.weight(prefix + "b1", (n, i, r))
        if gated:
            w["a3"] = self.weight(prefix + "a3", (n, r, h))
            w["b3"] = self.weight(prefix + "b3", (n, i, r))
        w["a2"] = self.weight(prefix + "a2", (n, r, i))
        w["b2"] = self.weight(prefix + "b2", (n, h, r))
        return w

    # -- routers ------------------------------------------------------------

    def topk_router(self, x: Value, gate: Value, k: int, scoring: str = "softmax",
                    bias: Optional[Value] = None, renormalize: bool = False,
                    scaling_factor: float = 1.0, name: Optional[str] = None) -> Routing:
        """``moe.topk_router``: top-k of softmax/sigmoid scores (Mixtral, Switch)."""
        return self._gated_router("topk_router", x, gate, bias, scoring, k,
                                  [f"k = {_int(k, 'k', 1)}"], renormalize, scaling_factor, name)

    def grouped_topk_router(self, x: Value, gate: Value, k: int, num_groups: int,
                            topk_groups: int, scoring: str = "sigmoid",
                            bias: Optional[Value] = None, renormalize: bool = False,
                            scaling_factor: float = 1.0, name: Optional[str] = None) -> Routing:
        """``moe.grouped_topk_router``: DeepSeek-V3 grouped top-k."""
        attrs = [f"k = {_int(k, 'k', 1)}", f"num_groups = {_int(num_groups, 'num_groups', 1)}",
                 f"topk_groups = {_int(topk_groups, 'topk_groups', 1)}"]
        return self._gated_router("grouped_topk_router", x, gate, bias, scoring, k, attrs,
                                  renormalize, scaling_factor, name)

    def topp_router(self, x: Value, gate: Value, threshold: float, max_k: int,
                    renormalize: bool = False, scaling_factor: float = 1.0,
                    name: Optional[str] = None) -> Routing:
        """``moe.topp_router``: smallest prefix reaching probability ``threshold``, at most ``max_k``."""
        if not 0.0 < float(threshold) <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
        attrs = [f"threshold = {_f32(threshold, 'threshold')}", f"max_k = {_int(max_k, 'max_k', 1)}"]
        return self._gated_router("topp_router", x, gate, None, None, max_k, attrs,
                                  renormalize, scaling_factor, name)

    def relu_router(self, x: Value, gate: Value, slots: Optional[int] = None,
                    scaling_factor: float = 1.0, name: Optional[str] = None) -> Routing:
        """``moe.relu_router`` (ReMoE): every expert with a positive logit; ``slots``
        (default E) caps how many."""
        gate = self._weight_value(gate, "gate", 2)
        k = gate.shape[0] if slots is None else _int(slots, "slots", 1)
        return self._gated_router("relu_router", x, gate, None, None, k, [], False,
                                  scaling_factor, name)

    def expert_choice_router(self, x: Value, gate: Value, capacity: int,
                             scoring: str = "softmax", scaling_factor: float = 1.0,
                             name: Optional[str] = None) -> Routing:
        """``moe.expert_choice_router``: each expert takes its ``capacity`` best tokens (K = E)."""
        gate = self._weight_value(gate, "gate", 2)
        return self._gated_router("expert_choice_router", x, gate, None, scoring, gate.shape[0],
                                  [f"capacity = {_int(capacity, 'capacity', 1)}"], False,
                                  scaling_factor, name)

    def _gated_router(self, op, x, gate, bias, scoring, slots, attrs, renormalize,
                      scaling_factor, name) -> Routing:
        x = self._hidden_value(x)
        gate = self._weight_value(gate, "gate", 2)
        operands = f"{x.ref}, {gate.ref}"
        types = [x.type, gate.type]
        if bias is not None:
            bias = self._weight_value(bias, "bias", 1)
            operands += f" bias {bias.ref}"
            types.append(bias.type)
        attrs = list(attrs)
        if renormalize:
            attrs.append("renormalize")
        attrs.append(self._scale(scaling_factor))
        out = self._router_results(name, x.shape[0], _int(slots, "slots", 1))
        head = f"{out.ids.ref}, {out.weights.ref} = moe.{op} "
        if scoring is not None:
            head += self._scoring(scoring) + " "
        head += operands
        attr_text = self._attrs(*attrs)
        if attr_text:
            head += " " + attr_text
        self._emit(head, f": {', '.join(types)} -> {out.ids.type}, {out.weights.type}")
        return out

    def hash_router(self, token_ids: Value, num_experts: int,
                    name: Optional[str] = None) -> Routing:
        """``moe.hash_router``: expert = hash(token id) mod E, weight 1 (K = 1)."""
        tok = self._tensor(token_ids, "token_ids", ("i32", "i64"), 1)
        out = self._router_results(name, tok.shape[0], 1)
        self._emit(f"{out.ids.ref}, {out.weights.ref} = moe.hash_router {tok.ref} "
                   f"{{num_experts = {_int(num_experts, 'num_experts', 1)}}}",
                   f": {tok.type} -> {out.ids.type}, {out.weights.type}")
        return out

    def capacity_drop(self, routing, num_experts: int, capacity_factor: float,
                      name: Optional[str] = None) -> Routing:
        """``moe.capacity_drop``: each expert keeps ceil(cf·T·K/E) slots (slot-major order)."""
        r = self._routing(routing)
        if not float(capacity_factor) > 0:
            raise ValueError(f"capacity_factor must be positive, got {capacity_factor!r}")
        return self._routing_transform(
            r, "moe.capacity_drop",
            f"num_experts = {_int(num_experts, 'num_experts', 1)}, "
            f"capacity_factor = {_f32(capacity_factor, 'capacity_factor')}", name)

    def router_scores(self, x: Value, gate: Value, scoring: str = "softmax",
                      name: Optional[str] = None) -> Value:
        """``moe.router_scores``: every expert's score [T, E] (softmax/sigmoid of gate · x)."""
        x = self._hidden_value(x)
        gate = self._weight_value(gate, "gate", 2)
        out = Value(self._fresh(name or "scores"), (x.shape[0], gate.shape[0]), "f32", self._root)
        self._emit(f"{out.ref} = moe.router_scores {self._scoring(scoring)} {x.ref}, {gate.ref} "
                   f": {x.type}, {gate.type} -> {out.type}")
        return out

    def capacity_reroute(self, routing, scores: Value, capacity_factor: float,
                         name: Optional[str] = None) -> Routing:
        """``moe.capacity_reroute``: each expert keeps its ceil(cf·T·K/E) best-scoring
        pairs; a dropped pair moves to its token's next-best expert with room
        (``scores`` [T, E], e.g. from :meth:`router_scores`)."""
        r = self._routing(routing)
        scores = self._tensor(scores, "scores", ("f32",), 2)
        if scores.shape[1] is None:
            raise ValueError("scores must have a static expert count E")
        if not float(capacity_factor) > 0:
            raise ValueError(f"capacity_factor must be positive, got {capacity_factor!r}")
        out = self._router_results(name, r.ids.shape[0], r.ids.shape[1])
        self._emit(f"{out.ids.ref}, {out.weights.ref} = moe.capacity_reroute {r.ids.ref}, "
                   f"{r.weights.ref}, {scores.ref} "
                   f"{{capacity_factor = {_f32(capacity_factor, 'capacity_factor')}}}",
                   f": {r.ids.type}, {r.weights.type}, {scores.type} -> {out.ids.type}, "
                   f"{out.weights.type}")
        return out

    def compress_slots(self, routing, keep: int, compressed: Sequence[int],
                       name: Optional[str] = None) -> Routing:
        """``moe.compress_slots``: per token, the slots beyond the top ``keep`` by
        weight move from full expert e to its compressed stand-in
        ``E + compressed[e]`` (E = len(compressed); the compressed banks follow
        the full ones in the layer's expert list)."""
        r = self._routing(routing)
        keep = _int(keep, "keep", 0)
        if keep > r.ids.shape[1]:
            raise ValueError(f"keep must be in [0, K] with K = {r.ids.shape[1]}, got {keep}")
        compressed = [_int(c, "compressed entry", 0) for c in compressed]
        if not compressed:
            raise ValueError("compressed must map at least one full expert")
        return self._routing_transform(
            r, "moe.compress_slots",
            f"keep = {keep}, compressed = array<i64: {', '.join(str(c) for c in compressed)}>",
            name)

    def path_router(self, x: Value, gate: Value, name: Optional[str] = None) -> Value:
        """``moe.path_router``: per-token argmax over the rows of ``gate`` (row 0 = skip)."""
        x = self._hidden_value(x)
        gate = self._weight_value(gate, "gate", 2)
        out = Value(self._fresh(name or "paths"), (x.shape[0],), "i32", self._root)
        self._emit(f"{out.ref} = moe.path_router {x.ref}, {gate.ref} "
                   f": {x.type}, {gate.type} -> {out.type}")
        return out

    def exit_layers(self, positions: Value, max_exit: int, min_exit: int,
                    decay_positions: int, name: Optional[str] = None) -> Value:
        """``moe.exit_layers`` (SkipDecode): each token's exit layer from its
        position, max_exit at position 0 falling linearly to min_exit at
        ``decay_positions`` and after."""
        positions = self._tensor(positions, "positions", "i32", 1)
        max_exit = _int(max_exit, "max_exit", 0)
        min_exit = _int(min_exit, "min_exit", 0)
        if min_exit > max_exit:
            raise ValueError(f"min_exit ({min_exit}) must not exceed max_exit ({max_exit})")
        decay = _int(decay_positions, "decay_positions", 1)
        out = Value(self._fresh(name or "exits"), positions.shape, "i32", self._root)
        self._emit(f"{out.ref} = moe.exit_layers {positions.ref} "
                   f"{{max_exit = {max_exit}, min_exit = {min_exit}, decay_positions = {decay}}}",
                   f": {positions.type} -> {out.type}")
        return out

    def exit_paths(self, exits: Value, layer: int, name: Optional[str] = None) -> Value:
        """``moe.exit_paths``: path 1 (run layer ``layer``) for tokens whose
        exit layer is above it, 0 (skip) otherwise; feeds a one-branch
        ``path_select``."""
        exits = self._tensor(exits, "exits", "i32", 1)
        layer = _int(layer, "layer", 0)
        out = Value(self._fresh(name or "paths"), exits.shape, "i32", self._root)
        self._emit(f"{out.ref} = moe.exit_paths {exits.ref} {{layer = {layer}}} "
                   f": {exits.type} -> {out.type}")
        return out

    # -- expert banks -------------------------------------------------------

    def ffn_experts(self, activation: str, w1: Value, w2: Value, w3: Optional[Value] = None,
                    name: Optional[str] = None) -> Experts:
        """``moe.ffn_experts``: N FFN experts, w1/w3 [N, I, H], w2 [N, H, I]
        (w3 only for the gated swiglu/geglu)."""
        _activation(activation, w3)
        w1 = self._weight_value(w1, "w1", 3)
        w2 = self._weight_value(w2, "w2", 3)
        parts = [f"w1({w1.ref} : {w1.type})"]
        if w3 is not None:
            w3 = self._weight_value(w3, "w3", 3)
            parts.append(f"w3({w3.ref} : {w3.type})")
        parts.append(f"w2({w2.ref} : {w2.type})")
        bank = Experts(self._fresh(name or "experts"), w1.shape[0], w2.shape[1], "ffn", self._root)
        self._emit(f"{bank.ref} = moe.ffn_experts {activation} {parts[0]}",
                   " ".join(parts[1:]) + f" -> {bank.type}")
        return bank

    def lora_experts(self, activation: str, w1: Value, w2: Value, a1: Value, b1: Value,
                     a2: Value, b2: Value, alpha: float, w3: Optional[Value] = None,
                     a3: Optional[Value] = None, b3: Optional[Value] = None,
                     name: Optional[str] = None) -> Experts:
        """``moe.lora_experts``: N LoRA experts over one frozen FFN (MixLoRA);
        every projection W becomes W + (alpha / r)·B[n]·A[n]."""
        _activation(activation, w3)
        gated = activation in GATED_ACTIVATIONS
        if gated and (a3 is None or b3 is None):
            raise ValueError(f"'{activation}' needs the w3 adapters a3 and b3")
        if not gated and (a3 is not None or b3 is not None):
            raise ValueError(f"'{activation}' takes no w3 adapters")
        w1, w2 = self._weight_value(w1, "w1", 2), self._weight_value(w2, "w2", 2)
        base = [f"w1 {w1.ref} : {w1.type}"]
        if gated:
            w3 = self._weight_value(w3, "w3", 2)
            base.append(f"w3 {w3.ref} : {w3.type}")
        base.append(f"w2 {w2.ref} : {w2.type}")
        pairs = [("w1", a1, b1)] + ([("w3", a3, b3)] if gated else []) + [("w2", a2, b2)]
        adapters = []
        for proj, a, b in pairs:
            a = self._weight_value(a, "a" + proj[1], 3)
            b = self._weight_value(b, "b" + proj[1], 3)
            adapters.append(f"{proj} {a.ref}, {b.ref} : {a.type}, {b.type}")
        a1v = self._weight_value(a1, "a1", 3)
        bank = Experts(self._fresh(name or "lora"), a1v.shape[0], w2.shape[0], "lora", self._root)
        lines = [f"base({', '.join(base)})"]
        lines.append("adapters(" + adapters[0] + ("," if len(adapters) > 1 else ")"))
        for j, a in enumerate(adapters[1:], 1):
            lines.append("         " + a + ("," if j < len(adapters) - 1 else ")"))
        lines.append(f"{{alpha = {_f32(alpha, 'alpha')}}} -> {bank.type}")
        self._emit(f"{bank.ref} = moe.lora_experts {activation}", *lines)
        return bank

    def zero_experts(self, count: int = 1, hidden: Optional[int] = None,
                     name: Optional[str] = None) -> Experts:
        """``moe.zero_experts``: null experts (output 0, no work)."""
        return self._trivial("zero_experts", count, hidden, name or "zero", "zero")

    def copy_experts(self, count: int = 1, hidden: Optional[int] = None,
                     name: Optional[str] = None) -> Experts:
        """``moe.copy_experts``: identity experts (a slot adds w·x)."""
        return self._trivial("copy_experts", count, hidden, name or "copy", "copy")

    def _trivial(self, op, count, hidden, name, kind) -> Experts:
        bank = Experts(self._fresh(name), _int(count, "count", 1),
                       self._root._hidden_size(hidden), kind, self._root)
        self._emit(f"{bank.ref} = moe.{op} : {bank.type}")
        return bank

    def const_experts(self, values: Value, name: Optional[str] = None) -> Experts:
        """``moe.const_experts``: expert n outputs the vector values[n] ([N, H])."""
        v = self._weight_value(values, "values", 2)
        bank = Experts(self._fresh(name or "const"), v.shape[0], v.shape[1], "const", self._root)
        self._emit(f"{bank.ref} = moe.const_experts {v.ref} : {v.type} -> {bank.type}")
        return bank

    # -- layers -------------------------------------------------------------

    def layer(self, x: Value, routing, experts, shared=(), name: Optional[str] = None) -> Value:
        """``moe.layer``: y[t] = Σ_slots w·expert_id(x[t]) + Σ shared experts(x[t]).

        ``experts``: one bank or a list (ids in bank order); ``shared``: banks
        every token uses with weight 1. No residual."""
        x = self._hidden_value(x)
        r = self._routing(routing)
        banks = self._experts_list(experts, "experts")
        shared = self._experts_list(shared, "shared")
        if not banks:
            raise ValueError("a layer needs at least one routed expert bank")
        y = Value(self._fresh(name or "y"), x.shape, "f32", self._root)
        head = f"{y.ref} = moe.layer {x.ref}, {r.ids.ref}, {r.weights.ref}"
        rest = []
        for kw, group in (("experts", banks), ("shared", shared)):
            if not group:
                continue
            text = f"{kw}({', '.join(b.ref for b in group)} : {', '.join(b.type for b in group)})"
            if kw == "experts" and len(head) + len(text) + self._indent < 96:
                head += " " + text
            else:
                rest.extend(_wrap(text, 88 - self._indent, len(kw) + 1))
        rest.append(f": {x.type}, {r.ids.type}, {r.weights.type} -> {y.type}")
        self._emit(head, *rest)
        return y

    def ffn(self, x: Value, activation: str, w1: Value, w2: Value, w3: Optional[Value] = None,
            name: Optional[str] = None) -> Value:
        """``moe.ffn``: a dense FFN on every token (w1/w3 [I, H], w2 [H, I])."""
        _activation(activation, w3)
        x = self._hidden_value(x)
        w1, w2 = self._weight_value(w1, "w1", 2), self._weight_value(w2, "w2", 2)
        parts = [f"w1({w1.ref} : {w1.type})"]
        if w3 is not None:
            w3 = self._weight_value(w3, "w3", 2)
            parts.append(f"w3({w3.ref} : {w3.type})")
        parts.append(f"w2({w2.ref} : {w2.type})")
        y = Value(self._fresh(name or "f"), x.shape, "f32", self._root)
        self._emit(f"{y.ref} = moe.ffn {activation} {x.ref} " + " ".join(parts),
                   f": {x.type} -> {y.type}")
        return y

    def skip_block(self, x: Value, router: Value, body: Callable, *,
                   capacity_fraction: Optional[float] = None,
                   threshold: Optional[float] = None, scale_by_score: bool = False,
                   name: Optional[str] = None) -> Value:
        """``moe.skip_block``: tokens selected by the scalar router (the top
        ``capacity_fraction`` of them: Mixture-of-Depths, or those with score >
        ``threshold``) get x + g·body(x); the others pass through.

        ``body(r, xs)`` builds the block with the nested builder ``r`` on the
        selected tokens ``xs`` ([T', H]) and returns its output."""
        x = self._hidden_value(x)
        router = self._weight_value(router, "router", 1)
        if (capacity_fraction is None) == (threshold is None):
            raise ValueError("skip_block takes exactly one of capacity_fraction and threshold")
        if capacity_fraction is not None:
            if not 0.0 < float(capacity_fraction) <= 1.0:
                raise ValueError(f"capacity_fraction must be in (0, 1], got {capacity_fraction!r}")
            attrs = ["capacity_fraction = " + _f32(capacity_fraction, "capacity_fraction")]
        else:
            attrs = ["threshold = " + _f32(threshold, "threshold")]
        if scale_by_score:
            attrs.append("scale_by_score")
        y = Value(self._fresh(name or "y"), x.shape, "f32", self._root)
        self._emit(f"{y.ref} = moe.skip_block {x.ref}, {router.ref} {self._attrs(*attrs)}",
                   f": {x.type}, {router.type} -> {y.type} {{")
        self._region(body, x, "xs", "skip_block body")
        self._emit("}")
        return y

    def path_select(self, x: Value, paths: Value, branches: Sequence[Callable],
                    name: Optional[str] = None) -> Value:
        """``moe.path_select`` (Duo-LLM): token t keeps x[t] when paths[t] = 0 and
        gets x[t] + branches[p-1](x[t]) when paths[t] = p.

        Each branch is a callable ``branch(r, xs)`` like a skip_block body."""
        x = self._hidden_value(x)
        paths = self._tensor(paths, "paths", "i32", 1)
        branches = list(branches)
        if not branches:
            raise ValueError("path_select needs at least one branch")
        y = Value(self._fresh(name or "h"), x.shape, "f32", self._root)
        self._emit(f"{y.ref} = moe.path_select {x.ref}, {paths.ref} "
                   f": {x.type}, {paths.type} -> {y.type} {{")
        for p, branch in enumerate(branches):
            if p:
                self._emit("}, {")
            self._region(branch, x, "xs", f"path_select branch #{p + 1}")
        self._emit("}")
        return y

    def halting_stack(self, x: Value, halt_weights: Value, halt_bias: Value,
                      layers: Sequence[Callable], epsilon: float = 0.01,
                      name: Optional[str] = None) -> Tuple[Value, Value]:
        """``moe.halting_stack`` (ACT): ``layers`` are residual branches
        ``layer(r, xs)`` run in turn on the tokens that have not halted; after
        layer l a token's halting probability is sigmoid(halt_weights[l]·s +
        halt_bias[l]) and it halts once the running sum reaches 1 - epsilon
        (or at the last layer, with the remainder). Returns (y, steps): the
        halting-weighted mixture of each token's states and how many layers
        it ran."""
        x = self._hidden_value(x)
        layers = list(layers)
        if not layers:
            raise ValueError("halting_stack needs at least one layer")
        hw = self._weight_value(halt_weights, "halt_weights", 2)
        hbias = self._weight_value(halt_bias, "halt_bias", 1)
        if hw.shape != (len(layers), x.shape[1]) or hbias.shape != (len(layers),):
            raise ValueError(f"{len(layers)} layers need halt_weights [{len(layers)}, "
                             f"{x.shape[1]}] and halt_bias [{len(layers)}], got {hw.type} and "
                             f"{hbias.type}")
        if not 0.0 <= float(epsilon) < 1.0:
            raise ValueError(f"epsilon must be in [0, 1), got {epsilon!r}")
        y = Value(self._fresh(name or "y"), x.shape, "f32", self._root)
        steps = Value(self._fresh("steps"), (x.shape[0],), "i32", self._root)
        self._emit(f"{y.ref}, {steps.ref} = moe.halting_stack {x.ref}, {hw.ref}, {hbias.ref} "
                   f"{{epsilon = {_f32(epsilon, 'epsilon')}}}",
                   f": {x.type}, {hw.type}, {hbias.type} -> {y.type}, {steps.type} {{")
        for n, layer in enumerate(layers):
            if n:
                self._emit("}, {")
            self._region(layer, x, "xs", f"halting_stack layer #{n}")
        self._emit("}")
        return y, steps

    def _region(self, body: Callable, x: Value, arg_hint: str, what: str) -> None:
        if not callable(body):
            raise TypeError(f"{what} must be a callable body(r, xs), got {body!r}")
        region = _Builder(self._root, self._indent + 2)
        xs = Value(self._fresh(arg_hint), (None, x.shape[1]), "f32", self._root)
        result = body(region, xs)
        result = region._hidden_value(result, f"the value {what} returns")
        if result.shape[1] != x.shape[1]:
            raise ValueError(f"{what} must return [T', {x.shape[1]}], got {result.type}")
        self._emit(f"^bb0({xs.ref}: {xs.type}):")
        self._lines.extend(region._lines)
        ret_type = _tensor_type((None, x.shape[1]), "f32")
        if result.shape[0] is not None:
            raise ValueError(f"{what} must return a value with a dynamic token count")
        region._lines = []
        region._emit(f"moe.yield {result.ref} : {ret_type}")
        self._lines.extend(region._lines)


def _wrap(text: str, width: int, hang: int):
    """Splits `text` at top-level ", " (not inside <...>) into lines of at most
    `width`; continuation lines are indented by `hang`."""
    pieces, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch == "<"
        depth -= ch == ">"
        if ch == "," and depth == 0 and text[i + 1:i + 2] == " ":
            pieces.append(text[start:i])
            start = i + 2
    pieces.append(text[start:])
    lines, line = [], ""
    for piece in pieces:
        candidate = piece if not line else line + ", " + piece
        if line.strip() and len(candidate) > width:
            lines.append(line + ",")
            line = " " * hang + piece
        else:
            line = candidate
    lines.append(line)
    return lines


def _activation(activation: str, w3: Optional[Value] = "unchecked") -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    if w3 == "unchecked":
        return
    if activation in GATED_ACTIVATIONS and w3 is None:
        raise ValueError(f"the gated activation '{activation}' needs w3")
    if activation not in GATED_ACTIVATIONS and w3 is not None:
        raise ValueError(f"the plain activation '{activation}' takes no w3")


class Layer(_Builder):
    """One function of the moe dialect under construction (a layer or a stack).

    ``Layer(hidden=64)`` sets the default hidden size H for ``hidden()``,
    ``zero_experts()``, ``copy_experts()`` and the ``*_weights()`` helpers;
    ``name`` is the function's name (the ``entry`` of compile())."""

    def __init__(self, hidden: Optional[int] = None, name: str = "main"):
        super().__init__(None, 2)
        self._root = self
        self.name = _check_name(name)
        self.hidden_size = None if hidden is None else _int(hidden, "hidden", 1)
        self._args = []          # (Value, random_range)
        self._names = {}
        self._outputs = None

    def _fresh(self, hint: str) -> str:
        hint = _check_name(hint)
        if hint not in self._names:
            self._names[hint] = 0
            return hint
        while True:
            self._names[hint] += 1
            candidate = f"{hint}_{self._names[hint]}"
            if candidate not in self._names:
                self._names[candidate] = 0
                return candidate

    def _hidden_size(self, size: Optional[int]) -> int:
        if size is not None:
            size = _int(size, "hidden size", 1)
            if self.hidden_size is None:
                self.hidden_size = size
            return size
        if self.hidden_size is None:
            raise ValueError("no hidden size: pass Layer(hidden=H) or size=/hidden=")
        return self.hidden_size

    def _add_argument(self, name, shape, dtype, random_range) -> Value:
        _check_name(name)
        if name in self._names:
            raise ValueError(f"the name {name!r} is already used in this Layer")
        if self._outputs is not None:
            raise ValueError("the Layer's outputs are already set")
        if random_range is not None:
            lo, hi = (_int(v, "random_range bound") for v in random_range)
            if lo >= hi or dtype == "f32":
                raise ValueError("random_range=(lo, hi) needs lo < hi and an integer input")
            random_range = (lo, hi)
        self._names[name] = 0
        v = Value(name, shape, dtype, self)
        self._args.append((v, random_range))
        return v

    @property
    def arguments(self) -> Tuple[Value, ...]:
        """The function's arguments, in order."""
        return tuple(v for v, _ in self._args)

    def random_range(self, index: int) -> Optional[Tuple[int, int]]:
        return self._args[index][1]

    def output(self, *values: Value) -> None:
        """Sets the function's results (``return``); call once, last."""
        if self._outputs is not None:
            raise ValueError("the Layer's outputs are already set")
        if not values:
            raise ValueError("output() needs at least one value")
        self._outputs = [self._tensor(v, f"output #{i}") for i, v in enumerate(values)]

    def to_mlir(self) -> str:
        """The module text (one ``func.func``)."""
        if self._outputs is None:
            raise ValueError("call output(...) before to_mlir()")
        args = []
        for v, rr in self._args:
            a = f"{v.ref}: {v.type}"
            if rr is not None:
                a += f" {{moe.random_range = array<i64: {rr[0]}, {rr[1]}>}}"
            args.append(a)
        results = [v.type for v in self._outputs]
        res = results[0] if len(results) == 1 else "(" + ", ".join(results) + ")"
        lines = [f"// Built by moec.Layer (Python)."]
        if args:
            lines.append(f"func.func @{self.name}(")
            for i, a in enumerate(args):
                lines.append("    " + a + ("," if i < len(args) - 1 else ")"))
            lines.append(f"    -> {res} {{")
        else:
            lines.append(f"func.func @{self.name}() -> {res} {{")
        lines.extend(self._lines)
        lines.append(f"  return {', '.join(v.ref for v in self._outputs)} : "
                     f"{', '.join(results)}")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        return self.to_mlir()
