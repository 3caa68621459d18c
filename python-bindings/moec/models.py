"""The MoE layers of published model families, from their configurations and
checkpoints.

``from_config(config)`` reads a Hugging Face style ``config.json`` (a dict or
a path) with the family's own field names and builds the layer with the
builder; ``map_layer_weights(tensors, config, layer=N)`` finds one layer's
tensors in a state dict or a safetensors checkpoint by the family's tensor
names and stacks them into the layer's arguments; ``load_layer_weights``
does both and prepares the layer.

Families (``model_type``) and what their layer is in the dialect:

* ``mixtral``: softmax top-k, renormalized, SwiGLU experts (w1, w3, w2).
* ``qwen3_moe``, ``olmoe``: softmax top-k, renormalized when
  ``norm_topk_prob``, SwiGLU experts (gate_proj, up_proj, down_proj).
* ``qwen2_moe``: as qwen3_moe plus a shared expert scaled by
  sigmoid(shared_expert_gate · x): not expressible (NotImplementedError).
* ``deepseek_v3``: sigmoid scores, selection bias ``e_score_correction_bias``,
  grouped top-k, renormalized when ``norm_topk_prob``, times
  ``routed_scaling_factor``; one shared FFN of ``n_shared_experts ·
  moe_intermediate_size``.
* ``deepseek_v2``: softmax top-k (``topk_method="greedy"``); the weights are
  renormalized when ``norm_topk_prob`` (and k > 1), else scaled by
  ``routed_scaling_factor`` (DeepSeek-V2's rule); shared FFN as V3.
  ``group_limited_greedy`` ranks groups by their best score, which
  ``moe.grouped_topk_router`` (sum of the top 2) does not express.
* ``switch_transformers``: softmax top-1, ReLU experts (wi, wo), dropless
  (the checkpoint's absolute ``expert_capacity`` is not applied).
"""

from __future__ import annotations

import difflib
import glob
import json
import numbers
import os
from dataclasses import dataclass
from typing import Mapping, Optional, Union

import numpy as _np

from .builder import Layer

__all__ = ["MoeConfig", "FAMILIES", "read_config", "moe_config", "from_config",
           "map_layer_weights", "load_layer_weights"]


@dataclass(frozen=True)
class MoeConfig:
    """What the dialect needs of one family's MoE layer."""
    family: str
    hidden: int
    experts: int
    k: int
    intermediate: int
    activation: str                    # the experts' (swiglu, geglu, relu, gelu)
    scoring: str = "softmax"
    renormalize: bool = False
    scaling_factor: float = 1.0
    groups: Optional[tuple] = None     # (n_group, topk_group) for grouped top-k
    selection_bias: bool = False       # DeepSeek-V3's e_score_correction_bias
    shared_intermediate: int = 0       # one always-on FFN of this size; 0 = none


def read_config(config) -> dict:
    """A dict as is; a path to config.json or to a directory holding one."""
    if isinstance(config, Mapping):
        return dict(config)
    if isinstance(config, (str, os.PathLike)):
        path = os.fspath(config)
        if os.path.isdir(path):
            path = os.path.join(path, "config.json")
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    raise TypeError(f"config must be a dict or the path of a config.json, got {type(config).__name__}")


def _field(cfg: dict, name: str, default=None, kind=int):
    """cfg[name] checked to be a positive int (kind=int), a positive float or a
    bool; a missing field with no default is a ValueError naming it."""
    if name not in cfg or cfg[name] is None:
        if default is None:
            raise ValueError(f"the {cfg.get('model_type')} configuration has no {name!r}")
        return default
    v = cfg[name]
    if kind is bool:
        if not isinstance(v, bool):
            raise ValueError(f"{name!r} must be true or false, got {v!r}")
        return v
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or (kind is int and v != int(v)):
        raise ValueError(f"{name!r} must be a {'n integer' if kind is int else ' number'}, got {v!r}")
    if not v > 0:
        raise ValueError(f"{name!r} must be positive, got {v!r}")
    return kind(v)


