"""Compiler diagnostics through the Python module: the same checks and the
same message forms as the command-line tools (issue 22)."""

import pathlib
import tempfile
import os
import unittest

import moec

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


class UnknownAttributeTest(unittest.TestCase):
    def test_load_rejects_a_misspelled_attribute(self):
        """moec.load parses and verifies as moe-opt does: `renormalise` is an error."""
        text = (EXAMPLES / "deepseek.mlir").read_text()
        self.assertIn("topk_groups = 2, renormalize,", text)
        with tempfile.NamedTemporaryFile("w", suffix=".mlir", delete=False) as f:
            f.write(text.replace("topk_groups = 2, renormalize,", "topk_groups = 2, renormalise,"))
        try:
            with self.assertRaises(moec.CompileError) as cm:
                moec.load(f.name)
            self.assertRegex(
                str(cm.exception),
                rf"{f.name}:\d+:\d+: error: 'moe.grouped_topk_router' op has no attribute "
                r"'renormalise' \(did you mean 'renormalize'\?\)")
        finally:
            os.unlink(f.name)



class PipelineOptionTest(unittest.TestCase):
    def test_row_tile_out_of_range_names_the_range(self):
        """row_tile=-1 was compiled silently; now the CPU pipeline's range check rejects it."""
        with self.assertRaises(moec.CompileError) as cm:
            moec.compile(EXAMPLES / "mixtral.mlir", row_tile=-1)
        self.assertIn("row-tile must be in [1, 64] (or 0: from the host CPU), got -1",
                      str(cm.exception))


UNSUPPORTED = """func.func @main(%x: tensor<?x8xf32>, %gate: tensor<4x8xf32>,
                %w1: tensor<4x16x8xf32>, %w2: tensor<4x8x16xf32>) -> tensor<?x8xf32> {
  %ids, %w = moe.topk_router softmax %x, %gate {k = 2}
      : tensor<?x8xf32>, tensor<4x8xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  %experts = moe.ffn_experts relu w1(%w1 : tensor<4x16x8xf32>) w2(%w2 : tensor<4x8x16xf32>)
      -> !moe.experts<4, 8>
  %y = moe.layer %x, %ids, %w experts(%experts : !moe.experts<4, 8>)
      : tensor<?x8xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x8xf32>
  %r = tosa.abs %y : (tensor<?x8xf32>) -> tensor<?x8xf32>
  return %r : tensor<?x8xf32>
}
"""


class LaterStageDiagnosticTest(unittest.TestCase):
    """A pipeline pass's error reads as the parser's: file:line:col, severity,
    the source line and a caret; before, CompileError held loc("file":9:8)."""

    MESSAGE = "error: 'tosa.abs' on tensors is not supported by the CPU pipeline"

    def test_file_error_quotes_the_source_line(self):
        with tempfile.NamedTemporaryFile("w", suffix=".mlir", delete=False) as f:
            f.write(UNSUPPORTED)
        try:
            with self.assertRaises(moec.CompileError) as cm:
                moec.compile(pathlib.Path(f.name))
            msg = str(cm.exception)
            self.assertIn(f"{f.name}:9:8: {self.MESSAGE}", msg)
            self.assertIn("\n  %r = tosa.abs %y : (tensor<?x8xf32>) -> tensor<?x8xf32>\n       ^",
                          msg)
            self.assertNotIn("loc(", msg)
        finally:
            os.unlink(f.name)

    def test_text_error_has_the_location_prefix(self):
        with self.assertRaises(moec.CompileError) as cm:
            moec.compile(UNSUPPORTED)
        self.assertIn(f"<string>:9:8: {self.MESSAGE}", str(cm.exception))
        self.assertNotIn("loc(", str(cm.exception))

if __name__ == "__main__":
    unittest.main()
