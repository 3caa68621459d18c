"""The GPU path from Python.

target="nvptx": the PTX of every launched kernel and the launch description
(the same bytes moe-compile writes), every stage, write(), refusals (skip
layers, bad chips), and calls through the CUDA runtime: without a driver
(this machine), against the CPU stand-in driver the runtime's unit tests use
(build/lib/libmoe-fake-cuda.so, in a subprocess: the driver is loaded once
per process), and, where a GPU is present, against the reference.
target="gpu-host": the GPU's block/thread mapping executed on the CPU,
checked against the reference interpreter.
"""

import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import textwrap
import unittest

import numpy as np

import moec
import example_layers as ex

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
# PYTHONPATH=<build>/python: the package is <build>/python/moec.
BUILD = pathlib.Path(moec.__file__).resolve().parents[2]
MOE_COMPILE = BUILD / "bin" / "moe-compile"
FAKE_CUDA = BUILD / "lib" / "libmoe-fake-cuda.so"

RTOL = 1e-4  # max |got - reference| / max |reference|
PTX_EXAMPLES = ("mixtral", "deepseek", "expert_choice", "adamoe")
SKIP_EXAMPLES = ("mod", "threshold_skip", "duo", "skipdecode", "act")


def relative_error(got, want):
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    return max(float(np.abs(g.astype(np.float64) - w).max() / max(np.abs(w).max(), 1e-30))
               for g, w in zip(got, want))


def launch_kernels(launch):
    """Kernel names of the `kernel NAME grid ...` lines, first launch order."""
    names = []
    for line in launch.splitlines():
        fields = line.split()
        if fields and fields[0] == "kernel" and fields[1] not in names:
            names.append(fields[1])
    return names


class NvptxTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ptx = {name: moec.compile(EXAMPLES / f"{name}.mlir", target="nvptx")
                   for name in PTX_EXAMPLES}

    def test_ptx_defines_every_launched_kernel(self):
        for name, p in self.ptx.items():
            with self.subTest(example=name):
                self.assertIsInstance(p, moec.CompiledPtx)
                self.assertEqual(p.entry, "main")
                self.assertEqual(p.chip, "sm_90")
                self.assertTrue(p.launch.startswith("moe-gpu-launch 1\n"), p.launch[:40])
                self.assertIn("\nentry main\n", p.launch)
                self.assertIn("\nchip sm_90\n", p.launch)
                kernels = launch_kernels(p.launch)
                self.assertGreaterEqual(len(kernels), 5)
                self.assertEqual(p.kernels, kernels)
                self.assertIn(".target sm_90", p.ptx)
                for k in kernels:
                    self.assertIn(f".visible .entry {k}(", p.ptx)
                # ... and nothing else: every kernel in the PTX is launched.
                self.assertEqual(sorted(re.findall(r"\.visible \.entry (\w+)\(", p.ptx)),
                                 sorted(kernels))

    def test_same_bytes_as_moe_compile(self):
        if not MOE_COMPILE.exists():
            self.skipTest(f"no {MOE_COMPILE}")
        with tempfile.TemporaryDirectory() as d:
            out = pathlib.Path(d) / "mixtral.ptx"
            subprocess.run([str(MOE_COMPILE), str(EXAMPLES / "mixtral.mlir"), "--target=nvptx",
                            "--chip=sm_90", "-o", str(out)], check=True)
            self.assertEqual(out.read_text(), self.ptx["mixtral"].ptx)
            self.assertEqual((pathlib.Path(d) / "mixtral.launch").read_text(),
                             self.ptx["mixtral"].launch)

    def test_stages(self):
        p = self.ptx["mixtral"]
        self.assertEqual(p.stage_names,
                         ["moe", "expanded", "mapped", "kernels", "nvvm", "ptx", "launch"])
        self.assertEqual(p.stage_names, list(moec.PTX_STAGES))
        self.assertEqual([n for n, _ in p.stages], p.stage_names)
        self.assertIn("moe.layer", p.stage("moe"))
        self.assertNotIn("moe.layer", p.stage("expanded"))
        self.assertIn("moe.dispatch", p.stage("expanded"))
        mapped = p.stage("mapped")
        self.assertIn("scf.forall", mapped)
        self.assertIn("#gpu.block", mapped)
        self.assertNotIn("gpu.module", mapped)
        kernels = p.stage("kernels")
        self.assertIn("gpu.module", kernels)
        self.assertEqual(kernels.count("gpu.launch_func"), len(p.launch.split("\nkernel ")) - 1)
        self.assertIn("#nvvm.target<", p.stage("nvvm"))
        self.assertIn('chip = "sm_90"', p.stage("nvvm"))
        self.assertEqual(p.stage("ptx"), p.ptx)
        self.assertEqual(p.stage("launch"), p.launch)
        with self.assertRaisesRegex(KeyError, "no stage 'llvm'"):
            p.stage("llvm")
        self.assertEqual(p.argument_names, ["x", "gate", "w1", "w3", "w2"])
        self.assertEqual(p.signature[0][0], ((None, 64), "float32"))
        self.assertEqual(p.signature[1], [((None, 64), "float32")])
        self.assertGreater(p.compile_seconds, 0.0)
        self.assertIn("11 kernels", repr(p))

    def test_write_round_trips(self):
        p = self.ptx["deepseek"]
        with tempfile.TemporaryDirectory() as d:
            ptx_path, launch_path = p.write(pathlib.Path(d) / "deepseek.ptx")
            self.assertEqual(ptx_path, os.path.join(d, "deepseek.ptx"))
            self.assertEqual(launch_path, os.path.join(d, "deepseek.launch"))
            self.assertEqual(pathlib.Path(ptx_path).read_text(), p.ptx)
            self.assertEqual(pathlib.Path(launch_path).read_text(), p.launch)
            # Another extension: .launch is appended, as moe-compile does.
            _, launch_path = p.write(os.path.join(d, "layer.bin"))
            self.assertEqual(launch_path, os.path.join(d, "layer.bin.launch"))
            self.assertEqual(pathlib.Path(launch_path).read_text(), p.launch)
            self.assertEqual(pathlib.Path(d, "layer.bin").read_text(), p.ptx)
            with self.assertRaisesRegex(OSError, "cannot write .*no-such-dir"):
                p.write(os.path.join(d, "no-such-dir", "x.ptx"))

    def test_builder_layer_and_other_chip(self):
        p = moec.compile(ex.oracle(H=16, E=4, I=32), target="nvptx", chip="sm_80")
        self.assertEqual(p.chip, "sm_80")
        self.assertIn(".target sm_80", p.ptx)
        self.assertIn("\nchip sm_80\n", p.launch)
        for k in p.kernels:
            self.assertIn(f".visible .entry {k}(", p.ptx)
        self.assertIn("arg in0 in f32 2 T 16", p.launch)

    def test_bad_chip_is_named(self):
        with self.assertRaisesRegex(ValueError, "NVIDIA architecture.*got 'gfx90a'"):
            moec.compile(EXAMPLES / "mixtral.mlir", target="nvptx", chip="gfx90a")
        with self.assertRaisesRegex(ValueError, "got 'sm_'"):
            moec.compile(EXAMPLES / "mixtral.mlir", target="nvptx", chip="sm_")
        with self.assertRaisesRegex(ValueError, "chip='sm_90' is for target='nvptx'"):
            moec.compile(EXAMPLES / "mixtral.mlir", chip="sm_90")

    def test_unknown_target_and_entry(self):
        with self.assertRaisesRegex(ValueError, "unknown target 'rocm'"):
            moec.compile(EXAMPLES / "mixtral.mlir", target="rocm")
        with self.assertRaisesRegex(KeyError, "no function 'nope'"):
            moec.compile(EXAMPLES / "mixtral.mlir", target="nvptx", entry="nope")

    def test_skip_layers_are_refused_with_the_reason(self):
        for name in SKIP_EXAMPLES:
            with self.subTest(example=name):
                path = EXAMPLES / f"{name}.mlir"
                with self.assertRaises(moec.CompileError) as cm:
                    moec.compile(path, target="nvptx")
                msg = str(cm.exception)
                self.assertIn("failed in stage 'kernels'", msg)
                self.assertIn("needs the host to wait for the device", msg)
                self.assertRegex(msg, re.escape(str(path)) + r":\d+:\d+: error: ")
                # The generic form of the lowered op is left out.
                self.assertNotIn("see current operation", msg)

    def test_call_checks_arguments_before_the_device(self):
        p = self.ptx["mixtral"]
        args = moec.random_inputs(p, tokens=5)
        args[2] = args[2].astype(np.float64)
        with self.assertRaisesRegex(TypeError, r"argument #2 \('w1'\): expected dtype float32"):
            p(*args)
        with self.assertRaisesRegex(TypeError, "'main' takes 5 arrays"):
            p(*args[:4])

    def test_call_without_a_gpu_raises_the_reason(self):
        available, why = moec.cuda_available()
        if available:
            self.skipTest("a CUDA device is present (see test_call_matches_reference_on_a_gpu)")
        self.assertIn("CUDA", why)
        p = self.ptx["mixtral"]
        args = moec.random_inputs(p, tokens=6, seed=2)
        out = np.full((6, 64), 42.0, np.float32)
        for _ in range(2):  # and again: nothing is cached from the failure
            with self.assertRaises(moec.DeviceError) as cm:
                p(*args, out=[out])
            msg = str(cm.exception)
            self.assertIn("cannot run 'main' on the GPU: ", msg)
            self.assertIn(why, msg)
            self.assertIsInstance(cm.exception, moec.RuntimeError)
            self.assertTrue((out == 42.0).all())

    def test_call_matches_reference_on_a_gpu(self):
        available, why = moec.cuda_available()
        if not available:
            self.skipTest(why)
        for name, p in self.ptx.items():
            with self.subTest(example=name):
                args = moec.random_inputs(p, tokens=37, seed=4)
                try:
                    y = p(*args)
                except moec.DeviceError as e:
                    if "was compiled for" in str(e):
                        self.skipTest(str(e))
                    raise
                self.assertLessEqual(relative_error(y, moec.reference(p, *args)), RTOL)


