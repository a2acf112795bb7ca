"""The workspace (a scenario's checkouts, every change applied and recorded as
shell text for reproductions), its timing, and translation units and
scenarios."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import kilntest


SETTLE_S = max(0.15, kilntest.k_settle_s)  # after a write, before a compile
TRUST_S = 2.1  # a new project's age before its first build
OLD_AGE_S = 600  # the mtime given to written files, seconds in the past


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
