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

if __name__ == "__main__":
    unittest.main()