# Run in a subprocess: MOE_LIBCUDA must be set before the runtime first
# loads a driver. The script prints one JSON object.
FAKE_DRIVER_SCRIPT = textwrap.dedent("""
    import ctypes, json, os, sys
    import numpy as np
    import moec
    fake = ctypes.CDLL(os.environ["MOE_LIBCUDA"])  # the runtime's copy: same handle
    fake.fake_cuda_log.restype = ctypes.c_char_p
    report = {"available": moec.cuda_available()[0]}
    p = moec.compile(moec.load(sys.argv[1]), target="nvptx")
    args = moec.random_inputs(p, tokens=8, seed=1)
    y = p(*args)
    report["shape"], report["dtype"] = list(y.shape), str(y.dtype)
    report["launched"] = [l.split()[1] for l in fake.fake_cuda_log().decode().splitlines()
                          if l.startswith("launch ")]
    report["kernels"] = p.kernels
    out = np.full((8, 64), 7.0, np.float32)
    fake.fake_cuda_fail_next(b"cuLaunchKernel", 700)
    try:
        p(*args, out=[out])
        report["injected"] = None
    except moec.DeviceError as e:
        report["injected"] = str(e)
    report["out_untouched"] = bool((out == 7.0).all())
    # The layer stays usable after a failed call. The stand-in leaves the
    # device output as allocated (0xAB bytes; it runs no real kernel), so
    # that pattern in out shows the copy back to out= happened.
    p(*args, out=[out])
    report["out_written"] = bool((out.view(np.uint32) == 0xABABABAB).all())
    report["y_from_device"] = bool((y.view(np.uint32) == 0xABABABAB).all())
    other = moec.compile(moec.load(sys.argv[1]), target="nvptx", chip="sm_100")
    try:
        other(*args)
        report["wrong_chip"] = None
    except moec.DeviceError as e:
        report["wrong_chip"] = str(e)
    print(json.dumps(report))
""")


@unittest.skipUnless(FAKE_CUDA.exists(), f"no fake CUDA driver at {FAKE_CUDA}")
class FakeDriverTest(unittest.TestCase):
    """A CompiledPtx call end to end, down to the driver: the CPU stand-in
    records the kernels (it runs only its own fake_* kernels), so this checks
    the plumbing: temporary files, open, launch order, errors, out=."""

    def test_call_through_the_runtime(self):
        env = dict(os.environ, MOE_LIBCUDA=str(FAKE_CUDA))
        run = subprocess.run([sys.executable, "-c", FAKE_DRIVER_SCRIPT,
                              str(EXAMPLES / "mixtral.mlir")],
                             env=env, capture_output=True, text=True, timeout=300)
        self.assertEqual(run.returncode, 0, run.stderr)
        r = json.loads(run.stdout.strip().splitlines()[-1])
        self.assertTrue(r["available"])
        self.assertEqual(r["shape"], [8, 64])
        self.assertEqual(r["dtype"], "float32")
        # For T = 8 every grid is non-empty: each kernel once, in launch order.
        self.assertEqual(r["launched"], r["kernels"])
        self.assertEqual(len(r["kernels"]), 11)
        self.assertRegex(r["injected"], r"cuLaunchKernel .*'main_k0_serial'.* failed: "
                                        r"CUDA_ERROR_ILLEGAL_ADDRESS")
        self.assertTrue(r["out_untouched"])
        self.assertTrue(r["out_written"])
        self.assertTrue(r["y_from_device"])
        self.assertIn("compiled for sm_100 but device 0 is Fake GPU (sm_90", r["wrong_chip"])


class GpuHostTest(unittest.TestCase):
    """target="gpu-host": the GPU kernels' block/thread mapping (and their
    math: polynomial exp/erf) run on the CPU, against the reference."""

    EXAMPLES = ("mixtral", "deepseek", "expert_choice", "adamoe", "remoe", "moepp",
                "switch_capacity", "oracle", "mod")

    def test_matches_the_reference(self):
        for name in self.EXAMPLES:
            with self.subTest(example=name):
                layer = ex.EXAMPLES[name]()
                fn = moec.compile(layer, target="gpu-host")
                self.assertIsInstance(fn, moec.Compiled)
                self.assertEqual(fn.stage_names, list(moec.GPU_HOST_STAGES))
                self.assertIn("#gpu.block", fn.stage("mapped"))
                for seed, tokens in ((0, 37), (1, 1)):
                    args = moec.random_inputs(layer, tokens=tokens, seed=seed)
                    y = fn(*args)
                    want = moec.reference(layer, *args)
                    self.assertLessEqual(relative_error(y, want), RTOL)

    def test_agrees_with_the_cpu_target(self):
        layer = ex.deepseek()
        args = moec.random_inputs(layer, tokens=64, seed=9)
        gpu_host = moec.compile(layer, target="gpu-host")(*args)
        cpu = moec.compile(layer)(*args)
        self.assertLessEqual(relative_error(gpu_host, cpu.astype(np.float64)), RTOL)
        self.assertNotIn("mapped", moec.compile(layer).stage_names)


if __name__ == "__main__":
    unittest.main()
