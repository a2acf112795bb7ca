"""The projects a scenario is built from: the generated project and
googletest."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

from workspace import TU, Anchors, Scenario


GOOGLETEST = Path("/usr/src/googletest/googletest")


# --- projects ----------------------------------------------------------------------


def header_text(name: str, guard: str, includes: list[str], value: str, extra: str = "") -> str:
    inc = "".join(f"#include {i}\n" for i in includes)
    return (f"#ifndef {guard}\n#define {guard}\n{inc}"
            f"static const int kiln_mark_{name} __attribute__((used)) = 1;\n"
            f"static inline int {name}_value(void) {{ return {value}; }}\n{extra}#endif\n")


_UTIL_EXTRA = """/* a warning in a header, with -Wall */
static inline int util_unused(void) {
  int /* note */ unused_in_header;
  return (int)sizeof(size_t);
}
"""

_GEN_SOURCE = """/* {name}: a translation unit of the generated project */
#include "common/util.h"
#include <lib.h>
#include "env.h"
#if __has_include("opt.h")
#include "opt.h"
#endif
#if __has_include(<sysopt.h>)
#include <sysopt.h>
#endif
#ifdef KILN_USE_DATE
static const char kiln_date_{name}[] __attribute__((used)) = __DATE__;
#endif
static const long kiln_std_{name} __attribute__((used)) = {std};
static const int kiln_mark_{name} __attribute__((used)) = 1;
int {name}_value(int x) {{
  int /* short */ unused_{name};
  return x + util_value() + lib_value() + env_value() + CFG_VALUE + VAL;
}}
"""


def gen_project(s: Scenario, absolute: bool = False, checkouts: int = 1) -> None:
    """The generated project: nested include directories, the build
    directory's include/ first in the path, `.` and `..` in -I paths, a
    symlinked include directory, an -iquote and an -isystem directory, a
    CPATH directory and `-include cfg.h`; four TUs (g++, clang++, gcc, clang)
    built from build/ as CMake would."""
    files = {
        "inc/common/util.h": header_text("util", "COMMON_UTIL_H",
                                     ['"common/detail.h"', "<stddef.h>"],
                                     "10 + detail_value()", _UTIL_EXTRA),
        "inc/common/detail.h": header_text("detail", "COMMON_DETAIL_H", [], "20"),
        "inc/cfg.h": "#ifndef CFG_H\n#define CFG_H\n#define CFG_VALUE 7\n"
                     "static const int kiln_mark_cfg __attribute__((used)) = 1;\n#endif\n",
        "ext/lib.h": header_text("lib", "EXT_LIB_H", [], "30"),
        "cp/env.h": header_text("env", "CP_ENV_H", [], "40"),
        "sysinc/sysopt.h": header_text("sysopt", "SYSOPT_H", [], "50"),
    }
    sources = {"a": "src/a.cc", "b": "src/sub/b.cc", "c": "src/c.c", "d": "src/d.c"}
    for name, path in sources.items():
        cxx = path.endswith(".cc")
        files[path] = _GEN_SOURCE.format(name=name,
                                         std="__cplusplus" if cxx else "__STDC_VERSION__")
    for path, text in files.items():
        s.write(path, text)
    for d in ("gen", "q", "build/include", "build/obj"):
        s.mkdir(d)
    s.symlink("lnk", "inc")
    root = s.abs() if absolute else ".."
    src = {n: f"{root}/{p}" for n, p in sources.items()}
    src["d"] = f"{s.abs()}/{sources['d']}"  # CMake-style absolute source in any case
    obj = {n: (f"{s.abs()}/build/obj/{n}.o" if absolute else f"obj/{n}.o") for n in sources}
    common = ["-include", "cfg.h"]
    s.tus = [
        TU("a", "g++", s.rel("build"), sources["a"],
           ["-std=c++17", "-O0", "-g", "-Wall", "-ffile-prefix-map=/nonexistent=/x",
            "-fstack-usage", "-DVAL=1",
            "-Iinclude", "-I.", f"-I{root}/gen", "-iquote", f"{root}/q", f"-I{root}/inc",
            "-isystem", f"{root}/ext", *common, "-c", src["a"], "-o", obj["a"]]),
        TU("b", "clang++", s.rel("build"), sources["b"],
           ["-std=c++20", "-O2", "-Wall", "-fPIC", "-DVAL=2", "-Iinclude", "-I", f"{root}/gen",
            "-iquote", f"{root}/q", f"-I{root}/lnk", "-isystem", f"{root}/ext", *common,
            "-c", src["b"], "-o", obj["b"]]),
        TU("c", "gcc", s.rel("build"), sources["c"],
           ["-std=c11", "-O2", "-g", "-gsplit-dwarf", "--coverage", "-ffunction-sections",
            "-Wall", "-DVAL=3",
            "-Iinclude", f"-I{root}/gen", "-iquote", f"{root}/q",
            f"-I{'./' if not absolute else ''}{root}/src/../inc", "-isystem", f"{root}/ext",
            *common, "-c", src["c"], "-o", obj["c"]]),
        TU("d", "clang", s.rel("build"), sources["d"],
           ["-std=c17", "-O0", "-g", "--coverage", "-Wall", "-DVAL=4", "-Iinclude",
            f"-I{root}/gen", "-iquote", f"{root}/q", "-I", f"{root}/inc",
            "-isystem", f"{root}/ext", *common, "-c", src["d"], "-o", obj["d"]]),
    ]
    s.setenv("CPATH", s.abs("cp"))
    s.anchors = Anchors(
        header="inc/common/util.h", include_name="common/util.h",
        first_includes={n: ("common/util.h", "inc/common/util.h") for n in sources},
        places={"earlier -I dir": "gen", "-iquote dir": "q", "build include/": "build/include",
                "-I. (the cwd)": "build"},
        edits={
            "comment": [(p, "/* short */", "/* a much longer comment */")
                        for p in sources.values()],
            "whitespace": [(p, "  return x +", "      return   x +") for p in sources.values()],
            "newline in comment": [(p, f"/* {n}: a", f"/* {n}:\n   a") for n, p in sources.items()],
            "header comment": [("inc/common/util.h", "/* note */", "/* a longer note */")],
            "header whitespace": [("inc/common/util.h", "  return (int)", "    return  (int)")],
        })
    _more_checkouts(s, checkouts)


def _more_checkouts(s: Scenario, checkouts: int) -> None:
    for n in range(2, checkouts + 1):
        s.ws.copy_tree(s.checkout, f"t{n}")


GTEST_TUS = (("gtest-filepath", "g++", ["-std=c++17", "-O0", "-g", "-Wall"],
              "gtest/internal/gtest-filepath.h"),
             ("gtest-matchers", "clang++", ["-std=c++17", "-O2", "-fPIC", "-DNDEBUG"],
              "gtest/gtest-matchers.h"))
GTEST_PORT = "gtest/internal/gtest-port.h"


def gtest_project(s: Scenario, checkouts: int = 1, **_: object) -> None:
    """googletest's sources (/usr/src/googletest), two of its TUs, built
    from build/ with build/include and an empty gen/ first in the path."""
    s.ws.copy_tree(str(GOOGLETEST / "include"), s.rel("gt/include"))
    s.ws.copy_tree(str(GOOGLETEST / "src"), s.rel("gt/src"))
    for rel in {GTEST_PORT, *(h for *_, h in GTEST_TUS)}:
        path = f"gt/include/{rel}"
        guard = "GOOGLETEST_INCLUDE_" + re.sub(r"[/.-]", "_", rel).upper() + "_"
        name = re.sub(r"\W", "_", Path(rel).stem)
        s.replace(path, f"#define {guard}\n", f"#define {guard}\n"
                  f"static const int kiln_mark_{name} __attribute__((used)) = 1;\n")
    for d in ("gen", "build/include", "build/obj"):
        s.mkdir(d)
    s.tus = [TU(name, cxx, s.rel("build"), f"gt/src/{name}.cc",
                [*flags, "-Iinclude", "-I../gen", "-I../gt/include", "-I../gt", "-c",
                 f"../gt/src/{name}.cc", "-o", f"obj/{name}.o"])
             for name, cxx, flags, _ in GTEST_TUS]
    s.anchors = Anchors(
        header=f"gt/include/{GTEST_PORT}", include_name=GTEST_PORT,
        first_includes={n: (h, f"gt/include/{h}") for n, _, _, h in GTEST_TUS},
        places={"earlier -I dir": "gen", "build include/": "build/include"},
        edits={
            "comment": [(f"gt/src/{n}.cc", "namespace testing {",
                         "namespace /* edited */ testing {") for n, *_ in GTEST_TUS],
            "whitespace": [(f"gt/src/{n}.cc", "/* edited */ ", "             ")
                           for n, *_ in GTEST_TUS],
            "header comment": [(f"gt/include/{GTEST_PORT}", "// This file is fundamental",
                                "// This header file (edited) is fundamental")],
        })
    _more_checkouts(s, checkouts)


PROJECTS: dict[str, Callable[..., None]] = {"gen": gen_project, "gtest": gtest_project}


def available_projects() -> list[str]:
    return ["gen"] + (["gtest"] if (GOOGLETEST / "src" / "gtest.cc").exists() else [])
