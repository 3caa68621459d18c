#!/usr/bin/env python3
"""Compare a compiled GPU layer against a torch eager per-expert loop, in one run.

    python3 bench/gpu/torch_baseline.py LAYER.ptx LAYER.launch \
        [--runner build-gpu/moe-gpu-run] --tokens 4096 --k 2 [--no-renormalize] \
        [--iters 20] [--warmup 3]

For a Mixtral-like layer (examples/mixtral.mlir with the sizes of MIX-P:
softmax top-k router, SwiGLU experts). The entry's inputs, in order, must be
    x [T, H], gate [E, H], w1 [E, I, H], w3 [E, I, H], w2 [E, H, I]
and its one result y [T, H]; the script reads them from the launch
description (docs/gpu-launch.md) and stops with a message otherwise.

Steps:
 1. runs moe-gpu-run (random inputs, --dump to a temporary directory,
    --json timings);
 2. loads the same inputs into torch on the GPU and runs the layer as a
    torch eager loop: router logits, softmax, top-k, renormalisation, then
    per expert a gather of its tokens, the gate/up matmuls, SwiGLU, the down
    matmul and a weighted scatter-add (index_add_);
 3. computes an f32 torch reference on the same inputs and reports the
    error of both the compiled layer and torch's own low-precision loop
    against it (relative L2 and max abs), so the tolerance is judged against
    what torch itself achieves in that dtype;
 4. prints the timing table (CUDA events for torch, the runner's medians for
    the compiled layer).

Tolerances (relative L2 error vs the f32 reference): f32 inputs 1e-4,
bf16/f16 inputs 2e-2 and at most 2x torch's own error in that dtype. Tokens
whose top-k choice is a near tie can pick a different expert in different
precisions; the report counts tokens whose routing differs from the f32
reference, which explains isolated large per-token errors.

Needs torch with CUDA and numpy; nothing else from this project (no LLVM).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile


def parse_launch(path):
    """The `arg` lines of a launch description: (name, in/out, dtype, dims)."""
    args = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            tokens = line.split("#", 1)[0].split()
            if not tokens or tokens[0] != "arg":
                continue
            if len(tokens) < 5:
                sys.exit(f"{path}:{number}: malformed 'arg' line")
            name, direction, dtype, rank = tokens[1], tokens[2], tokens[3], int(tokens[4])
            dims = tokens[5:5 + rank]
            args.append((name, direction, dtype, dims))
    return args


def check_layout(args):
    inputs = [a for a in args if a[1] == "in"]
    outputs = [a for a in args if a[1] == "out"]
    names = ["x", "gate", "w1", "w3", "w2"]
    if len(inputs) != 5 or len(outputs) != 1:
        sys.exit(f"expected a Mixtral-like layer with inputs {names} and one result; "
                 f"the launch description has {len(inputs)} inputs and {len(outputs)} results")
    (_, _, _, x), (_, _, _, gate), (_, _, _, w1), (_, _, _, w3), (_, _, _, w2) = inputs
    ok = (len(x) == 2 and x[0] == "T" and len(gate) == 2 and len(w1) == 3 and w1 == w3
          and len(w2) == 3 and gate[1] == x[1] and w1[0] == gate[0] and w1[2] == x[1]
          and w2 == [w1[0], w1[2], w1[1]])
    if not ok:
        sys.exit("input shapes do not match x [T,H], gate [E,H], w1/w3 [E,I,H], w2 [E,H,I]: "
                 + ", ".join(f"{a[0]} {a[3]}" for a in inputs))
    return int(gate[0]), int(x[1]), int(w1[1]), inputs[0][2], outputs[0][2]


def load_npy(np, torch, path, dtype, device):
    array = np.load(path)
    if dtype == "bf16":  # dumped as raw uint16 bits
        return torch.from_numpy(array.view(np.int16).copy()).view(torch.bfloat16).to(device)
    return torch.from_numpy(array.copy()).to(device)


def route(torch, x, gate, k, renormalize):
    logits = (x.float() @ gate.float().t())
    probs = torch.softmax(logits, dim=-1)
    weights, ids = torch.topk(probs, k, dim=-1)
    if renormalize:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return ids, weights


def eager_layer(torch, x, gate, w1, w3, w2, k, renormalize):
    """The per-expert loop of a typical eager implementation."""
    ids, weights = route(torch, x, gate, k, renormalize)
    y = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
    for e in range(gate.shape[0]):
        token, slot = torch.nonzero(ids == e, as_tuple=True)
        if token.numel() == 0:
            continue
        xe = x[token]
        h = torch.nn.functional.silu(xe @ w1[e].t()) * (xe @ w3[e].t())
        ye = (h @ w2[e].t()).float() * weights[token, slot].unsqueeze(1)
        y.index_add_(0, token, ye)
    return y, ids


def time_cuda(torch, fn, warmup, iters):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("ptx")
    parser.add_argument("launch")
    parser.add_argument("--runner", default=None,
                        help="moe-gpu-run (default: build-gpu/moe-gpu-run from "
                             "bench/gpu/build-runner.sh, else build/bin/moe-gpu-run)")
    parser.add_argument("--tokens", type=int, default=4096)
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--no-renormalize", action="store_true")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args()

    if options.runner is None:
        candidates = ["build-gpu/moe-gpu-run", "build/bin/moe-gpu-run"]
        options.runner = next((c for c in candidates if os.path.exists(c)), None)
        if options.runner is None:
            sys.exit("no moe-gpu-run: build it with bash bench/gpu/build-runner.sh or pass --runner")

    import numpy as np
    import torch

    if not torch.cuda.is_available():
        sys.exit("torch sees no CUDA device")
    E, H, I, dtype, out_dtype = check_layout(parse_launch(options.launch))
    renormalize = not options.no_renormalize
    T = options.tokens

    with tempfile.TemporaryDirectory() as dump:
        command = [options.runner, options.ptx, options.launch, f"--tokens={T}",
                   f"--iters={options.iters}", f"--warmup={options.warmup}",
                   f"--seed={options.seed}", f"--dump={dump}", "--json"]
        run = subprocess.run(command, capture_output=True, text=True)
        if run.returncode != 0:
            sys.exit(f"{' '.join(command)} failed:\n{run.stdout}{run.stderr}")
        timing = json.loads(run.stdout.strip().splitlines()[-1])
        dev = torch.device("cuda")
        x, gate, w1, w3, w2 = (load_npy(np, torch, os.path.join(dump, f"in{i}.npy"), dtype, dev)
                               for i in range(5))
        y_moe = load_npy(np, torch, os.path.join(dump, "out0.npy"), out_dtype, dev).float()

    with torch.no_grad():
        y_torch, ids_torch = eager_layer(torch, x, gate, w1, w3, w2, options.k, renormalize)
        y_ref, ids_ref = eager_layer(torch, x.float(), gate.float(), w1.float(), w3.float(),
                                     w2.float(), options.k, renormalize)
        torch_ms = time_cuda(torch, lambda: eager_layer(torch, x, gate, w1, w3, w2, options.k,
                                                        renormalize),
                             options.warmup, options.iters)

    def errors(y):
        rel = ((y - y_ref).norm() / y_ref.norm().clamp_min(1e-30)).item()
        return rel, (y - y_ref).abs().max().item()

    moe_rel, moe_max = errors(y_moe)
    torch_rel, torch_max = errors(y_torch)
    rerouted = (ids_torch.sort(dim=-1).values != ids_ref.sort(dim=-1).values).any(dim=-1)
    tolerance = 1e-4 if dtype == "f32" else max(2e-2, 2 * torch_rel)
    passed = moe_rel <= tolerance

    print(f"device        {timing['device']}  (torch {torch.__version__}, "
          f"{torch.cuda.get_device_name()})")
    print(f"layer         E={E} k={options.k} H={H} I={I} T={T} {dtype}")
    print(f"{'':14}{'time ms':>10}  {'rel L2 vs f32':>14}  {'max abs':>10}")
    print(f"{'moe pipelined':14}{timing['pipelined_ms']:10.4f}  {moe_rel:14.3e}  {moe_max:10.3e}")
    print(f"{'moe launch':14}{timing['launch_ms']:10.4f}")
    print(f"{'moe run (H2D)':14}{timing['run_ms']:10.4f}")
    print(f"{'torch eager':14}{torch_ms:10.4f}  {torch_rel:14.3e}  {torch_max:10.3e}")
    print(f"speedup       {torch_ms / timing['pipelined_ms']:.2f}x (torch eager / moe pipelined)")
    print(f"routing       {int(rerouted.sum())} of {T} tokens route differently in {dtype} "
          f"than in f32 (torch)")
    print(f"check         moe rel L2 {moe_rel:.3e} <= {tolerance:.3e}: "
          f"{'PASS' if passed else 'FAIL'}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
