"""Shared helpers for kiln's integration tests.

Every test file is a plain unittest module run as

    python3 tests/integration/test_<topic>.py --kiln /path/to/kiln [unittest args]

Each test gets its own temporary directory (removed afterwards) with its own
cache (KILN_DIR) and a KILN_CONFIG that points at a file that does not exist,
so that neither the user's cache nor their configuration is ever touched. No
test binds a port; tests are independent, so ctest may run the files in
parallel.

kiln refuses to cache a compilation whose inputs changed within 50 ms of its
start (it looks at mtime *and* ctime), and does not trust a header's stat for
later look-ups if it changed within ~2 s. Tests therefore give the files they
write an old mtime (write(..., age=100)) and run_cmd() waits until at least
k_settle_s has passed since the last write: ctime cannot be set back.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import unittest
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

KILN: str = ""  # absolute path of the kiln binary under test (set by main())

# Time to let pass between writing a file and compiling it (kiln's window is
# 50 ms, measured against ctime, which os.utime cannot move back).
k_settle_s = 0.12

# Compilers to parameterize over: every one that is installed.
COMPILERS: list[str] = [c for c in ("g++", "clang++") if shutil.which(c)]

_TIMEOUT = 300  # seconds, for any single command


@dataclass
class Run:
    """What a command did."""

    code: int
    out: bytes
    err: bytes
    argv: list[str]

    @property
    def text(self) -> str:
        return self.out.decode(errors="replace")

    @property
    def err_text(self) -> str:
        return self.err.decode(errors="replace")

    def describe(self) -> str:
        return (f"$ {' '.join(self.argv)}\nexit {self.code}\n--- stdout\n{self.text}"
                f"--- stderr\n{self.err_text}")


def clean_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment without anything that changes kiln's or the compiler's
    behaviour behind a test's back."""
    env = dict(os.environ if base is None else base)
    for k in list(env):
        if k.startswith("KILN_") or k.startswith("CCACHE_") or k in (
                "DEPENDENCIES_OUTPUT", "SUNPRO_DEPENDENCIES", "SOURCE_DATE_EPOCH", "CPATH",
                "C_INCLUDE_PATH", "CPLUS_INCLUDE_PATH", "GCC_COLORS", "CMAKE_GENERATOR",
                "CMAKE_BUILD_PARALLEL_LEVEL", "MAKEFLAGS", "CXXFLAGS", "CFLAGS", "CXX", "CC",
                "LDFLAGS", "CPPFLAGS", "XDG_CACHE_HOME", "XDG_CONFIG_HOME"):
            del env[k]
    env["LC_ALL"] = "C"
    env["LANG"] = "C"
    return env


def age_file(path: os.PathLike | str, age: float = 100.0) -> None:
    """Sets the mtime (and atime) of `path` to `age` seconds ago."""
    t = time.time() - age
    os.utime(path, (t, t))


