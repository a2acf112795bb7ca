"""Real servers for the remote-storage integration tests, and a test base class.

The servers run on 127.0.0.1 on a free port (found by binding port 0), each in
its own process group and its own temporary directory, and are stopped when
the test (or test class) that started them ends:

    MotoServer     moto_server: S3 and STS (boto3 talks to it for checks)
    RedisServer    redis-server without persistence (a small RESP client
                   built in, so no Python redis package is needed)
    NginxServer    nginx with WebDAV PUT/DELETE, the HTTP level
    SilentServer   accepts connections, reads what is sent, never answers
    StallingServer answers reads "not found" at once but never answers a
                   write (HTTP/S3 or Redis protocol)

RemoteTestCase (a KilnTestCase) adds "machines": separate KILN_DIRs, log files
and TMPDIRs in one test, as two computers sharing a remote cache would have.

kiln finds its remote-storage plugin (libkiln-remote.so) beside the binary;
RemoteTestCase fails early with a clear message when it is not there.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Callable, Mapping, Sequence

import kilntest
from kilntest import KilnTestCase

_START_ATTEMPTS = 4
_START_TIMEOUT_S = 30.0


class ServerError(RuntimeError):
    pass


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def find_program(name: str) -> str | None:
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    for d in path.split(":"):
        if d and os.access(os.path.join(d, name), os.X_OK):
            return os.path.join(d, name)
    return None


class ServerProcess:
    """A server started on a free port, in its own process group (stopped as
    a whole), killed by the kernel if this process dies first."""

    def __init__(self, name: str, workdir: Path) -> None:
        self.name = name
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = self.dir / f"{name}.log"
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def _start(self, argv_for: Callable[[int], Sequence[str]],
               prepare: Callable[[int], None] | None = None,
               env: Mapping[str, str] | None = None) -> None:
        why = ""
        # The server dies with this process even if it is killed (a ctest
        # timeout) before it can stop the server.
        setpriv = find_program("setpriv")
        wrap = [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []
        for _ in range(_START_ATTEMPTS):
            port = free_port()
            if prepare:
                prepare(port)
            argv = [str(a) for a in argv_for(port)]
            with open(self.log, "wb") as log:
                self.proc = subprocess.Popen(wrap + argv, stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT, cwd=str(self.dir),
                                             env=dict(env or os.environ),
                                             start_new_session=True)
            deadline = time.monotonic() + _START_TIMEOUT_S
            while time.monotonic() < deadline and self.running:
                if port_open(port):
                    self.port = port
                    return
                time.sleep(0.05)
            why = f"{argv[0]} did not start on port {port}: {self.log_text()}"
            self.stop()
        raise ServerError(why)

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def _leader_exited(self) -> bool:
        """Whether the server (the leader of its process group) has exited,
        without reaping it: while it is not reaped, its pid, which is the
        group's id, cannot be reused, so signalling the group is safe."""
        if self.proc is None or self.proc.returncode is not None:
            return True
        try:
            r = os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return r is not None

    @property
    def running(self) -> bool:
        return not self._leader_exited()

    def _kill_group(self, sig: int) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return  # reaped: the group id may belong to someone else now
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def kill(self) -> None:
        """SIGKILL, as a crash would: no goodbye to connected clients."""
        self._kill_group(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self._kill_group(signal.SIGTERM)
        deadline = time.monotonic() + 5
        while not self._leader_exited() and time.monotonic() < deadline:
            time.sleep(0.02)
        self._kill_group(signal.SIGKILL)  # whatever is left of the group
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


# --- moto: S3 and STS ----------------------------------------------------------

# IAM policy allowing everything on S3 (moto's default account 123456789012).
_S3_ALL = json.dumps({"Version": "2012-10-17",
                      "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})
_TRUST = json.dumps({"Version": "2012-10-17",
                     "Statement": [{"Effect": "Allow", "Principal": {"Federated": "ci"},
                                    "Action": "sts:AssumeRoleWithWebIdentity"}]})
ROLE_ARN = "arn:aws:iam::123456789012:role/kiln-ci"


class MotoServer(ServerProcess):
    """moto_server (S3 + STS + IAM). Authentication is off unless set_auth()
    turns it on (moto then checks SigV4 signatures against its IAM users)."""

    REGION = "us-east-1"

    def __init__(self, workdir: Path) -> None:
        super().__init__("moto", workdir)
        moto = find_program("moto_server")
        if not moto:
            raise ServerError("moto_server is not installed (pip install 'moto[server]')")
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("AWS_") or k.startswith("MOTO_"):
                del env[k]
        self._start(lambda port: [moto, "-H", "127.0.0.1", "-p", str(port)], env=env)
        self.keys: dict[str, tuple[str, str]] = {}

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def client(self, service: str = "s3", key: str = "testing", secret: str = "testing"):
        import boto3
        from botocore.config import Config
        return boto3.client(service, endpoint_url=self.url, region_name=self.REGION,
                            aws_access_key_id=key, aws_secret_access_key=secret,
                            config=Config(s3={"addressing_style": "path"},
                                          retries={"max_attempts": 1}))

    def admin(self):
        """An S3 client with the keys of the IAM user "kiln" (after
        setup_iam()), else any keys (moto without authentication)."""
        key, secret = self.keys.get("kiln", ("testing", "testing"))
        return self.client("s3", key, secret)

    def setup_iam(self) -> None:
        """Creates the IAM users "kiln" (may do anything on S3) and "nobody"
        (no permission) and the role kiln-ci (S3, assumable with a web
        identity). Their keys are in self.keys. Call before set_auth(0)."""
        iam = self.client("iam")
        iam.create_user(UserName="kiln")
        iam.put_user_policy(UserName="kiln", PolicyName="s3", PolicyDocument=_S3_ALL)
        k = iam.create_access_key(UserName="kiln")["AccessKey"]
        self.keys["kiln"] = (k["AccessKeyId"], k["SecretAccessKey"])
        iam.create_user(UserName="nobody")
        k = iam.create_access_key(UserName="nobody")["AccessKey"]
        self.keys["nobody"] = (k["AccessKeyId"], k["SecretAccessKey"])
        iam.create_role(RoleName="kiln-ci", AssumeRolePolicyDocument=_TRUST)
        iam.put_role_policy(RoleName="kiln-ci", PolicyName="s3", PolicyDocument=_S3_ALL)

    def set_auth(self, free_requests: int) -> None:
        """Turns authentication on after `free_requests` more requests
        (a huge number turns it off in effect)."""
        req = urllib.request.Request(f"{self.url}/moto-api/reset-auth",
                                     data=str(free_requests).encode(), method="POST",
                                     # not a form: moto reads the raw body
                                     headers={"Content-Type": "text/plain"})
        with urllib.request.urlopen(req, timeout=30) as r:
            if r.status != 200:
                raise ServerError(f"moto reset-auth: HTTP {r.status}")

    def auth_off(self) -> None:
        self.set_auth(1 << 40)

    def create_bucket(self, name: str) -> None:
        self.admin().create_bucket(Bucket=name)

    def objects(self, bucket: str, prefix: str = "") -> dict[str, int]:
        """{object key: size} of every object in the bucket under `prefix`."""
        s3 = self.admin()
        out: dict[str, int] = {}
        # Filtered here: moto checks the signature of a ListObjectsV2 with a
        # Prefix wrongly when authentication is on.
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for o in page.get("Contents", []):
                if o["Key"].startswith(prefix):
                    out[o["Key"]] = o["Size"]
        return out

    def get(self, bucket: str, key: str) -> bytes:
        return self.admin().get_object(Bucket=bucket, Key=key)["Body"].read()

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self.admin().put_object(Bucket=bucket, Key=key, Body=data)


# --- redis ---------------------------------------------------------------------


class RedisError(Exception):
    pass


class RedisClient:
    """Enough of RESP2 for the tests."""

    def __init__(self, port: int, password: str | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.f = self.sock.makefile("rb")
        if password:
            self.command("AUTH", password)

    def close(self) -> None:
        self.f.close()
        self.sock.close()

    def command(self, *args: str | bytes | int):
        parts = [b"*%d\r\n" % len(args)]
        for a in args:
            b = a if isinstance(a, bytes) else str(a).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
        self.sock.sendall(b"".join(parts))
        return self._reply()

    def _reply(self):
        line = self.f.readline()
        if not line.endswith(b"\r\n"):
            raise RedisError("connection closed")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)
            return data[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RedisError(f"unexpected reply {line!r}")


class RedisServer(ServerProcess):
    """redis-server without persistence; optionally with requirepass."""

    def __init__(self, workdir: Path, password: str | None = None) -> None:
        super().__init__("redis", workdir)
        redis = find_program("redis-server")
        if not redis:
            raise ServerError("redis-server is not installed (apt-get install redis-server)")
        self.password = password
        extra = ["--requirepass", password] if password else []
        self._start(lambda port: [redis, "--port", str(port), "--bind", "127.0.0.1",
                                  "--save", "", "--appendonly", "no", "--dir", str(self.dir),
                                  *extra])

    def url(self, password: str | None = None) -> str:
        auth = f":{password}@" if password else ""
        return f"redis://{auth}127.0.0.1:{self.port}"

    def command(self, *args):
        c = RedisClient(self.port, self.password)
        try:
            return c.command(*args)
        finally:
            c.close()

    def dbsize(self) -> int:
        return self.command("DBSIZE")

    def keys(self, pattern: str = "*") -> list[str]:
        return sorted(k.decode() for k in self.command("KEYS", pattern))

    def get(self, key: str) -> bytes | None:
        return self.command("GET", key)

    def set(self, key: str, value: bytes) -> None:
        self.command("SET", key, value)


# --- nginx (WebDAV) --------------------------------------------------------------

_NGINX_CONF = """{user}master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 64; }}
http {{
  access_log {dir}/access.log;
  client_body_temp_path {dir}/tmp/body;
  proxy_temp_path {dir}/tmp/proxy;
  fastcgi_temp_path {dir}/tmp/fastcgi;
  uwsgi_temp_path {dir}/tmp/uwsgi;
  scgi_temp_path {dir}/tmp/scgi;
  server {{
    listen 127.0.0.1:{port};
    root {dir}/root;
    client_max_body_size 0;
    location / {{
      dav_methods PUT DELETE;
      create_full_put_path on;
      dav_access user:rw group:r all:r;
    }}
    location /readonly/ {{
      dav_methods PUT DELETE;
      create_full_put_path on;
      limit_except GET HEAD {{ deny all; }}
    }}
    location /team/ {{
      if ($http_x_kiln_team != "blue") {{ return 403; }}
      dav_methods PUT DELETE;
      create_full_put_path on;
    }}
    location /secret/ {{
      if ($http_authorization != "Bearer s3cr3t") {{ return 401; }}
      dav_methods PUT DELETE;
      create_full_put_path on;
    }}
  }}
}}
"""


class NginxServer(ServerProcess):
    """nginx serving {dir}/root with WebDAV PUT and DELETE:
    /          read-write
    /readonly/ GET and HEAD only (PUT: 403)
    /secret/   only with "Authorization: Bearer s3cr3t" (else 401)
    /team/     only with the header "X-Kiln-Team: blue" (else 403)"""

    def __init__(self, workdir: Path) -> None:
        super().__init__("nginx", workdir)
        nginx = find_program("nginx")
        if not nginx:
            raise ServerError("nginx is not installed (apt-get install nginx-light)")
        d = self.dir
        (d / "root").mkdir(exist_ok=True)
        (d / "tmp").mkdir(exist_ok=True)
        # As root, the workers would run as "nobody", who cannot write here.
        user = "user root;\n" if os.geteuid() == 0 else ""

        def prepare(port: int) -> None:
            (d / "nginx.conf").write_text(_NGINX_CONF.format(user=user, dir=d, port=port))

        self._start(lambda port: [nginx, "-p", str(d), "-c", str(d / "nginx.conf"),
                                  "-e", str(d / "error.log"), "-g", "daemon off;"], prepare)

    @property
    def root(self) -> Path:
        return self.dir / "root"

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/{path.strip('/')}".rstrip("/")

    def files(self, under: str = "") -> dict[str, int]:
        """{path relative to `under`: size} of every file stored below `under`."""
        base = self.root / under
        if not base.is_dir():
            return {}
        return {str(p.relative_to(base)): p.stat().st_size
                for p in base.rglob("*") if p.is_file()}


# --- servers that do not answer ------------------------------------------------------


class _ThreadServer:
    """A listening socket served by a thread; handle(conn) runs per
    connection in its own thread."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.requests: list[bytes] = []
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            r, _, _ = select.select([self.sock], [], [], 0.05)
            if not r:
                continue
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with self._lock:
                self.connections += 1
                self._conns.append(conn)
            threading.Thread(target=self._handle_safely, args=(conn,), daemon=True).start()

    def _handle_safely(self, conn: socket.socket) -> None:
        try:
            self.handle(conn)
        except OSError:
            pass

    def recv(self, conn: socket.socket) -> bytes | None:
        """Waits for data; None when stopped or the peer closed."""
        while not self._stop.is_set():
            r, _, _ = select.select([conn], [], [], 0.05)
            if r:
                data = conn.recv(65536)
                if not data:
                    return None
                with self._lock:
                    self.requests.append(data)
                return data
        return None

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()
        with self._lock:
            for c in self._conns:
                try:
                    c.close()
                except OSError:
                    pass


class SilentServer(_ThreadServer):
    """Accepts connections and reads everything sent, never answering."""

    def handle(self, conn: socket.socket) -> None:
        while self.recv(conn) is not None:
            pass


class StallingServer(_ThreadServer):
    """Answers reads at once with "not found" but never answers a write.

    protocol "http" (also S3): GET and HEAD get 404 (with an S3 NoSuchKey
    body), PUT is read and left unanswered. protocol "redis": every command
    but SET gets a nil reply (GET, GETEX: a miss); SET is never answered."""

    def __init__(self, protocol: str) -> None:
        self.protocol = protocol
        self.stalled = 0
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        buf = b""
        while True:
            data = self.recv(conn)
            if data is None:
                return
            buf += data
            if self.protocol == "redis":
                if b"SET" in buf.upper().split(b"\r\n"):
                    self.stalled += 1
                    buf = b""
                    while self.recv(conn) is not None:
                        pass
                    return
                # One nil per complete command (the tests send one at a time).
                if buf.endswith(b"\r\n"):
                    conn.sendall(b"$-1\r\n")
                    buf = b""
                continue
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                continue
            method = buf.split(b" ", 1)[0]
            if method == b"PUT":
                self.stalled += 1
                while self.recv(conn) is not None:
                    pass
                return
            body = (b"<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code>"
                    b"<Message>The specified key does not exist.</Message></Error>")
            conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/xml\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body),
                                                            b"" if method == b"HEAD" else body))
            buf = buf[head_end + 4:]


# --- the test base class -----------------------------------------------------------


class Machine:
    """One computer of a shared-cache setup: its own cache, TMPDIR and log."""

    def __init__(self, test: "RemoteTestCase", name: str) -> None:
        self.name = name
        self.root = test.dir / "machines" / name
        self.cache = self.root / "cache"
        self.tmp = self.root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.logfile = self.root / "kiln.log"
        self.env = dict(test.env)
        self.env["KILN_DIR"] = str(self.cache)
        self.env["TMPDIR"] = str(self.tmp)
        self.env["KILN_LOGFILE"] = str(self.logfile)
        self.env["HOME"] = str(self.root)  # no ~/.aws/credentials of the real user

    def events(self) -> list[dict]:
        """The JSON-lines log of this machine's kiln calls."""
        if not self.logfile.exists():
            return []
        return [json.loads(line) for line in self.logfile.read_text().splitlines() if line]

    def event_names(self) -> list[str]:
        return [e["event"] for e in self.events()]

    def clear_log(self) -> None:
        if self.logfile.exists():
            self.logfile.unlink()


class RemoteTestCase(KilnTestCase):
    """A KilnTestCase with servers and machines. Servers started with
    start_*() are stopped at the end of the test; class-wide ones (see
    class_moto()) at the end of the class."""

    _class_moto: MotoServer | None = None
    _class_dir: Path | None = None

    def setUp(self) -> None:
        super().setUp()
        plugin_dir = Path(os.environ.get("KILN_REMOTE_PLUGIN") or Path(kilntest.KILN).parent)
        for name in ("libkiln-remote.so", "libkiln-redis.so"):
            if not (plugin_dir / name).exists():
                self.fail(f"the remote-storage plugin {plugin_dir / name} is not built "
                          "(ninja kiln_remote_plugin kiln_redis_plugin)")
        for k in list(self.env):
            if k.startswith("AWS_"):
                del self.env[k]
        self.env["HOME"] = str(self.dir)
        # Loaded two-core machines: be generous, except where a test measures.
        self.env["KILN_REMOTE_CONNECT_TIMEOUT"] = "5000"
        self.env["KILN_REMOTE_REQUEST_TIMEOUT"] = "30000"
        self._machines: dict[str, Machine] = {}

    # --- servers -------------------------------------------------------------

    def _server_dir(self, name: str) -> Path:
        d = self.dir / "servers" / name
        n = 1
        while d.exists():
            n += 1
            d = self.dir / "servers" / f"{name}{n}"
        return d

    def start_moto(self) -> MotoServer:
        s = MotoServer(self._server_dir("moto"))
        self.addCleanup(s.stop)
        return s

    def start_redis(self, password: str | None = None) -> RedisServer:
        s = RedisServer(self._server_dir("redis"), password)
        self.addCleanup(s.stop)
        return s

    def start_nginx(self) -> NginxServer:
        s = NginxServer(self._server_dir("nginx"))
        self.addCleanup(s.stop)
        return s

    def silent_server(self) -> SilentServer:
        s = SilentServer()
        self.addCleanup(s.close)
        return s

    def stalling_server(self, protocol: str) -> StallingServer:
        s = StallingServer(protocol)
        self.addCleanup(s.close)
        return s

    @classmethod
    def class_moto(cls) -> MotoServer:
        """One moto_server for the whole class (it takes a second or two to
        start); tests keep apart by using their own buckets."""
        if cls._class_moto is None:
            import tempfile
            cls._class_dir = Path(tempfile.mkdtemp(prefix=f"kiln-it-{cls.__name__}-moto-"))
            cls._class_moto = MotoServer(cls._class_dir)
        return cls._class_moto

    @classmethod
    def tearDownClass(cls) -> None:
        if cls._class_moto is not None:
            cls._class_moto.stop()
            cls._class_moto = None
        if cls._class_dir is not None:
            import shutil
            shutil.rmtree(cls._class_dir, ignore_errors=True)
            cls._class_dir = None
        super().tearDownClass()

    def new_bucket(self, moto: MotoServer) -> str:
        """A bucket of its own for this test on a (shared) moto."""
        name = "kiln-" + self.id().rsplit(".", 1)[-1].lower().replace("_", "-")[:40]
        name = name.rstrip("-") + f"-{os.getpid()}-{int(time.time() * 1000) % 100000}"
        moto.create_bucket(name)
        return name

    # --- configuration of the levels -------------------------------------------

    @staticmethod
    def s3_env(moto_endpoint: str, bucket: str, prefix: str | None = None,
               keys: tuple[str, str] | None = ("testing", "testing"),
               read_only: bool = False) -> dict[str, str]:
        env = {"KILN_S3_BUCKET": bucket, "KILN_S3_ENDPOINT": f"http://{moto_endpoint}",
               "KILN_S3_REGION": MotoServer.REGION}
        if prefix is not None:
            env["KILN_S3_KEY_PREFIX"] = prefix
        if keys:
            env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"] = keys
        if read_only:
            env["KILN_S3_RW_MODE"] = "READ_ONLY"
        return env

    @staticmethod
    def redis_env(url: str, prefix: str | None = None, read_only: bool = False
                  ) -> dict[str, str]:
        env = {"KILN_REDIS_ENDPOINT": url}
        if prefix is not None:
            env["KILN_REDIS_KEY_PREFIX"] = prefix
        if read_only:
            env["KILN_REDIS_RW_MODE"] = "READ_ONLY"
        return env

    @staticmethod
    def http_env(url: str, read_only: bool = False) -> dict[str, str]:
        env = {"KILN_HTTP_ENDPOINT": url}
        if read_only:
            env["KILN_HTTP_RW_MODE"] = "READ_ONLY"
        return env

    # --- machines ----------------------------------------------------------------

    def machine(self, name: str, storage: str | None = None, **extra: str) -> Machine:
        """A machine (its own KILN_DIR, TMPDIR, KILN_LOGFILE, HOME) with the
        test's environment plus KILN_STORAGE=`storage` and `extra`."""
        m = Machine(self, name)
        if storage is not None:
            m.env["KILN_STORAGE"] = storage
        m.env.update(extra)
        self._machines[name] = m
        return m

    def levels(self, m: Machine) -> dict[str, int]:
        """The per-level counters of `kiln -s --json` on machine m."""
        return self.stats_json(env=m.env).get("levels", {})

    def counters(self, m: Machine) -> dict[str, int]:
        return self.stats_json(env=m.env)["counters"]

    @staticmethod
    def warnings(run: kilntest.Run) -> list[str]:
        return [line for line in run.err_text.splitlines() if line.startswith("kiln: warning:")]

    @staticmethod
    def compile_calls(log: Path, source: str) -> list[list[str]]:
        """The spy compiler's calls that compiled or preprocessed `source`
        (not the version probes)."""
        return [c for c in KilnTestCase.spy_calls(log) if any(a.endswith(source) for a in c)]

    def local_entries(self, m: Machine) -> dict[str, bytes]:
        """{relative path "ab/cd/<name>": bytes} of the machine's local entries."""
        return {str(p.relative_to(m.cache)): kilntest.read_bytes(p)
                for p in self.entry_files(cache=m.cache)}


def skip_unless_servers(*programs: str):
    """A decorator skipping a test class when a server program is missing, or,
    with KILN_REQUIRE_SERVERS set (kilntest.servers_required), failing each of
    its tests instead."""
    import unittest
    missing = [p for p in programs if not find_program(p)]
    why = f"not installed: {', '.join(missing)}"
    if missing and kilntest.servers_required():
        def fail_every_test(cls: type) -> type:
            def setUp(self: unittest.TestCase) -> None:
                kilntest.skip_or_fail(self, why)
            cls.setUp = setUp
            return cls
        return fail_every_test
    return unittest.skipIf(bool(missing), why)


__all__ = [
    "Machine", "MotoServer", "NginxServer", "ROLE_ARN", "RedisClient", "RedisError",
    "RedisServer", "RemoteTestCase", "ServerError", "SilentServer", "StallingServer",
    "free_port", "find_program", "skip_unless_servers",
]
