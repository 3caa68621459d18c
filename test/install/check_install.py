#!/usr/bin/env python3
"""The install a user gets (issue 30): `cmake --install` to a temporary
prefix, moved elsewhere (relocatable), then used with the build and source
trees out of reach:

  * no installed ELF file has a RUNPATH/RPATH into the build or source tree;
  * the quickstart: the installed moe-run on the installed mixtral example,
    compiled vs reference (PASS), and the Python quickstart with the
    installed moec package;
  * an ahead-of-time layer: the installed moe-compile writes a shared object
    (RUNPATH $ORIGIN, libmoe_runtime.so found through the process that
    loads it); a C host program built against the installed headers and
    library only runs it, and the installed moec's reference checks the
    result.

Where this process may create a mount namespace (root, `unshare -m`), the
checks run inside one in which the build and source directories are
covered by empty tmpfs mounts, so a stray path into them fails the test;
elsewhere the RUNPATH check and the clean environment are what prove it.

    check_install.py BUILD_DIR SOURCE_DIR
"""

import os
import shlex
import shutil
import subprocess
import sys
import tempfile


def elf_files(root):
    for dirpath, _, files in os.walk(root):
        for f in files:
            path = os.path.join(dirpath, f)
            if os.path.islink(path):
                continue
            with open(path, "rb") as fh:
                if fh.read(4) == b"\x7fELF":
                    yield path


def check_runpaths(prefix, forbidden):
    bad = []
    for path in elf_files(prefix):
        out = subprocess.run(["readelf", "-d", path], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if "RUNPATH" in line or "RPATH" in line:
                if any(f in line for f in forbidden):
                    bad.append(f"{path}: {line.strip()}")
    return bad


STEPS = r"""
set -eu
P="$PREFIX"
cd "$WORK"
if [ "$HIDDEN" = 1 ]; then
  # The trees are really out of reach: a path into them finds nothing.
  test ! -e "$BUILD_DIR/CMakeCache.txt"
  test ! -e "$SOURCE_DIR/CMakeLists.txt"
fi
echo "== moe-run (quickstart) from $P"
"$P/bin/moe-run" "$P/share/moe/examples/mixtral.mlir" --tokens=16 --mode=both | tee run.txt
grep -q "check result #0: .*PASS" run.txt
echo "== Python quickstart with the installed moec"
PYTHONPATH="$PYDIR" /usr/bin/python3 "$P/share/moe/examples/python/quickstart.py" > quick.txt
grep -q "PASS" quick.txt && ! grep -q "FAIL" quick.txt
echo "== moe-compile -> layer.so"
"$P/bin/moe-compile" "$P/share/moe/examples/mixtral.mlir" --pipeline-options=stats=true -o "$WORK/layer.so"
readelf -d "$WORK/layer.so" | grep -q 'NEEDED.*libmoe_runtime.so'
readelf -d "$WORK/layer.so" | grep -E 'RUNPATH|RPATH' | tee runpath.txt
grep -q 'ORIGIN' runpath.txt
echo "== a C host built against $P/include and $P/lib"
"$CC" -std=c11 -O1 -I"$P/include" "$HOST_C" -o host -L"$P/lib" -lmoe_runtime -lm -Wl,-rpath,"$P/lib"
./host "$WORK/layer.so" 7 "$WORK" | tee host.txt
grep -q "layer 0: routed pairs 14 of 7 tokens" host.txt
PYTHONPATH="$PYDIR" /usr/bin/python3 - <<'PY'
import os, numpy as np, moec
work, prefix = os.environ["WORK"], os.environ["PREFIX"]
assert moec.__file__.startswith(prefix), moec.__file__
layer = moec.load(os.path.join(prefix, "share/moe/examples/mixtral.mlir"))
args = [np.load(os.path.join(work, f"arg{i}.npy")) for i in range(5)]
want = moec.reference(layer, *args)
got = np.load(os.path.join(work, "result0.npy"))
err = float(np.abs(got - want).max() / np.abs(want).max())
print(f"AOT layer vs installed moec reference: max rel error {err:.3g}")
assert err < 1e-4, err
PY
echo "== a copy of the runtime next to the layer: found through \$ORIGIN"
mkdir deploy && cp "$WORK/layer.so" "$P/lib/libmoe_runtime.so" deploy/
/usr/bin/python3 - <<'PY'
import ctypes, os
# RTLD_LOCAL keeps this process's copy of the runtime out of the global
# scope: the layer must find deploy/libmoe_runtime.so by its own RUNPATH.
ctypes.CDLL(os.path.join(os.environ["WORK"], "deploy", "layer.so"))
print("deploy/layer.so loaded with its neighbouring runtime")
PY
echo "INSTALL-OK"
"""


def main():
    build, source = (os.path.realpath(p) for p in sys.argv[1:3])
    tmp = tempfile.mkdtemp(prefix="moe-install-")
    try:
        first = os.path.join(tmp, "first")
        subprocess.run(["cmake", "--install", build, "--prefix", first], check=True,
                       stdout=subprocess.DEVNULL)
        prefix = os.path.join(tmp, "moved", "prefix")   # relocated after install
        os.makedirs(os.path.dirname(prefix))
        shutil.move(first, prefix)
        bad = check_runpaths(prefix, [build, source])
        if bad:
            print("installed files with a RUNPATH into the build or source tree:\n  " +
                  "\n  ".join(bad))
            return 1
        work = os.path.join(tmp, "work")
        os.makedirs(work)
        host_c = os.path.join(tmp, "aot_host.c")
        shutil.copy(os.path.join(source, "test", "install", "aot_host.c"), host_c)
        pydirs = [os.path.join(dp) for dp, dn, _ in os.walk(os.path.join(prefix, "lib"))
                  if "moec" in dn]
        if len(pydirs) != 1:
            print(f"the moec package is not installed once under {prefix}/lib: {pydirs}")
            return 1
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": tmp, "LANG": "C.UTF-8",
               "PREFIX": prefix, "WORK": work, "PYDIR": pydirs[0], "HOST_C": host_c,
               "MPLBACKEND": "Agg"}
        script = os.path.join(tmp, "steps.sh")
        with open(script, "w") as f:
            f.write(STEPS)
        compiler = next((shutil.which(c) for c in ("cc", "clang-22", "clang", "gcc")
                         if shutil.which(c)), None)
        if not compiler:
            print("no C compiler for the host program")
            return 1
        env["CC"] = compiler
        # Can this process hide directories (root, mount namespaces allowed)?
        probe = os.path.join(tmp, "probe")
        os.makedirs(probe)
        hide = shutil.which("unshare") is not None and subprocess.run(
            ["unshare", "-m", "sh", "-c",
             f"mount --make-rprivate / && mount -t tmpfs none {shlex.quote(probe)}"],
            capture_output=True).returncode == 0
        env.update(HIDDEN="1" if hide else "0", BUILD_DIR=build, SOURCE_DIR=source)
        if hide:
            covers = " && ".join(f"mount -t tmpfs none {shlex.quote(d)}" for d in (build, source))
            cmd = ["unshare", "-m", "sh", "-c",
                   f"mount --make-rprivate / && {covers} && sh {shlex.quote(script)}"]
            print(f"running with {build} and {source} hidden (mount namespace)")
        else:
            cmd = ["sh", script]
            print("no mount namespace here: running with a clean environment only")
        run = subprocess.run(cmd, env=env, cwd=work, capture_output=True, text=True)
        print(run.stdout)
        print(run.stderr, file=sys.stderr)
        return 0 if run.returncode == 0 and "INSTALL-OK" in run.stdout else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