def read_bytes(path: os.PathLike | str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


class KilnTestCase(unittest.TestCase):
    """A test with its own directory, cache and environment.

    self.dir      the test's temporary directory (removed in tearDown)
    self.cache    its KILN_DIR
    self.env      the environment for every command (modify freely)
    """

    maxDiff = 4000

    def setUp(self) -> None:
        super().setUp()
        self.dir = Path(tempfile.mkdtemp(prefix=f"kiln-it-{type(self).__name__}-"))
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        self.cache = self.dir / "cache"
        self.tmp = self.dir / "tmp"
        self.tmp.mkdir()
        self.env = clean_env()
        self.env["KILN_DIR"] = str(self.cache)
        self.env["KILN_CONFIG"] = str(self.dir / "no-such-config" / "kiln.toml")
        # kiln writes its "warn once an hour" markers to $TMPDIR: a private one
        # means each test sees its own warnings.
        self.env["TMPDIR"] = str(self.tmp)
        self._last_write = 0.0

    # --- files -------------------------------------------------------------

    def write(self, rel: str | os.PathLike, content: str | bytes, age: float | None = 100.0
              ) -> Path:
        """Writes a file under self.dir (creating directories) and gives it an
        mtime `age` seconds in the past (None: leave it at now)."""
        p = self.dir / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode() if isinstance(content, str) else content
        with open(p, "wb") as f:
            f.write(data)
        if age is not None:
            age_file(p, age)
        self.touched()
        return p

    def touched(self) -> None:
        """Records that files changed just now (see k_settle_s)."""
        self._last_write = time.monotonic()

    def settle(self) -> None:
        wait = self._last_write + k_settle_s - time.monotonic()
        if wait > 0:
            time.sleep(wait)

    # --- commands ----------------------------------------------------------

    def run_cmd(self, argv: Sequence[str | os.PathLike], cwd: str | os.PathLike | None = None,
                env: Mapping[str, str] | None = None, input: bytes | None = None,
                timeout: float = _TIMEOUT, check: bool = False) -> Run:
        """Runs a command (after settle()) in `cwd` (default: self.dir)."""
        self.settle()
        argv = [str(a) for a in argv]
        p = subprocess.run(argv, cwd=str(cwd or self.dir), env=dict(env or self.env),
                           input=input if input is not None else b"",
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        r = Run(p.returncode, p.stdout, p.stderr, argv)
        if check and r.code != 0:
            self.fail("command failed:\n" + r.describe())
        return r

    def kiln(self, *args: str | os.PathLike, **kw) -> Run:
        """Runs `kiln args...`."""
        return self.run_cmd([KILN, *args], **kw)

    def compile(self, compiler: str, *args: str | os.PathLike, **kw) -> Run:
        """Runs `kiln <compiler> args...`."""
        return self.run_cmd([KILN, compiler, *args], **kw)

    def plain(self, compiler: str, *args: str | os.PathLike, **kw) -> Run:
        """Runs the compiler without kiln."""
        return self.run_cmd([compiler, *args], **kw)

    def ok(self, r: Run) -> Run:
        self.assertEqual(r.code, 0, r.describe())
        return r

    # --- statistics --------------------------------------------------------

    def stats_json(self, env: Mapping[str, str] | None = None) -> dict:
        r = self.kiln("-s", "--json", env=env)
        self.assertEqual(r.code, 0, r.describe())
        try:
            return json.loads(r.out)
        except json.JSONDecodeError as e:
            self.fail(f"kiln -s --json is not JSON ({e}):\n{r.text}")

    def stats(self, env: Mapping[str, str] | None = None) -> dict[str, int]:
        """The counters of `kiln -s --json`."""
        return self.stats_json(env)["counters"]

    def assertStatsDelta(self, before: Mapping[str, int], expected: Mapping[str, int],
                         ignore: Iterable[str] = ("files", "size", "cleanups")) -> dict:
        """Asserts that the counters changed by exactly `expected` since
        `before` (counters not named must not have changed, apart from those in
        `ignore`). Returns the current counters."""
        after = self.stats()
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before)}
        delta = {k: v for k, v in delta.items() if v and k not in ignore}
        want = {k: v for k, v in expected.items() if v}
        self.assertEqual(delta, want, "unexpected change of statistics")
        return after

    # --- helpers for special directories -------------------------------------

    def masquerade_dir(self, name: str = "kbin",
                       compilers: Iterable[str] = ("gcc", "g++", "cc", "c++", "clang",
                                                   "clang++")) -> Path:
        """A directory of symlinks named after compilers, pointing at kiln."""
        d = self.dir / name
        d.mkdir(parents=True, exist_ok=True)
        for c in compilers:
            link = d / c
            if not link.exists():
                link.symlink_to(KILN)
        return d

    def spy_compiler(self, real: str, name: str | None = None) -> tuple[Path, Path]:
        """A script that appends its argv (one line, arguments separated by
        tabs) to a log and execs the real compiler. Returns (script, log)."""
        real_path = shutil.which(real)
        self.assertIsNotNone(real_path, f"{real} not found")
        d = self.dir / "spy"
        d.mkdir(exist_ok=True)
        script = d / (name or real)
        log = d / f"{script.name}.log"
        script.write_text(
            "#!/bin/sh\n"
            f"(IFS='\t'; printf '%s\\n' \"$*\") >> '{log}'\n"
            f"exec '{real_path}' \"$@\"\n")
        script.chmod(0o755)
        age_file(script)
        log.write_text("")
        self.touched()
        return script, log

    @staticmethod
    def spy_calls(log: Path) -> list[list[str]]:
        """The argument lists logged by a spy compiler."""
        return [line.split("\t") for line in log.read_text().splitlines()]

    # --- the cache on disk -------------------------------------------------

    def entry_files(self, kind: str | None = None, cache: Path | None = None) -> list[Path]:
        """Entry files (kind 'R' result, 'M' manifest, None both) in the cache."""
        out = []
        root = cache or self.cache
        if not root.is_dir():
            return out
        for p in root.glob("[0-9a-f][0-9a-f]/[0-9a-f][0-9a-f]/*"):
            n = p.name
            if len(n) == 65 and n[64] in "RM" and (kind is None or n[64] == kind):
                out.append(p)
        return sorted(out)

    def cache_files(self, cache: Path | None = None) -> list[Path]:
        """Every file of every entry (an entry's file and files stored beside
        it, such as <name>.o), without temporary files."""
        root = cache or self.cache
        if not root.is_dir():
            return []
        hexdigits = set("0123456789abcdef")
        return sorted(p for p in root.glob("[0-9a-f][0-9a-f]/[0-9a-f][0-9a-f]/*")
                      if len(p.name) >= 65 and set(p.name[:64]) <= hexdigits
                      and p.name[64] in "RM" and ".tmp." not in p.name[65:])

    def disk_usage(self, cache: Path | None = None) -> tuple[int, int]:
        """(bytes on disk, files) of the cache's entries, as kiln counts them."""
        size = files = 0
        for p in self.cache_files(cache=cache):
            try:
                st = p.lstat()
            except FileNotFoundError:
                continue
            size += st.st_blocks * 512
            files += 1
        return size, files


