#!/usr/bin/env python3
"""Differential harness: every compilation through kiln (or ccache) must give
exactly what the plain compiler gives now.

A *scenario* is a small project in a workspace (one or two checkouts), a set of
translation units (compiler, arguments, working directory), an environment and
a sequence of *stages*. Each stage changes something (a header, a flag, the
environment, the working directory ...) and is followed by a *step*: every TU
is compiled twice, once plainly and once through the peer (kiln, or ccache
with --peer ccache), and everything is compared: exit status, stdout, stderr,
and every file the compilation created (object, depfile, .dwo, .gcno ...).

How the two compilations are kept apart (sound for every flag): both run the
*same* command in the *same* working directory with the *same* output names,
one after the other: first the plain compiler, whose outputs (found by
scanning the workspace before and after) are read and removed, then the peer.
So nothing that depends on the output name, the working directory or the
paths (-g, -gsplit-dwarf, --coverage, depfile targets) can differ, and a
missing or extra output shows. Only two things are normalised: the per-compile
stamp of a .gcno (bytes 8..12, and the same stamp where the object embeds it),
and, in base_dir scenarios, paths inside depfiles (resolved to real paths).

With base_dir the peer runs the compiler with absolute paths under the
workspace rewritten relative to the working directory (docs/direct-mode.md), so
the reference is the plain compiler given that rewritten command line; a
rewritten path that would name another file (a symlink followed by `..`) is
kept absolute in the reference, so a peer that compiles the other file fails.

Configurations: the mode is direct (the default configuration), depend (-MD
added to every TU) or preprocessor (KILN_DIRECT=false; ccache: CCACHE_DEPEND,
CCACHE_NODIRECT); the storage is local, or remote: a redis-server on a free
loopback port as a level (KILN_REDIS_ENDPOINT; ccache: CCACHE_REMOTE_STORAGE)
and an empty local cache at every step, so that hits come from Redis. The peer
runs with its own cache directory and no configuration file. The kiln binary is
copied at start, so a rebuild during a run changes nothing.

Timing: kiln does not store a result whose inputs changed within 50 ms of its
start, and trusts a file's stat only once it is 2 s old. Files written here get
an mtime 600 s in the past and every compile waits until 0.15 s after the last
write (ctime cannot be set back). Projects are created, then left alone for
2.1 s before their first build, so unchanged files are "old" as in a real
checkout and only the files a stage changes are new.

Usage (see --help):
    harness.py --kiln build/bin/kiln                 # the mutation table
    harness.py --kiln build/bin/kiln --random --seed 1 --seconds 150
    harness.py --kiln build/bin/kiln --self-check    # KILN_DISABLE=1: must all pass
    harness.py --kiln build/bin/kiln --peer ccache   # the same against ccache
    harness.py --kiln build/bin/kiln --table         # both peers, markdown table
Every failure prints a shell reproduction (checked to reproduce, reduced to the
failing TU when that still fails). The last line is "N passed, N failed"
(counting steps); the exit status is 1 if any step failed.
"""

from __future__ import annotations

import argparse
import datetime
import difflib
import inspect
import itertools
import json
import multiprocessing
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "tests" / "integration"))
import kilntest  # noqa: E402
import remote_servers  # noqa: E402

SETTLE_S = max(0.15, kilntest.k_settle_s)  # after a write, before a compile
TRUST_S = 2.1  # a new project's age before its first build
OLD_AGE_S = 600  # the mtime given to written files, seconds in the past
COMPILE_TIMEOUT_S = 300
GOOGLETEST = Path("/usr/src/googletest/googletest")
MODES = ("direct", "depend", "preprocessor")
STORAGES = ("local", "remote")
DEFAULT_CCACHE = "/usr/bin/ccache"


# --- shell text ------------------------------------------------------------------

_SAFE_WORD = re.compile(r"^[A-Za-z0-9_./=+,:@%^-]+$")


def _quote(s: str) -> str:
    return s if _SAFE_WORD.match(s) else shlex.quote(s)


def sh_word(s: str, subst: dict[str, str]) -> str:
    """`s` quoted for sh, with each path in `subst` written as its variable
    (e.g. {"/tmp/x/ws": "$d"}): `-I/tmp/x/ws/inc` -> `-I"$d"/inc`."""
    if s == "":
        return "''"
    for path, var in sorted(subst.items(), key=lambda kv: -len(kv[0])):
        if path in s:
            return f'"{var}"'.join(sh_word(p, subst) if p else "" for p in s.split(path))
    return _quote(s)


def sh_words(words: list[str], subst: dict[str, str]) -> str:
    return " ".join(sh_word(w, subst) for w in words)


# Helpers defined at the top of every reproduction; the workspace records its
# changes in terms of them.
SCRIPT_HELPERS = r"""old() { touch -d "${2:-600} seconds ago" "$1"; }
w() { mkdir -p "$(dirname "$1")"; cat > "$1"; old "$1"; }
mark() { sed -i -E "s/(kiln_mark_[A-Za-z0-9_]+ __attribute__\(\(used\)\) = )-?[0-9]+/\1$2/" "$1"; old "$1"; }
shadow() { mkdir -p "$(dirname "$2")"; cp "$1" "$2"; mark "$2" "$3"; }
repl() { python3 -c 'import sys, pathlib; p = pathlib.Path(sys.argv[1]); t = p.read_text(); assert sys.argv[2] in t; p.write_text(t.replace(sys.argv[2], sys.argv[3], 1))' "$@"; old "$1"; }
"""

MARK_RE = re.compile(r"(kiln_mark_[A-Za-z0-9_]+ __attribute__\(\(used\)\) = )-?[0-9]+")


# --- the workspace -----------------------------------------------------------------


@dataclass
class Event:
    """One entry of a scenario's history, the material of reproductions."""

    kind: str  # "sh" (a change, as shell text), "sleep", "step", "compile"
    text: str = ""
    path: str = ""  # "sh": the one file changed, if so
    step: int = 0
    compile: "CompileRecord | None" = None


@dataclass
class CompileRecord:
    step: int
    tu: str
    compiler: str
    cwd: str  # relative to the workspace
    args: list[str]  # what the peer is given
    ref_args: list[str]  # what the plain compiler is given
    outputs: list[str] = field(default_factory=list)  # workspace-relative
    depfiles: list[str] = field(default_factory=list)


class Workspace:
    """The directory holding a scenario's checkouts. Every change is applied
    and recorded as shell text (with the workspace as "$d")."""

    def __init__(self, root: Path, cache_root: Path) -> None:
        self.root = root
        self.cache_root = cache_root
        self.history: list[Event] = []
        self.created = time.monotonic()
        self.last_write = 0.0
        self.unsettled = False
        self.trusted = False
        self.root.mkdir(parents=True, exist_ok=True)

    @property
    def subst(self) -> dict[str, str]:
        return {str(self.root): "$d", str(self.cache_root): "$c"}

    def path(self, rel: str) -> Path:
        return self.root / rel

    def sh(self, *words: str) -> str:
        return sh_words(list(words), self.subst)

    def record(self, text: str, path: str = "") -> None:
        self.history.append(Event("sh", text, path=path))

    def _wrote(self) -> None:
        self.last_write = time.monotonic()
        self.unsettled = True

    def _age(self, rel: str, age: float) -> None:
        kilntest.age_file(self.path(rel), age)

    def write(self, rel: str, text: str) -> None:
        p = self.path(rel)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        self._age(rel, OLD_AGE_S)
        self._wrote()
        if text.endswith("\n"):
            self.record(f"w {self.sh(rel)} <<'KILN_EOF'\n{text}KILN_EOF", path=rel)
        else:  # (a heredoc always ends with a newline)
            self.record(f"printf %s {shlex.quote(text)} | w {self.sh(rel)}", path=rel)

    def set_marks(self, rel: str, value: int) -> None:
        p = self.path(rel)
        text, n = MARK_RE.subn(lambda m: f"{m.group(1)}{value}", p.read_text())
        assert n, f"no kiln_mark in {rel}"
        p.write_text(text)
        self._age(rel, OLD_AGE_S)
        self._wrote()
        self.record(f"mark {self.sh(rel)} {value}", path=rel)

    def shadow(self, src: str, dst: str, value: int) -> None:
        """Copies src to dst with its marks set to value."""
        self.path(dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.path(src), self.path(dst))
        text = MARK_RE.sub(lambda m: f"{m.group(1)}{value}", self.path(dst).read_text())
        self.path(dst).write_text(text)
        self._age(dst, OLD_AGE_S)
        self._wrote()
        self.record(f"shadow {self.sh(src, dst)} {value}")

    def replace(self, rel: str, old: str, new: str) -> None:
        p = self.path(rel)
        text = p.read_text()
        assert old in text, f"{old!r} not in {rel}"
        p.write_text(text.replace(old, new, 1))
        self._age(rel, OLD_AGE_S)
        self._wrote()
        self.record(f"repl {self.sh(rel, old, new)}", path=rel)

    def replace_file(self, rel: str) -> None:
        """A new inode with the same content and mtime (as `cp -p` + rename)."""
        p, tmp = self.path(rel), self.path(rel + ".new")
        shutil.copy2(p, tmp)
        os.replace(tmp, p)
        self._wrote()
        self.record(f"cp -p {self.sh(rel, rel + '.new')} && mv {self.sh(rel + '.new', rel)}")

    def touch(self, rel: str, age: float | None) -> None:
        """Sets the mtime to `age` seconds ago (None: now)."""
        if age is None:
            os.utime(self.path(rel))
            self.record(f"touch {self.sh(rel)}", path=rel)
        else:
            self._age(rel, age)
            self.record(f"old {self.sh(rel)} {int(age)}", path=rel)
        self._wrote()

    def remove(self, rel: str) -> None:
        p = self.path(rel)
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
        self._wrote()
        self.record(f"rm -rf {self.sh(rel)}")

    def mkdir(self, rel: str) -> None:
        self.path(rel).mkdir(parents=True, exist_ok=True)
        self.record(f"mkdir -p {self.sh(rel)}")

    def symlink(self, rel: str, target: str) -> None:
        p = self.path(rel)
        if p.is_symlink():
            p.unlink()
        p.symlink_to(target)
        self._wrote()
        self.record(f"ln -sfn {self.sh(target, rel)}")

    def copy_tree(self, src: str, dst: str) -> None:
        """cp -a (symlinks kept, mtimes preserved); src absolute or relative."""
        s = Path(src) if os.path.isabs(src) else self.path(src)
        shutil.copytree(s, self.path(dst), symlinks=True)
        self._wrote()
        self.record(f"mkdir -p {self.sh(str(Path(dst).parent))} && cp -a {self.sh(str(s), dst)}")

    # --- waiting ----------------------------------------------------------------

    def sleep(self, seconds: float, text: str) -> None:
        if seconds > 0:
            time.sleep(seconds)
        self.history.append(Event("sleep", text))

    def wait_before_compile(self) -> None:
        """The first build waits until the project is TRUST_S old; later ones
        SETTLE_S after the last write."""
        if not self.trusted:
            self.trusted = True
            self.unsettled = False
            self.sleep(self.created + TRUST_S - time.monotonic(), f"sleep {TRUST_S}")
        elif self.unsettled:
            self.unsettled = False
            self.sleep(self.last_write + SETTLE_S - time.monotonic(), f"sleep {SETTLE_S}")


