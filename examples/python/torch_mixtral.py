#!/usr/bin/env python3
"""A small Mixtral-like sparse MoE block in PyTorch, replaced by moec.

The block is written in plain torch as Mixtral's is (softmax router, top-2,
renormalized, SwiGLU experts w1/w3/w2, a per-expert loop with index_add_).
moec builds the same layer from the Mixtral configuration fields
(moec.from_config), takes the block's weights from its state dict by
Mixtral's tensor names, and runs it as an nn.Module (moec.torch.MoE).
The script checks both agree and times both on the same tokens.

    PYTHONPATH=build/python /usr/bin/python3 examples/python/torch_mixtral.py
"""

import statistics
import time

import torch
from torch import nn
from torch.nn import functional as F

import moec
import moec.torch

CONFIG = dict(model_type="mixtral", hidden_size=256, intermediate_size=512,
              num_local_experts=8, num_experts_per_tok=2, hidden_act="silu")
TOKENS, REPEAT = 256, 20


class Expert(nn.Module):
    def __init__(self, hidden, inter):
        super().__init__()
        self.w1 = nn.Linear(hidden, inter, bias=False)
        self.w3 = nn.Linear(hidden, inter, bias=False)
        self.w2 = nn.Linear(inter, hidden, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class SparseMoeBlock(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        h, e = cfg["hidden_size"], cfg["num_local_experts"]
        self.k = cfg["num_experts_per_tok"]
        self.gate = nn.Linear(h, e, bias=False)
        self.experts = nn.ModuleList(Expert(h, cfg["intermediate_size"]) for _ in range(e))

    def forward(self, x):
        weights, ids = torch.topk(F.softmax(self.gate(x), dim=-1), self.k, dim=-1)
        weights = weights / weights.sum(dim=-1, keepdim=True)
        out = torch.zeros_like(x)
        for e, expert in enumerate(self.experts):
            tok, slot = torch.where(ids == e)
            if tok.numel():
                out.index_add_(0, tok, expert(x[tok]) * weights[tok, slot, None])
        return out


def median_us(fn, x):
    fn(x)
    times = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def main():
    torch.manual_seed(0)
    block = SparseMoeBlock(CONFIG).eval()
    # The block's parameters under Mixtral's checkpoint names for layer 0.
    state = {"model.layers.0.block_sparse_moe." + k: v for k, v in block.state_dict().items()}
    start = time.perf_counter()
    layer = moec.torch.MoE.from_config(CONFIG, state, layer=0)
    print(f"moec: built, compiled and prepared the layer in {time.perf_counter() - start:.2f} s")

    x = torch.randn(TOKENS, CONFIG["hidden_size"])
    with torch.no_grad():
        want = block(x)
        got = layer(x)
        error = float((got - want).abs().max() / want.abs().max())
        print(f"check vs torch: max rel error {error:.2e} (bound 1e-4): "
              f"{'PASS' if error <= 1e-4 else 'FAIL'}")
        eager, compiled = median_us(block, x), median_us(layer, x)
    print(f"time for {TOKENS} tokens (median of {REPEAT}, {torch.get_num_threads()} threads): "
          f"torch eager {eager:.0f} us, moec {compiled:.0f} us, speedup {eager / compiled:.1f}x")
    return 0 if error <= 1e-4 else 1


if __name__ == "__main__":
    raise SystemExit(main())
