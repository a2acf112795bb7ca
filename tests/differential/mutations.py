"""The mutation table: what each scenario of the table changes, stage by
stage."""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from typing import Callable, Iterator

from projects import header_text
from workspace import Scenario


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
    s.write("inc/opt.h", header_text("opt", "OPT_H", [], "60"))
    yield "new inc/opt.h (probed with __has_include)"
    s.remove("inc/opt.h")
    yield "remove inc/opt.h"


@mutation("has-include-angle", GEN)
def _has_include_angle(s: Scenario) -> Stages:
    """`__has_include(<sysopt.h>)` target appears in the -isystem directory, then disappears."""
    s.write("ext/sysopt.h", header_text("sysopt", "SYSOPT_H", [], "70"))
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
