"""Python and the tools compile the same thing for the same options (issue 24).

Python takes the tools' pipeline-options text and has no defaults of its
own: compiling with nothing given must produce the `loops` stage that
`moe-opt --moe-to-loops` prints, and keyword sugar must mean exactly the
options text it stands for. (Python's row tile used to default to 4 where
the tools took 8 from an AVX-512 host.)
"""

import os
import pathlib
import subprocess
import unittest

import moec

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
BUILD = pathlib.Path(os.environ.get("MOE_BUILD_DIR")
                     or pathlib.Path(moec.__file__).resolve().parents[2])


def moe_opt_loops(path, options=""):
    flag = "--moe-to-loops" + (f"={options}" if options else "")
    out = subprocess.run([str(BUILD / "bin" / "moe-opt"), flag, str(path)],
                         capture_output=True, text=True, check=True)
    return out.stdout


@unittest.skipUnless((BUILD / "bin" / "moe-opt").exists(), f"no moe-opt in {BUILD}/bin")
class SameOptionsSameCodeTest(unittest.TestCase):
    def assertSameLoops(self, python_text, tool_text, what):
        # The tool ends its output with one more newline; nothing else may differ.
        self.assertEqual(python_text.rstrip("\n"), tool_text.rstrip("\n"), what)

    def test_defaults_match_the_tools(self):
        for example in ("mixtral.mlir", "deepseek.mlir", "moepp.mlir"):
            with self.subTest(example=example):
                fn = moec.compile(EXAMPLES / example)
                self.assertSameLoops(fn.stage("loops"), moe_opt_loops(EXAMPLES / example),
                                     f"{example}: Python's loops stage differs from moe-opt's")

    def test_options_text_matches_the_tools(self):
        options = "row-tile=3 vector-width=8 pack-tiles=3 block-bytes=65536"
        fn = moec.compile(EXAMPLES / "mixtral.mlir", pipeline_options=options)
        self.assertSameLoops(fn.stage("loops"), moe_opt_loops(EXAMPLES / "mixtral.mlir", options),
                             "the same options text compiled differently")

    def test_keywords_are_sugar_for_the_options_text(self):
        by_text = moec.compile(EXAMPLES / "mixtral.mlir", pipeline_options="row-tile=3 vector-width=8")
        by_keywords = moec.compile(EXAMPLES / "mixtral.mlir", row_tile=3, vector_width=8)
        self.assertEqual(by_text.stage("loops"), by_keywords.stage("loops"))
        other = moec.compile(EXAMPLES / "mixtral.mlir", row_tile=5, vector_width=8)
        self.assertNotEqual(by_text.stage("loops"), other.stage("loops"),
                            "row_tile had no effect: the comparison above proves nothing")

    def test_gpu_host_honours_the_vector_width(self):
        narrow = moec.compile(EXAMPLES / "mixtral.mlir", target="gpu-host", vector_width=2)
        default = moec.compile(EXAMPLES / "mixtral.mlir", target="gpu-host")
        self.assertNotEqual(narrow.stage("mapped"), default.stage("mapped"),
                            "gpu-host dropped the caller's vector width")

    def test_bad_options_are_value_errors_naming_the_text(self):
        with self.assertRaises(ValueError) as cm:
            moec.compile(EXAMPLES / "mixtral.mlir", pipeline_options="row-tiles=3")
        self.assertIn("row-tiles=3", str(cm.exception))
        with self.assertRaises(ValueError):
            moec.compile(EXAMPLES / "mixtral.mlir", target="nvptx", row_tile=4)
        with self.assertRaises(ValueError):
            moec.compile(EXAMPLES / "mixtral.mlir", block_size=128)
        with self.assertRaises(TypeError):
            moec.compile(EXAMPLES / "mixtral.mlir", row_tile=4.5)
        with self.assertRaises(TypeError):
            moec.compile(EXAMPLES / "mixtral.mlir", pipeline_options=["row-tile=3"])


if __name__ == "__main__":
    unittest.main()