# --- translation units and scenarios -----------------------------------------------


@dataclass
class TU:
    name: str
    compiler: str
    cwd: str  # relative to the workspace
    source: str  # relative to the checkout
    args: list[str]

    def replace(self, old: str, new: str | None) -> None:
        """Replaces (None: drops) the argument `old`."""
        i = self.args.index(old)
        self.args[i:i + 1] = [] if new is None else [new]

    def add(self, *args: str) -> None:
        at = self.args.index("-c")
        self.args[at:at] = list(args)

    def has(self, arg: str) -> bool:
        return arg in self.args

    @property
    def lang(self) -> str:
        return "c" if self.source.endswith(".c") else "c++"


@dataclass
class Anchors:
    """What the generic mutations need to know about a project (paths are
    relative to the checkout)."""

    header: str  # a header every TU includes, found through an -I directory
    include_name: str  # how the TUs name it
    first_includes: dict[str, tuple[str, str]]  # TU -> (include name, header it finds)
    places: dict[str, str]  # kind of place -> directory searched before the header's
    edits: dict[str, list[tuple[str, str, str]]]  # kind -> [(file, old, new)]


@dataclass
class Scenario:
    name: str
    project: str
    ws: Workspace
    tus: list[TU]
    anchors: Anchors | None
    env: dict[str, str | None] = field(default_factory=dict)  # None: unset
    base_dir: bool = False
    checkout: str = "t1"
    next_mark: int = 100
    random_state: dict = field(default_factory=dict)

    # --- paths relative to the current checkout --------------------------------

    def rel(self, path: str) -> str:
        return f"{self.checkout}/{path}"

    def abs(self, path: str = "") -> str:
        return str(self.ws.path(self.rel(path))).rstrip("/")

    def exists(self, path: str) -> bool:
        return os.path.lexists(self.ws.path(self.rel(path)))

    def tu(self, name: str) -> TU:
        return next(t for t in self.tus if t.name == name)

    def fresh_mark(self) -> int:
        self.next_mark += 1
        return self.next_mark

    # --- changes (recorded) -------------------------------------------------------

    def write(self, path: str, text: str) -> None:
        self.ws.write(self.rel(path), text)

    def set_mark(self, path: str, value: int | None = None) -> None:
        self.ws.set_marks(self.rel(path), self.fresh_mark() if value is None else value)

    def shadow(self, src: str, dst: str) -> None:
        self.ws.shadow(self.rel(src), self.rel(dst), self.fresh_mark())

    def replace(self, path: str, old: str, new: str) -> None:
        self.ws.replace(self.rel(path), old, new)

    def touch(self, path: str, age: float | None) -> None:
        self.ws.touch(self.rel(path), age)

    def remove(self, path: str) -> None:
        self.ws.remove(self.rel(path))

    def symlink(self, path: str, target: str) -> None:
        self.ws.symlink(self.rel(path), target)

    def mkdir(self, path: str) -> None:
        self.ws.mkdir(self.rel(path))

    def setenv(self, name: str, value: str | None) -> None:
        self.env[name] = value
        if value is None:
            self.ws.record(f"unset {name}")
        else:
            self.ws.record(f"export {name}={self.ws.sh(value)}")

    def switch_checkout(self, n: int) -> None:
        """The same commands (and environment) from checkout t<n>: working
        directories, and absolute paths into the checkout, move there."""
        old_abs, old = self.abs(), self.checkout
        self.checkout = f"t{n}"
        new_abs = self.abs()

        def move(s: str) -> str:
            return s.replace(old_abs + "/", new_abs + "/") if s != old_abs else new_abs

        for tu in self.tus:
            tu.cwd = self.checkout + tu.cwd[len(old):]
            tu.args = [move(a) for a in tu.args]
        for k, v in list(self.env.items()):
            if v is not None and old_abs in v:
                self.setenv(k, v.replace(old_abs, new_abs))


# --- projects ----------------------------------------------------------------------


def _header(name: str, guard: str, includes: list[str], value: str, extra: str = "") -> str:
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
        "inc/common/util.h": _header("util", "COMMON_UTIL_H",
                                     ['"common/detail.h"', "<stddef.h>"],
                                     "10 + detail_value()", _UTIL_EXTRA),
        "inc/common/detail.h": _header("detail", "COMMON_DETAIL_H", [], "20"),
        "inc/cfg.h": "#ifndef CFG_H\n#define CFG_H\n#define CFG_VALUE 7\n"
                     "static const int kiln_mark_cfg __attribute__((used)) = 1;\n#endif\n",
        "ext/lib.h": _header("lib", "EXT_LIB_H", [], "30"),
        "cp/env.h": _header("env", "CP_ENV_H", [], "40"),
        "sysinc/sysopt.h": _header("sysopt", "SYSOPT_H", [], "50"),
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


# --- the mutation table -------------------------------------------------------------

Stages = Iterator[str]


@dataclass(frozen=True)
class Mutation:
    name: str
    fn: Callable[[Scenario], Stages]
    doc: str
    projects: tuple[str, ...]
    options: tuple[tuple[str, object], ...] = ()  # project options (checkouts=2 ...)
    base_dir: bool = False


MUTATIONS: dict[str, Mutation] = {}
BOTH = ("gen", "gtest")
GEN = ("gen",)


def mutation(name: str, projects: tuple[str, ...] = BOTH, base_dir: bool = False,
             **options: object) -> Callable:
    def register(fn: Callable[[Scenario], Stages]) -> Callable[[Scenario], Stages]:
        doc = " ".join((inspect.getdoc(fn) or name).split())
        MUTATIONS[name] = Mutation(name, fn, doc, projects,
                                   tuple(sorted(options.items())), base_dir)
        return fn
    return register


@mutation("no-change")
def _no_change(s: Scenario) -> Stages:
    """Nothing changes: a warm rebuild."""
    yield "rebuild, nothing changed"


@mutation("header-content")
def _header_content(s: Scenario) -> Stages:
    """A header's content changes, then changes back."""
    s.set_mark(s.anchors.header, 2)
    yield f"edit {s.anchors.header}"
    s.set_mark(s.anchors.header, 1)
    yield f"edit {s.anchors.header} back"


@mutation("header-touch")
def _header_touch(s: Scenario) -> Stages:
    """A header's mtime changes, its content does not."""
    s.touch(s.anchors.header, 300)
    yield f"{s.anchors.header}: another old mtime"
    s.touch(s.anchors.header, None)
    yield f"touch {s.anchors.header} (mtime now)"


@mutation("header-replaced")
def _header_replaced(s: Scenario) -> Stages:
    """A header is replaced by a copy: new inode, same content and mtime."""
    s.ws.replace_file(s.rel(s.anchors.header))
    yield f"replace {s.anchors.header} by a copy"


def _shadow_stages(s: Scenario, pairs: list[tuple[str, str]], what: str) -> Stages:
    """Creates each (original, shadow) copy, then removes the shadows."""
    for original, shadow in pairs:
        s.shadow(original, shadow)
    yield f"new {', '.join(sh for _, sh in pairs)} ({what})"
    for _, shadow in pairs:
        s.remove(shadow)
    yield "remove it again"


def _register_place(kind: str, name: str, projects: tuple[str, ...]) -> None:
    def stages(s: Scenario) -> Stages:
        a = s.anchors
        yield from _shadow_stages(s, [(a.header, f"{a.places[kind]}/{a.include_name}")],
                                  f"shadows {a.header} from the {kind}")
    stages.__doc__ = f"A new header in the {kind} shadows one found later in the path."
    mutation(name, projects)(stages)