def _gated(cfg: dict, field: str = "hidden_act") -> str:
    act = cfg.get(field, "silu")
    table = {"silu": "swiglu", "swish": "swiglu", "gelu": "geglu"}
    if act not in table:
        raise ValueError(f"{field}={act!r} is not supported: the experts' activations are "
                         "silu (SwiGLU) and the exact erf gelu (GeGLU)")
    return table[act]


def _check_k(cfg: dict, k: int, experts: int, experts_field: str) -> None:
    if k > experts:
        raise ValueError(f"num_experts_per_tok={k} exceeds {experts_field}={experts}")


def _mixtral(cfg: dict) -> MoeConfig:
    e, k = _field(cfg, "num_local_experts"), _field(cfg, "num_experts_per_tok")
    _check_k(cfg, k, e, "num_local_experts")
    return MoeConfig("mixtral", _field(cfg, "hidden_size"), e, k,
                     _field(cfg, "intermediate_size"), _gated(cfg), renormalize=True)


def _qwen_like(family: str, intermediate_field: str):
    def spec(cfg: dict) -> MoeConfig:
        if family == "qwen2_moe" and cfg.get("shared_expert_intermediate_size", 0):
            raise NotImplementedError(
                "Qwen2-MoE's shared expert is scaled per token by sigmoid(shared_expert_gate · x); "
                "the dialect's shared experts have weight 1 (a gated shared expert is missing from "
                "moe.layer)")
        e, k = _field(cfg, "num_experts"), _field(cfg, "num_experts_per_tok")
        _check_k(cfg, k, e, "num_experts")
        return MoeConfig(family, _field(cfg, "hidden_size"), e, k,
                         _field(cfg, intermediate_field), _gated(cfg),
                         renormalize=_field(cfg, "norm_topk_prob", False, bool))
    return spec


def _deepseek_shared(cfg: dict, intermediate: int) -> int:
    n = cfg.get("n_shared_experts") or 0
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"'n_shared_experts' must be a non-negative integer, got {n!r}")
    return n * intermediate


