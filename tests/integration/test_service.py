"""The compile service end to end (issue 10, part 11): kiln-server replicas
on SQLite or a private PostgreSQL, the shared cache on moto_server's S3, real
CMake builds of real programs, the leader's uploads through faults, scaling
detection against a fake Kubernetes API, and bad requests.

    python3 tests/integration/test_service.py --kiln build/bin/kiln [-k pattern]
"""

from __future__ import annotations

import http.server
import io
import json
import os
import re
import shutil
import socketserver
import subprocess
import sys
import tarfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import kilntest  # noqa: E402
from kilntest import KilnTestCase, skip_or_fail  # noqa: E402
from remote_servers import MotoServer, ServerError  # noqa: E402
from service_harness import (COMMON_TUS, Http, Postgres, Replica, expected_output,  # noqa: E402
                             free_port, program_files, run_binary, tar_gz, wait_until)


class ServiceTestCase(KilnTestCase):

    def setUp(self) -> None:
        super().setUp()
        self.server = os.path.join(os.path.dirname(kilntest.KILN), "kiln-server")
        if not os.access(self.server, os.X_OK):
            self.fail(f"no kiln-server beside {kilntest.KILN}")
        if not shutil.which("cmake") or not shutil.which("ninja"):
            skip_or_fail(self, "cmake and ninja are needed")
        self.replicas: list[Replica] = []
        self.addCleanup(self.stop_replicas)

    def stop_replicas(self) -> None:
        for r in self.replicas:
            r.stop()

    def replica(self, worker_id: int, workers: int, name: str | None = None, **kw) -> Replica:
        data = self.dir / (name or f"r{worker_id}")
        r = Replica(self.server, data, worker_id, workers, self.env, **kw)
        self.replicas.append(r)
        return r

    def shard_of(self, program: dict) -> int:
        return program["worker"]

    def submit_until_shard(self, api: Replica, prefix: str, shard: int, files_for) -> str:
        """Submits programs named prefix-0, prefix-1, ... until one lands in
        `shard`; returns its name (the others stay submitted)."""
        for i in range(40):
            name = f"{prefix}-{i}"
            status, body = api.put_program(name, tar_gz(files_for(name)))
            self.assertIn(status, (200, 201), body)
            if body["worker"] == shard:
                return name
        self.fail(f"no program landed in shard {shard}")


class SharedCacheMixin:
    """Part 11's first two: 30 programs sharing a library, all compiled once
    each, the library's TUs compiled once and hit everywhere."""

    PROGRAMS = 30

    def run_programs(self, replicas: list[Replica]) -> None:
        first = replicas[0]
        # The first program fills the shared cache; the others must hit it
        # whichever replica compiles them.
        names = [f"prog-{i:02d}" for i in range(self.PROGRAMS)]
        status, body = first.put_program(names[0], tar_gz(program_files(names[0])))
        self.assertEqual(status, 201, body)
        p0 = first.wait_status(names[0])
        self.assertEqual(p0["cache"]["misses"], COMMON_TUS + 1, p0)
        for i, name in enumerate(names[1:], 1):
            api = replicas[i % len(replicas)]
            status, body = api.put_program(name, tar_gz(program_files(name)))
            self.assertEqual(status, 201, body)
            self.assertEqual(body["status"], "Pending")
            self.assertEqual(body["version"], 1)
        compiled_by = set()
        for name in names:
            p = first.wait_status(name, timeout=600)
            self.assertEqual(p["compile_count"], 1, p)  # each version compiled exactly once
            self.assertEqual(p["version"], 1)
            self.assertEqual(p["compiled_by"], p["worker"])
            compiled_by.add(p["compiled_by"])
            if name != names[0]:
                # The shared library's TUs hit; only main.cc is new.
                self.assertEqual((p["cache"]["hits"], p["cache"]["misses"]),
                                 (COMMON_TUS, 1), p)
        self.assertEqual(compiled_by, set(range(len(replicas))))
        # Every binary, downloaded from any replica, runs and says its name.
        for i, name in enumerate(names):
            api = replicas[(i + 1) % len(replicas)]
            status, headers, data = api.binary(name)
            self.assertEqual(status, 200, data[:300])
            sha = headers.get("X-Kiln-Sha256")
            self.assertEqual(sha, api.program(name)["binary_sha256"])
            self.assertEqual(run_binary(data, self.dir / "run"), expected_output(name))
        # The listing agrees.
        listed = {p["name"]: p["status"] for p in first.programs()}
        self.assertEqual(listed, {n: "Success" for n in names})


