"""Routing statistics of a compiled call (docs/routing-stats.md).

A function compiled with ``moec.compile(..., stats=True)`` counts, in every
call, what each of its ``moe.layer`` ops routed; the call hands the counts
to the runtime, and the Python wrappers keep them as ``fn.last_stats`` (a
list of :class:`LayerStats`, one per layer in the function's pre-order), or
return them with the result when called with ``stats=True``::

    fn = moec.compile("examples/mixtral.mlir", stats=True)
    y, stats = fn(*args, stats=True)
    print(stats[0].tokens_per_expert, stats[0].flops_saved_fraction)
"""

from __future__ import annotations

from typing import List, Optional

import numpy as _np

__all__ = ["LayerStats"]


class LayerStats:
    """What one ``moe.layer`` routed in one call.

    ``tokens``: T of the call (the tokens of the op in the function body that
    holds the layer, before any skip); ``tokens_routed``: tokens the layer
    ran on; ``tokens_skipped`` = tokens - tokens_routed (Mixture-of-Depths,
    threshold skip, a Duo-LLM or SkipDecode path that did not take it);
    ``routed_pairs``: (token, slot) pairs with an expert id in [0, E);
    ``dropped_pairs``: pairs the layer's capacity op (``capacity_drop`` /
    ``capacity_reroute``) removed, ``None`` when its ids come from no such
    op; ``tokens_per_expert`` [E]: rows each expert got (zero, copy and
    constant experts included); ``slots_per_token`` [K + 1]: tokens with
    j = 0..K valid slots (dynamic k); ``expert_flops`` [E] and
    ``shared_flops``: FLOPs of one row through each expert / one token
    through the shared experts (matrix products, 2 per multiply-add;
    zero/copy/constant experts 0); ``flops`` = sum of rows x expert FLOPs +
    tokens_routed x shared_flops; ``flops_full`` = tokens x (K x the
    largest expert FLOPs + shared_flops): every token of the call in all K
    slots of the layer's most expensive expert; ``flops_saved_fraction`` =
    1 - flops / flops_full (0 when flops_full is 0)."""

    __slots__ = ("layer", "line", "num_experts", "k", "tokens", "tokens_routed",
                 "tokens_skipped", "routed_pairs", "dropped_pairs", "tokens_per_expert",
                 "slots_per_token", "expert_flops", "shared_flops", "flops", "flops_full",
                 "flops_saved_fraction")

    def __init__(self, record: dict):
        for name in self.__slots__:
            setattr(self, name, record[name])
        if self.dropped_pairs < 0:
            self.dropped_pairs = None

    @property
    def mean_slots(self) -> float:
        """Mean valid slots per routed token (dynamic k)."""
        routed = int(self.slots_per_token.sum())
        return float(_np.dot(_np.arange(self.k + 1), self.slots_per_token) / routed) if routed else 0.0

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self) -> str:
        dropped = "-" if self.dropped_pairs is None else self.dropped_pairs
        return (f"<LayerStats layer {self.layer} (line {self.line}): E={self.num_experts} "
                f"K={self.k} tokens {self.tokens} routed {self.tokens_routed} skipped "
                f"{self.tokens_skipped}; pairs {self.routed_pairs} dropped {dropped}; "
                f"tokens/expert {self.tokens_per_expert.tolist()}; slots/token "
                f"{self.slots_per_token.tolist()}; FLOPs saved {self.flops_saved_fraction:.4f}>")


def collect(native) -> List[LayerStats]:
    """The records of the call just made on this thread (``_moec.last_stats``)."""
    return [LayerStats(r) for r in native.last_stats()]