def servers_required() -> bool:
    """Whether KILN_REQUIRE_SERVERS is set (to anything but "" or "0"), as
    .ci/run does: then a test that would skip because a server (moto_server,
    redis-server, nginx) or a tool (cmake, ninja, a compiler, googletest,
    libxxhash) is missing fails instead, so that CI cannot pass with whole
    suites silently not run."""
    return os.environ.get("KILN_REQUIRE_SERVERS", "") not in ("", "0")


def skip_or_fail(test: unittest.TestCase, why: str) -> None:
    """Skips `test` for a missing server or tool, or fails it when
    KILN_REQUIRE_SERVERS is set."""
    if servers_required():
        test.fail(f"{why} (KILN_REQUIRE_SERVERS is set: missing servers and tools fail)")
    test.skipTest(why)


def missing_tool(why: str) -> Exception:
    """What setUpClass raises for a missing server or tool: a skip, or a
    failure of the class when KILN_REQUIRE_SERVERS is set."""
    if servers_required():
        return AssertionError(f"{why} (KILN_REQUIRE_SERVERS is set: missing servers and tools fail)")
    return unittest.SkipTest(why)


def check_entry_framing(data: bytes) -> str | None:
    """Checks the framing of a stored entry (docs/storage-layout.md) except the
    checksum; returns None if well-formed, else what is wrong."""
    if len(data) < 32:
        return f"too short ({len(data)} bytes)"
    if data[:4] != b"KLN1":
        return "bad magic"
    stored = struct.unpack_from("<Q", data, 16)[0]
    if 24 + stored + 8 != len(data):
        return f"stored size {stored} does not match file size {len(data)}"
    return None


def forge_entry(kind: str, payload: bytes) -> bytes | None:
    """An uncompressed entry of `kind` ("R" or "M") around `payload`, framed
    and checksummed as kiln writes them (docs/storage-layout.md): it passes
    every check of the frame whatever the payload says. None when the
    system's libxxhash (for XXH3-64) cannot be loaded."""
    import ctypes
    import ctypes.util
    name = ctypes.util.find_library("xxhash")
    if not name:
        return None
    try:
        lib = ctypes.CDLL(name)
        xxh3 = lib.XXH3_64bits
    except (OSError, AttributeError):
        return None
    xxh3.restype = ctypes.c_uint64
    xxh3.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    head = b"KLN1" + bytes([1, 1 if kind == "R" else 2, 0, 0])
    head += struct.pack("<QQ", len(payload), len(payload))
    body = head + payload
    return body + struct.pack("<Q", xxh3(body, len(body)))


def instantiate(namespace: dict, mixin: type, compilers: Sequence[str] | None = None) -> None:
    """Creates one TestCase class per compiler from `mixin` (a plain class
    whose tests use self.cxx) in `namespace` (a module's globals())."""
    for cxx in compilers if compilers is not None else COMPILERS:
        tag = cxx.replace("+", "x").replace("-", "_").replace(".", "_")
        name = f"{mixin.__name__}_{tag}"
        namespace[name] = type(name, (mixin, KilnTestCase), {"cxx": cxx,
                                                             "__module__": namespace["__name__"]})


def main() -> None:
    """Parses --kiln and runs the module's tests with unittest."""
    global KILN
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--kiln", default=os.environ.get("KILN_BINARY", ""))
    known, rest = parser.parse_known_args()
    if not known.kiln:
        sys.exit("usage: test_x.py --kiln /path/to/kiln [unittest options]")
    KILN = os.path.realpath(known.kiln)
    if not os.access(KILN, os.X_OK):
        sys.exit(f"kiln binary not executable: {KILN}")
    if not COMPILERS:
        sys.exit("no compiler (g++ or clang++) found")
    unittest.main(module="__main__", argv=[sys.argv[0], *rest], verbosity=2)


__all__ = [
    "COMPILERS", "KilnTestCase", "Run", "age_file", "check_entry_framing", "clean_env",
    "forge_entry", "missing_tool", "servers_required", "skip_or_fail",
    "instantiate", "main", "read_bytes",
]
