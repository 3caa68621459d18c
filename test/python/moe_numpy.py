"""A numpy implementation of the moe dialect's ops, written for the tests.

Independent of the C++ code (reference interpreter and compiler): it follows
docs/dialect.md directly, in float64, rounding to float32 exactly where the
spec says a stored tensor is rounded (router logits, scores, routing
weights, the FFN's intermediate activation, op outputs).  Inputs are numpy
arrays (float32 / int32 / int64); outputs are float64 arrays holding
float32-representable values, and routings are (ids int64 [T, K],
weights float64 [T, K]).
"""

import math

import numpy as np


def f32(a):
    """Round to float32, keep computing in float64."""
    return np.asarray(a, dtype=np.float64).astype(np.float32).astype(np.float64)


def d(a):
    return np.asarray(a, dtype=np.float64)


# --- scalar functions --------------------------------------------------------

_erf = np.vectorize(math.erf, otypes=[np.float64])


def silu(v):
    return v / (1.0 + np.exp(-v))


def gelu(v):
    return 0.5 * v * (1.0 + _erf(v / math.sqrt(2.0)))


def relu(v):
    return np.where(v > 0, v, 0.0)


ACT = {"swiglu": silu, "geglu": gelu, "gelu": gelu, "relu": relu, "silu": silu}
GATED = ("swiglu", "geglu")


def softmax(z):
    u = np.exp(z - z.max(axis=-1, keepdims=True))
    return f32(u / u.sum(axis=-1, keepdims=True))


def sigmoid(z):
    return f32(np.where(z >= 0, 1.0 / (1.0 + np.exp(-np.abs(z))),
                        np.exp(-np.abs(z)) / (1.0 + np.exp(-np.abs(z)))))


def score(z, scoring):
    return softmax(z) if scoring == "softmax" else sigmoid(z)


def logits(x, gate):
    z = f32(d(x) @ d(gate).T)
    if not np.all(np.isfinite(z)):
        raise FloatingPointError("router logit is not finite")
    return z


def ranked(v):
    """Indices by descending v, ties to the lower index."""
    return np.argsort(-np.asarray(v), kind="stable")


def fill(chosen, v, K, renormalize=False, scaling_factor=1.0):
    """fillSlots of §3.1 for one token: (ids [K], weights [K])."""
    ids = np.full(K, -1, dtype=np.int64)
    w = np.zeros(K)
    total = sum(v[c] for c in chosen)
    for j, c in enumerate(chosen):
        wj = v[c]
        if renormalize and total > 0:
            wj = wj / total
        ids[j] = c
        w[j] = f32(wj * float(np.float32(scaling_factor)))
    return ids, w


def _stack(rows):
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    w = np.array([r[1] for r in rows], dtype=np.float64)
    return ids, w


# --- routers -----------------------------------------------------------------

def topk_router(x, gate, k, scoring="softmax", bias=None, renormalize=False, scaling_factor=1.0):
    s = score(logits(x, gate), scoring)
    b = s + (d(bias) if bias is not None else 0.0)
    return _stack([fill(ranked(b[t])[:k], s[t], k, renormalize, scaling_factor)
                   for t in range(s.shape[0])])


def grouped_topk_router(x, gate, k, num_groups, topk_groups, scoring="sigmoid", bias=None,
                        renormalize=False, scaling_factor=1.0):
    s = score(logits(x, gate), scoring)
    b = s + (d(bias) if bias is not None else 0.0)
    E = s.shape[1]
    gs = E // num_groups
    rows = []
    for t in range(s.shape[0]):
        group_scores = [np.sort(b[t, g * gs:(g + 1) * gs])[::-1][:min(2, gs)].sum()
                        for g in range(num_groups)]
        kept = ranked(group_scores)[:topk_groups]
        masked = np.full(E, -np.inf)
        for g in kept:
            masked[g * gs:(g + 1) * gs] = b[t, g * gs:(g + 1) * gs]
        rows.append(fill(ranked(masked)[:k], s[t], k, renormalize, scaling_factor))
    return _stack(rows)


def topp_router(x, gate, threshold, max_k, renormalize=False, scaling_factor=1.0):
    p = softmax(logits(x, gate))
    thr = float(np.float32(threshold))
    rows = []
    for t in range(p.shape[0]):
        chosen, cum = [], 0.0
        for e in ranked(p[t]):
            chosen.append(e)
            cum += p[t, e]
            if cum >= thr or len(chosen) == max_k:
                break
        rows.append(fill(chosen, p[t], max_k, renormalize, scaling_factor))
    return _stack(rows)


def relu_router(x, gate, slots=None, scaling_factor=1.0):
    z = logits(x, gate)
    K = z.shape[1] if slots is None else slots
    rows = []
    for t in range(z.shape[0]):
        chosen = [e for e in ranked(z[t]) if z[t, e] > 0][:K]
        rows.append(fill(chosen, z[t], K, False, scaling_factor))
    return _stack(rows)


def expert_choice_router(x, gate, capacity, scoring="softmax", scaling_factor=1.0):
    S = score(logits(x, gate), scoring)
    T, E = S.shape
    c = min(capacity, T)
    taken = np.zeros((T, E), dtype=bool)
    for e in range(E):
        taken[ranked(S[:, e])[:c], e] = True
    return _stack([fill([e for e in range(E) if taken[t, e]], S[t], E, False, scaling_factor)
                   for t in range(T)])


def hash_router(token_ids, num_experts):
    u = np.asarray(token_ids).astype(np.int64) & 0xFFFFFFFF
    ids = ((u * 2654435761) % (1 << 32)) % num_experts
    return ids.reshape(-1, 1).astype(np.int64), np.ones((len(u), 1))