@mutation("shadow-next-to-source")
def _shadow_next_to_source(s: Scenario) -> Stages:
    """A new header next to the source shadows its first `#include "..."`."""
    pairs = {}
    for tu in s.tus:
        inc, original = s.anchors.first_includes[tu.name]
        pairs.setdefault(f"{os.path.dirname(tu.source)}/{inc}", original)
    yield from _shadow_stages(s, [(o, sh) for sh, o in pairs.items()], "next to the sources")


_register_place("earlier -I dir", "shadow-earlier-I-dir", BOTH)
_register_place("build include/", "shadow-build-include", BOTH)
_register_place("-iquote dir", "shadow-iquote-dir", GEN)
_register_place("-I. (the cwd)", "shadow-dot-I", GEN)


@mutation("shadow-next-to-header", GEN)
def _shadow_next_to_header(s: Scenario) -> Stages:
    """A new header next to the including header shadows its `#include "common/detail.h"`."""
    yield from _shadow_stages(s, [("inc/common/detail.h", "inc/common/common/detail.h")],
                              "next to util.h, which includes it with quotes")


@mutation("shadow-cpath-dir", GEN)
def _shadow_cpath(s: Scenario) -> Stages:
    """A new header in the CPATH directory shadows one found with -isystem."""
    yield from _shadow_stages(s, [("ext/lib.h", "cp/lib.h")], "CPATH dir, before -isystem")


@mutation("shadow-include-cwd", GEN)
def _shadow_include_cwd(s: Scenario) -> Stages:
    """A new cfg.h in the working directory shadows the one `-include cfg.h` found via -I."""
    yield from _shadow_stages(s, [("inc/cfg.h", "build/cfg.h")], "the cwd, for -include cfg.h")


@mutation("shadow-system-header", GEN)
def _shadow_system_header(s: Scenario) -> Stages:
    """A new stddef.h (with #include_next) in build/include shadows the system one."""
    s.write("build/include/stddef.h", "#include_next <stddef.h>\n"
            "static const int kiln_mark_stddef __attribute__((used)) = 1;\n")
    yield "new build/include/stddef.h shadows <stddef.h>"
    s.remove("build/include/stddef.h")
    yield "remove it again"


@mutation("has-include-quote", GEN)
def _has_include_quote(s: Scenario) -> Stages:
    """`__has_include("opt.h")` target appears in an -I directory, then disappears."""
    s.write("inc/opt.h", _header("opt", "OPT_H", [], "60"))
    yield "new inc/opt.h (probed with __has_include)"
    s.remove("inc/opt.h")
    yield "remove inc/opt.h"


@mutation("has-include-angle", GEN)
def _has_include_angle(s: Scenario) -> Stages:
    """`__has_include(<sysopt.h>)` target appears in the -isystem directory, then disappears."""
    s.write("ext/sysopt.h", _header("sysopt", "SYSOPT_H", [], "70"))
    yield "new ext/sysopt.h (probed with __has_include)"
    s.remove("ext/sysopt.h")
    yield "remove ext/sysopt.h"


@mutation("macro-changed", GEN)
def _macro_changed(s: Scenario) -> Stages:
    """A -D macro on the command line changes, then changes back."""
    for tu in s.tus:
        v = next(a for a in tu.args if a.startswith("-DVAL="))
        tu.replace(v, v + "0")
    yield "-DVAL=n -> -DVAL=n0"
    for tu in s.tus:
        v = next(a for a in tu.args if a.startswith("-DVAL="))
        tu.replace(v, v[:-1])
    yield "back to -DVAL=n"


@mutation("flag-changed", GEN)
def _flag_changed(s: Scenario) -> Stages:
    """Flags change: optimisation level, language standard, warnings."""
    s.tu("a").replace("-O0", "-O2")
    s.tu("b").replace("-O2", "-O0")
    yield "a: -O0 -> -O2, b: -O2 -> -O0"
    s.tu("a").replace("-std=c++17", "-std=c++20")
    s.tu("c").replace("-std=c11", "-std=c17")
    yield "a: -std=c++20, c: -std=c17"
    for tu in s.tus:
        tu.replace("-Wall", None)
    yield "no -Wall"


def _env_stages(s: Scenario, changes: list[tuple[str, str | None]]) -> Stages:
    for name, value in changes:
        s.setenv(name, value)
        yield f"{name}={value}" if value is not None else f"unset {name}"


@mutation("env-CPATH", GEN)
def _env_cpath(s: Scenario) -> Stages:
    """CPATH names another directory (same header names, other content), then the first again."""
    s.ws.copy_tree(s.rel("cp"), s.rel("cp2"))
    s.set_mark("cp2/env.h", 2)
    yield from _env_stages(s, [("CPATH", s.abs("cp2")), ("CPATH", s.abs("cp"))])


@mutation("env-C_INCLUDE_PATH", GEN)
def _env_c_include_path(s: Scenario) -> Stages:
    """C_INCLUDE_PATH is set (a `__has_include(<sysopt.h>)` target becomes visible),
    then unset."""
    yield from _env_stages(s, [("C_INCLUDE_PATH", s.abs("sysinc")), ("C_INCLUDE_PATH", None)])


@mutation("env-CPLUS_INCLUDE_PATH", GEN)
def _env_cplus_include_path(s: Scenario) -> Stages:
    """CPLUS_INCLUDE_PATH is set (a `__has_include(<sysopt.h>)` target becomes visible),
    then unset."""
    yield from _env_stages(s, [("CPLUS_INCLUDE_PATH", s.abs("sysinc")),
                               ("CPLUS_INCLUDE_PATH", None)])


@mutation("env-SOURCE_DATE_EPOCH", GEN)
def _env_source_date_epoch(s: Scenario) -> Stages:
    """SOURCE_DATE_EPOCH is set (sources now use __DATE__), changed, unset."""
    s.setenv("SOURCE_DATE_EPOCH", "1000000000")
    for tu in s.tus:
        tu.add("-DKILN_USE_DATE")
    yield "SOURCE_DATE_EPOCH=1000000000, -DKILN_USE_DATE (sources use __DATE__)"
    yield from _env_stages(s, [("SOURCE_DATE_EPOCH", "1500000000"), ("SOURCE_DATE_EPOCH", None)])


@mutation("env-GCC_COLORS", GEN)
def _env_gcc_colors(s: Scenario) -> Stages:
    """GCC_COLORS changes the colours of the warnings (with -fdiagnostics-color=always)."""
    for tu in s.tus:
        tu.add("-fdiagnostics-color=always")
    yield "-fdiagnostics-color=always"
    yield from _env_stages(s, [("GCC_COLORS", "warning=01;32"),
                               ("GCC_COLORS", "warning=01;35:locus=01;34")])


@mutation("env-LANG-LC_ALL", GEN)
def _env_locale(s: Scenario) -> Stages:
    """The locale changes the quotes in diagnostics (LC_ALL, then LANG)."""
    yield from _env_stages(s, [("LC_ALL", "C.UTF-8"), ("LC_ALL", None), ("LANG", "C.UTF-8"),
                               ("LANG", "C")])


@mutation("cwd-other-checkout", checkouts=2)
def _cwd_other_checkout(s: Scenario) -> Stages:
    """The same commands from a second checkout; then a shadowing header and an edit there."""
    s.switch_checkout(2)
    yield "the same commands in checkout t2"
    tu = s.tus[0]
    inc, original = s.anchors.first_includes[tu.name]
    s.shadow(original, f"{os.path.dirname(tu.source)}/{inc}")
    yield f"t2: a new header next to {tu.source} shadows {inc}"
    s.set_mark(s.anchors.header, 3)
    yield f"t2: edit {s.anchors.header}"


@mutation("base-dir-two-checkouts", GEN, base_dir=True, checkouts=2, absolute=True)
def _base_dir(s: Scenario) -> Stages:
    """base_dir at the checkouts' parent, absolute paths (CMake style): a second checkout,
    a shadowing header and an edit there, and an -I path through a symlink and `..`."""
    yield from _cwd_other_checkout(s)
    s.shadow("inc/common/util.h", "src/inc/common/util.h")
    s.symlink("lnk2", "src/sub")
    s.tu("b").replace(f"-I{s.abs('lnk')}", f"-I{s.abs('lnk2')}/../inc")
    yield "b: -I<t2>/lnk2/../inc, lnk2 -> src/sub (lexically <t2>/inc, really <t2>/src/inc)"


@mutation("shadow-cpath-header-next-to-source", GEN)
def _shadow_cpath_header(s: Scenario) -> Stages:
    """A new header next to the source shadows `#include "env.h"`, found through CPATH."""
    yield from _shadow_stages(s, [("cp/env.h", "src/env.h"), ("cp/env.h", "src/sub/env.h")],
                              "next to the sources; CPATH found env.h")


def _rename_outputs(s: Scenario) -> str:
    for tu in s.tus:
        i = tu.args.index("-o") + 1
        tu.args[i] = tu.args[i][:-2] + "-renamed.o"
    return "-o <name>-renamed.o"


@mutation("output-renamed")
def _output_renamed(s: Scenario) -> Stages:
    """The output name changes (the object names its .dwo and .gcda; -fstack-usage writes
    <name>.su)."""
    yield _rename_outputs(s)


@mutation("record-command-line", GEN)
def _record_command_line(s: Scenario) -> Stages:
    """clang -frecord-command-line (the object records the command line), then another -o."""
    for tu in s.tus:
        if tu.compiler.startswith("clang"):
            tu.add("-frecord-command-line")
    yield "clang TUs: -frecord-command-line"
    yield _rename_outputs(s)


