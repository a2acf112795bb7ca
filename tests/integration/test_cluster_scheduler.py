#!/usr/bin/env python3
"""The kiln-scheduler binary: flags, environment, token files, --config TOML,
its HTTP API as a worker and a client use it, bad input, and SIGTERM.

    python3 tests/integration/test_cluster_scheduler.py --kiln build/bin/kiln
(kiln-scheduler is taken from beside kiln)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request
from pathlib import Path

SCHEDULER: Path = Path()


def request(url: str, body: dict | str | None = None, token: str | None = None,
            method: str | None = None) -> tuple[int, dict | str]:
    data = None
    if body is not None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data else "GET"))
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


class Scheduler:
    def __init__(self, args: list[str], env: dict[str, str], log: Path):
        self.log = log
        self.proc = subprocess.Popen([str(SCHEDULER), "--listen", "127.0.0.1:0",
                                      "--log-file", str(log), *args],
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            self.proc.kill()
            raise AssertionError(f"no listening line: {line!r} {self.proc.stderr.read()}")
        self.base = "http://" + line.split()[-1]

    def stop(self, sig=signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=10)


def heartbeat(server_id: str, cores: int = 2, nonce: str = "n1", **extra) -> dict:
    return {"server_id": server_id, "nonce": nonce, "public_url": f"http://127.0.0.1:9/{server_id}",
            "cores": cores, **extra}


class SchedulerBinary(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="kiln-sched-test-"))
        self.env = dict(os.environ)
        for k in list(self.env):
            if k.startswith("KILN_"):
                del self.env[k]

    def start(self, *args: str, **env: str) -> Scheduler:
        s = Scheduler(list(args), dict(self.env, **env), self.tmp / "scheduler.log")
        self.addCleanup(lambda: s.proc.poll() is None and s.stop(signal.SIGKILL))
        return s

    def test_worker_and_client_through_the_api(self):
        (self.tmp / "worker.token").write_text("wtok\n")
        s = self.start("--worker-token", str(self.tmp / "worker.token"),
                       KILN_DIST_CLIENT_TOKEN="ctok")
        status, body = request(s.base + "/api/v1/workers/heartbeat", heartbeat("w1"), "wtok")
        self.assertEqual(status, 200, body)
        self.assertFalse(body["restarted"])
        status, body = request(s.base + "/api/v1/jobs/alloc",
                               {"client_id": "c1", "toolchain": "t1", "wait_ms": 0}, "ctok")
        self.assertEqual(status, 200, body)
        self.assertEqual(body["server_id"], "w1")
        job = body["job_id"]
        status, st = request(s.base + "/status")
        self.assertEqual(status, 200)
        self.assertEqual([w["server_id"] for w in st["workers"]], ["w1"])
        self.assertEqual(st["workers"][0]["running_jobs"], 1)
        status, metrics = request(s.base + "/metrics")
        self.assertIn("kiln_scheduler_jobs_allocated_total 1", metrics)
        self.assertIn("kiln_scheduler_cores 2", metrics)
        self.assertEqual(s.stop(), 0)
        log = [json.loads(l) for l in s.log.read_text().splitlines()]
        allocated = [l for l in log if l["event"] == "job_allocated"]
        self.assertEqual(len(allocated), 1)
        self.assertEqual((allocated[0]["job_id"], allocated[0]["server_id"]), (job, "w1"))
        text = s.log.read_text()
        self.assertNotIn("wtok", text)
        self.assertNotIn("ctok", text)

    def test_bad_input_gets_4xx_and_a_log_line(self):
        s = self.start("--worker-token", "wtok", "--client-token", "ctok")
        cases = [
            ("/api/v1/workers/heartbeat", "{]", "wtok", 400),
            ("/api/v1/workers/heartbeat", heartbeat("../etc"), "wtok", 400),
            ("/api/v1/workers/heartbeat", heartbeat("w1"), None, 401),
            ("/api/v1/workers/heartbeat", heartbeat("w1"), "ctok", 401),
            ("/api/v1/jobs/alloc", {"client_id": "c", "toolchain": 5}, "ctok", 400),
        ]
        for path, body, token, want in cases:
            status, answer = request(s.base + path, body, token)
            self.assertEqual(status, want, (path, answer))
        # An oversized body is refused from its Content-Length, unread.
        host, port = s.base[len("http://"):].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as c:
            c.sendall(b"POST /api/v1/jobs/alloc HTTP/1.1\r\nHost: x\r\n"
                      b"Authorization: Bearer ctok\r\nContent-Length: 83886080\r\n\r\n")
            self.assertTrue(c.recv(4096).startswith(b"HTTP/1.1 413"))
        # Half a body, then silence: the others are still served meanwhile.
        half = socket.create_connection((host, int(port)), timeout=10)
        half.sendall(b"POST /api/v1/jobs/alloc HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        status, _ = request(s.base + "/healthz")
        self.assertEqual(status, 200)
        half.close()
        self.assertEqual(s.stop(), 0)
        rejected = [json.loads(l) for l in s.log.read_text().splitlines()
                    if '"request_rejected"' in l]
        self.assertGreaterEqual(len(rejected), 5)

    def test_config_file_and_flag_errors(self):
        config = self.tmp / "scheduler.toml"
        config.write_text('client-token = "c"\nworker-token = "w"\nheartbeat-interval-ms = 100\n'
                          "missed-heartbeats = 2\n")
        s = self.start("--config", str(config))
        status, _ = request(s.base + "/api/v1/workers/heartbeat", heartbeat("w1"), "w")
        self.assertEqual(status, 200)
        # Pruned after two silent 100 ms intervals.
        time.sleep(0.6)
        _, st = request(s.base + "/status")
        self.assertEqual(st["workers"], [])
        self.assertEqual(s.stop(), 0)

        r = subprocess.run([str(SCHEDULER), "--listen", "nowhere"], env=dict(
            self.env, KILN_DIST_CLIENT_TOKEN="a", KILN_DIST_WORKER_TOKEN="b"),
            capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--listen: expected HOST:PORT", r.stderr)
        r = subprocess.run([str(SCHEDULER), "--listen", "127.0.0.1:0"], env=self.env,
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--client-token", r.stderr)
        r = subprocess.run([str(SCHEDULER), "--no-such-flag"], env=self.env,
                           capture_output=True, text=True, timeout=10)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("no-such-flag", r.stderr)


def main() -> int:
    global SCHEDULER
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", required=True)
    args, rest = ap.parse_known_args()
    SCHEDULER = Path(args.kiln).resolve().parent / "kiln-scheduler"
    prog = unittest.main(argv=[sys.argv[0], *rest], exit=False, verbosity=2)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