def _deepseek_v3(cfg: dict) -> MoeConfig:
    if cfg.get("scoring_func", "sigmoid") != "sigmoid":
        raise ValueError(f"deepseek_v3 scores with sigmoid, got scoring_func={cfg['scoring_func']!r}")
    if cfg.get("topk_method", "noaux_tc") != "noaux_tc":
        raise ValueError(f"deepseek_v3 routes with topk_method='noaux_tc', got {cfg['topk_method']!r}")
    e, k = _field(cfg, "n_routed_experts"), _field(cfg, "num_experts_per_tok")
    g, tg = _field(cfg, "n_group", 1), _field(cfg, "topk_group", 1)
    if e % g:
        raise ValueError(f"n_group={g} does not divide n_routed_experts={e}")
    if tg > g:
        raise ValueError(f"topk_group={tg} exceeds n_group={g}")
    if k > tg * (e // g):
        raise ValueError(f"num_experts_per_tok={k} exceeds the {tg * (e // g)} experts of the "
                         f"topk_group={tg} kept groups")
    i = _field(cfg, "moe_intermediate_size")
    return MoeConfig("deepseek_v3", _field(cfg, "hidden_size"), e, k, i, _gated(cfg),
                     scoring="sigmoid", renormalize=k > 1 and _field(cfg, "norm_topk_prob", False, bool),
                     scaling_factor=_field(cfg, "routed_scaling_factor", 1.0, float),
                     groups=(g, tg), selection_bias=True,
                     shared_intermediate=_deepseek_shared(cfg, i))


def _deepseek_v2(cfg: dict) -> MoeConfig:
    if cfg.get("scoring_func", "softmax") != "softmax":
        raise ValueError(f"deepseek_v2 scores with softmax, got scoring_func={cfg['scoring_func']!r}")
    e, k = _field(cfg, "n_routed_experts"), _field(cfg, "num_experts_per_tok")
    _check_k(cfg, k, e, "n_routed_experts")
    method = cfg.get("topk_method", "greedy")
    g, tg = cfg.get("n_group") or 1, cfg.get("topk_group") or 1
    if method == "group_limited_greedy" and tg < g:
        raise NotImplementedError(
            "DeepSeek-V2's group_limited_greedy ranks groups by their best score; "
            "moe.grouped_topk_router ranks them by the sum of their top 2 (a max group score "
            "is missing from the dialect)")
    if method not in ("greedy", "group_limited_greedy"):
        raise ValueError(f"deepseek_v2 topk_method must be 'greedy' or 'group_limited_greedy', "
                         f"got {method!r}")
    # DeepSeek-V2 scales only weights it does not renormalize.
    renormalize = k > 1 and _field(cfg, "norm_topk_prob", False, bool)
    scaling = 1.0 if renormalize else _field(cfg, "routed_scaling_factor", 1.0, float)
    i = _field(cfg, "moe_intermediate_size")
    return MoeConfig("deepseek_v2", _field(cfg, "hidden_size"), e, k, i, _gated(cfg),
                     renormalize=renormalize, scaling_factor=scaling,
                     shared_intermediate=_deepseek_shared(cfg, i))


def _switch(cfg: dict) -> MoeConfig:
    if cfg.get("router_bias"):
        raise NotImplementedError("router_bias=true: the dialect's routers have no logit bias")
    act = cfg.get("dense_act_fn", cfg.get("feed_forward_proj", "relu"))
    if act not in ("relu", "gelu"):
        raise ValueError(f"dense_act_fn={act!r} is not supported: the plain expert activations "
                         "are relu and the exact erf gelu")
    return MoeConfig("switch_transformers", _field(cfg, "d_model"), _field(cfg, "num_experts"), 1,
                     _field(cfg, "d_ff"), act)


FAMILIES = {
    "mixtral": _mixtral,
    "qwen2_moe": _qwen_like("qwen2_moe", "moe_intermediate_size"),
    "qwen3_moe": _qwen_like("qwen3_moe", "moe_intermediate_size"),
    "olmoe": _qwen_like("olmoe", "intermediate_size"),
    "deepseek_v2": _deepseek_v2,
    "deepseek_v3": _deepseek_v3,
    "switch_transformers": _switch,
}


def moe_config(config, **overrides) -> MoeConfig:
    """The family's MoE layer parameters from its configuration; ``overrides``
    replace configuration fields (e.g. ``hidden_size=64`` for a small test)."""
    cfg = {**read_config(config), **overrides}
    family = cfg.get("model_type")
    if family not in FAMILIES:
        close = difflib.get_close_matches(str(family), FAMILIES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown model_type {family!r}{hint}; the families are "
                         f"{', '.join(FAMILIES)}")
    return FAMILIES[family](cfg)


def from_config(config, name: str = "moe", **overrides) -> Layer:
    """The MoE layer of a model family as a :class:`moec.Layer` with arguments
    ``x`` [T, H], ``gate`` [E, H], ``bias`` [E] (DeepSeek-V3), ``w1``, ``w3``
    (gated), ``w2`` and, with shared experts, ``s1``, ``s3``, ``s2``;
    ``layer.moe_config`` holds the parameters read. ``config``: a dict or the
    path of a config.json (or its directory); ``overrides`` replace fields."""
    spec = moe_config(config, **overrides)
    L = Layer(hidden=spec.hidden, name=name)
    x = L.hidden("x")
    gate = L.weight("gate", (spec.experts, spec.hidden))
    bias = L.weight("bias", (spec.experts,)) if spec.selection_bias else None
    w = L.ffn_weights(spec.intermediate, spec.activation, experts=spec.experts)
    s = (L.ffn_weights(spec.shared_intermediate, spec.activation, experts=1, prefix="s_")
         if spec.shared_intermediate else None)
    route = dict(k=spec.k, scoring=spec.scoring, bias=bias, renormalize=spec.renormalize,
                 scaling_factor=spec.scaling_factor)
    if spec.groups is not None:
        routing = L.grouped_topk_router(x, gate, num_groups=spec.groups[0],
                                        topk_groups=spec.groups[1], **route)
    else:
        routing = L.topk_router(x, gate, **route)
    routed = L.ffn_experts(spec.activation, **w, name="routed")
    shared = [L.ffn_experts(spec.activation, **s, name="shared")] if s else []
    L.output(L.layer(x, routing, routed, shared=shared))
    L.moe_config = spec
    return L


# -- checkpoints ---------------------------------------------------------------

def _layer_prefix(family: str, layer: int) -> str:
    if family == "mixtral":
        return f"model.layers.{layer}.block_sparse_moe."
    if family == "switch_transformers":
        return f"encoder.block.{layer}.layer.1.mlp."
    return f"model.layers.{layer}.mlp."


def _tensor_names(spec: MoeConfig) -> dict:
    """Our argument -> the family's tensor name(s) under the layer prefix
    (a list: one per expert, stacked)."""
    if spec.family == "mixtral":
        proj = {"w1": "w1", "w3": "w3", "w2": "w2"}
        expert = "experts.{e}.{p}.weight"
    elif spec.family == "switch_transformers":
        proj = {"w1": "wi", "w2": "wo"}
        expert = "experts.expert_{e}.{p}.weight"
    else:
        proj = {"w1": "gate_proj", "w3": "up_proj", "w2": "down_proj"}
        expert = "experts.{e}.{p}.weight"
    gated = spec.activation in ("swiglu", "geglu")
    names = {"gate": ["router.classifier.weight" if spec.family == "switch_transformers"
                      else "gate.weight"]}
    if spec.selection_bias:
        names["bias"] = ["gate.e_score_correction_bias"]
    for ours in ("w1", "w3", "w2"):
        if ours in proj and (gated or ours != "w3"):
            names[ours] = [expert.format(e=e, p=proj[ours]) for e in range(spec.experts)]
    if spec.shared_intermediate:
        for ours, theirs in (("s_w1", "gate_proj"), ("s_w3", "up_proj"), ("s_w2", "down_proj")):
            names[ours] = [f"shared_experts.{theirs}.weight"]
    return names


def _check_sparse_layer(cfg: dict, family: str, layer: int) -> None:
    """A dense layer of a model whose MoE layers alternate is a clear error."""
    if family.startswith("deepseek"):
        first, freq = cfg.get("first_k_dense_replace", 0) or 0, cfg.get("moe_layer_freq", 1) or 1
        if layer < first or layer % freq:
            raise ValueError(f"layer {layer} of this {family} model is dense (first_k_dense_replace"
                             f"={first}, moe_layer_freq={freq}): it has no MoE weights")
    if family == "switch_transformers":
        step = cfg.get("encoder_sparse_step", 1) or 0
        if step <= 0 or (layer % step != 1 and step != 1):
            raise ValueError(f"encoder block {layer} of this Switch model is dense "
                             f"(encoder_sparse_step={step}): it has no MoE weights")
    if family in ("qwen2_moe", "qwen3_moe"):
        step = cfg.get("decoder_sparse_step", 1) or 1
        if layer in (cfg.get("mlp_only_layers") or []) or (layer + 1) % step:
            raise ValueError(f"layer {layer} of this {family} model is dense (mlp_only_layers, "
                             f"decoder_sparse_step={step}): it has no MoE weights")


def _as_f32(value, name: str) -> _np.ndarray:
    """A checkpoint tensor (numpy: BF16 is uint16 bits; or a torch tensor) as float32."""
    if hasattr(value, "detach"):  # a torch tensor or parameter
        value = value.detach().cpu().float().numpy()
    a = _np.asarray(value)
    if a.dtype == _np.uint16:  # BF16 bit patterns (moec.load_safetensors)
        return (a.astype(_np.uint32) << 16).view(_np.float32)
    if a.dtype not in (_np.float32, _np.float16, _np.float64):
        raise TypeError(f"tensor {name!r} has dtype {a.dtype}; expected a floating-point weight")
    return a.astype(_np.float32)


def map_layer_weights(tensors: Mapping, config, layer: int = 0, prefix: Optional[str] = None,
                      **overrides) -> dict:
    """The arguments of ``from_config(config)`` (``gate``, ``w1``, ...) from a
    state dict or checkpoint ``tensors`` (name -> numpy array or torch tensor)
    that names them as the family does, e.g.
    ``model.layers.N.block_sparse_moe.experts.E.w1.weight``: experts stacked
    in id order, float32 (BF16/F16 widened). ``prefix`` replaces the layer's
    name prefix (e.g. a decoder block of Switch). Missing tensors are a
    KeyError and wrong shapes a ValueError, naming the tensor."""
    cfg = {**read_config(config), **overrides}
    spec = moe_config(cfg)
    _check_sparse_layer(cfg, spec.family, layer)
    prefix = _layer_prefix(spec.family, layer) if prefix is None else prefix
    expected = {v.name: v.shape for v in from_config(cfg).arguments}
    weights = {}
    for ours, names in _tensor_names(spec).items():
        parts = []
        for n in names:
            full = prefix + n
            if full not in tensors:
                raise KeyError(f"the checkpoint has no tensor {full!r} (layer {layer} of a "
                               f"{spec.family} model)")
            parts.append(_as_f32(tensors[full], full))
        want = expected[ours]
        got = parts[0].shape if ours in ("gate", "bias") else (len(parts),) + parts[0].shape
        if tuple(got) != tuple(want) or any(p.shape != parts[0].shape for p in parts):
            raise ValueError(f"tensor {prefix + names[0]!r} has shape {list(parts[0].shape)}; "
                             f"{ours!r} needs {list(want)} (from the configuration)")
        weights[ours] = parts[0] if ours in ("gate", "bias") else _np.stack(parts)
    return weights


class _Checkpoint(Mapping):
    """The tensors of one .safetensors file or of every one in a directory
    (sharded checkpoints), memory-mapped."""

    def __init__(self, path):
        from .quantization import load_safetensors
        path = os.fspath(path)
        files = sorted(glob.glob(os.path.join(path, "*.safetensors"))) if os.path.isdir(path) \
            else [path]
        if not files:
            raise FileNotFoundError(f"no .safetensors file in {path!r}")
        self._files = [load_safetensors(f) for f in files]

    def __getitem__(self, name):
        for f in self._files:
            if name in f:
                return f[name]
        raise KeyError(name)

    def __iter__(self):
        for f in self._files:
            yield from f

    def __len__(self):
        return sum(len(f) for f in self._files)


def load_layer_weights(path: Union[str, os.PathLike], config=None, layer: int = 0,
                       prefix: Optional[str] = None, **overrides):
    """Layer ``layer`` of a safetensors checkpoint (a file or a directory of
    shards) compiled for the CPU and prepared: a :class:`moec.Prepared`
    called with ``x`` [T, H]. ``config`` defaults to the config.json beside
    the checkpoint."""
    from . import compile as _compile
    if config is None:
        directory = path if os.path.isdir(path) else os.path.dirname(os.fspath(path))
        config = os.path.join(directory, "config.json")
    cfg = {**read_config(config), **overrides}
    weights = map_layer_weights(_Checkpoint(path), cfg, layer, prefix)
    return _compile(from_config(cfg)).prepare(**weights)
