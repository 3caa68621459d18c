#!/usr/bin/env python3
"""moec quickstart: build an MoE++-style layer in Python, compile it, run it.

The layer: 6 SwiGLU FFN experts, 2 null (zero) experts, 1 copy expert and
1 constant expert in one table, routed by a top-p router (p = 0.7, at most 3
experts per token), so confident tokens use fewer experts and slots routed
to null/copy/constant experts cost (almost) nothing.

Run from the repository root after building:

    PYTHONPATH=build/python python3 examples/python/quickstart.py
"""

import math
import time

import numpy as np

import moec

H, I, T = 64, 128, 256          # hidden size, FFN size, tokens
N_FFN, N_NULL, N_COPY, N_CONST = 6, 2, 1, 1
E = N_FFN + N_NULL + N_COPY + N_CONST

# --- 1. describe the layer ---------------------------------------------------
L = moec.Layer(hidden=H)
x = L.hidden("x")                                   # [T, H], T dynamic
gate = L.weight("gate", (E, H))                     # router
w = L.ffn_weights(I, "swiglu", experts=N_FFN)       # w1, w3 [6, I, H], w2 [6, H, I]
consts = L.weight("consts", (N_CONST, H))
routing = L.topp_router(x, gate, threshold=0.7, max_k=3)
ffn = L.ffn_experts("swiglu", **w)                  # ids 0-5
null = L.zero_experts(N_NULL, name="null")          # ids 6-7
copy = L.copy_experts(N_COPY)                       # id 8
const = L.const_experts(consts)                     # id 9
L.output(L.layer(x, routing, [ffn, null, copy, const]))

print("== the layer, as MLIR (moe dialect) ==")
print(L.to_mlir())

# --- 2. compile it for this CPU ----------------------------------------------
fn = moec.compile(L)
print(f"compiled '{fn.entry}' in {fn.compile_seconds:.3f} s")
print("stages:")
for name, text in fn.stages:
    print(f"  {name:<9} {len(text.splitlines()):6d} lines")

# --- 3. run it on numpy arrays ----------------------------------------------
rng = np.random.default_rng(0)


def uniform(*shape, scale=1.0):
    a = scale * math.sqrt(3.0 / shape[-1])
    return rng.uniform(-a, a, size=shape).astype(np.float32)


args = {"x": uniform(T, H), "gate": uniform(E, H, scale=16.0),
        "w1": uniform(N_FFN, I, H), "w3": uniform(N_FFN, I, H), "w2": uniform(N_FFN, H, I),
        "consts": uniform(N_CONST, H)}
inputs = [args[v.name] for v in L.arguments]
y = fn(*inputs)
start = time.perf_counter()
for _ in range(10):
    fn(*inputs)
print(f"ran on T = {T} tokens: output {y.shape} {y.dtype}, "
      f"{(time.perf_counter() - start) / 10 * 1e3:.2f} ms per call")


# --- 4. check against a plain numpy implementation (float64) -----------------
def f32(a):
    return np.asarray(a, np.float64).astype(np.float32).astype(np.float64)


def numpy_layer(x, gate, w1, w3, w2, consts, threshold=0.7, max_k=3):
    x = x.astype(np.float64)
    z = f32(x @ gate.astype(np.float64).T)                      # logits, stored as f32
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p = f32(p / p.sum(axis=1, keepdims=True))                   # softmax, stored as f32
    y = np.zeros_like(x)
    used, kinds = [], np.zeros(4, dtype=int)   # experts per token; slots per expert kind
    for t in range(x.shape[0]):
        cum, k = 0.0, 0
        for e in np.argsort(-p[t], kind="stable"):              # best first, ties: lower id
            k += 1
            cum += p[t, e]
            wt = f32(p[t, e])
            kinds[np.searchsorted(np.cumsum([N_FFN, N_NULL, N_COPY, N_CONST]), e, "right")] += 1
            if e < N_FFN:                                       # SwiGLU expert
                u = w1[e].astype(np.float64) @ x[t]
                mid = f32(u / (1 + np.exp(-u)) * (w3[e].astype(np.float64) @ x[t]))
                y[t] += wt * (w2[e].astype(np.float64) @ mid)
            elif e < N_FFN + N_NULL:                            # null expert: nothing
                pass
            elif e < N_FFN + N_NULL + N_COPY:                   # copy expert: w * x
                y[t] += wt * x[t]
            else:                                               # constant expert: w * c
                y[t] += wt * consts[e - N_FFN - N_NULL - N_COPY]
            if cum >= np.float32(threshold) or k == max_k:
                break
        used.append(k)
    return f32(y), np.array(used), kinds


want, used, kinds = numpy_layer(**args)
err = np.abs(y - want).max()
rel = np.linalg.norm(y - want) / np.linalg.norm(want)
print(f"experts per token (top-p): min {used.min()}, mean {used.mean():.2f}, max {used.max()}; "
      f"slots: {kinds[0]} FFN, {kinds[1]} null, {kinds[2]} copy, {kinds[3]} constant")
print(f"check vs numpy: max abs error {err:.2e}, relative error {rel:.2e} "
      f"(bound 1e-4): {'PASS' if rel <= 1e-4 else 'FAIL'}")

# The reference interpreter (the dialect's semantics, in C++) agrees too.
y_ref = moec.reference(L, *inputs)
print(f"check vs the reference interpreter: max abs error {np.abs(y - y_ref).max():.2e}")

print("\nthe 'expanded' stage (trivial experts folded, the layer split into dispatch, grouped FFN"
      " and combine; fn.stage(name) gives any stage):")
print(fn.stage("expanded"))
raise SystemExit(0 if rel <= 1e-4 else 1)
