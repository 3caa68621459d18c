"""``moec.torch``: a compiled, prepared moec layer as a ``torch.nn.Module``.

    import torch, moec, moec.torch
    block = moec.torch.MoE(moec.from_config("config.json"), weights)   # weights by argument name
    block = moec.torch.MoE.from_state_dict(config, model.state_dict(), layer=3)
    y = block(x)                                   # CPU float32 [..., H] -> [..., H]

Inference only: the weights are bound once (packed by the compiler's
prepare step, from ``nn.Parameter``s, tensors or numpy arrays); changing
the parameters afterwards does not change the layer until ``bind`` is
called again. ``forward`` reads ``x`` and returns a tensor sharing the
result's memory (zero copy both ways, through DLPack); a wrong dtype, shape, device or a
tensor requiring grad raises TypeError/ValueError naming the argument.
"""

from __future__ import annotations

from typing import Mapping, Optional

import torch

from . import Layer, compile as _compile, from_config, map_layer_weights

__all__ = ["MoE"]


class MoE(torch.nn.Module):
    """A moec layer (a :class:`moec.Layer`, MLIR text or path) compiled for
    the CPU, with its weights bound by :meth:`bind`. ``forward(x, *rest)``
    takes the activations (``x`` [..., H] float32; leading dimensions are
    flattened into tokens) and returns the result in ``x``'s shape (a layer
    with several results: their tuple, tokens flattened). ``stats=True``
    (a compile option) keeps each forward's routing statistics as
    ``last_stats``."""

    def __init__(self, layer, weights: Optional[Mapping] = None, **compile_options):
        super().__init__()
        self.compiled = _compile(layer, **compile_options)
        self.layer = layer if isinstance(layer, Layer) else None
        self.hidden_size = self.compiled.signature[0][0][0][-1]
        self.prepared = None
        if weights is not None:
            self.bind(weights)

    @classmethod
    def from_config(cls, config, state_dict: Mapping, layer: int = 0,
                    prefix: Optional[str] = None, **overrides) -> "MoE":
        """The MoE layer of a model family (:func:`moec.from_config`) with the
        weights of layer ``layer`` taken from a state dict that names them as
        the family does (:func:`moec.map_layer_weights`)."""
        weights = map_layer_weights(state_dict, config, layer, prefix, **overrides)
        return cls(from_config(config, **overrides), weights)

    def bind(self, weights: Mapping) -> "MoE":
        """Packs the weights (argument name -> tensor, Parameter or array;
        ``self.compiled.weight_names`` lists them) into the layer; the
        tensors are not referenced afterwards."""
        if isinstance(weights, torch.nn.Module):
            weights = dict(weights.named_parameters())
        if not isinstance(weights, Mapping):
            raise TypeError(f"weights must map argument names to tensors, got {type(weights).__name__}")
        detached = {name: w.detach() if isinstance(w, torch.Tensor) else w
                    for name, w in weights.items()}
        with torch.no_grad():
            self.prepared = self.compiled.prepare(**detached)
        return self

    def forward(self, x: torch.Tensor, *activations) -> torch.Tensor:
        if self.prepared is None:
            raise RuntimeError("the layer has no weights yet: call bind(weights) first")
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() < 1 or x.shape[-1] != self.hidden_size:
            raise ValueError(f"x must be [..., {self.hidden_size}], got {list(x.shape)}")
        tokens = x.reshape(-1, self.hidden_size)
        y = self.prepared(tokens, *activations)
        return y if isinstance(y, tuple) else y.reshape(x.shape)

    @property
    def last_stats(self):
        """The routing statistics of the last forward (a list of
        moec.stats.LayerStats), when built with ``stats=True``; else None."""
        return None if self.prepared is None else self.prepared.last_stats

    def extra_repr(self) -> str:
        return f"'{self.compiled.entry}', hidden_size={self.hidden_size}, " \
               f"bound={self.prepared is not None}"
