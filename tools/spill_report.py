#!/usr/bin/env python3
"""Register and spill report of every CUDA kernel.

Recompiles each .cu entry of build/compile_commands.json with ptxas's -v (object to a temporary file, the build
untouched) and prints one line per kernel and architecture, then a summary. Exits 1 if any kernel spills or a
compile fails. The build itself already fails on a spill (--warn-on-spills --warning-as-error); this prints the
figures. usage: tools/spill_report.py [build_dir]
"""
import json
import pathlib
import re
import shlex
import subprocess
import sys
import tempfile

FUNC = re.compile(r"Compiling entry function '(\S+)' for '(\S+)'")
USAGE = re.compile(r"Used (\d+) registers")
FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")


def main() -> int:
    build = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "build")
    try:
        entries = json.loads((build / "compile_commands.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        print(f"spill_report: cannot read {build / 'compile_commands.json'}: {e}", file=sys.stderr)
        return 2
    kernels, failed = [], False
    with tempfile.TemporaryDirectory() as tmp:
        for e in entries:
            if not e["file"].endswith(".cu"):
                continue
            args = shlex.split(e["command"])
            for i, a in enumerate(args):
                if a == "-o":
                    args[i + 1] = str(pathlib.Path(tmp) / "spill.o")
            r = subprocess.run(args + ["-Xptxas=-v"], cwd=e["directory"], capture_output=True, text=True)
            if r.returncode != 0:
                print(f"spill_report: {e['file']} failed to compile:\n{r.stderr}", file=sys.stderr)
                failed = True
            func = None
            for line in (r.stdout + r.stderr).splitlines():
                if m := FUNC.search(line):
                    func = (pathlib.Path(e["file"]).name, m.group(1), m.group(2))
                elif func and (m := FRAME.search(line)):
                    kernels.append([*func, int(m.group(2)) + int(m.group(3)), None])
                elif func and kernels and kernels[-1][4] is None and (m := USAGE.search(line)):
                    kernels[-1][4] = int(m.group(1))
                    func = None
    names = [k[1] for k in kernels]
    try:  # readable names; the mangled ones if c++filt is missing
        out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True).stdout
        if len(out.splitlines()) == len(names):
            names = out.splitlines()
    except OSError:
        pass
    for (file, _, arch, spill, regs), name in zip(kernels, names):
        name = name.replace("(anonymous namespace)::", "").removeprefix("void ").split("(")[0]
        print(f"{file} {arch} {name}: {regs} registers, {spill} bytes spilled")
    spilled = [k for k in kernels if k[3]]
    regs = [k[4] for k in kernels if k[4] is not None]
    print(f"{len(kernels)} kernel entries, {len(spilled)} with spills, "
          f"{min(regs, default=0)}-{max(regs, default=0)} registers")
    return 1 if spilled or failed or not kernels else 0


if __name__ == "__main__":
    sys.exit(main())
