"""The README's commands run as written (issue 22).

Every line of the ``sh`` block under "## Using it" in README.md runs, in
order, in one temporary directory whose ``build`` and ``examples`` are links
to the build tree and to examples/, so the commands run exactly as a user
types them at the repository root (files they write land in the temporary
directory, and later commands read them). A command that exits non-zero
fails the test, and so does one whose visible promise does not hold: a
``--mode=both`` run must print a PASS check line for every result, a
``-o FILE`` must write a non-empty FILE, an ``--output-dir=D`` must hold
readable, finite ``.npy`` results.

Only the commands in SKIPPED do not run as written, each for the reason
given there (and the test fails if one of them leaves the README, so the
list cannot go stale). The Python section's commands (the quickstart and the
in-line example) and the PyTorch example's run the same way.
"""

import os
import pathlib
import re
import shlex
import subprocess
import sys
import tempfile
import unittest

import numpy as np

import moec

ROOT = pathlib.Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
# build/python/moec/__init__.py -> build/ (MOE_BUILD_DIR overrides it, e.g.
# to run these commands against another build).
BUILD = pathlib.Path(os.environ.get("MOE_BUILD_DIR")
                     or pathlib.Path(moec.__file__).resolve().parents[2])
FAKE_CUDA = BUILD / "lib" / "libmoe-fake-cuda.so"

# Commands that are not run as written, with why; each still runs `--help`,
# so a renamed or missing tool fails.
SKIPPED = {
    "build/bin/moe-bench": "a benchmark: minutes of timed runs that load every core, and "
                           "its targets are machine-dependent (see the README's tables)",
    "build/bin/moe-savings": "a benchmark: interleaved timed rounds whose ratios depend on "
                             "the machine's load",
    "build/bin/moe-bench --cases=MIX-D --formats=f32,bf16,int8,q8_0,q4_0":
        "a benchmark like the line above (it ran past the 600 s command limit on a loaded "
        "2-core machine)",
}
# Commands that need a GPU run against the runtime's CPU stand-in driver
# (test/unit/FakeCudaDriver.cpp, loaded through MOE_LIBCUDA): everything but
# the kernels themselves runs, the launch file and PTX included.
NEEDS_GPU = ("build/bin/moe-gpu-run",)


def code_block(heading: str, language: str) -> list:
    """The lines of the first ```language block after `heading` in README.md."""
    text = README.read_text(encoding="utf-8")
    start = text.index("\n" + heading + "\n")
    match = re.compile(r"^```" + language + r"\n(.*?)^```", re.S | re.M).search(text, start)
    assert match, f"no ```{language} block after {heading!r}"
    return match.group(1).splitlines()