@mutation("pragma-dependency", GEN)
def _pragma_dependency(s: Scenario) -> Stages:
    """`#pragma GCC dependency "parse.y"` warns when parse.y is newer than the source."""
    grammars = sorted({f"{os.path.dirname(tu.source)}/parse.y" for tu in s.tus})
    for g in grammars:
        s.write(g, "grammar\n")
        s.touch(g, 1200)
    for tu in s.tus:
        s.replace(tu.source, "#include", '#pragma GCC dependency "parse.y"\n#include')
    yield "sources say #pragma GCC dependency \"parse.y\" (older than them)"
    for g in grammars:
        s.touch(g, 300)
    yield "parse.y is now newer than the sources"


def _edit_stages(s: Scenario, kinds: list[str]) -> Stages:
    for kind in kinds:
        for path, old, new in s.anchors.edits[kind]:
            s.replace(path, old, new)
        yield f"{kind} edit"


@mutation("comment-whitespace-source")
def _comment_source(s: Scenario) -> Stages:
    """Comment and whitespace edits in the sources (-g, -Wall: columns and lines move)."""
    kinds = [k for k in ("comment", "whitespace", "newline in comment") if k in s.anchors.edits]
    yield from _edit_stages(s, kinds)


@mutation("comment-whitespace-header")
def _comment_header(s: Scenario) -> Stages:
    """Comment and whitespace edits in a header."""
    kinds = [k for k in ("header comment", "header whitespace") if k in s.anchors.edits]
    yield from _edit_stages(s, kinds)


@mutation("symlink-retarget", GEN)
def _symlink_retarget(s: Scenario) -> Stages:
    """The symlinked include directory (lnk -> inc, used by b) points elsewhere, then back."""
    s.ws.copy_tree(s.rel("inc"), s.rel("inc2"))
    s.set_mark("inc2/common/util.h", 2)
    s.symlink("lnk", "inc2")
    yield "lnk -> inc2"
    s.symlink("lnk", "inc")
    yield "lnk -> inc again"


# --- peers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    mode: str  # direct | depend | preprocessor
    storage: str  # local | remote

    def __str__(self) -> str:
        return f"{self.mode}, {self.storage}"


# The environment each peer takes for each setting.
PEER_VARS = {
    "kiln": {"cache": "KILN_DIR", "config": ("KILN_CONFIG", "{c}/no-config/kiln.toml"),
             "preprocessor": {"KILN_DIRECT": "false"}, "depend": {"KILN_DEPEND": "true"},
             "base_dir": "KILN_BASEDIR", "remote": "KILN_REDIS_ENDPOINT",
             "disable": {"KILN_DISABLE": "1"}},
    "ccache": {"cache": "CCACHE_DIR", "config": ("CCACHE_CONFIGPATH", "/dev/null"),
               "preprocessor": {"CCACHE_NODIRECT": "1"}, "depend": {"CCACHE_DEPEND": "1"},
               "base_dir": "CCACHE_BASEDIR", "remote": "CCACHE_REMOTE_STORAGE",
               "disable": {"CCACHE_DISABLE": "1"}},
}
HIT_KINDS = {"direct_hit": "direct hit", "direct_cache_hit": "direct hit",
             "preprocessed_hit": "preprocessed hit", "preprocessed_cache_hit": "preprocessed hit",
             "miss": "miss", "cache_miss": "miss"}


@dataclass(frozen=True)
class Peer:
    tool: str  # kiln | ccache
    binary: str  # what runs (for kiln: a snapshot, so that a rebuild cannot interfere)
    origin: str  # what reproductions name
    disable: bool = False  # --self-check: KILN_DISABLE=1

    @property
    def name(self) -> str:
        return self.tool + (" (disabled)" if self.disable else "")

    @property
    def script_var(self) -> str:
        return self.tool.upper()

    def env(self, cfg: Config, cache: Path, cache_root: Path, ws: Path,
            base_dir: bool, remote_url: str | None) -> dict[str, str]:
        v = PEER_VARS[self.tool]
        name, value = v["config"]
        env = {v["cache"]: str(cache), name: value.format(c=cache_root)}
        if cfg.mode in ("preprocessor", "depend"):
            env.update(v[cfg.mode])
        if base_dir:
            env[v["base_dir"]] = str(ws)
        if remote_url:
            env[v["remote"]] = remote_url
        if self.disable:
            env.update(v["disable"])
        return env

    def counters(self, env: dict[str, str]) -> dict[str, int]:
        """The hit/miss counters of the cache in env."""
        if self.tool == "kiln":
            r = subprocess.run([self.binary, "-s", "--json"], env=env, capture_output=True)
            try:
                c = json.loads(r.stdout)["counters"]
            except (ValueError, KeyError):
                return {}
        else:
            r = subprocess.run([self.binary, "--print-stats"], env=env, capture_output=True)
            c = dict(line.split("\t", 1) for line in r.stdout.decode().splitlines()
                     if "\t" in line)
        return {k: int(c[k]) for k in HIT_KINDS if k in c}


def peer_for(args: argparse.Namespace, tool: str, root: Path) -> Peer:
    origin = os.path.realpath(args.kiln if tool == "kiln" else args.ccache)
    if tool == "ccache" and not os.access(origin, os.X_OK):
        sys.exit(f"ccache not found: {origin} (--ccache)")
    binary = snapshot(origin, root / "bin") if tool == "kiln" else origin
    return Peer(tool, binary, origin, disable=args.self_check)


def snapshot(binary: str, dest: Path, wait_s: float = 600) -> str:
    """A copy of kiln and the plugins beside it, taken once it is executable
    (it may be being rebuilt right now)."""
    deadline = time.monotonic() + wait_s
    while not os.access(binary, os.X_OK):
        if time.monotonic() > deadline:
            sys.exit(f"not executable: {binary}")
        time.sleep(1)
    time.sleep(0.5)
    dest.mkdir(parents=True, exist_ok=True)
    src = Path(binary).parent
    for f in [Path(binary), *src.glob("libkiln-*.so")]:
        shutil.copy2(f, dest / f.name)
    return str(dest / Path(binary).name)


# --- running and comparing -------------------------------------------------------------


@dataclass
class Outcome:
    code: int
    out: bytes
    err: bytes
    files: dict[str, bytes]  # workspace-relative name -> content
    kind: str = ""  # what the peer did: direct hit, miss ...


def scan(root: Path) -> dict[str, tuple[int, int, int]]:
    """{relative path: (inode, size, mtime_ns)} of every file and symlink."""
    out: dict[str, tuple[int, int, int]] = {}
    stack = [root]
    while stack:
        d = stack.pop()
        for e in os.scandir(d):
            if e.is_dir(follow_symlinks=False):
                stack.append(Path(e.path))
            else:
                st = e.stat(follow_symlinks=False)
                out[os.path.relpath(e.path, root)] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return out


def execute(ws: Workspace, cwd: str, argv: list[str], env: dict[str, str]) -> Outcome:
    """Runs a compilation; its outputs (files created or changed) are read, and
    the created ones removed, so that the next compilation starts from the
    same tree."""
    ws.wait_before_compile()
    before = scan(ws.root)
    p = subprocess.run(argv, cwd=ws.path(cwd), env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=COMPILE_TIMEOUT_S)
    after = scan(ws.root)
    files = {}
    for rel, st in after.items():
        if before.get(rel) != st:
            path = ws.path(rel)
            files[rel] = path.read_bytes() if not path.is_symlink() else b"<symlink>"
            if rel not in before:
                path.unlink()
    for rel in set(before) - set(after):
        files[rel] = b"<deleted>"
    return Outcome(p.returncode, p.stdout, p.stderr, files)


# The functions below are also pasted into reproductions (inspect.getsource),
# so they use nothing but their arguments and the standard library.

def mask_coverage(data: bytes, gcno: bytes | None, is_gcno: bool) -> bytes:
    """A .gcno without its per-compile stamp (bytes 8..12); an object without
    the same stamp where it embeds it (coverage instrumentation)."""
    if is_gcno:
        return data[:8] + b"\0\0\0\0" + data[12:]
    if gcno is None or len(gcno) < 12:
        return data
    return data.replace(gcno[8:12], b"<stamp>")


def resolve_depfile(data: bytes, cwd: str) -> bytes:
    """A depfile with every path made absolute and real (base_dir runs write
    relative paths; the reference may keep some absolute)."""
    import os
    import re
    text = data.decode(errors="replace").replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        words = re.split(r"(?<!\\)\s+", line.strip())
        res = []
        for w in words:
            colon = w.endswith(":")
            p = w[:-1] if colon else w
            if p:
                p = os.path.realpath(os.path.join(cwd, p.replace("\\ ", " ")))
            res.append(p + (":" if colon else ""))
        out.append(" ".join(res))
    return "\n".join(out).encode()


def normalized(name: str, files: dict[str, bytes], depfiles: list[str], cwd: str | None
               ) -> bytes:
    data = files[name]
    stem, ext = os.path.splitext(name)
    if ext == ".gcno" or stem + ".gcno" in files:
        data = mask_coverage(data, files.get(stem + ".gcno"), ext == ".gcno")
    if cwd is not None and name in depfiles:
        data = resolve_depfile(data, cwd)
    return data


def _text_diff(what: str, a: bytes, b: bytes) -> list[str]:
    if a == b:
        return []
    lines = list(difflib.unified_diff(a.decode(errors="replace").splitlines(),
                                      b.decode(errors="replace").splitlines(),
                                      "plain", "peer", lineterm="", n=1))
    more = f"\n      ... ({len(lines) - 14} more lines)" if len(lines) > 14 else ""
    return [f"{what} differs:\n      " + "\n      ".join(lines[:14]) + more]


