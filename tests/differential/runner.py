"""Running and comparing: one compilation plainly and through the peer, one
step (every TU), one scenario (every step)."""

from __future__ import annotations

import difflib
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import kilntest
from mutations import Stages
from peers import HIT_KINDS, Config, Peer
from workspace import TU, CompileRecord, Event, Scenario, Workspace


COMPILE_TIMEOUT_S = 300


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


# The state of a pool worker process (set by jobs.init_worker).
WORKER: dict[str, object] = {}
