"""Sparse MoE blocks written in plain torch as the model families write them
(Hugging Face style: a router, top-k, a per-expert loop with index_add_),
independent of moec: the references for moec.torch and moec.from_config.
Their parameter names are the families' checkpoint names under the layer
prefix (gate.weight, experts.E.w1.weight, ...). Imported only when torch is."""

import torch
from torch import nn
from torch.nn import functional as F


class GatedMLP(nn.Module):
    """down(act(gate(x)) * up(x)); Mixtral names them w1, w3, w2."""

    def __init__(self, hidden, inter, names=("gate_proj", "up_proj", "down_proj"), act=F.silu):
        super().__init__()
        self.names, self.act = names, act
        setattr(self, names[0], nn.Linear(hidden, inter, bias=False))
        setattr(self, names[1], nn.Linear(hidden, inter, bias=False))
        setattr(self, names[2], nn.Linear(inter, hidden, bias=False))

    def forward(self, x):
        g, u, d = (getattr(self, n) for n in self.names)
        return d(self.act(g(x)) * u(x))


class PlainMLP(nn.Module):
    """Switch's expert: wo(relu(wi(x)))."""

    def __init__(self, hidden, inter):
        super().__init__()
        self.wi = nn.Linear(hidden, inter, bias=False)
        self.wo = nn.Linear(inter, hidden, bias=False)

    def forward(self, x):
        return self.wo(F.relu(self.wi(x)))


def combine(x, experts, ids, weights):
    """Σ_slots weight · expert(x): the per-expert loop with index_add_."""
    out = torch.zeros_like(x)
    for e, expert in enumerate(experts):
        tok, slot = torch.where(ids == e)
        if tok.numel():
            out.index_add_(0, tok, expert(x[tok]) * weights[tok, slot, None])
    return out


def randomize(module, scale=None, seed=0):
    """Parameters uniform in ±sqrt(3 / fan_in) (a fixed seed), in place."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            a = scale if scale is not None else (3.0 / p.shape[-1]) ** 0.5
            p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) * a)
    return module


class SoftmaxTopK(nn.Module):
    """Mixtral (renormalize), Qwen3-MoE / OLMoE (norm_topk_prob), DeepSeek-V2
    greedy (scaling when not renormalized) and Switch (k = 1)."""

    def __init__(self, hidden, inter, experts, k, renormalize, scaling=1.0, names=None,
                 shared=0, switch=False):
        super().__init__()
        self.k, self.renormalize, self.scaling = k, renormalize, scaling
        if switch:
            self.router = nn.Module()
            self.router.classifier = nn.Linear(hidden, experts, bias=False)
            self.experts = nn.ModuleDict({f"expert_{e}": PlainMLP(hidden, inter)
                                          for e in range(experts)})
        else:
            self.gate = nn.Linear(hidden, experts, bias=False)
            named = {"names": names} if names else {}
            self.experts = nn.ModuleList(GatedMLP(hidden, inter, **named)
                                         for _ in range(experts))
        self.shared_experts = GatedMLP(hidden, shared) if shared else None

    def forward(self, x):
        gate = self.router.classifier if hasattr(self, "router") else self.gate
        probs = F.softmax(gate(x), dim=-1, dtype=torch.float)
        weights, ids = torch.topk(probs, self.k, dim=-1)
        if self.renormalize:
            weights = weights / weights.sum(dim=-1, keepdim=True)
        else:
            weights = weights * self.scaling
        experts = list(self.experts.values()) if isinstance(self.experts, nn.ModuleDict) \
            else list(self.experts)
        y = combine(x, experts, ids, weights)
        return y + self.shared_experts(x) if self.shared_experts is not None else y


class DeepSeekV3Gate(nn.Module):
    def __init__(self, hidden, experts):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(experts, hidden))
        self.e_score_correction_bias = nn.Parameter(torch.empty(experts))


class DeepSeekV3(nn.Module):
    """Sigmoid scores, e_score_correction_bias for selection only, groups
    ranked by the sum of their top 2, top-k inside the kept groups,
    normalized weights times routed_scaling_factor, plus shared experts (one
    MLP of n_shared · I)."""

    def __init__(self, hidden, inter, experts, k, n_group, topk_group, scaling, n_shared):
        super().__init__()
        self.k, self.n_group, self.topk_group, self.scaling = k, n_group, topk_group, scaling
        self.gate = DeepSeekV3Gate(hidden, experts)
        self.experts = nn.ModuleList(GatedMLP(hidden, inter) for _ in range(experts))
        self.shared_experts = GatedMLP(hidden, inter * n_shared)

    def forward(self, x):
        t, e = x.shape[0], self.gate.weight.shape[0]
        scores = torch.sigmoid(F.linear(x, self.gate.weight))
        choice = scores + self.gate.e_score_correction_bias
        group_scores = choice.view(t, self.n_group, -1).topk(2, dim=-1)[0].sum(dim=-1)
        group_idx = torch.topk(group_scores, self.topk_group, dim=-1, sorted=False)[1]
        group_mask = torch.zeros_like(group_scores).scatter_(1, group_idx, 1)
        score_mask = group_mask.unsqueeze(-1).expand(t, self.n_group, e // self.n_group).reshape(t, e)
        # DeepSeek masks with 0.0 (the tests keep scores + bias positive).
        masked = choice.masked_fill(~score_mask.bool(), 0.0)
        ids = torch.topk(masked, self.k, dim=-1, sorted=False)[1]
        weights = scores.gather(1, ids)
        weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20) * self.scaling
        return combine(x, list(self.experts), ids, weights) + self.shared_experts(x)


class MoEPlusPlus(nn.Module):
    """MoE++: FFN experts, then zero, copy and constant experts under one
    softmax top-k (no renormalization): ids 0..F-1 FFN, then one zero, one
    copy, then the constants."""

    def __init__(self, hidden, inter, ffn, consts, k):
        super().__init__()
        self.k = k
        self.gate = nn.Linear(hidden, ffn + 2 + consts, bias=False)
        self.experts = nn.ModuleList(GatedMLP(hidden, inter, ("w1", "w3", "w2"))
                                     for _ in range(ffn))
        self.consts = nn.Parameter(torch.empty(consts, hidden))

    def forward(self, x):
        weights, ids = torch.topk(F.softmax(self.gate(x), dim=-1), self.k, dim=-1)
        zero = lambda v: torch.zeros_like(v)
        copy = lambda v: v
        const = [lambda v, c=c: self.consts[c].expand_as(v) for c in range(self.consts.shape[0])]
        return combine(x, list(self.experts) + [zero, copy] + const, ids, weights)


def prefixed(state_dict, prefix):
    """A block's state dict under a checkpoint's layer prefix, as numpy-able tensors."""
    return {prefix + k: v.detach() for k, v in state_dict.items()}
