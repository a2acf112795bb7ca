#!/usr/bin/env python3
"""Remote levels that are misconfigured, refuse access or do not answer:
the compile always succeeds with a correct object (stored locally), stderr
carries one clear kiln warning naming the backend and what to fix, the
per-level counters say what happened, and kiln --check-storage exits 1 with
a FAILED line.

- S3: a bucket that does not exist; moto with authentication enforced and
  unknown keys (InvalidAccessKeyId), a wrong secret (SignatureDoesNotMatch),
  keys without permission (AccessDenied); the right keys work.
- Redis: requirepass with a wrong password and with none; the right one works.
- HTTP: 401 without the bearer token, 403 on a read-only location; nothing
  listening; the bearer token works.
- KILN_STORAGE naming an unconfigured level; a missing plugin.
- Servers that accept connections but never answer, with
  KILN_REMOTE_REQUEST_TIMEOUT=500: the compile finishes within seconds and
  <level>_read_timeout is counted, not <level>_read_error; servers that
  answer reads but stall on writes: <level>_write_timeout.
"""

from __future__ import annotations

import os
import time

import kilntest
from remote_servers import Machine, RemoteTestCase, skip_unless_servers

SOURCE = """\
#include <string>
#include <vector>
std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += s + ",";
  return out;
}
"""


