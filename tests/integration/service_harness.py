"""kiln-server replicas, a private PostgreSQL and sample programs, for the
compile service's integration tests and benchmark (Python standard library
only)."""

from __future__ import annotations

import io
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

PG_BIN = os.environ.get("KILN_TEST_POSTGRES_BIN", "/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float = 60.0, what: str = "condition", step: float = 0.05):
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Http:
    """Small JSON/binary HTTP helpers that return (status, headers, body)
    for every answer, errors included."""

    @staticmethod
    def request(method: str, url: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = 30.0):
        req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    @classmethod
    def json(cls, method: str, url: str, body: bytes | None = None, **kw):
        status, headers, data = cls.request(method, url, body, **kw)
        try:
            return status, json.loads(data.decode() or "null")
        except ValueError:
            return status, {"raw": data.decode(errors="replace")}


class Postgres:
    """A private PostgreSQL 15 server on a free loopback port (as the
    postgres user when this runs as root)."""

    def __init__(self) -> None:
        if not os.access(f"{PG_BIN}/initdb", os.X_OK):
            raise FileNotFoundError(f"{PG_BIN}/initdb: install postgresql (scripts/install-deps.sh)")
        self.dir = Path(tempfile.mkdtemp(prefix="kiln-pg-"))
        self.root = os.geteuid() == 0
        if self.root:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self._run([f"{PG_BIN}/initdb", "-D", str(self.dir / "data"), "-A", "trust", "-U",
                   "postgres", "--no-sync", "-E", "UTF8", "--locale", "C"])
        for _ in range(3):
            self.port = free_port()
            opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                    "-c full_page_writes=off -c max_connections=200")
            r = self._run([f"{PG_BIN}/pg_ctl", "-D", str(self.dir / "data"), "-o", opts, "-l",
                           str(self.dir / "server.log"), "-w", "-t", "60", "start"], check=False)
            if r.returncode == 0:
                break
        else:
            raise RuntimeError(f"pg_ctl start failed: {r.stdout}{r.stderr}")
        self.databases = 0

    def _run(self, argv: list[str], check: bool = True):
        if self.root:
            argv = ["runuser", "-u", "postgres", "--"] + argv
        r = subprocess.run(argv, cwd=self.dir, capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            raise RuntimeError(f"{argv}: {r.stdout}{r.stderr}")
        return r

    def new_database(self) -> str:
        """A fresh database; its URL."""
        self.databases += 1
        name = f"kiln{self.databases}"
        self._run([f"{PG_BIN}/createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U",
                   "postgres", name])
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def close(self) -> None:
        self._run([f"{PG_BIN}/pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "-w",
                   "stop"], check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


class Replica:
    """One kiln-server process."""

    def __init__(self, server: str, data_dir: Path, worker_id: int, workers: int,
                 env: dict[str, str], extra: list[str] | None = None,
                 port: int | None = None, database: str | None = None) -> None:
        self.server = server
        self.data_dir = data_dir
        self.worker_id = worker_id
        self.workers = workers
        self.env = env
        self.extra = extra or []
        self.database = database
        self.port = port or free_port()
        self.log = data_dir.parent / f"replica-{worker_id}-{data_dir.name}.log"
        self.proc: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        a = [self.server, "--listen", f"127.0.0.1:{self.port}", "--worker-id",
             str(self.worker_id), "--workers", str(self.workers), "--data-dir",
             str(self.data_dir), "--heartbeat-ms", "300", "--log-level", "debug"]
        if self.database:
            a += ["--database", self.database]
        return a + self.extra

    def start(self, wait: bool = True) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv(), env=self.env, stdout=subprocess.PIPE,
                                         stderr=log, start_new_session=True)
        if wait:
            line = self.proc.stdout.readline().decode()
            if not line.startswith("listening on "):
                self.proc.wait(timeout=10)
                raise AssertionError(f"kiln-server did not start: {line!r} {self.log_text()}")

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def kill(self) -> None:
        """kill -9 of the server and of the builds it runs (its session)."""
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=30)

    def stop(self) -> int | None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()
        return self.proc.returncode if self.proc else None

    # --- the API ---------------------------------------------------------

    def put_program(self, name: str, archive: bytes, target: str | None = None,
                    cmake_args: list[str] | None = None):
        q = []
        if target:
            q.append(f"target={urllib.request.quote(target)}")
        for a in cmake_args or []:
            q.append(f"cmake_arg={urllib.request.quote(a, safe='')}")
        url = f"{self.url}/v0/programs/{name}" + ("?" + "&".join(q) if q else "")
        return Http.json("PUT", url, archive, headers={"Content-Type": "application/gzip"})

    def program(self, name: str) -> dict:
        status, body = Http.json("GET", f"{self.url}/v0/programs/{name}")
        if status != 200:
            raise AssertionError(f"GET program {name}: {status} {body}")
        return body

    def programs(self) -> list[dict]:
        status, body = Http.json("GET", f"{self.url}/v0/programs")
        assert status == 200, (status, body)
        return body["programs"]

    def wait_status(self, name: str, statuses=("Success",), timeout: float = 240.0,
                    version: int | None = None) -> dict:
        final = {"Success", "CompileError", "SystemError"}

        def done():
            p = self.program(name)
            if version is not None and p["version"] != version:
                return None
            return p if p["status"] in final or p["status"] in statuses else None

        p = wait_until(done, timeout, f"program {name} to reach {statuses}", step=0.2)
        if p["status"] not in statuses:
            raise AssertionError(f"program {name}: {p['status']}, expected {statuses}: "
                                 f"{p['log'][-3000:]}")
        return p

    def binary(self, name: str):
        return Http.request("GET", f"{self.url}/v0/programs/{name}/binary", timeout=120)