class ThreeReplicasOnPostgresAndS3(SharedCacheMixin, ServiceTestCase):

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.pg = None
        cls.moto = None
        cls.work = Path(tempfile_dir("kiln-svc-pg-"))
        try:
            cls.pg = Postgres()
            cls.moto = MotoServer(cls.work / "moto")
        except (FileNotFoundError, ServerError, RuntimeError) as e:
            cls.missing = str(e)
        else:
            cls.missing = ""

    @classmethod
    def tearDownClass(cls) -> None:
        if cls.pg:
            cls.pg.close()
        if cls.moto:
            cls.moto.stop()
        shutil.rmtree(cls.work, ignore_errors=True)
        super().tearDownClass()

    def setUp(self) -> None:
        super().setUp()
        if self.missing:
            skip_or_fail(self, self.missing)
        bucket = f"kiln-{self._testMethodName.lower().replace('_', '-')}"[:60]
        self.moto.create_bucket(bucket)
        self.env.update({"KILN_S3_BUCKET": bucket, "KILN_S3_ENDPOINT": self.moto.url,
                         "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                         "KILN_S3_REGION": "us-east-1"})
        self.bucket = bucket

    def test_thirty_programs_on_three_replicas(self) -> None:
        db = self.pg.new_database()
        replicas = [self.replica(i, 3, database=db) for i in range(3)]
        self.run_programs(replicas)
        # The cache entries are in S3: the shared TUs' objects were stored once.
        self.assertTrue(self.moto.objects(self.bucket))
        status, health = Http.json("GET", f"{replicas[2].url}/cluster_healthz")
        self.assertEqual(status, 200, health)
        self.assertTrue(health["all_healthy"])
        self.assertEqual([r["worker_id"] for r in health["replicas"]], [0, 1, 2])

    def test_a_replica_killed_mid_compile_resets_and_compiles_on_restart(self) -> None:
        db = self.pg.new_database()
        replicas = [self.replica(i, 2, database=db) for i in range(2)]

        def slow(name):
            return program_files(name, configure_sleep=4)

        name = self.submit_until_shard(replicas[0], "slow", 1, slow)
        wait_until(lambda: replicas[0].program(name)["status"] == "Compiling", 60,
                   "the compile to start")
        replicas[1].kill()
        self.assertEqual(replicas[0].program(name)["status"], "Compiling")
        replicas[1].start()
        p = replicas[0].wait_status(name)
        self.assertEqual(p["compile_count"], 2, p)  # claimed again after the reset
        self.assertIn("reset_compiling", replicas[1].log_text())
        status, _, data = replicas[0].binary(name)
        self.assertEqual(status, 200)
        self.assertEqual(run_binary(data, self.dir / "run"), expected_output(name))


    def test_a_submission_to_another_replica_is_claimed_at_once(self) -> None:
        """PostgreSQL NOTIFY: replica 0 polls only once a minute here, yet a
        program of its shard submitted to replica 1 starts compiling within
        seconds, because the store notifies and replica 0 LISTENs."""
        db = self.pg.new_database()
        replicas = [self.replica(i, 2, database=db, extra=["--poll-ms", "60000"])
                    for i in range(2)]
        time.sleep(1)  # both idle, in their minute-long wait
        began = time.monotonic()
        name = self.submit_until_shard(replicas[1], "notified", 0, program_files)
        wait_until(lambda: replicas[1].program(name)["status"] != "Pending", 20,
                   "replica 0 to claim the program")
        self.assertLess(time.monotonic() - began, 20)
        status, _, metrics = Http.request("GET", f"{replicas[0].url}/metrics")
        self.assertEqual(status, 200)
        m = re.search(rb"^kiln_server_pending_notifications_total (\d+)$", metrics, re.M)
        self.assertTrue(m and int(m.group(1)) >= 1, metrics)
        self.assertEqual(replicas[1].wait_status(name)["compiled_by"], 0)

    def test_a_log_that_is_not_utf8_is_stored_and_served(self) -> None:
        # A compiler quoting a Latin-1 source prints bytes that PostgreSQL's
        # text and JSON refuse: they are replaced, and the program reads.
        r = self.replica(0, 1, database=self.pg.new_database())
        files = program_files("latin1")
        files["main.cc"] = b'#error caf\xe9 \xff\nint main() {}\n'
        status, body = r.put_program("latin1", tar_gz(files))
        self.assertEqual(status, 201, body)
        p = r.wait_status("latin1", statuses=("CompileError",))
        self.assertIn("caf\ufffd \ufffd", p["log"])
        status, body = Http.json("GET", f"{r.url}/v0/programs/latin1?x")
        self.assertEqual(status, 200)
        status, _, data = Http.request(
            "PUT", f"{r.url}/v0/programs/latin1?cmake_arg=-DX=%FF", tar_gz(files))
        self.assertEqual(status, 400, data)


class OneReplicaOnSqlite(SharedCacheMixin, ServiceTestCase):

    def test_thirty_programs_on_the_embedded_defaults(self) -> None:
        r = self.replica(0, 1)  # no --database: SQLite in the data directory
        self.run_programs([r])
        self.assertTrue((r.data_dir / "kiln-server.db").exists())
        status, health = Http.json("GET", f"{r.url}/healthz")
        self.assertEqual(status, 200, health)
        self.assertTrue(health["checks"]["database"]["ok"])


class LeaderUploads(ServiceTestCase):
    """Part 5: uploads to the leader through its faults. Two replicas on one
    SQLite file; the programs that matter are in replica 1's shard."""

    def pair(self, leader_args=(), other_args=(), leader_url: str | None = None):
        db = f"sqlite://{self.dir}/state.db"
        leader = self.replica(0, 2, database=db, extra=list(leader_args))
        extra = ["--upload-backoff-ms", "200"] + list(other_args)
        if leader_url:
            extra += ["--leader-url", leader_url]
        other = self.replica(1, 2, database=db, extra=extra)
        return leader, other

    def test_leader_down_during_upload_and_back_in_time(self) -> None:
        leader, other = self.pair(other_args=["--upload-retries", "10"])
        wait_until(lambda: "uploaded" in other.log_text() or other.programs() is not None, 10)
        leader.stop()
        name = self.submit_until_shard(other, "late", 1, program_files)
        wait_until(lambda: "upload_retry" in other.log_text(), 120, "an upload retry")
        self.assertEqual(other.program(name)["status"], "Compiling")
        leader.start()
        p = other.wait_status(name)
        self.assertEqual(p["compiled_by"], 1)
        status, _, data = other.binary(name)
        self.assertEqual(status, 200)
        self.assertEqual(run_binary(data, self.dir / "run"), expected_output(name))

    def test_leader_never_back_is_a_system_error_with_the_url(self) -> None:
        leader, other = self.pair(other_args=["--upload-retries", "2", "--upload-backoff-ms",
                                              "100"])
        leader_url = leader.url
        wait_until(lambda: leader_url in json.dumps(Http.json("GET", f"{other.url}/cluster_healthz")[1]), 10)
        leader.stop()
        name = self.submit_until_shard(other, "orphan", 1, program_files)
        p = other.wait_status(name, statuses=("SystemError",))
        self.assertIn(f"Failed to upload binary to '{leader_url}/v0/internal/binaries/", p["log"])
        self.assertIn("upload_failed", other.log_text())
        # Submitting it again retries a system error.
        leader.start()
        status, body = other.put_program(name, tar_gz(program_files(name)))
        self.assertEqual(status, 200, body)
        self.assertEqual(body["status"], "Pending")
        self.assertEqual(other.wait_status(name)["status"], "Success")

    def test_a_corrupted_upload_is_refused_and_retried(self) -> None:
        proxy = CorruptingProxy()
        self.addCleanup(proxy.close)
        leader, other = self.pair(leader_url=proxy.url)
        proxy.target = leader.port
        name = self.submit_until_shard(other, "bitflip", 1, program_files)
        p = other.wait_status(name)
        self.assertGreaterEqual(proxy.puts, 2)
        self.assertEqual(proxy.corrupted, 1)
        self.assertIn("hash_mismatch", leader.log_text())
        status, headers, data = leader.binary(name)
        self.assertEqual(status, 200)
        self.assertEqual(headers["X-Kiln-Sha256"], p["binary_sha256"])
        self.assertEqual(run_binary(data, self.dir / "run"), expected_output(name))

    def test_a_full_disk_on_the_leader_is_507_and_a_system_error(self) -> None:
        if os.geteuid() != 0:
            skip_or_fail(self, "mounting a small tmpfs needs root")
        binaries = self.dir / "r0" / "binaries"
        binaries.mkdir(parents=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(binaries)],
                       check=True)
        self.addCleanup(subprocess.run, ["umount", "-l", str(binaries)])
        leader, other = self.pair(other_args=["--upload-retries", "3"])
        name = self.submit_until_shard(other, "big", 1, program_files)
        p = other.wait_status(name, statuses=("SystemError",))
        self.assertIn("Failed to upload binary to '", p["log"])
        self.assertIn("HTTP 507", p["log"])
        # 507 is not retried, and nothing half-written is left.
        self.assertNotIn("upload_retry", other.log_text())
        self.assertEqual([f for f in binaries.rglob("*") if f.is_file()], [])

    def test_an_edit_during_a_compile_is_not_overwritten(self) -> None:
        r = self.replica(0, 1, extra=["--compile-jobs", "2"])
        v1 = program_files("edited", configure_sleep=3)
        status, body = r.put_program("edited", tar_gz(v1))
        self.assertEqual(status, 201, body)
        wait_until(lambda: r.program("edited")["status"] == "Compiling", 60)
        v2 = program_files("edited", extra_main='#define VERSION 2\n')
        v2["main.cc"] = v2["main.cc"].replace('greet("edited")', 'greet("edited-v2")')
        status, body = r.put_program("edited", tar_gz(v2))
        self.assertEqual(status, 200, body)
        self.assertEqual(body["version"], 2)
        p = r.wait_status("edited", version=2, timeout=240)
        wait_until(lambda: "stale_result_dropped" in r.log_text(), 60, "the v1 result")
        p = r.program("edited")
        self.assertEqual((p["version"], p["status"]), (2, "Success"))
        status, _, data = r.binary("edited")
        self.assertEqual(run_binary(data, self.dir / "run"), "hello from edited-v2 "
                         f"{sum(b'edited')}\n")

    def test_a_lost_binary_sends_the_program_back_to_pending(self) -> None:
        r = self.replica(0, 1)
        r.put_program("lost", tar_gz(program_files("lost")))
        p = r.wait_status("lost")
        for f in (r.data_dir / "binaries").rglob("*"):
            if f.is_file():
                f.unlink()
        status, _, body = r.binary("lost")
        self.assertEqual(status, 404, body)
        self.assertIn(b"binary_lost", body)
        p2 = r.wait_status("lost")
        self.assertEqual(p2["compile_count"], p["compile_count"] + 1)
        status, _, data = r.binary("lost")
        self.assertEqual(status, 200)


def serve(handler_class) -> tuple[socketserver.ThreadingTCPServer, str]:
    """An HTTP server of `handler_class` on a free loopback port, in a thread;
    the server and its URL."""
    httpd = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler_class)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