def compare(plain: Outcome, peer: Outcome, depfiles: list[str], resolve_cwd: str | None
            ) -> list[str]:
    """What differs between the plain compilation and the peer's ([] if nothing)."""
    diffs = []
    if plain.code != peer.code:
        diffs.append(f"exit status {peer.code}, plain compiler {plain.code}")
    diffs += _text_diff("stdout", plain.out, peer.out)
    diffs += _text_diff("stderr", plain.err, peer.err)
    for name in sorted(set(plain.files) | set(peer.files)):
        if name not in peer.files:
            diffs.append(f"output {name} missing")
        elif name not in plain.files:
            diffs.append(f"unexpected file {name}")
        elif (normalized(name, plain.files, depfiles, resolve_cwd)
              != normalized(name, peer.files, depfiles, resolve_cwd)):
            diffs.append(f"output {name} differs")
    return diffs


def depfile_names(args: list[str], cwd: str, outputs: list[str]) -> list[str]:
    """Workspace-relative names of the depfiles among outputs."""
    named = {os.path.normpath(os.path.join(cwd, args[i + 1]))
             for i, a in enumerate(args[:-1]) if a == "-MF"}
    return [o for o in outputs if o.endswith(".d") or os.path.normpath(o) in named]


# --- base_dir ---------------------------------------------------------------------------

_PATH_OPTS = ("-I", "-iquote", "-isystem", "-idirafter", "-include", "-imacros", "-o", "-MF")


def rebase_args(args: list[str], cwd: Path, base: Path) -> list[str]:
    """The command line a base_dir run gives the compiler: absolute paths under
    `base` relative to cwd, unless the relative path would name another file."""
    def rel(p: str) -> str:
        if not os.path.isabs(p) or not (p + "/").startswith(str(base) + "/"):
            return p
        r = os.path.relpath(p, cwd)
        same = os.path.realpath(os.path.join(cwd, r)) == os.path.realpath(p)
        return r if same else p

    out, i = [], 0
    while i < len(args):
        a = args[i]
        if a in _PATH_OPTS and i + 1 < len(args):
            out += [a, rel(args[i + 1])]
            i += 2
            continue
        joined = next((o for o in ("-I", "--sysroot=") if a.startswith(o) and len(a) > len(o)),
                      None)
        out.append(joined + rel(a[len(joined):]) if joined else
                   a if a.startswith("-") else rel(a))
        i += 1
    return out


# --- running a scenario -------------------------------------------------------------------


@dataclass
class Failure:
    step: int
    label: str
    tu: str
    compiler: str
    diffs: list[str]
    peer_kind: str


@dataclass
class Result:
    name: str  # project/mutation
    project: str
    mutation: str
    cfg: Config
    peer: str
    steps: int = 0
    failed_steps: list[int] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)  # peer outcomes after the cold step
    compile_errors: int = 0  # plain compilations that failed (compared all the same)
    repro: str = ""
    repro_note: str = ""
    seconds: float = 0.0
    error: str = ""


@dataclass
class Job:
    scenario: Scenario
    mutation: str  # a MUTATIONS key, or "random"
    cfg: Config
    peer: Peer
    work: Path
    verify: bool
    deadline: float = 0.0  # time.time(); 0: none


class Runner:
    """Runs one scenario's steps for one peer and configuration."""

    def __init__(self, job: Job, redis_url: str | None) -> None:
        self.job, self.s, self.cfg, self.peer = job, job.scenario, job.cfg, job.peer
        self.redis_url = redis_url if job.cfg.storage == "remote" else None
        self.cache_root = job.work / "cache"
        self.cache = self.cache_root / "local"
        self.last_counters: dict[str, int] = {}
        self.result = Result(self.s.name, self.s.project, job.mutation, job.cfg, job.peer.name)

    def base_env(self) -> dict[str, str]:
        env = kilntest.clean_env()
        env["TMPDIR"] = str(self.job.work / "tmp")
        env["HOME"] = str(self.job.work)
        for k, v in self.s.env.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        return env

    def peer_env(self, base: dict[str, str]) -> dict[str, str]:
        return {**base, **self.peer.env(self.cfg, self.cache, self.cache_root, self.s.ws.root,
                                        self.s.base_dir, self.redis_url)}

    def mode_args(self, tu: TU) -> list[str]:
        if self.cfg.mode == "depend" and not {"-MD", "-MMD"} & set(tu.args):
            return [*tu.args, "-MD"]
        return list(tu.args)

    def run(self, stages: Stages) -> Result:
        (self.job.work / "tmp").mkdir(parents=True, exist_ok=True)
        start = time.monotonic()
        try:
            self.step("first build (cold cache)")
            for label in stages:
                self.step(label)
        except Exception as e:  # a harness error is a failure too, never a pass
            import traceback
            self.result.error = f"{type(e).__name__}: {e}\n{traceback.format_exc()}"
        self.result.seconds = time.monotonic() - start
        return self.result

    def step(self, label: str) -> None:
        n = self.result.steps
        self.s.ws.history.append(Event("step", label, step=n))
        if self.redis_url and n > 0:  # remote: every step starts with an empty local cache
            self.cache = self.cache_root / f"step{n}"
            self.last_counters = {}
        failed = False
        for tu in self.s.tus:
            failed |= self.compile(tu, n, label)
        self.result.steps += 1
        if failed:
            self.result.failed_steps.append(n)

    def compile(self, tu: TU, n: int, label: str) -> bool:
        ws = self.s.ws
        args = self.mode_args(tu)
        cwd = ws.path(tu.cwd)
        # base_dir: the peer runs the compiler with rewritten paths (not when disabled)
        rebase = self.s.base_dir and not self.peer.disable
        ref = rebase_args(args, cwd, ws.root) if rebase else args
        ws.wait_before_compile()  # (recorded before the compile, as the script must run it)
        rec = CompileRecord(n, tu.name, tu.compiler, tu.cwd, args, ref)
        ws.history.append(Event("compile", step=n, compile=rec))
        base = self.base_env()
        plain = execute(ws, tu.cwd, [tu.compiler, *ref], base)
        env = self.peer_env(base)
        peer = execute(ws, tu.cwd, [self.peer.binary, tu.compiler, *args], env)
        peer.kind = self.outcome_kind(env)
        self.result.compile_errors += plain.code != 0
        if n > 0:
            self.result.kinds[peer.kind] = self.result.kinds.get(peer.kind, 0) + 1
        rec.outputs = sorted(set(plain.files) | set(peer.files))
        rec.depfiles = depfile_names(args, tu.cwd, rec.outputs)
        diffs = compare(plain, peer, rec.depfiles, str(cwd) if self.s.base_dir else None)
        if diffs:
            self.result.failures.append(Failure(n, label, tu.name, tu.compiler, diffs, peer.kind))
        return bool(diffs)

    def outcome_kind(self, env: dict[str, str]) -> str:
        now = self.peer.counters(env)
        delta = [k for k, v in now.items() if v > self.last_counters.get(k, 0)]
        self.last_counters = now
        return HIT_KINDS[delta[0]] if delta else "not cached"


# --- reproductions --------------------------------------------------------------------------


