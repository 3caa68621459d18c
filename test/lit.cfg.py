# -*- Python -*-
import os
import shutil

import lit.formats
from lit.llvm import llvm_config

config.name = "MOE"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.moe_obj_root, "test")
config.excludes = ["CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py", "unit", "python", "Inputs",
                   "fuzz"]

config.substitutions.append(("%python", config.python_executable))
config.substitutions.append(("%examples", os.path.join(config.moe_src_root, "examples")))
# One lowering's output on buffers, as the pipelines bufferize it but without
# their folding passes: moe-one-shot-bufferize and moe-buffer-abi.
config.substitutions.append(
    ("%bufferize",
     "--moe-one-shot-bufferize --moe-buffer-abi"))
llvm_config.with_system_environment(["HOME", "INCLUDE", "LIB", "TMP", "TEMP"])
llvm_config.use_default_substitutions()

tool_dirs = [config.moe_tools_dir, config.llvm_tools_dir]
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
llvm_config.with_environment("PATH", config.moe_tools_dir, append_path=True)
llvm_config.add_tool_substitutions(["moe-opt", "moe-run", "moe-quantize"], tool_dirs)

# Optional external tools gate tests with REQUIRES:.
ptxas = shutil.which("ptxas") or (
    "/usr/local/cuda/bin/ptxas" if os.path.exists("/usr/local/cuda/bin/ptxas") else None)
if ptxas:
    config.available_features.add("ptxas")
    config.substitutions.append(("%ptxas", ptxas))
