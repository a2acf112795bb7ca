#!/usr/bin/env python3
"""kiln-scheduler and kiln-worker as processes on loopback: workers register
and heartbeat, SIGTERM drains a worker (it leaves the scheduler at once and
exits 0), kill -9 leaves it to be pruned, a worker restarted under the same id
is seen as a restart with a new certificate, a restarted scheduler is found
again by the workers, and bad flags are refused.

    python3 tests/integration/test_cluster_daemons.py --kiln build/bin/kiln
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

BIN: Path = Path()


from cluster import Daemon, get_json, wait_until  # noqa: E402


class ClusterDaemons(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="kiln-cluster-daemons-"))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("KILN_")}
        self.env.update(KILN_DIST_CLIENT_TOKEN="ctok", KILN_DIST_WORKER_TOKEN="wtok")
        self.daemons: list[Daemon] = []

    def tearDown(self):
        for d in self.daemons:
            d.close()

    def scheduler(self, port: int = 0) -> Daemon:
        d = Daemon([str(BIN / "kiln-scheduler"), "--listen", f"127.0.0.1:{port}",
                    "--heartbeat-interval-ms", "200", "--missed-heartbeats", "5",
                    "--log-file", str(self.tmp / "scheduler.log")], self.env)
        self.daemons.append(d)
        self.base = f"http://{d.address}"
        return d

    def worker(self, server_id: str, port: int = 0) -> Daemon:
        d = Daemon([str(BIN / "kiln-worker"), "--listen", f"127.0.0.1:{port}",
                    "--scheduler", self.base, "--server-id", server_id, "--cores", "2",
                    "--work-dir", str(self.tmp / f"work-{server_id}"),
                    "--log-file", str(self.tmp / f"{server_id}.log")], self.env)
        self.daemons.append(d)
        return d

    def workers(self) -> dict[str, dict]:
        return {w["server_id"]: w for w in get_json(self.base + "/status")["workers"]}

    def test_register_drain_kill_restart(self):
        self.scheduler()
        a = self.worker("w-a")
        b = self.worker("w-b")
        c = self.worker("w-c")
        ws = wait_until(lambda: len(self.workers()) == 3 and self.workers(), what="3 workers")
        self.assertEqual(ws["w-a"]["url"], f"https://127.0.0.1:{a.port}")
        self.assertEqual(ws["w-a"]["slots"], 2 + 1 + 0)
        metrics = urllib.request.urlopen(self.base + "/metrics", timeout=10).read().decode()
        self.assertIn("kiln_scheduler_cores 6", metrics)

        # SIGTERM: the worker drains, deregisters at once and exits 0.
        t0 = time.time()
        self.assertEqual(a.signal(signal.SIGTERM), 0)
        self.assertNotIn("w-a", self.workers())
        self.assertLess(time.time() - t0, 10)
        log = (self.tmp / "w-a.log").read_text()
        self.assertIn('"worker_draining"', log)
        self.assertIn('"worker_deregistered"', log)

        # kill -9: still listed until it misses its heartbeats, then pruned.
        b.signal(signal.SIGKILL)
        self.assertIn("w-b", self.workers())
        wait_until(lambda: "w-b" not in self.workers(), what="w-b pruned")

        # The same id on the same port, restarted: a new certificate, and the
        # scheduler counts a restart.
        port = c.port
        c.signal(signal.SIGKILL)
        self.worker("w-c", port)
        wait_until(lambda: b"kiln_scheduler_worker_restarts_total 1" in
                   urllib.request.urlopen(self.base + "/metrics", timeout=10).read(),
                   what="the restart")
        sched_log = (self.tmp / "scheduler.log").read_text()
        self.assertIn('"worker_restarted"', sched_log)
        self.assertIn('"server_id":"w-c"', sched_log)

    def test_workers_find_a_restarted_scheduler(self):
        s = self.scheduler()
        port = s.port
        self.worker("w-a")
        wait_until(lambda: "w-a" in self.workers(), what="w-a")
        s.signal(signal.SIGKILL)
        self.scheduler(port)
        wait_until(lambda: "w-a" in self.workers(), what="w-a back at the new scheduler")

    def test_bad_worker_flags(self):
        self.scheduler()
        for args, message in [
            (["--scheduler", "ftp://x"], "--scheduler"),
            (["--scheduler", self.base, "--listen", "nope"], "--listen"),
            (["--scheduler", self.base, "--public-url", "gopher://x"], "--public-url"),
        ]:
            r = subprocess.run([str(BIN / "kiln-worker"), *args], env=self.env,
                               capture_output=True, text=True, timeout=10)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            self.assertIn(message, r.stderr)
        env = dict(self.env)
        del env["KILN_DIST_WORKER_TOKEN"]
        r = subprocess.run([str(BIN / "kiln-worker"), "--scheduler", self.base], env=env,
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--worker-token", r.stderr)


def main() -> int:
    global BIN
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", required=True)
    args, rest = ap.parse_known_args()
    BIN = Path(args.kiln).resolve().parent
    prog = unittest.main(argv=[sys.argv[0], *rest], exit=False, verbosity=2)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
