#!/usr/bin/env python3
"""Checks kiln's layering (docs/architecture.md, "Components").

The single include root (build/include/kiln -> src) lets any target include
any header, so the link graph alone does not stop a component from reaching
into one it may not use. This check does:

  1. every `#include "kiln/<component>/..."` in src/<component>/ names a
     component that <component> may use (ALLOWED below);
  2. every src/<component>/ directory with a CMakeLists.txt defines exactly
     one library (add_library), and no other directory defines any.

Exit status 0 when both hold; 1 with one line per violation otherwise.
    python3 scripts/check_layering.py [source root]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# component -> the components it may include (besides itself). A component is
# a directory under src/; storage/local is part of storage.
ALLOWED: dict[str, set[str]] = {
    "util": set(),
    "config": {"util"},
    "compiler": {"util"},
    "net": {"util"},
    "net/server": {"net", "util"},
    "trace": set(),
    "storage": {"config", "util"},
    "storage/remote": {"storage", "net", "config", "util"},
    "cache": {"compiler", "storage", "config", "util"},
    "dist": {"cache", "compiler", "storage", "net", "config", "util"},
    "dist/scheduler": {"dist", "net/server", "net", "config", "util"},
    "dist/worker": {"dist", "net/server", "net", "config", "util"},
    "service": {"cache", "compiler", "storage", "net/server", "net", "config", "util"},
    "cli": {"cache", "compiler", "storage", "config", "util", "dist", "dist/scheduler",
            "dist/worker", "service",
            "net/server", "net"},
}

# Directories that belong to the library of their parent.
PART_OF = {"storage/local": "storage"}

INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]kiln/([^">]+)[">]', re.M)


def component_of(rel: Path) -> str | None:
    """The component of a file under src/, e.g. storage/remote for
    src/storage/remote/x.cpp."""
    parts = rel.parts[:-1]
    for n in (2, 1):
        if len(parts) >= n:
            name = "/".join(parts[:n])
            name = PART_OF.get(name, name)
            if name in ALLOWED:
                return name
    return None


def included_component(path: str) -> str | None:
    parts = path.split("/")[:-1]
    for n in (2, 1):
        if len(parts) >= n:
            name = PART_OF.get("/".join(parts[:n]), "/".join(parts[:n]))
            if name in ALLOWED:
                return name
    return None


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent)
    src = root / "src"
    problems: list[str] = []
    for f in sorted(src.rglob("*")):
        if f.suffix not in (".cpp", ".hpp", ".h", ".c"):
            continue
        rel = f.relative_to(src)
        comp = component_of(rel)
        if comp is None:
            problems.append(f"src/{rel}: in no known component (add it to ALLOWED)")
            continue
        for m in INCLUDE.finditer(f.read_text(errors="replace")):
            target = included_component(m.group(1))
            if target is None:
                problems.append(f"src/{rel}: includes kiln/{m.group(1)}, of no known component")
            elif target != comp and target not in ALLOWED[comp]:
                problems.append(f"src/{rel}: {comp} may not use {target} "
                                f"(includes kiln/{m.group(1)})")
    for cm in sorted(src.rglob("CMakeLists.txt")):
        rel = cm.parent.relative_to(src).as_posix()
        libraries = re.findall(r"^\s*add_library\s*\(\s*(\S+)", cm.read_text(), re.M)
        # A MODULE (a plugin .so) is a product of its directory's library.
        libraries = [lib for lib in libraries
                     if not re.search(rf"add_library\s*\(\s*{re.escape(lib)}\s+MODULE", cm.read_text())]
        if rel in ALLOWED and rel != "trace" and len(libraries) != 1:
            problems.append(f"src/{rel}/CMakeLists.txt: defines {len(libraries)} libraries "
                            f"({', '.join(libraries) or 'none'}); a component is one library")
    for p in problems:
        print(p)
    if not problems:
        print(f"layering ok: {len(ALLOWED)} components")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
