#!/usr/bin/env python3
"""Fails when an include points the wrong way between areas (docs/design.md: the arrows).

Each area's sources (src/<area>/, include/semaim/<area>/) may include headers of the areas below it only. The
table mirrors the DEPS of each semaim_area(...) line in CMakeLists.txt; a test checks both agree.
Usage: check_layers.py [repo root]
"""
import pathlib
import re
import sys

# area -> the areas it may include directly (transitively closed below).
ARROWS = {
    "core": [],
    "config": ["core"],
    "io": ["config"],
    "models": ["io", "kernels"],
    "ordering": ["config", "kernels"],
    "data": ["config"],
    "dist": ["config"],
    "eval": ["models", "data", "io"],
    "engine": ["models", "data", "io", "dist"],
    "tasks": ["engine", "ordering", "eval"],
    "cli": ["tasks"],
    # The custom ops link nothing of semaim; their entry points throw core's header-only error types.
    "kernels": ["core"],
}


def closure(area, seen=None):
    seen = set() if seen is None else seen
    for dep in ARROWS[area]:
        if dep not in seen:
            seen.add(dep)
            closure(dep, seen)
    return seen


def cmake_deps(root):
    """area -> the semaim_<area> libraries its semaim_area(...) line names."""
    text = (root / "CMakeLists.txt").read_text()
    out = {}
    for m in re.finditer(r"semaim_area\((\w+) DEPS ([^)]*)\)", text):
        names = (d[len("semaim_"):] for d in m.group(2).split() if d.startswith("semaim_"))
        out[m.group(1)] = sorted(n for n in names if n in ARROWS)  # private helper libraries are not areas
    return out


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parents[1])
    faults = []
    for area, deps in cmake_deps(root).items():
        if area not in ARROWS:
            faults.append(f"CMakeLists.txt: area '{area}' is missing from tools/check_layers.py")
        elif sorted(deps) != sorted(ARROWS[area]):
            faults.append(f"CMakeLists.txt: semaim_area({area}) links {deps}, the arrows say {sorted(ARROWS[area])}")
    include = re.compile(r'#include\s+"semaim/(\w+)/')
    kernel_include = re.compile(r'#include\s+"kernels/')
    for area in ARROWS:
        allowed = closure(area) | {area}
        dirs = [root / "src" / area, root / "include" / "semaim" / area] if area != "kernels" else [root / "kernels"]
        for d in dirs:
            for f in sorted(d.rglob("*")):
                if f.suffix not in (".h", ".cpp", ".cu", ".cuh"):
                    continue
                for n, line in enumerate(f.read_text(errors="replace").splitlines(), 1):
                    m = include.search(line)
                    target = m.group(1) if m else ("kernels" if kernel_include.search(line) else None)
                    if target and target != "pch.h" and target not in allowed:
                        faults.append(f"{f.relative_to(root)}:{n}: {area} includes {target} ({line.strip()})")
    for fault in faults:
        print(fault)
    print(f"{len(faults)} wrong-way include(s)" if faults else "every include points down the arrows")
    return 1 if faults else 0


if __name__ == "__main__":
    sys.exit(main())
