#!/usr/bin/env python3
"""What leaving routing statistics on costs (issue 30): the same layer
compiled with and without ``stats=True``, both prepared, timed in
alternating rounds in one process (median per round, then the median of the
rounds). A one-off measurement, not a test: run it on an idle machine.

    PYTHONPATH=build/python /usr/bin/python3 bench/routing_stats_overhead.py [--rounds 5]

Shapes: QW (Qwen3-MoE-like: E = 128, top-8, H = 512, I = 192) and DS
(E = 64, top-6, H = 1024, I = 256), as moe-bench's QW-D/DS-D, at decode and
prefill token counts.
"""

import argparse
import statistics
import time

import numpy as np

import moec

SHAPES = {
    "QW": dict(model_type="qwen3_moe", hidden_size=512, moe_intermediate_size=192,
               num_experts=128, num_experts_per_tok=8, norm_topk_prob=True, hidden_act="silu"),
    "DS": dict(model_type="mixtral", hidden_size=1024, intermediate_size=256,
               num_local_experts=64, num_experts_per_tok=6, hidden_act="silu"),
}


def median_us(call, x, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call(x)
        times.append(time.perf_counter() - start)
    return 1e6 * statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--shapes", default="QW,DS")
    parser.add_argument("--tokens", default="1,8,512")
    args = parser.parse_args()
    print("shape  T     off_us    on_us   overhead")
    for name in args.shapes.split(","):
        layer = moec.from_config(SHAPES[name])
        plain, recorded = moec.compile(layer), moec.compile(layer, stats=True)
        weights = moec.random_inputs(plain, tokens=1, seed=1)[1:]
        off, on = plain.prepare(*weights), recorded.prepare(*weights)
        for tokens in (int(t) for t in args.tokens.split(",")):
            x = moec.random_inputs(plain, tokens=tokens, seed=2)[0]
            repeat = 200 if tokens <= 8 else 20
            off(x), on(x)  # warm-up
            assert on.last_stats[0].tokens == tokens
            rounds_off, rounds_on = [], []
            for r in range(args.rounds):
                # Either order in turn, so a drift in the machine's load
                # does not favour one side.
                if r % 2:
                    rounds_on.append(median_us(on, x, repeat))
                    rounds_off.append(median_us(off, x, repeat))
                else:
                    rounds_off.append(median_us(off, x, repeat))
                    rounds_on.append(median_us(on, x, repeat))
            a, b = statistics.median(rounds_off), statistics.median(rounds_on)
            print(f"{name:5s} {tokens:4d} {a:9.1f} {b:9.1f} {100 * (b / a - 1):+8.1f} %")


if __name__ == "__main__":
    main()