class FailureCase(RemoteTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.src = self.write("src/lib.cpp", SOURCE)
        self.ok(self.plain("g++", "-c", "lib.cpp", "-o", "reference.o", cwd=self.dir / "src"))
        self.reference = kilntest.read_bytes(self.dir / "src/reference.o")

    def compile_despite(self, m: Machine, level: str, *expected: str,
                        counter: str = "read_error") -> kilntest.Run:
        """Compiles on machine m; asserts success, a correct object stored
        locally, exactly one warning naming `level` and containing each of
        `expected`, and <level>_<counter> == 1."""
        obj = f"lib-{m.name}.o"
        r = self.ok(self.compile("g++", "-c", "lib.cpp", "-o", obj, cwd=self.dir / "src",
                                 env=m.env))
        self.assertEqual(kilntest.read_bytes(self.dir / "src" / obj), self.reference)
        warnings = self.warnings(r)
        self.assertEqual(len(warnings), 1, r.describe())
        self.assertIn(f"storage {level}:", warnings[0])
        for text in expected:
            self.assertIn(text, warnings[0])
        self.assertNotIn("kiln: error", r.err_text)
        lv = self.levels(m)
        self.assertEqual(lv.get(f"{level}_{counter}"), 1, lv)
        self.assertEqual(lv.get("local_write"), 2, lv)  # result and manifest
        self.assertNotIn(f"{level}_write", lv)
        self.assertNotIn(f"{level}_hit", lv)
        c = self.counters(m)
        self.assertEqual(c["miss"], 1)
        total = "error_storage_read" if counter.startswith("read") else "error_storage_write"
        self.assertEqual(c[total], 1, c)
        return r

    def warned_once(self, m: Machine, level: str, counter: str = "read_error") -> None:
        """Another compile that runs into the same problem (on another
        object): counted again, but the warning is not repeated (once an
        hour), so a build does not print it for every object."""
        before = self.levels(m).get(f"{level}_{counter}", 0)
        self.write("src/other.cpp", "int other() { return 2; }\n")
        r = self.ok(self.compile("g++", "-c", "other.cpp", cwd=self.dir / "src", env=m.env))
        self.assertEqual(self.warnings(r), [], r.describe())
        self.assertEqual(self.levels(m).get(f"{level}_{counter}"), before + 1)

    def check_storage_fails(self, m: Machine, level: str, *expected: str) -> str:
        r = self.kiln("--check-storage", env=m.env)
        self.assertEqual(r.code, 1, r.describe())
        lines = {l.split()[0]: l for l in r.text.splitlines() if l.strip()}
        self.assertRegex(lines.get("local", ""), r"^local\s+ok\s", r.describe())
        self.assertRegex(lines.get(level, ""), rf"^{level}\s+FAILED\s", r.describe())
        for text in expected:
            self.assertIn(text, lines[level])
        return lines[level]


@skip_unless_servers("moto_server")
class S3Misconfigured(FailureCase):
    """moto with IAM authentication enforced (set_auth(0) in each test)."""

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        if cls._class_moto is None:
            cls.class_moto().setup_iam()

    def setUp(self) -> None:
        super().setUp()
        self.moto = self.class_moto()
        self.moto.set_auth(0)
        self.addCleanup(self.moto.auth_off)
        self.bucket = self.new_bucket(self.moto)  # as the IAM user "kiln"

    def s3_machine(self, name: str, bucket: str | None = None, keys=None, **kw) -> Machine:
        return self.machine(name, storage="local,s3",
                            **self.s3_env(self.moto.endpoint, bucket or self.bucket,
                                          keys=keys or self.moto.keys["kiln"], **kw))

    def test_bucket_that_does_not_exist(self):
        m = self.s3_machine("a", bucket="no-such-bucket-kiln")
        self.compile_despite(m, "s3", "S3 bucket 'no-such-bucket-kiln' does not exist",
                             self.moto.url, "KILN_S3_BUCKET")
        line = self.check_storage_fails(m, "s3", "no-such-bucket-kiln", "does not exist")
        self.assertIn("write: error", line)
        self.warned_once(m, "s3")

    def test_unknown_access_key_is_denied(self):
        m = self.s3_machine("a", keys=("AKIAKILNDOESNOTEXIST", "whatever"))
        r = self.compile_despite(m, "s3", "HTTP 403", "InvalidAccessKeyId",
                                 "AKIAKILNDOESNOTEXIST", "the environment (AWS_ACCESS_KEY_ID)",
                                 f"s3://{self.bucket}/<key> ")
        self.assertNotIn("not-the-secret", r.err_text)
        self.warned_once(m, "s3")
        self.check_storage_fails(m, "s3", "access_denied", "InvalidAccessKeyId")
        self.assertEqual(self.moto.objects(self.bucket), {})

    def test_wrong_secret_is_denied(self):
        key = self.moto.keys["kiln"][0]
        m = self.s3_machine("a", keys=(key, "not-the-secret"))
        self.compile_despite(m, "s3", "SignatureDoesNotMatch", "check the secret")
        self.check_storage_fails(m, "s3", "access_denied")

    def test_keys_without_permission_are_denied(self):
        m = self.s3_machine("a", keys=self.moto.keys["nobody"])
        self.compile_despite(m, "s3", "HTTP 403", "AccessDenied", "s3:GetObject",
                             f"bucket '{self.bucket}'")
        self.warned_once(m, "s3")
        self.check_storage_fails(m, "s3", "access_denied", "s3:PutObject")
        self.assertEqual(self.moto.objects(self.bucket), {})

    def test_right_keys_work_with_authentication_on(self):
        """The control: the same setup with the right keys stores and hits."""
        m = self.s3_machine("a", prefix="ok")
        r = self.ok(self.compile("g++", "-c", "lib.cpp", cwd=self.dir / "src", env=m.env))
        self.assertEqual(self.warnings(r), [], r.describe())
        self.assertEqual(len(self.moto.objects(self.bucket, "ok/")), 2)
        b = self.s3_machine("b", prefix="ok")
        self.ok(self.compile("g++", "-c", "lib.cpp", "-o", "b.o", cwd=self.dir / "src",
                             env=b.env))
        self.assertEqual(self.counters(b)["direct_hit"], 1)
        self.assertEqual(kilntest.read_bytes(self.dir / "src/b.o"), self.reference)
        r = self.kiln("--check-storage", env=m.env)
        self.assertEqual(r.code, 0, r.describe())


@skip_unless_servers("redis-server")
class RedisMisconfigured(FailureCase):
    def test_wrong_password(self):
        redis = self.start_redis(password="right horse")
        m = self.machine("a", storage="local,redis", **self.redis_env(redis.url("wrong")))
        r = self.compile_despite(m, "redis", "rejected the password", "WRONGPASS",
                                 f"127.0.0.1:{redis.port}", "KILN_REDIS_ENDPOINT")
        self.assertNotIn("wrong", r.err_text.replace("WRONGPASS", ""))  # no password shown
        self.check_storage_fails(m, "redis", "access_denied", "rejected the password")
        self.assertEqual(redis.dbsize(), 0)

    def test_missing_password(self):
        redis = self.start_redis(password="right horse")
        m = self.machine("a", storage="local,redis", **self.redis_env(redis.url()))
        self.compile_despite(m, "redis", "requires a password", "NOAUTH")
        self.assertEqual(redis.dbsize(), 0)

    def test_right_password_works(self):
        redis = self.start_redis(password="right horse")
        m = self.machine("a", storage="local,redis",
                         **self.redis_env(redis.url("right%20horse")))
        r = self.ok(self.compile("g++", "-c", "lib.cpp", cwd=self.dir / "src", env=m.env))
        self.assertEqual(self.warnings(r), [], r.describe())
        self.assertEqual(redis.dbsize(), 2)
        self.assertEqual(self.kiln("--check-storage", env=m.env).code, 0)

    def test_nothing_listening(self):
        redis = self.start_redis()
        url = redis.url()
        redis.kill()
        m = self.machine("a", storage="local,redis", **self.redis_env(url))
        self.compile_despite(m, "redis", "cannot connect to Redis", f"127.0.0.1:{redis.port}")
        self.check_storage_fails(m, "redis", "cannot connect")


@skip_unless_servers("nginx")
class HttpMisconfigured(FailureCase):
    def test_missing_bearer_token(self):
        nginx = self.start_nginx()
        m = self.machine("a", storage="local,http", **self.http_env(nginx.url("secret")))
        self.compile_despite(m, "http", "returned HTTP 401", "bearer token",
                             f"GET {nginx.url('secret')}/<key> ")
        self.check_storage_fails(m, "http", "access_denied", "401")
        self.warned_once(m, "http")

    def test_bearer_token_is_sent(self):
        nginx = self.start_nginx()
        m = self.machine("a", storage="local,http", KILN_HTTP_BEARER_TOKEN="s3cr3t",
                         **self.http_env(nginx.url("secret")))
        r = self.ok(self.compile("g++", "-c", "lib.cpp", cwd=self.dir / "src", env=m.env))
        self.assertEqual(self.warnings(r), [], r.describe())
        self.assertEqual(len(nginx.files("secret")), 2)
        self.assertNotIn("s3cr3t", self.kiln("-p", env=m.env).text)

    def test_forbidden_writes(self):
        nginx = self.start_nginx()
        m = self.machine("a", storage="local,http", **self.http_env(nginx.url("readonly")))
        # Reads are allowed (404: misses), the first write is refused.
        self.compile_despite(m, "http", "PUT", "returned HTTP 403", counter="write_error")
        self.assertEqual(self.levels(m).get("http_miss"), 2)
        self.check_storage_fails(m, "http", "write: access_denied")
        self.warned_once(m, "http", "write_error")
        self.assertEqual(nginx.files(), {})

    def test_nothing_listening(self):
        nginx = self.start_nginx()
        url = nginx.url("x")
        nginx.kill()
        m = self.machine("a", storage="local,http", **self.http_env(url))
        self.compile_despite(m, "http", "cannot connect to", url)


class Unconfigured(FailureCase):
    def test_level_listed_but_not_configured(self):
        m = self.machine("a", storage="local,s3")
        self.compile_despite(m, "s3", "KILN_S3_BUCKET")
        self.check_storage_fails(m, "s3", "KILN_S3_BUCKET")

    def test_plugin_missing(self):
        m = self.machine("a", storage="local,redis", KILN_REMOTE_PLUGIN=str(self.dir / "no.so"),
                         **self.redis_env("redis://127.0.0.1:1"))
        self.compile_despite(m, "redis", "cannot load the remote-storage plugin",
                             "KILN_REMOTE_PLUGIN")

    def test_local_hit_does_not_touch_the_remote(self):
        """A local hit never opens the remote level: no warning even though
        it is broken."""
        m = self.machine("a", storage="local,redis", **self.redis_env("redis://127.0.0.1:1"))
        self.compile_despite(m, "redis", "cannot connect")
        r = self.ok(self.compile("g++", "-c", "lib.cpp", "-o", "again.o", cwd=self.dir / "src",
                                 env=m.env))
        self.assertEqual(r.err_text, "")
        self.assertEqual(self.counters(m)["direct_hit"], 1)
        self.assertEqual(self.levels(m).get("redis_read_error"), 1)


class Timeouts(FailureCase):
    """KILN_REMOTE_REQUEST_TIMEOUT=500 against servers that never answer."""

    BACKENDS = ("redis", "s3", "http")

    def level_env(self, backend: str, endpoint: str) -> dict[str, str]:
        if backend == "redis":
            return self.redis_env(f"redis://{endpoint}")
        if backend == "s3":
            return self.s3_env(endpoint, "kiln-bucket")
        return self.http_env(f"http://{endpoint}/cache")

    def timed(self, m: Machine, level: str, counter: str, *expected: str) -> float:
        start = time.monotonic()
        self.compile_despite(m, level, *expected, counter=counter)
        return time.monotonic() - start

    def test_silent_server_read_timeout(self):
        for backend in self.BACKENDS:
            with self.subTest(backend=backend):
                silent = self.silent_server()
                m = self.machine(f"silent-{backend}", storage=f"local,{backend}",
                                 KILN_REMOTE_REQUEST_TIMEOUT="500",
                                 **self.level_env(backend, silent.endpoint))
                took = self.timed(m, backend, "read_timeout", "timed out")
                # One request times out; the level is then skipped.
                self.assertLess(took, 8.0)
                lv = self.levels(m)
                self.assertNotIn(f"{backend}_read_error", lv)
                self.assertNotIn(f"{backend}_write_timeout", lv)
                self.assertEqual(silent.connections, 1)
                self.assertTrue(silent.requests, "the server got no request")
                # (Not warned_once(): curl's message carries the elapsed time,
                # "after 501 milliseconds", so the text differs between calls.)
                r = self.kiln("--check-storage", env=m.env)
                self.assertEqual(r.code, 1, r.describe())
                self.assertRegex(r.text, rf"(?m)^{backend}\s+FAILED\s+write: timeout")

    def test_timed_out_level_is_skipped_during_backoff(self):
        """After a timeout, later compilations skip the level (any process,
        same cache dir) for KILN_REMOTE_BACKOFF seconds; with 0 they retry."""
        silent = self.silent_server()
        m = self.machine("backoff", storage="local,redis", KILN_REMOTE_REQUEST_TIMEOUT="1500",
                         **self.level_env("redis", silent.endpoint))
        self.timed(m, "redis", "read_timeout", "timed out")
        (self.dir / "src/other.cpp").write_text("int other() { return 2; }\n")
        old = time.time() - 100
        os.utime(self.dir / "src/other.cpp", (old, old))
        time.sleep(0.2)
        start = time.monotonic()
        self.ok(self.compile("g++", "-c", "other.cpp", "-o", "other.o", cwd=self.dir / "src",
                             env=m.env))
        self.assertLess(time.monotonic() - start, 1.4, "the level was not skipped")
        lv = self.levels(m)
        self.assertEqual(lv.get("redis_read_timeout"), 1, lv)
        self.assertEqual(lv.get("redis_skipped"), 1, lv)
        self.assertEqual(silent.connections, 1)
        # Backoff off: the next compilation tries (and times out) again.
        env = dict(m.env, KILN_REMOTE_BACKOFF="0")
        self.ok(self.compile("g++", "-c", "other.cpp", "-o", "other2.o", "-O1",
                             cwd=self.dir / "src", env=env))
        self.assertEqual(self.levels(m).get("redis_read_timeout"), 2)

    def test_stalled_write_timeout(self):
        for backend in self.BACKENDS:
            with self.subTest(backend=backend):
                server = self.stalling_server("redis" if backend == "redis" else "http")
                m = self.machine(f"stall-{backend}", storage=f"local,{backend}",
                                 KILN_REMOTE_REQUEST_TIMEOUT="500",
                                 **self.level_env(backend, server.endpoint))
                took = self.timed(m, backend, "write_timeout", "timed out")
                self.assertLess(took, 8.0)
                lv = self.levels(m)
                self.assertEqual(lv.get(f"{backend}_miss"), 2, lv)
                self.assertNotIn(f"{backend}_write_error", lv)
                self.assertNotIn(f"{backend}_read_timeout", lv)
                self.assertEqual(server.stalled, 1)

    def test_connect_timeout(self):
        """A server whose accept queue is full: the TCP connect itself hangs
        and KILN_REMOTE_CONNECT_TIMEOUT ends it; counted as a timeout."""
        import socket
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        self.addCleanup(listener.close)
        port = listener.getsockname()[1]
        fillers = []
        for _ in range(8):  # fill the accept queue (never accepted)
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)
            self.addCleanup(s.close)
        time.sleep(0.2)
        probe = socket.socket()
        probe.settimeout(0.5)
        try:
            probe.connect(("127.0.0.1", port))
            self.skipTest("the kernel accepted a connection beyond the backlog")
        except (socket.timeout, TimeoutError):
            pass
        finally:
            probe.close()
        for backend in self.BACKENDS:
            with self.subTest(backend=backend):
                m = self.machine(f"connect-{backend}", storage=f"local,{backend}",
                                 KILN_REMOTE_CONNECT_TIMEOUT="300",
                                 KILN_REMOTE_REQUEST_TIMEOUT="60000",
                                 **self.level_env(backend, f"127.0.0.1:{port}"))
                took = self.timed(m, backend, "read_timeout")
                self.assertLess(took, 8.0)
                self.assertNotIn(f"{backend}_read_error", self.levels(m))


if __name__ == "__main__":
    kilntest.main()
