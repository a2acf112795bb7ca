#!/usr/bin/env python3
"""Misses in flight (`inflight_wait_s`, docs/direct-mode.md): when several
kiln processes miss on the same compilation at the same time, one compiles
and the others wait for its result, on one machine (the local level's
flock(2) leases) and across machines sharing an S3 bucket (moto_server) or a
Redis (redis-server):

- three processes at once, on three machines (or one): the compiler runs
  once, the other two are `inflight_hit`s, and every object is the plain
  compiler's;
- with inflight_wait_s = 0 (the default) nobody waits;
- a holder that fails (a compile error) lets the waiters go at once: they
  compile, and fail with the same message;
- a holder killed with SIGKILL frees a local lease at once: the waiters
  compile, long before the wait's limit.

The compiler is a script that logs its calls and sleeps 3 s before a
compile, so that the three processes overlap."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import kilntest
from remote_servers import Machine, RemoteTestCase

HEADER = "#pragma once\n#include <map>\n#include <string>\n"
SOURCE = """\
#include "inflight.hpp"
int counted(int n) {
  std::map<int, std::string> m;
  for (int i = 0; i < n; ++i) m[i] = std::to_string(i);
  return static_cast<int>(m.size());
}
"""
BROKEN = "int broken() { return missing_name; }\n"
WAIT = "60"


class InflightMixin:
    """Subclasses set `backend` ("" for the local level only) and implement
    start_remote() and configure()."""

    backend = ""

    def start_remote(self) -> None:
        pass

    def configure(self) -> dict[str, str]:
        return {}

    # --- helpers ---------------------------------------------------------------

    def slow_spy(self) -> tuple[Path, Path]:
        """g++ behind a script that logs every call and sleeps 3 s before a compile."""
        real = shutil.which("g++")
        d = self.dir / "spy"
        d.mkdir(exist_ok=True)
        script, log = d / "g++", d / "calls.log"
        script.write_text(
            "#!/bin/sh\n"
            f"(IFS='\t'; printf '%s\\n' \"$*\") >> '{log}'\n"
            "case \" $* \" in *\" -c \"*) sleep 3;; esac\n"
            f"exec '{real}' \"$@\"\n")
        script.chmod(0o755)
        kilntest.age_file(script)
        log.write_text("")
        self.touched()
        return script, log

    def checkout(self, name: str, source: str = SOURCE) -> Path:
        self.write(f"{name}/include/inflight.hpp", HEADER)
        self.write(f"{name}/main.cpp", source)
        return self.dir / name

    def machines(self, n: int, wait: str = WAIT) -> list[Machine]:
        """n machines sharing the remote; without one, n processes sharing one
        machine's cache."""
        if not self.backend:
            m = self.machine("m", KILN_INFLIGHT_WAIT_S=wait)
            return [m] * n
        return [self.machine(f"m{i}", storage=f"local,{self.backend}",
                             KILN_INFLIGHT_WAIT_S=wait, **self.configure()) for i in range(n)]

    def start(self, m: Machine, tree: Path, spy: Path) -> subprocess.Popen:
        return subprocess.Popen([kilntest.KILN, str(spy), "-c", "main.cpp", "-o", "main.o",
                                 "-Iinclude", "-O1"], cwd=tree, env=m.env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

    def compiles(self, log: Path) -> list[list[str]]:
        """The spy's compiles of main.cpp (not preprocessor runs or probes)."""
        return [c for c in kilntest.KilnTestCase.spy_calls(log)
                if "main.cpp" in c and "-c" in c and "-E" not in c]

    def totals(self, machines: list[Machine]) -> dict[str, int]:
        out: dict[str, int] = {}
        for m in {id(m): m for m in machines}.values():
            for k, v in self.counters(m).items():
                out[k] = out.get(k, 0) + v
        return out

    def plain_object(self, tree: Path) -> bytes:
        self.ok(self.plain("g++", "-c", "main.cpp", "-o", "plain.o", "-Iinclude", "-O1",
                           cwd=tree))
        return kilntest.read_bytes(tree / "plain.o")

    # --- tests -------------------------------------------------------------------

    def test_three_at_once_compile_once(self):
        self.start_remote()
        spy, log = self.slow_spy()
        trees = [self.checkout(f"c{i}") for i in range(3)]
        machines = self.machines(3)
        self.settle()
        procs = [self.start(m, t, spy) for m, t in zip(machines, trees)]
        for p in procs:
            out, err = p.communicate(timeout=120)
            self.assertEqual(p.returncode, 0, err.decode(errors="replace"))
            self.assertEqual(err, b"")
        want = self.plain_object(trees[0])
        for t in trees:
            self.assertEqual(kilntest.read_bytes(t / "main.o"), want, f"wrong object in {t}")
        self.assertEqual(len(self.compiles(log)), 1, self.compiles(log))
        c = self.totals(machines)
        self.assertEqual((c["miss"], c["direct_hit"]), (1, 2), c)
        # Normally both others waited; on a loaded machine one may start only
        # after the holder is done, and hit without waiting.
        self.assertIn(c["inflight_hit"], (1, 2), c)
        self.assertEqual(c["inflight_wait_timeout"], 0, c)
        waited = [e for m in {id(m): m for m in machines}.values() for e in m.events()
                  if e["event"] == "inflight_wait"]
        self.assertEqual(len(waited), c["inflight_hit"], waited)
        self.assertEqual({e["level"] for e in waited}, {self.backend or "local"})

    def test_without_a_wait_nobody_waits(self):
        self.start_remote()
        spy, log = self.slow_spy()
        trees = [self.checkout(f"c{i}") for i in range(2)]
        machines = self.machines(2, wait="0")
        self.settle()
        procs = [self.start(m, t, spy) for m, t in zip(machines, trees)]
        for p in procs:
            p.communicate(timeout=120)
            self.assertEqual(p.returncode, 0)
        self.assertEqual(len(self.compiles(log)), 2)
        self.assertEqual(self.totals(machines)["inflight_hit"], 0)

    def test_a_failing_holder_lets_the_waiters_go(self):
        self.start_remote()
        spy, log = self.slow_spy()
        trees = [self.checkout(f"c{i}", BROKEN) for i in range(3)]
        machines = self.machines(3)
        self.settle()
        began = time.monotonic()
        procs = [self.start(m, t, spy) for m, t in zip(machines, trees)]
        for p in procs:
            out, err = p.communicate(timeout=120)
            self.assertEqual(p.returncode, 1)
            self.assertIn(b"missing_name", err)
        # The holder's 3 s, then the two waiters at once: not one after another.
        self.assertLess(time.monotonic() - began, 30)
        self.assertEqual(len(self.compiles(log)), 3)
        c = self.totals(machines)
        self.assertEqual((c["compile_failed"], c["inflight_hit"]), (3, 0), c)


class LocalInflight(InflightMixin, RemoteTestCase):
    backend = ""

    def test_a_killed_holder_frees_its_lease_at_once(self):
        spy, log = self.slow_spy()
        trees = [self.checkout(f"c{i}") for i in range(3)]
        machines = self.machines(3)
        self.settle()
        holder = self.start(machines[0], trees[0], spy)
        leases = machines[0].cache / "leases"
        deadline = time.monotonic() + 30
        while not self.compiles(log) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertEqual(len(self.compiles(log)), 1, "the holder did not start its compile")
        self.assertEqual(len(list(leases.iterdir())), 1)
        began = time.monotonic()
        waiters = [self.start(m, t, spy) for m, t in zip(machines[1:], trees[1:])]
        time.sleep(0.5)
        os.kill(holder.pid, signal.SIGKILL)
        holder.communicate(timeout=60)
        for p in waiters:
            out, err = p.communicate(timeout=120)
            self.assertEqual(p.returncode, 0, err.decode(errors="replace"))
        self.assertLess(time.monotonic() - began, 20, "the waiters waited for the limit")
        want = self.plain_object(trees[0])
        for t in trees[1:]:
            self.assertEqual(kilntest.read_bytes(t / "main.o"), want)
        self.assertEqual(len(self.compiles(log)), 3)  # the killed one's, and the waiters'


class S3Inflight(InflightMixin, RemoteTestCase):
    backend = "s3"

    def start_remote(self) -> None:
        self.moto = self.class_moto()
        self.bucket = self.new_bucket(self.moto)

    def configure(self) -> dict[str, str]:
        return self.s3_env(self.moto.endpoint, self.bucket, prefix="/inflight/")

    def test_three_at_once_compile_once(self):
        super().test_three_at_once_compile_once()
        # The lease is gone from the bucket once released.
        leases = [k for k in self.moto.objects(self.bucket) if "/leases/" in k]
        self.assertEqual(leases, [])


class RedisInflight(InflightMixin, RemoteTestCase):
    backend = "redis"

    def start_remote(self) -> None:
        self.redis = self.start_redis()

    def configure(self) -> dict[str, str]:
        return self.redis_env(self.redis.url(), prefix="kiln:")


if __name__ == "__main__":
    kilntest.main()
