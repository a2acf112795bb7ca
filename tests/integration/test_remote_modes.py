#!/usr/bin/env python3
"""Modes of the remote levels, against real servers:

- read-only (KILN_S3_RW_MODE / KILN_REDIS_RW_MODE / KILN_HTTP_RW_MODE =
  READ_ONLY): a miss writes nothing to the remote (bucket, DBSIZE, nginx
  directory stay empty) but stores locally; hits from a remote that another
  machine filled are served and backfilled locally, still without a write;
  kiln --check-storage tests only reading. KILN_READONLY=true makes every
  level read-only.
- S3 web identity: AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE with
  AWS_ENDPOINT_URL_STS pointed at moto and no AWS_ACCESS_KEY_ID: moto has
  authentication on, so requests only pass when signed with the temporary
  credentials that STS issued. Machine A stores, machine B hits.
"""

from __future__ import annotations

import kilntest
from remote_servers import ROLE_ARN, Machine, RemoteTestCase, skip_unless_servers

SOURCE = """\
#include <algorithm>
#include <vector>
int largest(std::vector<int> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v.back();
}
"""


class ModesMixin:
    backend = ""

    def start_remote(self) -> None:
        raise NotImplementedError

    def configure(self, read_only: bool) -> dict[str, str]:
        raise NotImplementedError

    def remote_count(self) -> int:
        raise NotImplementedError

    def cc(self, m: Machine, tree: str) -> kilntest.Run:
        return self.ok(self.compile("g++", "-c", "lib.cpp", cwd=self.dir / tree, env=m.env))

    def test_read_only_writes_nothing_but_serves_hits(self):
        self.start_remote()
        for tree in ("ro1", "rw", "ro2"):
            self.write(f"{tree}/lib.cpp", SOURCE)
        mode = f"KILN_{self.backend.upper()}_RW_MODE"

        # A read-only machine on an empty remote: misses, stores only locally.
        ro1 = self.machine("ro1", storage=f"local,{self.backend}", **self.configure(True))
        self.assertIn(f"(environment) {self.backend}_rw_mode = READ_ONLY",
                      self.kiln("-p", env=ro1.env).text)
        r = self.cc(ro1, "ro1")
        self.assertEqual(self.warnings(r), [], r.describe())
        self.assertEqual(self.remote_count(), 0, f"{mode}=READ_ONLY wrote to the remote")
        lv = self.levels(ro1)
        self.assertIn(lv.get(f"{self.backend}_miss"), (2, 3), lv)
        self.assertEqual(lv.get("local_write"), 2, lv)
        self.assertFalse([k for k in lv if k.startswith(f"{self.backend}_write")], lv)
        self.assertEqual(len(self.entry_files(cache=ro1.cache)), 2)

        # A read-write machine fills the remote.
        rw = self.machine("rw", storage=f"local,{self.backend}", **self.configure(False))
        self.cc(rw, "rw")
        filled = self.remote_count()
        self.assertEqual(filled, 2)

        # Another read-only machine gets hits from it and backfills locally.
        ro2 = self.machine("ro2", storage=f"local,{self.backend}", **self.configure(True))
        r = self.cc(ro2, "ro2")
        self.assertEqual(self.warnings(r), [], r.describe())
        self.assertEqual(self.counters(ro2)["direct_hit"], 1)
        self.assertNotIn("compile", ro2.event_names())
        self.assertEqual(kilntest.read_bytes(self.dir / "ro2/lib.o"),
                         kilntest.read_bytes(self.dir / "rw/lib.o"))
        lv = self.levels(ro2)
        self.assertEqual(lv.get(f"{self.backend}_hit"), 2, lv)
        self.assertEqual(lv.get("local_backfill"), 2, lv)
        self.assertFalse([k for k in lv if k.startswith(f"{self.backend}_write")], lv)
        self.assertEqual(self.remote_count(), filled)

        r = self.kiln("--check-storage", env=ro2.env)
        self.assertEqual(r.code, 0, r.describe())
        self.assertRegex(r.text, rf"(?m)^{self.backend}\s+ok\s+read \(read-only level: "
                                 r"write not tested\)$")
        self.assertEqual(self.remote_count(), filled)

    def test_kiln_readonly_covers_the_remote_levels(self):
        self.start_remote()
        self.write("a/lib.cpp", SOURCE)
        m = self.machine("a", storage=f"local,{self.backend}", KILN_READONLY="true",
                         **self.configure(False))
        r = self.cc(m, "a")
        self.assertEqual(self.warnings(r), [], r.describe())
        self.assertEqual(self.remote_count(), 0)
        self.assertEqual(self.entry_files(cache=m.cache), [])
        self.assertIn(self.levels(m).get(f"{self.backend}_miss"), (2, 3))


@skip_unless_servers("moto_server")
class S3Modes(ModesMixin, RemoteTestCase):
    backend = "s3"

    def start_remote(self) -> None:
        self.moto = self.class_moto()
        self.bucket = self.new_bucket(self.moto)

    def configure(self, read_only: bool) -> dict[str, str]:
        return self.s3_env(self.moto.endpoint, self.bucket, read_only=read_only)

    def remote_count(self) -> int:
        return len(self.moto.objects(self.bucket))


@skip_unless_servers("redis-server")
class RedisModes(ModesMixin, RemoteTestCase):
    backend = "redis"

    def start_remote(self) -> None:
        self.redis = self.start_redis()

    def configure(self, read_only: bool) -> dict[str, str]:
        return self.redis_env(self.redis.url(), read_only=read_only)

    def remote_count(self) -> int:
        return self.redis.dbsize()


