#!/usr/bin/env python3
"""Checks the layering of the built libraries (docs/architecture.md).

Reads the DT_NEEDED entries of every library of ours (readelf -d), follows
them through our own libraries, and fails when a library reaches one it may
not: the runtime and the support library know no LLVM/MLIR and nothing of
ours, the reference knows no conversion, pipeline or runtime, the dialect no
lowering. It also checks, from compile_commands.json, that the runtime's
headers are on the include path only of the code that uses the runtime.

    check_link_graph.py BUILD_DIR SOURCE_DIR LIBRARY...

LIBRARY...: every shared library the build declares (CMake passes them), so
that a new library without a rule here is an error, not a blind spot.
"""
import json
import os
import re
import subprocess
import sys

# What each library may reach, directly or through another library of ours
# (the transitive closure: an allowed edge to a library that reaches a
# forbidden one is itself a violation). `llvm`: may it need libLLVM/libMLIR.
ALLOWED = {
    "moe_runtime": dict(ours=set(), llvm=False),
    "MoeSupport": dict(ours=set(), llvm=False),
    "MoeIR": dict(ours={"MoeSupport"}, llvm=True),
    "MoeTransforms": dict(ours={"MoeIR", "MoeSupport"}, llvm=True),
    "MoeToLoops": dict(ours={"MoeIR", "MoeSupport"}, llvm=True),
    "MoeToGpu": dict(ours={"MoeToLoops", "MoeIR", "MoeSupport"}, llvm=True),
    "MoePipelines": dict(ours={"MoeToGpu", "MoeToLoops", "MoeTransforms", "MoeIR",
                               "MoeSupport"}, llvm=True),
    "MoeExecutionEngine": dict(ours={"MoePipelines", "MoeToGpu", "MoeToLoops",
                                     "MoeTransforms", "MoeIR", "MoeSupport",
                                     "moe_runtime"}, llvm=True),
    "MoeReference": dict(ours={"MoeIR", "MoeSupport"}, llvm=True),
    # The safetensors reader/writer: llvm::json for its header, MoeSupport
    # for Status and DType, nothing of the compiler.
    "MoeSafetensors": dict(ours={"MoeSupport"}, llvm=True),
    # The exchanges of expert parallelism: MPI only, nothing of ours (a
    # sharded layer links it next to moe_runtime). Built only when CMake
    # finds MPI.
    "moe_runtime_mpi": dict(ours=set(), llvm=False),
}
OPTIONAL = {"moe_runtime_mpi"}
# Executables with a promise about what they link: moe-gpu-run runs on GPU
# machines that have no LLVM.
EXECUTABLES = {
    "moe-gpu-run": dict(ours={"moe_runtime", "MoeSupport"}, llvm=False),
}
# libLLVM.so.22.1, libLLVM-22.so, libMLIR.so.22.1 (not libclang_rt.asan: the
# sanitized build adds that one to everything).
LLVM_NAME = re.compile(r"^lib(LLVM|MLIR)(\.so|-)")
# Sources whose include path must not hold the runtime's headers: they get
# the status codes from moe_status_codes.h (MoeStatusCodes) if they need them.
NO_RUNTIME_INCLUDES = ["dialects/", "lib/Support/", "lib/Safetensors/", "lib/Conversion/", "lib/Reference/",
                       "lib/Pipelines/"]


def needed(path):
    out = subprocess.run(["readelf", "-d", path], check=True, capture_output=True,
                         text=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def library_name(soname):
    """libMoeIR.so.22.1 -> MoeIR"""
    m = re.match(r"^lib(.+?)\.so(\.|$)", soname)
    return m.group(1) if m else soname


def main():
    build, source, declared = sys.argv[1], sys.argv[2], sys.argv[3:]
    lib_dir, bin_dir = os.path.join(build, "lib"), os.path.join(build, "bin")
    files = {name: os.path.join(lib_dir, f"lib{name}.so") for name in ALLOWED}
    files.update({name: os.path.join(bin_dir, name) for name in EXECUTABLES})
    rules = dict(ALLOWED, **EXECUTABLES)
    errors = [f"{name}: a library with no rule in {os.path.basename(__file__)}"
              for name in declared if name not in ALLOWED]
    edges = {}
    for name, path in files.items():
        if not os.path.exists(path):
            if name in OPTIONAL:
                continue
            errors.append(f"{name}: not built ({path}); the check would miss its edges")
            continue
        edges[name] = needed(path)

    def reach(name, seen):
        for soname in edges.get(name, []):
            dep = library_name(soname)
            if dep not in seen:
                seen[dep] = soname
                if dep in ALLOWED:
                    reach(dep, seen)
        return seen

    for name in edges:
        rule = rules[name]
        for dep, soname in sorted(reach(name, {}).items()):
            if dep in ALLOWED and dep not in rule["ours"]:
                errors.append(f"{name} -> {dep}: forbidden edge")
            elif LLVM_NAME.match(soname) and not rule["llvm"]:
                errors.append(f"{name} -> {soname}: must not depend on LLVM/MLIR")
        print(f"{name}: " + " ".join(library_name(s) for s in edges[name]))

    commands = os.path.join(build, "compile_commands.json")
    runtime_include = os.path.join(os.path.realpath(source), "runtime")
    for entry in json.load(open(commands)):
        rel = os.path.relpath(os.path.realpath(entry["file"]), os.path.realpath(source))
        if not any(rel.startswith(p) for p in NO_RUNTIME_INCLUDES):
            continue
        command = entry.get("command") or " ".join(entry.get("arguments", []))
        for flag in re.findall(r"-(?:I|isystem)\s*(\S+)", command):
            if os.path.realpath(flag).startswith(runtime_include):
                errors.append(f"{rel}: the runtime's headers ({flag}) are on its include path")

    for e in errors:
        print("error: " + e, file=sys.stderr)
    if errors:
        return 1
    print("link graph: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
