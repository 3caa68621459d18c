#!/usr/bin/env python3
"""Routing report: run a layer on skewed inputs with routing statistics on,
print them and plot the expert load and the distribution of k.

The layer (default examples/adamoe.mlir: top-p routing over 6 SwiGLU
experts and 4 null experts, so k varies per token) is compiled with
``stats=True``; its input leans toward a few experts' gate rows with
Zipf-like weights, the way real token streams load some experts far more
than others. The PNG has two panels: tokens per expert (null experts
hatched) and how many tokens used k = 0..K slots.

    PYTHONPATH=build/python /usr/bin/python3 examples/python/routing_report.py --output report.png
"""

import argparse
import pathlib

import matplotlib
matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt
import numpy as np

import moec

ROOT = pathlib.Path(__file__).resolve().parents[2]


def skewed_tokens(gate, tokens, seed, zipf=1.2):
    """x = noise + a push toward one expert's gate row, the expert drawn
    with Zipf weights (expert i with probability ~ 1 / (i + 1)^zipf)."""
    rng = np.random.default_rng(seed)
    experts, hidden = gate.shape
    p = 1.0 / np.arange(1, experts + 1) ** zipf
    favourite = rng.choice(experts, size=tokens, p=p / p.sum())
    a = (3.0 / hidden) ** 0.5
    push = gate[favourite] / np.linalg.norm(gate[favourite], axis=1, keepdims=True)
    # Scaled so the router is confident on some tokens and not on others:
    # top-p then stops after 1 to max_k experts.
    return (12 * (rng.uniform(-a, a, size=(tokens, hidden)) + a * push)).astype(np.float32)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", default=str(ROOT / "examples" / "adamoe.mlir"),
                        help="an .mlir file whose first argument is x [T, H] and second the "
                             "router gate [E, H]")
    parser.add_argument("--tokens", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="routing_report.png")
    args = parser.parse_args()

    fn = moec.compile(args.layer, stats=True)
    inputs = moec.random_inputs(fn, tokens=args.tokens, seed=args.seed)
    inputs[0] = skewed_tokens(inputs[1], args.tokens, args.seed + 1)
    _, stats = fn(*inputs, stats=True)
    s = stats[0]

    print(f"layer {s.layer} ({pathlib.Path(args.layer).name}:{s.line}): E = {s.num_experts}, "
          f"K = {s.k}, {s.tokens} tokens ({s.tokens_skipped} skipped)")
    print(f"tokens per expert: {s.tokens_per_expert.tolist()}")
    print(f"slots per token (k = 0..{s.k}): {s.slots_per_token.tolist()}, mean k "
          f"{s.mean_slots:.2f}")
    dropped = "no capacity op" if s.dropped_pairs is None else s.dropped_pairs
    print(f"pairs routed {s.routed_pairs}, dropped {dropped}")
    print(f"expert FLOPs {s.flops:.4g} of {s.flops_full:.4g} (every token in all K slots of "
          f"the costliest expert): {100 * s.flops_saved_fraction:.1f} % saved")

    fig, (load, ks) = plt.subplots(1, 2, figsize=(10, 4))
    free = s.expert_flops == 0
    bars = load.bar(np.arange(s.num_experts), s.tokens_per_expert, color="tab:blue")
    for bar, is_free in zip(bars, free):
        if is_free:
            bar.set_hatch("//")
            bar.set_facecolor("white")
            bar.set_edgecolor("tab:blue")
    load.axhline(s.routed_pairs / s.num_experts, color="gray", linestyle="--",
                 label="even load")
    load.set_xlabel("expert (hatched: null, no FLOPs)")
    load.set_ylabel("tokens routed")
    load.set_title("expert load")
    load.legend()
    ks.bar(np.arange(s.k + 1), s.slots_per_token, color="tab:orange")
    ks.set_xlabel("slots used (k)")
    ks.set_ylabel("tokens")
    ks.set_title(f"k per token (mean {s.mean_slots:.2f}; {100 * s.flops_saved_fraction:.0f} % "
                 f"FLOPs saved)")
    fig.suptitle(f"{pathlib.Path(args.layer).name}, {s.tokens} skewed tokens")
    fig.tight_layout()
    fig.savefig(args.output, dpi=100)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