def close_server(httpd: socketserver.ThreadingTCPServer) -> None:
    httpd.shutdown()
    httpd.server_close()


class CorruptingProxy:
    """Forwards PUTs to 127.0.0.1:<target>, flipping one byte of the first
    one's body: a damaged upload."""

    def __init__(self) -> None:
        self.target = 0
        self.puts = 0
        self.corrupted = 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def forward(self, method: str) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length) if length else None
                if method == "PUT":
                    proxy.puts += 1
                    if proxy.corrupted == 0 and body:
                        body = bytes([body[0] ^ 0xFF]) + body[1:]
                        proxy.corrupted += 1
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "content-length", "connection")}
                status, hdrs, data = Http.request(
                    method, f"http://127.0.0.1:{proxy.target}{self.path}", body, headers)
                self.send_response(status)
                for k, v in hdrs.items():
                    if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self):
                self.forward("PUT")

            def do_GET(self):
                self.forward("GET")

        self.httpd, self.url = serve(Handler)

    def close(self) -> None:
        close_server(self.httpd)


class FakeKubernetesApi:
    """A FAKE of the Kubernetes API server (none can run here): answers GET
    /apis/apps/v1/namespaces/<ns>/statefulsets/<name> with spec.replicas, and
    records the requests' paths and Authorization headers."""

    def __init__(self, replicas: int) -> None:
        self.replicas = replicas
        self.requests: list[tuple[str, str]] = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                fake.requests.append((self.path, self.headers.get("Authorization", "")))
                if self.path != "/apis/apps/v1/namespaces/compilers/statefulsets/kiln-server":
                    self.send_error(404)
                    return
                body = json.dumps({"kind": "StatefulSet",
                                   "spec": {"replicas": fake.replicas}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd, self.url = serve(Handler)

    def close(self) -> None:
        close_server(self.httpd)


class Scaling(ServiceTestCase):

    def test_a_statefulset_of_four_stops_servers_started_with_three(self) -> None:
        fake = FakeKubernetesApi(4)
        self.addCleanup(fake.close)
        sa = self.dir / "serviceaccount"
        sa.mkdir()
        (sa / "token").write_text("sa-token\n")
        (sa / "namespace").write_text("compilers")
        db = f"sqlite://{self.dir}/state.db"
        replicas = [self.replica(i, 3, database=db, extra=[
            "--statefulset", "kiln-server", "--kube-api-url", fake.url,
            "--service-account-dir", str(sa), "--scaling-interval-s", "1"]) for i in range(3)]
        for r in replicas:
            code = r.proc.wait(timeout=60)
            self.assertNotEqual(code, 0)
            self.assertIn("SCALING DETECTED: StatefulSet has 4 replicas but compiler was started "
                          "with 3 workers", r.log_text())
        self.assertTrue(fake.requests)
        self.assertTrue(all(auth == "Bearer sa-token" for _, auth in fake.requests))

    def test_matching_statefulset_keeps_serving(self) -> None:
        fake = FakeKubernetesApi(1)
        self.addCleanup(fake.close)
        sa = self.dir / "serviceaccount"
        sa.mkdir()
        (sa / "token").write_text("sa-token")
        (sa / "namespace").write_text("compilers")
        r = self.replica(0, 1, extra=["--statefulset", "kiln-server", "--kube-api-url", fake.url,
                                      "--service-account-dir", str(sa),
                                      "--scaling-interval-s", "1"])
        wait_until(lambda: len(fake.requests) >= 2, 30, "two scaling checks")
        self.assertIsNone(r.proc.poll())

    def test_membership_with_another_count_stops_the_server(self) -> None:
        db = f"sqlite://{self.dir}/state.db"
        old = self.replica(0, 2, name="old", database=db, extra=["--scaling-interval-s", "1"])
        new = self.replica(1, 3, name="new", database=db, extra=["--scaling-interval-s", "1"])
        # Whichever checks first stops (and leaves the table, so the other
        # may then carry on: in a rollout the new count survives).
        first = wait_until(lambda: next((r for r in (old, new) if r.proc.poll() is not None),
                                        None), 60, "a replica to stop")
        self.assertEqual(first.proc.returncode, 3)
        mine, theirs = (2, 3) if first is old else (3, 2)
        self.assertIn(f"SCALING DETECTED: the membership table has {theirs} replicas but "
                      f"compiler was started with {mine} workers", first.log_text())


class BadRequests(ServiceTestCase):

    def test_bad_requests_get_4xx_and_the_service_keeps_serving(self) -> None:
        r = self.replica(0, 1, extra=["--max-archive-mib", "1"])
        base = r.url

        def archive_with(member: tarfile.TarInfo, data: bytes = b"") -> bytes:
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w:gz") as tar:
                ok = tarfile.TarInfo("CMakeLists.txt")
                text = b"project(x)\n"
                ok.size = len(text)
                tar.addfile(ok, io.BytesIO(text))
                member.size = len(data)
                tar.addfile(member, io.BytesIO(data))
            return buf.getvalue()

        traversal = tarfile.TarInfo("../escape.txt")
        absolute = tarfile.TarInfo("/etc/evil")
        link = tarfile.TarInfo("out")
        link.type = tarfile.SYMTYPE
        link.linkname = "../../../etc/passwd"
        good = tar_gz(program_files("fine"))
        cases = [
            ("PUT", "/v0/programs/junk", os.urandom(5000), 400),
            ("PUT", "/v0/programs/empty", b"", 400),
            ("PUT", "/v0/programs/half", good[: len(good) // 2], 400),
            ("PUT", "/v0/programs/dotdot", archive_with(traversal, b"x"), 400),
            ("PUT", "/v0/programs/abs", archive_with(absolute, b"x"), 400),
            ("PUT", "/v0/programs/link", archive_with(link), 400),
            ("PUT", "/v0/programs/nolists", tar_gz({"main.cc": "int main(){}"}), 400),
            ("PUT", "/v0/programs/.hidden", good, 400),
            ("PUT", "/v0/programs/x?cmake_arg=-DCMAKE_CXX_COMPILER_LAUNCHER=sh", good, 400),
            ("PUT", "/v0/programs/x?cmake_arg=--trace", good, 400),
            ("PUT", "/v0/programs/x?bogus=1", good, 400),
            ("PUT", "/v0/programs/x?target=../../bin", good, 400),
            ("GET", "/v0/programs/nosuch", None, 404),
            ("GET", "/v0/programs/nosuch/binary", None, 404),
            ("DELETE", "/v0/programs/nosuch", None, 404),
            ("POST", "/v0/programs/x", b"{}", 405),
            ("PATCH", "/v0/programs", b"{}", 405),
            ("GET", "/v1/programs", None, 404),
            ("PUT", "/v0/internal/binaries/not-a-uuid/1", b"x", 400),
            ("PUT", "/v0/internal/binaries/3f2b8c1e-9d4a-4b6f-8e2d-1a2b3c4d5e6f/1", b"x", 400),
        ]
        for method, path, body, want in cases:
            status, _, data = Http.request(method, base + path, body)
            self.assertEqual(status, want, f"{method} {path}: {data[:300]!r}")
            if status != 405 or True:
                self.assertTrue(data == b"" or b"error" in data, data[:200])
        # An archive over --max-archive-mib is refused from its length, before
        # its body is read (a client that sends it anyway sees the connection
        # closed under it).
        import socket
        with socket.create_connection(("127.0.0.1", r.port)) as s:
            s.sendall(b"PUT /v0/programs/big HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Length: 2097152\r\n\r\n")
            s.settimeout(10)
            self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 413"))
        try:
            status = Http.request("PUT", base + "/v0/programs/big", os.urandom(2 << 20))[0]
            self.assertEqual(status, 413)
        except (urllib.error.URLError, ConnectionError):
            pass  # closed while the body was still being sent
        # A wrong checksum on the internal endpoint is refused as damaged.
        status, _, data = Http.request(
            "PUT", base + "/v0/internal/binaries/3f2b8c1e-9d4a-4b6f-8e2d-1a2b3c4d5e6f/1", b"x",
            {"X-Kiln-Sha256": "0" * 64})
        self.assertEqual(status, 422, data)
        self.assertIn(b"hash_mismatch", data)
        # A client that sends half a body and stops is cut off.
        with socket.create_connection(("127.0.0.1", r.port)) as s:
            s.sendall(b"PUT /v0/programs/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
                      + good[:1000])
            # The others are served meanwhile.
            status, body = Http.json("GET", base + "/healthz")
            self.assertEqual(status, 200, body)
        # Nothing was created by the bad requests, and a good program builds.
        self.assertEqual(r.programs(), [])
        status, body = r.put_program("fine", good)
        self.assertEqual(status, 201, body)
        self.assertEqual(r.wait_status("fine")["status"], "Success")
        self.assertEqual(r.proc.poll(), None)
        status, text = Http.request("GET", base + "/metrics")[0::2]
        self.assertEqual(status, 200)
        self.assertIn(b'kiln_server_responses_total{code="400"}', text)

    def test_a_compile_error_is_reported_with_the_compiler_output(self) -> None:
        r = self.replica(0, 1)
        files = program_files("broken")
        files["main.cc"] = "int main() { return undeclared_thing; }\n"
        status, body = r.put_program("broken", tar_gz(files))
        self.assertEqual(status, 201, body)
        p = r.wait_status("broken", statuses=("CompileError",))
        self.assertIn("undeclared_thing", p["log"])
        self.assertIn("error", p["log"])
        status, body = Http.json("GET", f"{r.url}/v0/programs/broken/binary")
        self.assertEqual(status, 409, body)
        # A program without CMake: kiln-program.toml, in a top directory.
        status, body = r.put_program("tomlprog", tar_gz({
            "kiln-program.toml": 'sources = ["main.cc"]\ncxx_standard = 17\n',
            "main.cc": '#include <cstdio>\nint main() { std::puts("from toml"); }\n'},
            top="tomlprog-1.0"))
        self.assertEqual(status, 201, body)
        r.wait_status("tomlprog")
        status, _, data = r.binary("tomlprog")
        self.assertEqual(run_binary(data, self.dir / "run"), "from toml\n")
        status, body = Http.json("GET", f"{r.url}/v0/openapi.json")
        self.assertEqual(status, 200)
        self.assertIn("/v0/programs/{name}/binary", body["paths"])
        status, _ = Http.json("DELETE", f"{r.url}/v0/programs/tomlprog")
        self.assertEqual(status, 204)
        self.assertEqual(Http.json("GET", f"{r.url}/v0/programs/tomlprog")[0], 404)


class LimitsAndHealth(ServiceTestCase):

    def test_a_build_past_its_time_limit_is_stopped_and_reported(self) -> None:
        r = self.replica(0, 1, extra=["--compile-timeout-s", "2"])
        status, body = r.put_program("sleepy", tar_gz(program_files("sleepy",
                                                                    configure_sleep=30)))
        self.assertEqual(status, 201, body)
        t = time.monotonic()
        p = r.wait_status("sleepy", statuses=("SystemError",), timeout=60)
        self.assertLess(time.monotonic() - t, 25)
        self.assertIn("passed its time limit of 2 s", p["log"])
        # The replica goes on with the next program (which may itself pass 2 s
        # on a busy machine: any final status shows the loop went on).
        r.put_program("quick", tar_gz(program_files("quick")))
        r.wait_status("quick", statuses=("Success", "SystemError"))
        self.assertIsNone(r.proc.poll())

    def test_a_build_directory_past_its_size_limit_is_stopped(self) -> None:
        r = self.replica(0, 1, extra=["--max-build-mib", "8"])
        files = program_files("hog")
        files["CMakeLists.txt"] = files["CMakeLists.txt"].replace(
            "add_library", "execute_process(COMMAND dd if=/dev/zero of=hog bs=1M count=32)\n"
                           "execute_process(COMMAND sleep 20)\nadd_library", 1)
        r.put_program("hog", tar_gz(files))
        t = time.monotonic()
        p = r.wait_status("hog", statuses=("CompileError",), timeout=60)
        self.assertLess(time.monotonic() - t, 15)
        self.assertIn("build directory passed its size limit of 8 MiB", p["log"])

    def test_an_executable_past_its_size_limit_is_a_compile_error(self) -> None:
        r = self.replica(0, 1, extra=["--max-binary-mib", "1"])
        files = program_files("fat", extra_main="char fat_blob[4 << 20] = {1};\n")
        r.put_program("fat", tar_gz(files))
        p = r.wait_status("fat", statuses=("CompileError",))
        self.assertIn("more than the limit", p["log"])

    def test_healthz_is_503_when_the_data_disk_is_95_percent_full(self) -> None:
        if os.geteuid() != 0:
            skip_or_fail(self, "mounting a small tmpfs needs root")
        data = self.dir / "r0"
        data.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(data)],
                       check=True)
        self.addCleanup(subprocess.run, ["umount", "-l", str(data)])
        r = self.replica(0, 1, database=f"sqlite://{self.dir}/state.db")
        status, body = Http.json("GET", f"{r.url}/healthz")
        self.assertEqual(status, 200, body)
        st = os.statvfs(data)
        fill = int(st.f_bavail * st.f_frsize - 0.03 * st.f_blocks * st.f_frsize)
        with open(data / "filler", "wb") as f:
            f.write(b"\0" * fill)
        status, body = Http.json("GET", f"{r.url}/healthz")
        self.assertEqual(status, 503, body)
        self.assertFalse(body["healthy"])
        self.assertGreaterEqual(body["checks"]["data_dir"]["disk_used_percent"], 95)
        status, cluster = Http.json("GET", f"{r.url}/cluster_healthz")
        self.assertEqual(status, 503, cluster)
        self.assertFalse(cluster["all_healthy"])
        os.unlink(data / "filler")
        self.assertEqual(Http.json("GET", f"{r.url}/healthz")[0], 200)

    def test_cluster_healthz_names_a_replica_that_is_down(self) -> None:
        db = f"sqlite://{self.dir}/state.db"
        a = self.replica(0, 2, database=db)
        b = self.replica(1, 2, database=db)
        wait_until(lambda: Http.json("GET", f"{a.url}/cluster_healthz")[0] == 200, 20)
        b.kill()  # no goodbye: its heartbeat row stays until it is stale
        status, body = Http.json("GET", f"{a.url}/cluster_healthz")
        self.assertEqual(status, 503, body)
        down = [x for x in body["replicas"] if x["worker_id"] == 1][0]
        self.assertFalse(down["healthy"])
        self.assertIn("connect", down["error"])
        time.sleep(2.0)  # past three missed heartbeats (--heartbeat-ms 300) and a second
        status, body = Http.json("GET", f"{a.url}/cluster_healthz")
        self.assertEqual(status, 503, body)
        down = [x for x in body["replicas"] if x["worker_id"] == 1][0]
        self.assertIn("no heartbeat", down["error"])
        # A replica that stops cleanly leaves the membership at once.
        b.start()
        wait_until(lambda: Http.json("GET", f"{a.url}/cluster_healthz")[0] == 200, 20)
        b.stop()
        status, body = Http.json("GET", f"{a.url}/cluster_healthz")
        down = [x for x in body["replicas"] if x["worker_id"] == 1][0]
        self.assertIn("no heartbeat", down["error"])

    def test_a_cache_that_is_down_slows_nothing_down_to_a_failure(self) -> None:
        # An S3 level nobody listens on: every build still succeeds, and
        # /healthz reports the cache without turning unhealthy.
        self.env.update({"KILN_S3_BUCKET": "nowhere", "KILN_S3_ENDPOINT": f"http://127.0.0.1:{free_port()}",
                         "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y",
                         "KILN_REMOTE_CONNECT_TIMEOUT": "200"})
        r = self.replica(0, 1)
        r.put_program("nocache", tar_gz(program_files("nocache")))
        r.wait_status("nocache")

        def cache_checked():
            status, body = Http.json("GET", f"{r.url}/healthz")
            return (status, body) if body["checks"]["cache"].get("checked_at_ms") else None

        status, body = wait_until(cache_checked, 60, "the cache check")
        self.assertEqual(status, 200, body)
        self.assertFalse(body["checks"]["cache"]["ok"])
        self.assertIn("s3", body["checks"]["cache"]["detail"])


class Cleanup(ServiceTestCase):

    def test_binaries_of_deleted_and_superseded_versions_are_removed(self) -> None:
        r = self.replica(0, 1, extra=["--cleanup-interval-s", "1"])
        r.put_program("gone", tar_gz(program_files("gone")))
        gone = r.wait_status("gone")
        r.put_program("kept", tar_gz(program_files("kept")))
        kept = r.wait_status("kept")
        binaries = r.data_dir / "binaries"
        self.assertTrue((binaries / kept["id"] / "1").exists())
        self.assertTrue((binaries / gone["id"] / "1").exists())
        v2 = program_files("kept", extra_main="// v2\n")
        r.put_program("kept", tar_gz(v2))
        kept = r.wait_status("kept", version=2)
        self.assertEqual(Http.json("DELETE", f"{r.url}/v0/programs/gone")[0], 204)
        wait_until(lambda: not (binaries / gone["id"] / "1").exists()
                   and not (binaries / kept["id"] / "1").exists(), 30, "the cleanup")
        self.assertTrue((binaries / kept["id"] / "2").exists())
        self.assertEqual(r.binary("kept")[0], 200)


class WithTheBuildCluster(ServiceTestCase):
    """Part 7: with dist.scheduler_url set, the replicas' misses are
    compiled on the build cluster."""

    def test_misses_go_to_the_cluster(self) -> None:
        from cluster import Cluster
        cluster = Cluster(Path(kilntest.KILN).resolve().parent, self.dir, missed=25)
        self.addCleanup(cluster.close)
        cluster.scheduler()
        cluster.worker("w1")
        cluster.wait_for({"w1"})
        self.env.update(cluster.client_env(KILN_DIST_FALLBACK_TO_LOCAL="false"))
        r = self.replica(0, 1)
        r.put_program("remote", tar_gz(program_files("remote")))
        p = r.wait_status("remote")
        self.assertEqual(p["cache"]["misses"], COMMON_TUS + 1)
        log = (self.dir / "w1.log").read_text()
        self.assertEqual(log.count('"event":"job_finished"'), COMMON_TUS + 1, log[-2000:])
        status, _, data = r.binary("remote")
        self.assertEqual(run_binary(data, self.dir / "run"), expected_output("remote"))


def tempfile_dir(prefix: str) -> str:
    import tempfile
    return tempfile.mkdtemp(prefix=prefix)


if __name__ == "__main__":
    kilntest.main()