@skip_unless_servers("nginx")
class HttpModes(ModesMixin, RemoteTestCase):
    backend = "http"

    def start_remote(self) -> None:
        self.nginx = self.start_nginx()

    def configure(self, read_only: bool) -> dict[str, str]:
        return self.http_env(self.nginx.url(), read_only=read_only)

    def remote_count(self) -> int:
        return len(self.nginx.files())


@skip_unless_servers("moto_server")
class S3WebIdentity(RemoteTestCase):
    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.class_moto().setup_iam()

    def setUp(self) -> None:
        super().setUp()
        self.moto = self.class_moto()
        self.moto.auth_off()
        self.addCleanup(self.moto.auth_off)
        self.bucket = self.new_bucket(self.moto)
        self.token = self.write("token", "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9."
                                         "eyJzdWIiOiJjaSIsImF1ZCI6InN0cy5hbWF6b25hd3MuY29tIn0."
                                         "c2lnbmF0dXJl\n")

    def web_identity_machine(self, name: str, **extra: str) -> Machine:
        env = self.s3_env(self.moto.endpoint, self.bucket, prefix="wi", keys=None)
        env.update(AWS_ROLE_ARN=ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE=str(self.token),
                   AWS_ENDPOINT_URL_STS=self.moto.url + "/", AWS_ROLE_SESSION_NAME="kiln-it")
        env.update(extra)
        m = self.machine(name, storage="local,s3", **env)
        self.assertFalse([k for k in m.env if k in ("AWS_ACCESS_KEY_ID",
                                                    "AWS_SECRET_ACCESS_KEY")])
        self.assertFalse((m.root / ".aws").exists())
        return m

    def cc(self, m: Machine, tree: str) -> kilntest.Run:
        # Authentication on after one request: the STS call (which moto does
        # not authenticate) is free, every S3 request after it must be signed
        # with the credentials STS returned.
        self.moto.set_auth(1)
        try:
            return self.ok(self.compile("g++", "-c", "lib.cpp", cwd=self.dir / tree, env=m.env))
        finally:
            self.moto.auth_off()

    def test_second_machine_hits_with_web_identity_credentials(self):
        self.write("a/lib.cpp", SOURCE)
        self.write("b/lib.cpp", SOURCE)
        a = self.web_identity_machine("a")
        r = self.cc(a, "a")
        self.assertEqual(self.warnings(r), [], r.describe())
        self.assertEqual(self.levels(a).get("s3_write"), 2, self.levels(a))
        stored = self.moto.objects(self.bucket)
        self.assertEqual(len(stored), 2)
        self.assertTrue(all(k.startswith("wi/") for k in stored), stored)

        b = self.web_identity_machine("b")
        r = self.cc(b, "b")
        self.assertEqual(self.warnings(r), [], r.describe())
        self.assertEqual(self.counters(b)["direct_hit"], 1)
        self.assertEqual(self.levels(b).get("s3_hit"), 2)
        self.assertEqual(kilntest.read_bytes(self.dir / "b/lib.o"),
                         kilntest.read_bytes(self.dir / "a/lib.o"))

        self.moto.set_auth(1)
        try:
            r = self.kiln("--check-storage", env=b.env)
        finally:
            self.moto.auth_off()
        self.assertEqual(r.code, 0, r.describe())
        self.assertRegex(r.text, r"(?m)^s3\s+ok\s")

    def test_without_web_identity_writes_are_refused(self):
        """The control: the same machine without the role has no credentials
        and so cannot write (anonymous PUTs are not even sent)."""
        self.write("a/lib.cpp", SOURCE)
        m = self.machine("a", storage="local,s3",
                         **self.s3_env(self.moto.endpoint, self.bucket, keys=None))
        r = self.ok(self.compile("g++", "-c", "lib.cpp", cwd=self.dir / "a", env=m.env))
        warnings = self.warnings(r)
        self.assertEqual(len(warnings), 1, r.describe())
        self.assertIn("without credentials", warnings[0])
        self.assertEqual(self.moto.objects(self.bucket), {})

    def test_unreadable_token_file(self):
        self.write("a/lib.cpp", SOURCE)
        m = self.web_identity_machine("a", AWS_WEB_IDENTITY_TOKEN_FILE=str(self.dir / "nope"))
        r = self.cc(m, "a")
        warnings = self.warnings(r)
        self.assertEqual(len(warnings), 1, r.describe())
        self.assertIn("cannot read the token file", warnings[0])
        self.assertIn("AWS_WEB_IDENTITY_TOKEN_FILE", warnings[0])
        self.assertEqual(self.levels(m).get("s3_read_error"), 1)
        self.assertEqual(self.moto.objects(self.bucket), {})

    def test_sts_endpoint_down(self):
        self.write("a/lib.cpp", SOURCE)
        from remote_servers import free_port
        m = self.web_identity_machine("a", AWS_ENDPOINT_URL_STS=f"http://127.0.0.1:{free_port()}")
        r = self.ok(self.compile("g++", "-c", "lib.cpp", cwd=self.dir / "a", env=m.env))
        warnings = self.warnings(r)
        self.assertEqual(len(warnings), 1, r.describe())
        self.assertIn("AssumeRoleWithWebIdentity", warnings[0])
        self.assertIn(ROLE_ARN, warnings[0])
        self.assertIn("AWS_ENDPOINT_URL_STS", warnings[0])


if __name__ == "__main__":
    kilntest.main()