def capacity_drop(ids, w, num_experts, capacity_factor):
    ids, w = np.array(ids, dtype=np.int64), d(w).copy()
    T, K = ids.shape
    if np.any((ids < -1) | (ids >= num_experts)):
        raise ValueError("expert id outside [-1, E)")
    C = math.ceil(float(np.float32(capacity_factor)) * T * K / num_experts)
    load = np.zeros(num_experts, dtype=np.int64)
    for s in range(K):
        for t in range(T):
            e = ids[t, s]
            if e == -1:
                continue
            if load[e] < C:
                load[e] += 1
            else:
                ids[t, s], w[t, s] = -1, 0.0
    return ids, w


def path_router(x, gate):
    return np.argmax(logits(x, gate), axis=1)  # first maximum: ties to the lower path


# --- experts -----------------------------------------------------------------
# A bank is a dict {"kind": ..., "count": N, ...}; expert n of a bank maps
# x [T, H] (float64) to [T, H] (float64, not rounded).

def ffn_bank(activation, w1, w2, w3=None):
    return {"kind": "ffn", "count": w1.shape[0], "act": activation,
            "w1": d(w1), "w3": None if w3 is None else d(w3), "w2": d(w2)}


def lora_bank(activation, w1, w2, a1, b1, a2, b2, alpha, w3=None, a3=None, b3=None):
    return {"kind": "lora", "count": a1.shape[0], "act": activation, "alpha": alpha,
            "w1": d(w1), "w3": None if w3 is None else d(w3), "w2": d(w2),
            "a1": d(a1), "b1": d(b1), "a3": None if a3 is None else d(a3),
            "b3": None if b3 is None else d(b3), "a2": d(a2), "b2": d(b2)}


def zero_bank(n):
    return {"kind": "zero", "count": n}


def copy_bank(n):
    return {"kind": "copy", "count": n}


def const_bank(values):
    return {"kind": "const", "count": values.shape[0], "values": d(values)}


def _ffn(x, act, w1, w3, w2):
    u = x @ w1.T
    mid = ACT[act](u) * (x @ w3.T) if act in GATED else ACT[act](u)
    return f32(mid) @ w2.T


def apply_expert(bank, n, x):
    x = d(x)
    kind = bank["kind"]
    if kind == "ffn":
        w3 = bank["w3"][n] if bank["w3"] is not None else None
        return _ffn(x, bank["act"], bank["w1"][n], w3, bank["w2"][n])
    if kind == "lora":
        r = bank["a1"].shape[1]
        scale = float(np.float32(bank["alpha"])) / r

        def proj(W, A, B, v):
            return v @ W.T + scale * ((v @ A[n].T) @ B[n].T)
        u = proj(bank["w1"], bank["a1"], bank["b1"], x)
        if bank["act"] in GATED:
            mid = ACT[bank["act"]](u) * proj(bank["w3"], bank["a3"], bank["b3"], x)
        else:
            mid = ACT[bank["act"]](u)
        return proj(bank["w2"], bank["a2"], bank["b2"], f32(mid))
    if kind == "zero":
        return np.zeros_like(x)
    if kind == "copy":
        return x.copy()
    if kind == "const":
        return np.broadcast_to(bank["values"][n], x.shape).copy()
    raise ValueError(kind)


def layer(x, ids, w, banks, shared=()):
    x = d(x)
    ids = np.asarray(ids)
    w = d(w)
    table = [(b, n) for b in banks for n in range(b["count"])]
    E = len(table)
    if np.any((ids < -1) | (ids >= E)):
        raise ValueError("expert id outside [-1, E)")
    y = np.zeros_like(x)
    for s in range(ids.shape[1]):
        for e in range(E):
            rows = np.nonzero(ids[:, s] == e)[0]
            if len(rows):
                bank, n = table[e]
                y[rows] += w[rows, s, None] * apply_expert(bank, n, x[rows])
    for bank in shared:
        for n in range(bank["count"]):
            y += apply_expert(bank, n, x)
    return f32(y)


def ffn(x, activation, w1, w2, w3=None):
    return f32(_ffn(d(x), activation, d(w1), None if w3 is None else d(w3), d(w2)))


# --- skips -------------------------------------------------------------------

def skip_block(x, router, body, capacity_fraction=None, threshold=None, scale_by_score=False):
    x = d(x)
    r = f32(x @ d(router))
    T = x.shape[0]
    if capacity_fraction is not None:
        n = min(T, math.ceil(float(np.float32(capacity_fraction)) * T))
        selected = np.sort(ranked(r)[:n])
    else:
        selected = np.nonzero(r > float(np.float32(threshold)))[0]
    y = x.copy()
    f = d(body(x[selected]))
    g = r[selected, None] if scale_by_score else 1.0
    y[selected] = f32(x[selected] + g * f)
    return y


def path_select(x, paths, branches):
    x = d(x)
    paths = np.asarray(paths)
    if np.any((paths < 0) | (paths > len(branches))):
        raise ValueError("path outside [0, P]")
    y = x.copy()
    for p, branch in enumerate(branches, 1):
        tokens = np.nonzero(paths == p)[0]
        f = d(branch(x[tokens]))
        y[tokens] = f32(x[tokens] + f)
    return y


def rel_error(got, want):
    """Normwise relative error ||got - want|| / ||want||."""
    got, want = d(got), d(want)
    den = np.linalg.norm(want)
    return np.linalg.norm(got - want) / (den if den > 0 else 1.0)