class Repro:
    """Writes a scenario's history as a self-contained bash script, in the style
    of the reproductions in shared/wrong-results: it recreates the files, runs
    the peer at each step and, at the failing step, the plain compiler and the
    peer, and ends with "VERDICT: ok" or "VERDICT: WRONG"."""

    def __init__(self, job: Job, result: Result, redis: bool) -> None:
        self.job, self.result, self.redis = job, result, redis
        self.s = job.scenario
        self.subst = self.s.ws.subst
        self.failure = result.failures[0]

    def script(self, all_tus: bool, all_steps: bool) -> str:
        f, peer = self.failure, self.job.peer
        lines = [
            "#!/usr/bin/env bash",
            f"# {self.result.name} [{self.result.cfg}], peer {peer.name}: step {f.step} "
            f"({f.label}), TU {f.tu} ({f.compiler}):",
            *(f"#   {d.splitlines()[0]}" for d in f.diffs),
            "# generated by tests/differential/harness.py",
            f"{peer.script_var}=${{{peer.script_var}:-{peer.origin}}}",
            'd=$(mktemp -d "${TMPDIR:-/tmp}/kiln-diff-XXXXXX")/ws; c=$(dirname "$d")/cache; '
            'mkdir -p "$d" "$c/tmp"; cd "$d"; echo "in $d"',
            "unset CPATH C_INCLUDE_PATH CPLUS_INCLUDE_PATH SOURCE_DATE_EPOCH GCC_COLORS "
            "DEPENDENCIES_OUTPUT SUNPRO_DEPENDENCIES "
            "$(env | grep -o '^\\(KILN\\|CCACHE\\)_[A-Z_]*')",
            'export LC_ALL=C LANG=C TMPDIR="$c/tmp" HOME="$c"',
            *self.peer_env_lines(),
            SCRIPT_HELPERS.rstrip(),
        ]
        for ev in self.s.ws.history:
            if ev.kind == "step" and ev.step > f.step:
                break
            lines += self.render(ev, all_tus, all_steps)
            if ev.kind == "compile" and (ev.compile.step, ev.compile.tu) == (f.step, f.tu):
                break
        lines.append('if [ $ok = 1 ]; then echo "VERDICT: ok"; else echo "VERDICT: WRONG"; fi')
        return "\n".join(lines) + "\n"

    def peer_env_lines(self) -> list[str]:
        ws, tool = self.s.ws, self.job.peer.tool
        remote_var = PEER_VARS[tool]["remote"]
        env = self.job.peer.env(self.job.cfg, ws.cache_root / "local", ws.cache_root, ws.root,
                                self.s.base_dir, None)
        out = [f"export {k}={sh_word(v, self.subst)}" for k, v in env.items()]
        if self.redis:
            out += ["P=$(python3 -c 'import socket; s = socket.socket(); "
                    "s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1])')",
                    'redis-server --port $P --bind 127.0.0.1 --save "" --appendonly no '
                    '--daemonize yes --pidfile "$c/redis.pid" --dir "$c" >/dev/null; sleep 0.5',
                    "trap 'kill $(cat \"$c/redis.pid\")' EXIT",
                    f"export {remote_var}=redis://127.0.0.1:$P"]
        return out

    def render(self, ev: Event, all_tus: bool, all_steps: bool) -> list[str]:
        f = self.failure
        if ev.kind == "step":
            fresh = self.redis and ev.step > 0 and (all_steps or ev.step == f.step)
            return ["", f"# --- step {ev.step}: {ev.text}"] + (
                ['rm -rf "$c/local"   # an empty local cache: hits come from the remote']
                if fresh else [])
        if ev.kind != "compile":
            return [] if self.unused_source(ev, all_tus) else [ev.text]
        rec = ev.compile
        if not ((all_tus or rec.tu == f.tu) and (all_steps or rec.step in (0, f.step))):
            return []
        if (rec.step, rec.tu) == (f.step, f.tu):
            return self.compare_block(rec)
        return [self.peer_cmd(rec) + " >/dev/null 2>&1",
                *(f"rm -f {sh_word(o, self.subst)}" for o in rec.outputs)]

    def unused_source(self, ev: Event, all_tus: bool) -> bool:
        """Whether ev changes the source of a TU the script does not compile."""
        if all_tus or not ev.path:
            return False
        others = {t.source for t in self.s.tus if t.name != self.failure.tu}
        return ev.path.split("/", 1)[-1] in others

    def peer_cmd(self, rec: CompileRecord) -> str:
        return (f"(cd {sh_word(rec.cwd, self.subst)} && \"${self.job.peer.script_var}\" "
                f"{rec.compiler} {sh_words(rec.args, self.subst)})")

    def compare_block(self, rec: CompileRecord) -> list[str]:
        sub = self.subst
        outs = [sh_word(o, sub) for o in rec.outputs]
        lines = ["# the failing compile: the plain compiler (outputs moved to plain/), "
                 "then the peer; compare",
                 "rm -rf plain && mkdir plain",
                 f"(cd {sh_word(rec.cwd, sub)} && {rec.compiler} {sh_words(rec.ref_args, sub)})"
                 " >plain.out 2>plain.err; echo $? >plain.rc",
                 *(f"[ -e {o} ] && mv {o} plain/{i}" for i, o in enumerate(outs)),
                 self.peer_cmd(rec) + " >peer.out 2>peer.err; echo $? >peer.rc",
                 "ok=1",
                 "for f in rc out err; do cmp -s plain.$f peer.$f || { ok=0; "
                 "echo \"$f differs:\"; diff plain.$f peer.$f | head -20; }; done"]
        if any(o.endswith(".gcno") for o in rec.outputs) or (self.s.base_dir and rec.depfiles):
            return lines + self.python_compare(rec)
        return lines + [f"if [ -e plain/{i} ]; then cmp -s {o} plain/{i} || {{ ok=0; "
                        f"echo '{o}: differs or missing'; }}; else [ ! -e {o} ] || "
                        f"{{ ok=0; echo 'unexpected {o}'; }}; fi" for i, o in enumerate(outs)]

    def python_compare(self, rec: CompileRecord) -> list[str]:
        """The outputs compared as the harness does (coverage stamps, base_dir depfiles)."""
        funcs = "\n".join(inspect.getsource(fn)
                          for fn in (mask_coverage, resolve_depfile, normalized))
        resolve = f"{sh_word(rec.cwd, self.subst)}" if self.s.base_dir else "''"
        return [f"python3 - {resolve} <<'KILN_PY' || ok=0",
                "import os, sys",
                funcs,
                f"names, deps = {rec.outputs!r}, {rec.depfiles!r}",
                "cwd = os.path.abspath(sys.argv[1]) if sys.argv[1] else None",
                "plain = {n: open(f'plain/{i}', 'rb').read() for i, n in enumerate(names)"
                " if os.path.exists(f'plain/{i}')}",
                "peer = {n: open(n, 'rb').read() for n in names if os.path.exists(n)}",
                "bad = [n for n in names if (n in plain) != (n in peer) or n in plain and "
                "normalized(n, plain, deps, cwd) != normalized(n, peer, deps, cwd)]",
                "print(*(f'{n}: differs or missing' for n in bad), sep='\\n')",
                "sys.exit(1 if bad else 0)",
                "KILN_PY"]


def reproduce(job: Job, result: Result, redis: bool) -> None:
    """Sets result.repro to the smallest variant of the script that still fails
    when run (failing TU only at the first and failing steps; failing TU at
    every step; every TU at every step), else to the full one with a note.
    Only the first --max-verify failing scenarios of a run are checked."""
    r = Repro(job, result, redis)
    variants = [(False, False), (False, True), (True, True)]
    if not (job.verify and _take_verification()):
        result.repro, result.repro_note = r.script(True, True), "not checked"
        return
    for all_tus, all_steps in variants:
        script = r.script(all_tus, all_steps)
        if run_script(script, job):
            result.repro = script
            result.repro_note = "checked: says VERDICT: WRONG when run"
            return
    result.repro = r.script(True, True)
    result.repro_note = "did NOT fail when run as a script (timing-dependent?)"


def _take_verification() -> bool:
    budget = _WORKER.get("verify_budget")
    if budget is None:
        return True
    with budget.get_lock():
        budget.value -= 1
        return budget.value >= 0


def run_script(script: str, job: Job) -> bool:
    path = job.work / "repro.sh"
    path.write_text(script)
    env = kilntest.clean_env()
    env["TMPDIR"] = str(job.work / "tmp")
    env[job.peer.script_var] = job.peer.binary
    try:
        p = subprocess.run(["bash", str(path)], env=env, capture_output=True, timeout=600)
    except subprocess.TimeoutExpired:
        return False
    return b"VERDICT: WRONG" in p.stdout


# --- scenarios: creating and running -----------------------------------------------------


def new_scenario(work: Path, name: str, project: str) -> Scenario:
    ws = Workspace(work / "ws", work / "cache")
    return Scenario(name=name, project=project, ws=ws, tus=[], anchors=None)


def prepare_table_job(work: Path, project: str, m: Mutation, cfg: Config, peer: Peer,
                      verify: bool) -> Job:
    s = new_scenario(work, f"{project}/{m.name}", project)
    s.base_dir = m.base_dir
    PROJECTS[project](s, **dict(m.options))
    return Job(s, m.name, cfg, peer, work, verify)


_WORKER: dict[str, object] = {}


def _init_worker(counter, budget, redis_port: int | None) -> None:
    with counter.get_lock():
        counter.value += 1
        _WORKER["db"] = counter.value % 16
    _WORKER["redis_port"] = redis_port
    _WORKER["verify_budget"] = budget


def run_job(job: Job) -> Result:
    if job.deadline and time.time() > job.deadline:
        return Result(job.scenario.name, job.scenario.project, job.mutation, job.cfg,
                      job.peer.name, error="skipped: out of time")
    redis_url = None
    port = _WORKER.get("redis_port")
    if port and job.cfg.storage == "remote":
        db = _WORKER.get("db", 0)
        client = remote_servers.RedisClient(port)
        client.command("SELECT", db)
        client.command("FLUSHDB")
        client.close()
        redis_url = f"redis://127.0.0.1:{port}/{db}"
    stages = (random_stages(job.scenario) if job.mutation == "random"
              else MUTATIONS[job.mutation].fn(job.scenario))
    result = Runner(job, redis_url).run(stages)
    if result.failures:
        reproduce(job, result, redis_url is not None)
    return result


# --- the randomized generator --------------------------------------------------------------

R_DIRS = ["inc", "inc/sub", "lib/include", "third/x/include", "gen"]
R_FLAGS: dict[str, list[str]] = {
    "opt": ["-O0", "-O1", "-O2", "-Os"],
    "debug": ["", "-g", "-g0", "-g1", "-g -gsplit-dwarf"],
    "warn": ["", "-Wall", "-Wall -Wextra"],
    "pic": ["", "-fPIC"],
    "sections": ["", "-ffunction-sections", "-ffunction-sections -fdata-sections"],
    "dep": ["", "", "-MD", "-MMD", "-MD -MF obj/{tu}.dep", "-MMD -MT custom-target"],
    "cov": ["", "", "", "", "--coverage"],
    "macro": ["-DVAL=1", "-DVAL=2", "-DVAL=3 -DEXTRA"],
    "side": ["", "", "", "-fstack-usage"],
}
R_OUTPUT_FORMS = [["-o", "{}"], ["-o{}"], ["--output={}"]]
R_STD = {"c": ["", "-std=c11", "-std=gnu17"],
         "c++": ["", "-std=c++14", "-std=c++17", "-std=gnu++20"]}
R_COMPILERS = {"c": ["gcc", "clang"], "c++": ["g++", "clang++"]}


def _r_header(i: int, deps: list[tuple[str, str]]) -> str:
    inc = [f'"{n}"' if form == "q" else f"<{n}>" for n, form in deps]
    value = " + ".join([str(i)] + [f"h{Path(n).stem[1:]}_value()" for n, _ in deps])
    return _header(f"h{i}", f"H{i}_GUARD", inc, value,
                   f"/* header {i} */\nstatic inline int h{i}_w(void) {{ int /* w */ u{i}; "
                   "return 0; }\n")


