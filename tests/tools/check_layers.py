#!/usr/bin/env python3
"""Checks that src/quiver/<layer>/ only includes quiver headers of its own or lower layers.

Layers, lowest first: core, store, wire, remote, mpi/config (mpi and config both sit on
remote and do not include each other), cli. Exits 1 listing every violation.
"""
import pathlib
import re
import sys

ALLOWED = {
    "core": {"core"},
    "store": {"core", "store"},
    "wire": {"core", "store", "wire"},
    "remote": {"core", "store", "wire", "remote"},
    "config": {"core", "store", "wire", "remote", "config"},
    "mpi": {"core", "store", "wire", "remote", "config", "mpi"},
    "cli": {"core", "store", "wire", "remote", "config", "mpi", "cli"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]quiver/([a-z_]+)/')


def main(root: pathlib.Path) -> int:
    src = root / "src" / "quiver"
    problems = []
    for layer, allowed in ALLOWED.items():
        for path in sorted((src / layer).glob("*.[ch]pp")):
            for lineno, line in enumerate(path.read_text().splitlines(), 1):
                m = INCLUDE.match(line)
                if m and m.group(1) not in allowed:
                    problems.append(f"{path.relative_to(root)}:{lineno}: layer '{layer}' "
                                    f"includes '{m.group(1)}' (allowed: {', '.join(sorted(allowed))})")
    unknown = [p.name for p in src.iterdir() if p.is_dir() and p.name not in ALLOWED]
    problems += [f"src/quiver/{name}: not a known layer" for name in unknown]
    for p in problems:
        print(p)
    print(f"checked {len(ALLOWED)} layers: {len(problems)} violation(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()))
