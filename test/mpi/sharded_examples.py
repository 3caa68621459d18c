#!/usr/bin/env python3
"""Sharded layers under mpirun match the single-process reference.

    sharded_examples.py BUILD_DIR SOURCE_DIR NP MPIEXEC

At NP ranks: every example of examples/ that holds a moe.layer runs sharded
(moe-run --ranks=NP --mode=both --rtol=1e-5: rank 0 gathers the result and
checks it against the reference interpreter on the whole batch), or, for
the examples whose ops choose tokens across the whole batch (capacity
drop, expert choice, Mixture-of-Depths capacity), is rejected with the
sharding pass's error on every rank. Then the edge cases: uneven token
counts, a rank with zero tokens, every token routed to the last rank's
experts, a placement table, dropped slots (id -1), a bad expert id on one
rank (every rank reports it), and ranks running different layers.
"""
import os
import pathlib
import re
import subprocess
import sys
import tempfile

import numpy as np

BUILD, SOURCE = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
NP, MPIEXEC = int(sys.argv[3]), sys.argv[4]
MOE_RUN = os.path.join(BUILD, "bin", "moe-run")
EXAMPLES = pathlib.Path(SOURCE) / "examples"
MPIRUN = [MPIEXEC, "--allow-run-as-root", "--oversubscribe"]
BATCH_WIDE = re.compile(r"capacity_drop|capacity_reroute|expert_choice_router|capacity_fraction")
failures = []


def mpirun(args, np_=NP, env_timeout="60000"):
    env = dict(os.environ, MOE_MPI_TIMEOUT_MS=env_timeout, MOE_NUM_THREADS="1")
    run = subprocess.run(MPIRUN + ["-np", str(np_)] + args, capture_output=True, text=True,
                         env=env, timeout=300)
    return run.returncode, run.stdout + run.stderr


def expect(name, ok, output):
    print(f"{name}: {'PASS' if ok else 'FAIL'}")
    if not ok:
        failures.append(name)
        print(output)


def expect_match(name, args, tokens_line=None):
    rc, out = mpirun([MOE_RUN] + args + [f"--ranks={NP}", "--mode=both", "--rtol=1e-5"])
    checks = re.findall(r"check result #\d+: .*: (PASS|FAIL)", out)
    ok = rc == 0 and checks and all(c == "PASS" for c in checks)
    if tokens_line:
        ok = ok and tokens_line in out
    expect(name, ok, out)


def examples():
    for path in sorted(EXAMPLES.glob("*.mlir")):
        text = path.read_text()
        if "moe.layer" not in text:
            continue
        name = f"np{NP} {path.name}"
        if BATCH_WIDE.search(text):
            rc, out = mpirun([MOE_RUN, str(path), f"--ranks={NP}", "--mode=both"])
            said = out.count("cannot shard tokens over ranks")
            # Every rank compiles, fails, and prints the agreed message.
            expect(name + " (batch-wide op: rejected on every rank)",
                   rc != 0 and said >= NP, out)
        else:
            expect_match(name, [str(path), "--tokens=37", "--input=random:5"])


def oracle_inputs(tmp, ids):
    """--input flags for examples/oracle.mlir with the given ids [T, 2]."""
    t = ids.shape[0]
    rng = np.random.default_rng(7)
    np.save(tmp / "ids.npy", ids.astype(np.int32))
    np.save(tmp / "w.npy", rng.uniform(0, 1, (t, 2)).astype(np.float32))
    return [f"--tokens={t}", "--input=random:1", f"--input={tmp / 'ids.npy'}", f"--input={tmp / 'w.npy'}",
            "--input=random:2", "--input=random:3", "--input=random:4"]


def edge_cases():
    mixtral = str(EXAMPLES / "mixtral.mlir")
    deepseek = str(EXAMPLES / "deepseek.mlir")
    uneven = [3 + 9 * r for r in range(NP)]
    expect_match(f"np{NP} uneven tokens per rank",
                 [deepseek, f"--tokens={sum(uneven)}",
                  "--rank-tokens=" + ",".join(map(str, uneven))],
                 "tokens per rank: " + " ".join(map(str, uneven)))
    zero = [0] + [10] * (NP - 1)
    expect_match(f"np{NP} rank 0 has no tokens",
                 [mixtral, f"--tokens={sum(zero)}", "--rank-tokens=" + ",".join(map(str, zero))])
    placement = ",".join(str((e * 3 + 1) % NP) for e in range(16))
    expect_match(f"np{NP} placement table", [deepseek, "--tokens=29",
                                             f"--pipeline-options=placement={placement}"])
    with tempfile.TemporaryDirectory() as d:
        tmp = pathlib.Path(d)
        oracle = str(EXAMPLES / "oracle.mlir")
        t = 8 * NP
        # Experts 6 and 7 are the last rank's at 2 and 4 ranks.
        last = np.stack([np.full(t, 7), np.full(t, 6)], axis=1)
        expect_match(f"np{NP} every token to the last rank's experts",
                     [oracle] + oracle_inputs(tmp, last))
        # Dropped slots (-1): they send nothing and contribute nothing.
        drops = np.random.default_rng(3).integers(-1, 8, (t, 2))
        drops[::3, :] = -1
        expect_match(f"np{NP} dropped slots", [oracle] + oracle_inputs(tmp, drops))
        # A bad id in rank 1's tokens: every rank reports rank 1's error.
        bad = np.random.default_rng(4).integers(0, 8, (t, 2))
        bad[9, 1] = 9
        rc, out = mpirun([MOE_RUN, oracle] + oracle_inputs(tmp, bad) +
                         [f"--ranks={NP}", "--mode=both"])
        said = len(re.findall(r"error: rank 1 failed with status \d+: running: .*first bad id: 9",
                              out))
        expect(f"np{NP} bad expert id on rank 1 (reported by every rank)",
               rc != 0 and said == NP, out)
    rc2, out = mpirun([MOE_RUN, mixtral, "--ranks=3"])
    expect(f"np{NP} --ranks differs from the job's size",
           rc2 != 0 and out.count("--ranks=3 but the job has") == NP, out)


def mismatched_layers():
    half = NP // 2
    run = subprocess.run(
        MPIRUN + ["-np", str(half), MOE_RUN, str(EXAMPLES / "mixtral.mlir"), f"--ranks={NP}",
                  ":", "-np", str(NP - half), MOE_RUN, str(EXAMPLES / "deepseek.mlir"),
                  f"--ranks={NP}"],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, MOE_MPI_TIMEOUT_MS="60000"))
    out = run.stdout + run.stderr
    said = len(re.findall(rf"the layer signature of rank {half} differs from rank 0's", out))
    expect(f"np{NP} different layers on different ranks (reported by every rank)",
           run.returncode != 0 and said == NP, out)


examples()
edge_cases()
mismatched_layers()
print(f"{len(failures)} failures" + (": " + "; ".join(failures) if failures else ""))
sys.exit(1 if failures else 0)