def random_project(s: Scenario, rng: random.Random) -> None:
    """A small random project: headers in random nested directories including
    each other, 2-3 TUs in C or C++ with random flags and include-path forms."""
    st = s.random_state
    n = rng.randint(3, 7)
    headers = []  # (index, dir, include name, form)
    for i in range(n):
        d = rng.choice(R_DIRS)
        name = rng.choice([f"h{i}.h", f"p{i}/h{i}.h", f"a/b{i}/h{i}.h"])
        headers.append((i, d, name, rng.choice("qqa")))
    for i, d, name, _ in headers:
        later = [(h[2], h[3]) for h in headers[i + 1:]]
        s.write(f"{d}/{name}", _r_header(i, rng.sample(later, min(len(later), rng.randint(0, 2)))))
    for d in ("build/include", "build/obj", "q", "cpd"):
        s.mkdir(d)
    dirs = sorted({h[1] for h in headers})
    st.update(headers=[list(h) for h in headers], dirs=dirs, shadows=[], probes=[])
    s.tus = [_random_tu(s, rng, j, headers, dirs) for j in range(rng.randint(2, 3))]
    if rng.random() < 0.3:
        d = rng.choice(dirs)
        s.setenv("CPATH", s.abs(d))
    if rng.random() < 0.2:
        s.setenv("LC_ALL", "C.UTF-8")


def _random_tu(s: Scenario, rng: random.Random, j: int, headers: list, dirs: list[str]) -> TU:
    lang = rng.choice(["c", "c++"])
    path = rng.choice([f"src/s{j}", f"src/m/s{j}", f"app/s{j}"]) + (".c" if lang == "c" else ".cc")
    used = rng.sample(headers, rng.randint(1, min(3, len(headers))))
    probes = [f"opt{j}.h", f"p/opt{j}.h"]
    incl = "".join(f'#include "{h[2]}"\n' if h[3] == "q" else f"#include <{h[2]}>\n" for h in used)
    probe = "".join(f'#if __has_include("{p}")\n#include "{p}"\n#endif\n' for p in probes)
    body = " + ".join(f"h{h[0]}_value()" for h in used)
    date = ("static const char kiln_date[] __attribute__((used)) = __DATE__;\n"
            if rng.random() < 0.1 else "")  # (kiln does not cache these: rarely)
    s.write(path, f"/* source {j} */\n{incl}{probe}{date}"
                  f"static const int kiln_mark_s{j} __attribute__((used)) = 1;\n"
                  f"int s{j}_value(void) {{\n  int /* c */ unused{j};\n"
                  f"  return {body} + VAL;\n}}\n")
    s.random_state["probes"].append(probes)
    in_build = rng.random() < 0.7
    cwd = s.rel("build") if in_build else s.checkout
    up = ".." if in_build else "."
    flags = {k: rng.choice(v) for k, v in R_FLAGS.items()}
    flags["std"] = rng.choice(R_STD[lang])
    inc = ["-Iinclude" if in_build else "-Ibuild/include"]
    for d in rng.sample(dirs, len(dirs)):
        inc += rng.choice([[f"-I{up}/{d}"], ["-I", f"{up}/{d}"], [f"-I./{up}/{d}"],
                           [f"-I{up}/{d}/../{Path(d).name}"], ["-isystem", f"{up}/{d}"],
                           [f"-I{s.abs(d)}"]])
    if rng.random() < 0.5:
        inc += ["-iquote", f"{up}/q"]
    if rng.random() < 0.3:
        inc.append("-I.")
    if rng.random() < 0.3:
        inc += ["-include", rng.choice(headers)[2]]
    obj = f"obj/s{j}.o" if in_build else f"build/obj/s{j}.o"
    tu = TU(f"s{j}", rng.choice(R_COMPILERS[lang]), cwd, path, [])
    s.random_state.setdefault("tus", {})[tu.name] = {
        "flags": flags, "inc": inc, "src": f"{up}/{path}", "obj": obj,
        "oform": rng.randrange(len(R_OUTPUT_FORMS))}
    _compose(tu, s.random_state["tus"][tu.name])
    return tu


def _compose(tu: TU, parts: dict) -> None:
    flags = [w for v in parts["flags"].values() for w in v.format(tu=tu.name).split()]
    if not tu.cwd.endswith("build"):
        flags = [f.replace("obj/", "build/obj/") for f in flags]
    out = [w.format(parts["obj"]) for w in R_OUTPUT_FORMS[parts.get("oform", 0)]]
    tu.args = [*flags, *parts["inc"], "-c", parts["src"], *out]


def _r_edit_header(s: Scenario, rng: random.Random) -> str:
    _, d, name, _ = rng.choice(s.random_state["headers"])
    s.set_mark(f"{d}/{name}")
    return f"edit {d}/{name}"


def _r_touch(s: Scenario, rng: random.Random) -> str:
    _, d, name, _ = rng.choice(s.random_state["headers"])
    s.touch(f"{d}/{name}", rng.choice([None, 300]))
    return f"touch {d}/{name}"


def _r_shadow(s: Scenario, rng: random.Random) -> str:
    _, d, name, _ = rng.choice(s.random_state["headers"])
    tu = rng.choice(s.tus)
    places = [os.path.dirname(tu.source), "build", "build/include", "q", "cpd", *R_DIRS]
    dst = f"{rng.choice(places)}/{name}".lstrip("/")
    if s.exists(dst):
        return ""
    s.shadow(f"{d}/{name}", dst)
    s.random_state["shadows"].append(dst)
    return f"new {dst} (same name as {d}/{name})"


def _r_unshadow(s: Scenario, rng: random.Random) -> str:
    if not s.random_state["shadows"]:
        return ""
    dst = s.random_state["shadows"].pop(rng.randrange(len(s.random_state["shadows"])))
    s.remove(dst)
    return f"remove {dst}"


def _r_probe(s: Scenario, rng: random.Random) -> str:
    probe = rng.choice(rng.choice(s.random_state["probes"]))
    place = rng.choice([*s.random_state["dirs"], "q", "cpd", "build/include"])
    dst = f"{place}/{probe}"
    if s.exists(dst):
        s.remove(dst)
        return f"remove {dst} (a __has_include target)"
    k = s.fresh_mark()
    s.write(dst, _header(f"opt{k}", f"OPT{k}_H", [], str(k)))
    return f"new {dst} (a __has_include target)"


def _r_flag(s: Scenario, rng: random.Random) -> str:
    tu = rng.choice(s.tus)
    parts = s.random_state["tus"][tu.name]
    key = rng.choice(list(R_FLAGS) + ["std"])
    choices = R_FLAGS.get(key) or R_STD[tu.lang]
    parts["flags"][key] = rng.choice(choices)
    _compose(tu, parts)
    return f"{tu.name}: {key} -> {parts['flags'][key] or '(none)'}"


def _r_env(s: Scenario, rng: random.Random) -> str:
    name = rng.choice(["CPATH", "C_INCLUDE_PATH", "CPLUS_INCLUDE_PATH", "SOURCE_DATE_EPOCH",
                       "LC_ALL", "GCC_COLORS"])
    values = {"SOURCE_DATE_EPOCH": ["1000000000", "1600000000", None],
              "LC_ALL": ["C.UTF-8", None], "GCC_COLORS": ["warning=01;32", None]}.get(
        name, [s.abs("cpd"), s.abs(rng.choice(s.random_state["dirs"])), None])
    value = rng.choice(values)
    s.setenv(name, value)
    return f"{name}={value}" if value else f"unset {name}"


def _r_comment(s: Scenario, rng: random.Random) -> str:
    tu = rng.choice(s.tus)
    old, new = rng.choice([("/* c */", "/* a longer comment */"),
                           ("  return", "    return "), ("/* source", "/*\n   source")])
    text = s.ws.path(s.rel(tu.source)).read_text()
    if old not in text:
        return ""
    s.replace(tu.source, old, new)
    return f"comment/whitespace edit in {tu.source}"


R_OPS = [_r_edit_header, _r_touch, _r_shadow, _r_shadow, _r_unshadow, _r_probe, _r_flag, _r_env,
         _r_comment]


def random_stages(s: Scenario) -> Stages:
    rng = random.Random(f"{s.name}/stages")
    for _ in range(rng.randint(2, 6)):
        label = ""
        while not label:
            label = rng.choice(R_OPS)(s, rng)
        yield label


def prepare_random_job(work: Path, seed: int, index: int, peer: Peer, storages: list[str],
                       verify: bool, deadline: float) -> Job:
    name = f"random/seed{seed}-{index}"
    rng = random.Random(f"{name}/project")
    s = new_scenario(work, name, "random")
    random_project(s, rng)
    storage = "remote" if "remote" in storages and rng.random() < 0.25 else storages[0]
    cfg = Config(rng.choice(MODES), storage)
    return Job(s, "random", cfg, peer, work, verify, deadline)


# --- scheduling and reporting ---------------------------------------------------------------


def wait_until_trusted(jobs: list[Job]) -> None:
    if jobs:
        wait = max(j.scenario.ws.created for j in jobs) + TRUST_S - time.monotonic()
        if wait > 0:
            time.sleep(wait)


def run_jobs(jobs: list[Job], pool, report: Callable[[Result], None]) -> list[Result]:
    wait_until_trusted(jobs)
    results = []
    for r in pool.imap_unordered(run_job, jobs):
        report(r)
        results.append(r)
    return results


