"""A build cluster on loopback for the integration tests and benchmarks:
kiln-scheduler and kiln-worker processes (Python standard library only)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read().decode())


def wait_until(predicate, timeout: float = 20.0, what: str = "condition"):
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Daemon:
    """A daemon that prints `listening on HOST:PORT ...` when ready."""

    def __init__(self, argv: list[str], env: dict[str, str]):
        self.argv = argv
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            self.proc.kill()
            raise AssertionError(f"{argv[0]}: {line!r} {self.proc.stderr.read()}")
        self.address = line.split()[2]
        self.port = int(self.address.rsplit(":", 1)[1])

    def signal(self, sig) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()


class Cluster:
    """One scheduler and its workers, each with a log in `tmp`."""

    CLIENT_TOKEN = "client-token-for-tests"
    WORKER_TOKEN = "worker-token-for-tests"

    def __init__(self, bin_dir: Path, tmp: Path, heartbeat_ms: int = 200, missed: int = 5):
        self.bin = bin_dir
        self.tmp = tmp
        self.heartbeat_ms = heartbeat_ms
        self.missed = missed
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("KILN_")}
        self.env.update(KILN_DIST_CLIENT_TOKEN=self.CLIENT_TOKEN,
                        KILN_DIST_WORKER_TOKEN=self.WORKER_TOKEN)
        self.daemons: list[Daemon] = []
        self.base = ""

    def scheduler(self, port: int = 0) -> Daemon:
        d = Daemon([str(self.bin / "kiln-scheduler"), "--listen", f"127.0.0.1:{port}",
                    "--heartbeat-interval-ms", str(self.heartbeat_ms),
                    "--missed-heartbeats", str(self.missed),
                    "--log-file", str(self.tmp / "scheduler.log")], self.env)
        self.daemons.append(d)
        self.base = f"http://{d.address}"
        return d

    def worker(self, server_id: str, port: int = 0, cores: int = 2) -> Daemon:
        d = Daemon([str(self.bin / "kiln-worker"), "--listen", f"127.0.0.1:{port}",
                    "--scheduler", self.base, "--server-id", server_id, "--cores", str(cores),
                    "--work-dir", str(self.tmp / f"work-{server_id}"),
                    "--log-file", str(self.tmp / f"{server_id}.log")], self.env)
        self.daemons.append(d)
        return d

    def workers(self) -> dict[str, dict]:
        return {w["server_id"]: w for w in get_json(self.base + "/status")["workers"]}

    def wait_for(self, ids: set[str]):
        wait_until(lambda: set(self.workers()) == ids, what=f"workers {sorted(ids)}")

    def client_env(self, **extra: str) -> dict[str, str]:
        return dict(KILN_DIST_SCHEDULER_URL=self.base, KILN_DIST_TOKEN=self.CLIENT_TOKEN, **extra)

    def close(self):
        for d in self.daemons:
            d.close()
