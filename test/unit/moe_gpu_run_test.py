"""moe-gpu-run end to end against the fake CUDA driver (FakeCudaDriver.cpp).

    python3 moe_gpu_run_test.py MOE_GPU_RUN FAKE_LIBCUDA

The fake driver runs its named kernels on host memory, so the runner's whole
path (open, random inputs, run, device-buffer launches, .npy dump, reading
inputs back with --inputs, --json, --check, the no-driver error) is checked
here without a GPU. Needs no numpy: .npy files are read with struct.
"""

import json
import os
import struct
import subprocess
import sys
import tempfile

LAUNCH = """moe-gpu-launch 1
entry fake
chip sm_90
arg x in f32 2 T 4
arg y out f32 2 T 4
arg sum out f32 1 4
scratch acc 0 16 1 1 0
kernel fake_scale grid 1 0 2 1 0 0 1 1 1 0 0 1 1 1 0 block 128 1 1 smem 0 args x y T i64:4 i64:3
kernel fake_accumulate grid 0 1 1 1 0 0 1 1 1 0 0 1 1 1 0 block 32 1 1 smem 0 args x acc T i64:4
kernel fake_write_sum grid 0 1 1 1 0 0 1 1 1 0 0 1 1 1 0 block 4 1 1 smem 0 args acc sum i64:4
"""
PTX = """.version 8.0
.target sm_90
.visible .entry fake_scale(.param .u64 a) { ret; }
.visible .entry fake_accumulate(.param .u64 a) { ret; }
.visible .entry fake_write_sum(.param .u64 a) { ret; }
"""


def read_npy(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x93NUMPY\x01\x00", path
    length = struct.unpack("<H", data[8:10])[0]
    header = data[10:10 + length].decode()
    assert (10 + length) % 64 == 0, "header not 64-byte aligned"
    assert header.endswith("\n")
    spec = eval(header)  # a Python dict literal, as numpy writes it
    count = 1
    for d in spec["shape"]:
        count *= d
    assert spec["descr"] == "<f4", spec
    values = struct.unpack(f"<{count}f", data[10 + length:])
    return spec["shape"], values


def run(command, env, expect_rc=0):
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != expect_rc:
        sys.exit(f"{' '.join(command)}: exit {result.returncode}, expected {expect_rc}\n"
                 f"{result.stdout}{result.stderr}")
    return result.stdout + result.stderr


def main():
    runner, fake = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        launch, ptx = os.path.join(tmp, "fake.launch"), os.path.join(tmp, "fake.ptx")
        with open(launch, "w") as f:
            f.write(LAUNCH)
        with open(ptx, "w") as f:
            f.write(PTX)
        env = dict(os.environ, MOE_LIBCUDA=fake)
        first, second = os.path.join(tmp, "first"), os.path.join(tmp, "second")
        os.mkdir(first)
        os.mkdir(second)

        out = run([runner, ptx, launch, "--tokens=6", "--iters=3", f"--dump={first}"], env)
        assert "device      Fake GPU (sm_90, 132 SMs)" in out, out
        assert "dumped      1 inputs and 2 results" in out, out
        shape, x = read_npy(os.path.join(first, "in0.npy"))
        assert shape == (6, 4), shape
        assert all(-1 <= v < 1 for v in x) and len(set(x)) == 24, "random inputs in [-1, 1)"
        _, y = read_npy(os.path.join(first, "out0.npy"))
        # 3v is exact in a double; rounding it to f32 gives the f32 product.
        assert y == tuple(struct.unpack("<f", struct.pack("<f", 3 * v))[0] for v in x), "y = 3x"
        shape, sums = read_npy(os.path.join(first, "out1.npy"))
        assert shape == (4,), shape
        for j in range(4):
            expected = sum(x[t * 4 + j] for t in range(6))
            assert abs(sums[j] - expected) <= 1e-5, (j, sums[j], expected)

        # The same inputs read back give the same results; --json is one line.
        out = run([runner, ptx, launch, "--tokens=6", "--iters=2", f"--inputs={first}",
                   f"--dump={second}", "--json"], env)
        timing = json.loads(out.strip())
        assert timing["tokens"] == 6 and timing["device"].startswith("Fake GPU"), timing
        for name in ("in0.npy", "out0.npy", "out1.npy"):
            with open(os.path.join(first, name), "rb") as a, \
                    open(os.path.join(second, name), "rb") as b:
                assert a.read() == b.read(), name

        # Inputs of the wrong shape are refused, naming the file.
        out = run([runner, ptx, launch, "--tokens=5", f"--inputs={first}"], env, expect_rc=1)
        assert "in0.npy: expected a .npy with header" in out, out

        # No driver: a clear message and exit status 1, not a crash.
        no_driver = dict(os.environ, MOE_LIBCUDA="/nonexistent/libcuda.so.1")
        out = run([runner, ptx, launch], no_driver, expect_rc=1)
        assert "no CUDA driver: cannot load /nonexistent/libcuda.so.1" in out, out

        # --check needs no driver; a malformed line is named.
        assert run([runner, "--check", launch], no_driver).strip() == f"{launch}: ok"
        bad = os.path.join(tmp, "bad.launch")
        with open(bad, "w") as f:
            f.write(LAUNCH.replace("arg sum out f32 1 4", "arg sum out f64 1 4"))
        out = run([runner, "--check", bad], no_driver, expect_rc=1)
        assert f"{bad}:line 6: argument 'sum': expected an element type" in out, out
        run([runner, "--bogus"], env, expect_rc=2)
    print("moe-gpu-run with the fake driver: ok")


if __name__ == "__main__":
    main()