# --- sample programs -------------------------------------------------------------

COMMON = {
    "common/greet.hpp": '#pragma once\n#include <string>\nstd::string greet(const std::string&);\n'
                        'long checksum(const std::string&);\nstd::string shout(std::string);\n',
    "common/greet.cc": '#include "greet.hpp"\n#include <sstream>\n'
                       'std::string greet(const std::string& who) {\n'
                       '  std::ostringstream s; s << "hello from " << who; return s.str();\n}\n',
    "common/checksum.cc": '#include "greet.hpp"\n#include <numeric>\n'
                          'long checksum(const std::string& s) {\n'
                          '  return std::accumulate(s.begin(), s.end(), 0L);\n}\n',
    "common/shout.cc": '#include "greet.hpp"\n#include <algorithm>\n#include <cctype>\n'
                       'std::string shout(std::string s) {\n'
                       '  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) {'
                       ' return std::toupper(c); });\n  return s;\n}\n',
}
COMMON_TUS = 3


def program_files(name: str, extra_main: str = "", configure_sleep: float = 0) -> dict[str, str]:
    """A CMake project: the common library (3 TUs) and a main that prints
    "hello from <name> <checksum>"."""
    files = dict(COMMON)
    sleep = (f'execute_process(COMMAND sleep {configure_sleep})\n' if configure_sleep else "")
    files["CMakeLists.txt"] = (
        "cmake_minimum_required(VERSION 3.16)\n"
        f"project(p_{name.replace('-', '_').replace('.', '_')} LANGUAGES CXX)\n" + sleep +
        "add_library(common STATIC common/greet.cc common/checksum.cc common/shout.cc)\n"
        "target_include_directories(common PUBLIC common)\n"
        f"add_executable({name} main.cc)\n"
        f"target_link_libraries({name} common)\n")
    files["main.cc"] = (
        '#include "greet.hpp"\n#include <iostream>\n' + extra_main +
        f'int main() {{ std::cout << greet("{name}") << " " << checksum("{name}") << "\\n"; }}\n')
    return files


def expected_output(name: str) -> str:
    return f"hello from {name} {sum(name.encode())}\n"


def tar_gz(files: dict[str, str | bytes], top: str = "") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path, content in sorted(files.items()):
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo((top + "/" if top else "") + path)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 1700000000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def run_binary(data: bytes, directory: Path) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    fd, path = tempfile.mkstemp(dir=directory)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o755)
    try:
        return subprocess.run([path], capture_output=True, text=True, timeout=30,
                              check=True).stdout
    finally:
        os.unlink(path)