def commands(lines) -> list:
    """Shell commands: comments after `  #` and blank lines dropped."""
    out = []
    for line in lines:
        line = re.sub(r"\s+#\s.*$", "", line).strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def run(command: str, cwd: str, env=None, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run(command, shell=True, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, executable="/bin/bash")


def workdir() -> tempfile.TemporaryDirectory:
    """A scratch directory that looks like the repository root to the commands."""
    tmp = tempfile.TemporaryDirectory(prefix="moe-readme-")
    os.symlink(BUILD, os.path.join(tmp.name, "build"))
    os.symlink(ROOT / "examples", os.path.join(tmp.name, "examples"))
    return tmp


@unittest.skipUnless((BUILD / "bin" / "moe-run").exists(), f"no tools in {BUILD}/bin")
class ReadmeCommandsTest(unittest.TestCase):
    def check_promises(self, command: str, cwd: str, result: subprocess.CompletedProcess):
        """What the command's output or files must show besides exit 0."""
        argv = shlex.split(command)
        if "--mode=both" in argv:
            checks = re.findall(r"^check result #\d+: .*: (PASS|FAIL)$", result.stdout, re.M)
            results = re.findall(r"^result #\d+: ", result.stdout, re.M)
            self.assertTrue(checks, f"{command}: no check line\n{result.stdout}")
            self.assertEqual(checks, ["PASS"] * len(results), f"{command}\n{result.stdout}")
        if "-o" in argv:
            written = pathlib.Path(cwd, argv[argv.index("-o") + 1])
            self.assertGreater(written.stat().st_size, 0, command)
        for arg in argv:
            if arg.startswith("--output-dir="):
                files = sorted(pathlib.Path(cwd, arg.split("=", 1)[1]).glob("result*.npy"))
                self.assertTrue(files, f"{command}: no result*.npy written")
                for f in files:
                    a = np.load(f)
                    self.assertTrue(a.size > 0 and np.isfinite(a).all(), f"{command}: {f}")

    def test_using_it_commands(self):
        lines = commands(code_block("## Using it", "sh"))
        self.assertGreater(len(lines), 10)
        for skipped in SKIPPED:
            self.assertIn(skipped, lines, "SKIPPED names a command the README no longer has")
        with workdir() as cwd:
            for command in lines:
                with self.subTest(command=command):
                    env = dict(os.environ)
                    if command in SKIPPED:
                        # Not run as written (see SKIPPED); the tool must exist.
                        command += " --help"
                    elif command.startswith(NEEDS_GPU):
                        if not FAKE_CUDA.exists():
                            self.skipTest(f"{command}: needs a GPU or the stand-in driver "
                                          f"{FAKE_CUDA}")
                        env["MOE_LIBCUDA"] = str(FAKE_CUDA)
                    result = run(command, cwd, env)
                    self.assertEqual(result.returncode, 0,
                                     f"README command failed: {command}\n"
                                     f"stdout:\n{result.stdout[-3000:]}\n"
                                     f"stderr:\n{result.stderr[-3000:]}")
                    self.check_promises(command, cwd, result)

    def test_python_section(self):
        """The quickstart command and the in-line example of "## Python"."""
        python_commands = commands(code_block("## Python (`moec`)", "sh"))
        self.assertTrue(python_commands)
        snippet = "\n".join(code_block("## Python (`moec`)", "python"))
        with workdir() as cwd:
            for command in python_commands:
                result = run(command, cwd)
                self.assertEqual(result.returncode, 0, f"{command}\n{result.stdout[-3000:]}"
                                                       f"\n{result.stderr[-3000:]}")
                if "quickstart" in command:
                    self.assertRegex(result.stdout, r"check vs numpy: .*: PASS")
            env = dict(os.environ, PYTHONPATH=str(BUILD / "python"))
            result = subprocess.run([sys.executable, "-c", snippet], cwd=cwd, env=env,
                                    capture_output=True, text=True, timeout=600)
            self.assertEqual(result.returncode, 0, f"README's Python example failed:\n"
                                                   f"{result.stderr[-3000:]}")
            self.assertIn("expanded", result.stdout)

    def test_torch_section(self):
        """The PyTorch example command runs and its check passes."""
        try:
            import torch  # noqa: F401
        except ImportError:
            self.skipTest("python3-torch is not installed")
        torch_commands = commands(code_block("### PyTorch and model configurations (issue 30)", "sh"))
        self.assertTrue(torch_commands)
        with workdir() as cwd:
            for command in torch_commands:
                result = run(command, cwd)
                self.assertEqual(result.returncode, 0, f"{command}\n{result.stdout[-3000:]}"
                                                       f"\n{result.stderr[-3000:]}")
                self.assertRegex(result.stdout, r"check vs torch: .*: PASS")
                self.assertRegex(result.stdout, r"torch eager \d+ us, moec \d+ us")

    def test_routing_stats_section(self):
        """The routing statistics commands run: moe-run prints them, the report writes a PNG."""
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            self.skipTest("python3-matplotlib is not installed")
        stats_commands = commands(code_block("### Routing statistics (issue 30)", "sh"))
        self.assertEqual(len(stats_commands), 2)
        with workdir() as cwd:
            for command in stats_commands:
                result = run(command, cwd, dict(os.environ, MPLBACKEND="Agg"))
                self.assertEqual(result.returncode, 0, f"{command}\n{result.stdout[-3000:]}"
                                                       f"\n{result.stderr[-3000:]}")
                self.assertIn("tokens per expert", result.stdout)
            png = pathlib.Path(cwd, "report.png").read_bytes()
            self.assertEqual(png[:8], b"\x89PNG\r\n\x1a\n")


if __name__ == "__main__":
    unittest.main()