def describe(r: Result, with_repro: bool = True) -> str:
    kinds = ", ".join(f"{v} {k}" for k, v in sorted(r.kinds.items()))
    status = "FAIL" if (r.failures or r.error) else "PASS"
    errors = f", {r.compile_errors} compile errors" if r.compile_errors else ""
    head = (f"{status} {r.name} [{r.cfg}] peer {r.peer}: {r.steps} steps, "
            f"{len(r.failed_steps)} failed ({r.seconds:.1f} s; peer after step 0: "
            f"{kinds or '-'}{errors})")
    lines = [head]
    if r.error:
        lines.append("  HARNESS ERROR: " + r.error)
    for f in r.failures:
        lines.append(f"  step {f.step} ({f.label}): TU {f.tu} ({f.compiler}), "
                     f"peer: {f.peer_kind}")
        lines += [f"    {d}" for d in f.diffs]
    if r.repro and with_repro:
        lines += [f"  reproduction ({r.repro_note}):", "----- 8< -----", r.repro.rstrip(),
                  "----- >8 -----"]
    return "\n".join(lines)


def summarize_cell(results: list[Result]) -> str:
    """One table cell: "correct" or what went wrong where."""
    bad = [r for r in results if r.failures or r.error]
    if not results:
        return "not run"
    if not bad:
        return "correct"
    modes = sorted({r.cfg.mode for r in bad}, key=MODES.index)
    storages = sorted({r.cfg.storage for r in bad}, key=STORAGES.index)
    compilers = sorted({f.compiler for r in bad for f in r.failures})
    what = sorted({_what(d) for r in bad for f in r.failures for d in f.diffs}
                  | ({"harness error"} if any(r.error for r in bad) else set()))
    return (f"**WRONG** ({', '.join(modes)}; {', '.join(storages)}; {', '.join(compilers)}: "
            f"{', '.join(what)})")


def _what(diff: str) -> str:
    if diff.startswith("output "):
        ext = os.path.splitext(diff.split()[1])[1] or "file"
        kind = "missing" if diff.endswith("missing") else "differs"
        return f"{ext} {kind}"
    return diff.split()[0] if not diff.startswith("exit") else "exit status"


def markdown_table(results: list[Result], peers: list[Peer]) -> str:
    rows = []
    for project in available_projects():
        for m in MUTATIONS.values():
            if project not in m.projects:
                continue
            cells = [summarize_cell([r for r in results if r.project == project
                                     and r.mutation == m.name and r.peer == p.name])
                     for p in peers]
            doc = m.doc.replace("|", "\\|").replace("\n", " ")
            rows.append(f"| {project}: {m.name} | {doc} | " + " | ".join(cells) + " |")
    head = "| mutation | what changes | " + " | ".join(p.name for p in peers) + " |"
    sep = "| --- | --- | " + " | ".join("---" for _ in peers) + " |"
    return "\n".join([head, sep, *rows])


# --- the command line -------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kiln", default=os.environ.get("KILN_BINARY", str(REPO / "build/bin/kiln")),
                   help="the kiln binary (default: build/bin/kiln)")
    p.add_argument("--ccache", default=DEFAULT_CCACHE, help="the ccache binary for --peer ccache")
    p.add_argument("--peer", choices=["kiln", "ccache"], default="kiln",
                   help="what runs against the plain compiler")
    p.add_argument("--self-check", action="store_true",
                   help="run the peer disabled (KILN_DISABLE=1, CCACHE_DISABLE=1): every step "
                        "must pass, else the harness is wrong")
    p.add_argument("--table", action="store_true",
                   help="run the mutation table for kiln and ccache; print a markdown table")
    p.add_argument("--random", action="store_true", help="random scenarios instead of the table")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--count", type=int, default=0,
                   help="random scenarios (0: until --seconds, or 20 without --seconds)")
    p.add_argument("--index", type=int, default=None, help="run only this random scenario")
    p.add_argument("--seconds", type=float, default=0, help="stop starting scenarios after this")
    p.add_argument("--mutations", default="", help="regular expression on mutation names")
    p.add_argument("--projects", default=",".join(available_projects()),
                   help="gen (generated) and gtest (if /usr/src/googletest is installed)")
    p.add_argument("--configs", default="all",
                   help="mode/storage pairs to run the generated project in, e.g. "
                        "direct/local,depend/remote; 'all': every mode (direct, depend, "
                        "preprocessor) with every storage (local, remote)")
    p.add_argument("--gtest-configs", default="direct/local,preprocessor/remote",
                   help="the same for the (slower) googletest project")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 2,
                   help="scenarios run in parallel (default: one per core)")
    p.add_argument("--no-verify", action="store_true",
                   help="do not run the reproductions to check and reduce them")
    p.add_argument("--max-verify", type=int, default=12,
                   help="check and reduce the reproductions of at most this many failing "
                        "scenarios (the others print the full, unchecked script)")
    p.add_argument("--workdir", default=None, help="keep everything here (default: a temp dir)")
    p.add_argument("--list", action="store_true", help="list the mutations")
    args = p.parse_args(argv)
    if args.random and not (args.count or args.seconds):
        args.count = 20
    return args


def have_redis() -> bool:
    return remote_servers.find_program("redis-server") is not None


def parse_configs(spec: str) -> list[Config]:
    if spec == "all":
        return [Config(m, s) for m in MODES for s in STORAGES]
    cfgs = [Config(*c.split("/")) for c in spec.split(",")]
    for c in cfgs:
        if c.mode not in MODES or c.storage not in STORAGES:
            sys.exit(f"bad configuration {c.mode}/{c.storage}")
    return cfgs


def configs_for(project: str, args: argparse.Namespace) -> list[Config]:
    cfgs = parse_configs(args.gtest_configs if project == "gtest" else args.configs)
    return [c for c in cfgs if c.storage == "local" or have_redis()]


def storages_of(args: argparse.Namespace) -> list[str]:
    """The storages in use (random scenarios pick among them)."""
    if args.random:
        return ["local", "remote"] if have_redis() else ["local"]
    return sorted({c.storage for p in args.projects.split(",") for c in configs_for(p, args)},
                  key=STORAGES.index)


def table_jobs(args: argparse.Namespace, peers: list[Peer], root: Path) -> list[Job]:
    jobs = []
    pattern = re.compile(args.mutations)
    for peer in peers:
        for project in args.projects.split(","):
            for m in MUTATIONS.values():
                if project not in m.projects or not pattern.search(m.name):
                    continue
                for cfg in configs_for(project, args):
                    work = root / f"{len(jobs):04d}"
                    verify = not (args.no_verify or args.table)
                    jobs.append(prepare_table_job(work, project, m, cfg, peer, verify))
    return jobs


def random_batches(args: argparse.Namespace, peer: Peer, root: Path, deadline: float
                   ) -> Iterator[list[Job]]:
    indices = ([args.index] if args.index is not None else
               range(args.count) if args.count else itertools.count())
    batch: list[Job] = []
    for i in indices:
        if deadline and time.time() > deadline:
            break
        work = root / f"r{i:05d}"
        batch.append(prepare_random_job(work, args.seed, i, peer, storages_of(args),
                                        not args.no_verify, deadline))
        if len(batch) >= 8 * args.jobs:
            yield batch
            batch = []
    if batch:
        yield batch


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.list:
        for m in MUTATIONS.values():
            print(f"{m.name:28} [{', '.join(m.projects)}] {m.doc}")
        return 0
    tools = ["kiln", "ccache"] if args.table else [args.peer]
    root = Path(args.workdir or tempfile.mkdtemp(prefix="kiln-differential-"))
    root.mkdir(parents=True, exist_ok=True)
    peers = [peer_for(args, t, root) for t in tools]
    if not have_redis():
        print("redis-server is not installed: remote configurations are skipped")
    redis = None
    if "remote" in storages_of(args):
        redis = remote_servers.RedisServer(root / "redis")
    start = time.time()
    deadline = start + args.seconds if args.seconds else 0.0
    counter = multiprocessing.Value("i", 0)
    budget = multiprocessing.Value("i", args.max_verify)
    results: list[Result] = []
    def report(r: Result) -> None:
        if not r.error.startswith("skipped"):
            print(describe(r, with_repro=not args.table), flush=True)

    try:
        with multiprocessing.get_context("fork").Pool(
                args.jobs, _init_worker, (counter, budget, redis.port if redis else None)) as pool:
            if args.random:
                for batch in random_batches(args, peers[0], root, deadline):
                    results += run_jobs(batch, pool, report)
            else:
                jobs = table_jobs(args, peers, root)
                for job in jobs:
                    job.deadline = deadline
                results = run_jobs(jobs, pool, report)
    finally:
        if redis:
            redis.stop()
        if not args.workdir:
            shutil.rmtree(root, ignore_errors=True)
    return finish(args, peers, results, time.time() - start)


def finish(args: argparse.Namespace, peers: list[Peer], results: list[Result],
           seconds: float) -> int:
    ran = [r for r in results if not r.error.startswith("skipped")]
    failed = sum(len(r.failed_steps) + (1 if r.error else 0) for r in ran)
    passed = sum(r.steps for r in ran) - sum(len(r.failed_steps) for r in ran)
    if args.table:
        print(f"\n<!-- python3 tests/differential/harness.py --table, "
              f"{datetime.date.today().isoformat()}, {seconds:.0f} s -->")
        print(markdown_table(ran, peers))
    bad = sorted({r.name + f" [{r.cfg}] {r.peer}" for r in ran if r.failures or r.error})
    print(f"\n{len(ran)} scenarios in {seconds:.0f} s; failing scenarios: {len(bad)}")
    for b in bad:
        print(f"  {b}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
