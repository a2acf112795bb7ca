#!/usr/bin/env python3
"""The shared remote cache between machines, against real servers (moto_server
for S3, redis-server, nginx with WebDAV for HTTP):

- two machines (two KILN_DIRs, two checkouts) share one remote: B's first
  compile is a direct hit served from the remote without running the
  preprocessor or the compiler, its object is byte-identical to A's, and B's
  local level is backfilled (a third run with the remote killed still hits);
- the layout on each remote is the documented one and holds exactly the bytes
  of machine A's local entries (S3: <prefix>/<k0k1>/<k2k3>/<name>, checked
  with boto3; Redis: <prefix><name>; HTTP: <url>/<k0k1>/<k2k3>/<name>);
- chain order local,redis,s3: a value only in S3 is found and backfilled into
  Redis and the local cache;
- kiln --check-storage with every backend up: exit 0, an "ok" line each, and
  no probe left behind.
"""

from __future__ import annotations

import re
from pathlib import Path

import kilntest
from remote_servers import Machine, RedisClient, RemoteTestCase, skip_unless_servers

HEADER = """\
#pragma once
#include <map>
#include <string>
#include <vector>
namespace shared {
inline std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += s;
  return out;
}
}  // namespace shared
"""

SOURCE = """\
#include "shared/util.hpp"
int counted(int n) {
  std::map<int, std::string> m;
  for (int i = 0; i < n; ++i) m[i] = std::to_string(i);
  std::vector<std::string> v;
  for (auto& [k, s] : m) v.push_back(s);
  return static_cast<int>(shared::join(v).size());
}
"""

HEX64 = re.compile(r"^[0-9a-f]{64}[RM]$")


class SharedMixin:
    """Tests written once, run per backend: subclasses set `backend` and
    implement configure() (the env of a machine's remote level), stop_remote()
    and remote_entries() ({entry name: bytes} stored on the remote)."""

    backend = ""

    # --- per-backend hooks ----------------------------------------------------

    def start_remote(self, private: bool = False) -> None:
        """Starts (or picks) the remote; `private`: one this test may kill."""
        raise NotImplementedError

    def configure(self, **kw) -> dict[str, str]:
        raise NotImplementedError

    def stop_remote(self) -> None:
        raise NotImplementedError

    def remote_entries(self) -> dict[str, bytes]:
        raise NotImplementedError

    # --- helpers ---------------------------------------------------------------

    def checkout(self, name: str) -> Path:
        """A checkout of the little project, sources aged (kiln does not cache
        files modified within 50 ms of the compile)."""
        self.write(f"{name}/include/shared/util.hpp", HEADER)
        self.write(f"{name}/main.cpp", SOURCE)
        return self.dir / name

    def remote_machine(self, name: str, **kw) -> Machine:
        return self.machine(name, storage=f"local,{self.backend}", **self.configure(**kw))

    def compile_on(self, m: Machine, tree: Path, compiler: str, obj: str = "main.o"
                   ) -> kilntest.Run:
        return self.compile(compiler, "-c", "main.cpp", "-o", obj, "-Iinclude", "-O1",
                            cwd=tree, env=m.env)

    # --- tests -------------------------------------------------------------------

    def test_second_machine_gets_a_direct_hit_and_backfills_local(self):
        self.start_remote(private=True)
        spy, spy_log = self.spy_compiler("g++")
        tree_a, tree_b = self.checkout("checkout-a"), self.checkout("checkout-b")
        a, b = self.remote_machine("a"), self.remote_machine("b")

        r = self.ok(self.compile_on(a, tree_a, spy))
        self.assertEqual(self.warnings(r), [], r.describe())
        la = self.levels(a)
        self.assertEqual(self.counters(a)["miss"], 1)
        # Manifest and result; a cold miss reads the (missing) manifest once
        # more before storing it (update_manifest), hence 2 or 3.
        self.assertIn(la.get(f"{self.backend}_miss"), (2, 3), la)
        self.assertNotIn(f"{self.backend}_hit", la)
        self.assertEqual(la.get(f"{self.backend}_write"), 2, la)  # result + manifest
        self.assertEqual(len(self.remote_entries()), 2)
        self.assertIn("compile", a.event_names())
        # A miss without a depfile: the preprocessor, then the compiler.
        self.assertEqual(sorted("-E" in c for c in self.compile_calls(spy_log, "main.cpp")),
                         [False, True])

        # Machine B: another checkout, empty cache.
        spy_log.write_text("")
        self.assertFalse(b.cache.exists() and self.entry_files(cache=b.cache))
        r = self.ok(self.compile_on(b, tree_b, spy))
        self.assertEqual(self.warnings(r), [], r.describe())
        self.assertEqual(kilntest.read_bytes(tree_b / "main.o"),
                         kilntest.read_bytes(tree_a / "main.o"))
        cb = self.counters(b)
        self.assertEqual((cb["direct_hit"], cb["preprocessed_hit"], cb["miss"]), (1, 0, 0), cb)
        events = b.event_names()
        self.assertNotIn("compile", events)
        self.assertEqual([e.get("mode") for e in b.events() if e["event"] == "hit"], ["direct"])
        # Neither the compiler nor the preprocessor ran on main.cpp.
        self.assertEqual(self.compile_calls(spy_log, "main.cpp"), [])
        lb = self.levels(b)
        self.assertEqual(lb.get(f"{self.backend}_hit"), 2, lb)
        self.assertEqual(lb.get("local_miss"), 2, lb)
        self.assertEqual(lb.get("local_backfill"), 2, lb)
        self.assertNotIn(f"{self.backend}_write", lb)
        # B's local entries are the remote's: the result byte for byte. The
        # manifest may differ in the stats it records: once B's headers are
        # 2 s old (on a busy machine) B's hit verifies them by content and
        # records their stats in its local copy, its checkout's, not A's.
        local_b = {Path(p).name: data for p, data in self.local_entries(b).items()}
        remote = self.remote_entries()
        self.assertEqual(sorted(local_b), sorted(remote))
        self.assertEqual({k: v for k, v in local_b.items() if k.endswith("R")},
                         {k: v for k, v in remote.items() if k.endswith("R")})

        # Remote gone: B still hits, from its local level, without noticing.
        self.stop_remote()
        (tree_b / "main.o").unlink()
        b.clear_log()
        r = self.ok(self.compile_on(b, tree_b, spy))
        self.assertEqual(self.warnings(r), [], r.describe())
        self.assertEqual(kilntest.read_bytes(tree_b / "main.o"),
                         kilntest.read_bytes(tree_a / "main.o"))
        cb = self.counters(b)
        self.assertEqual((cb["direct_hit"], cb["miss"]), (2, 0), cb)
        self.assertEqual((cb["error_storage_read"], cb["error_storage_write"]), (0, 0), cb)
        self.assertEqual(self.levels(b).get("local_hit"), 2)
        self.assertNotIn("compile", b.event_names())
        self.assertEqual(self.compile_calls(spy_log, "main.cpp"), [])

    def test_remote_holds_the_local_entry_bytes(self):
        self.start_remote()
        tree = self.checkout("src")
        a = self.remote_machine("a")
        self.ok(self.compile_on(a, tree, "g++"))
        local = self.local_entries(a)
        self.assertEqual(sorted(p[-1] for p in local), ["M", "R"])
        remote = self.remote_entries()
        self.assertEqual(remote, {Path(p).name: data for p, data in local.items()})
        for name in remote:
            self.assertRegex(name, HEX64)

    def test_corrupt_remote_value_is_not_served(self):
        """A remote entry that does not decode counts as corrupt and is not
        used: the compile runs, and the remote gets a good value again."""
        self.start_remote()
        tree_a, tree_b = self.checkout("checkout-a"), self.checkout("checkout-b")
        a, b = self.remote_machine("a"), self.remote_machine("b")
        self.ok(self.compile_on(a, tree_a, "g++"))
        result = [n for n in self.remote_entries() if n.endswith("R")]
        self.assertEqual(len(result), 1)
        self.overwrite_remote(result[0], b"KLN1 this is not an entry")
        r = self.ok(self.compile_on(b, tree_b, "g++"))
        self.assertEqual(kilntest.read_bytes(tree_b / "main.o"),
                         kilntest.read_bytes(tree_a / "main.o"))
        lb = self.levels(b)
        self.assertEqual(lb.get(f"{self.backend}_corrupt"), 1, (lb, r.describe()))
        self.assertEqual(self.counters(b)["miss"], 1)
        self.assertTrue(self.remote_entries()[result[0]].startswith(b"KLN1"))
        self.assertIsNone(kilntest.check_entry_framing(self.remote_entries()[result[0]]))

    def test_remote_value_that_does_not_parse_is_removed_from_the_remote(self):
        """A remote result whose frame and checksum are good but whose payload
        does not parse (only a bug or a forger writes one) is caught by replay,
        after the chain has counted it a hit: it is counted as corrupt on the
        remote level and removed there too, not only from the local level it
        was backfilled to, so the next machine does not fetch it again."""
        self.start_remote()
        tree_a, tree_b = self.checkout("checkout-a"), self.checkout("checkout-b")
        a, b = self.remote_machine("a"), self.remote_machine("b")
        self.ok(self.compile_on(a, tree_a, "g++"))
        result = [n for n in self.remote_entries() if n.endswith("R")]
        self.assertEqual(len(result), 1)
        # Result version 1, then a file count with no files behind it.
        forged = kilntest.forge_entry("R", b"\x01\x00\x00\x00" + b"\x00" * 16 + b"\xff" * 4)
        if forged is None:
            kilntest.skip_or_fail(self, "libxxhash not found: cannot forge a checksummed entry")
        self.overwrite_remote(result[0], forged)
        removals = self.remote_removals()
        r = self.ok(self.compile_on(b, tree_b, "g++"))
        self.assertEqual(kilntest.read_bytes(tree_b / "main.o"),
                         kilntest.read_bytes(tree_a / "main.o"))
        cb, lb = self.counters(b), self.levels(b)
        self.assertEqual(cb["corrupt_entry"], 1, (cb, r.describe()))
        self.assertEqual(lb.get(f"{self.backend}_corrupt"), 1, (lb, r.describe()))
        self.assertEqual(lb.get(f"{self.backend}_hit"), 1, lb)  # the manifest only
        self.assertEqual(cb["miss"], 1, cb)
        if removals is not None:
            self.assertEqual(self.remote_removals() - removals, 1)
        # The compile stored a good result again.
        self.assertIsNone(kilntest.check_entry_framing(self.remote_entries()[result[0]]))
        self.assertNotEqual(self.remote_entries()[result[0]], forged)

    def test_remote_manifest_that_does_not_parse_is_removed_from_the_remote(self):
        """The same for a manifest: counted as corrupt on the remote level and
        removed there; the result is then found in preprocessor mode."""
        self.start_remote()
        tree_a, tree_b = self.checkout("checkout-a"), self.checkout("checkout-b")
        a, b = self.remote_machine("a"), self.remote_machine("b")
        self.ok(self.compile_on(a, tree_a, "g++"))
        manifest = [n for n in self.remote_entries() if n.endswith("M")]
        self.assertEqual(len(manifest), 1)
        forged = kilntest.forge_entry("M", b"\x02\x00\x00\x00\xff\xff\xff\xff")
        if forged is None:
            kilntest.skip_or_fail(self, "libxxhash not found: cannot forge a checksummed entry")
        self.overwrite_remote(manifest[0], forged)
        removals = self.remote_removals()
        r = self.ok(self.compile_on(b, tree_b, "g++"))
        cb, lb = self.counters(b), self.levels(b)
        self.assertEqual((cb["corrupt_entry"], cb["preprocessed_hit"]), (1, 1), (cb, r.describe()))
        self.assertEqual(lb.get(f"{self.backend}_corrupt"), 1, (lb, r.describe()))
        self.assertEqual(lb.get(f"{self.backend}_hit"), 1, lb)  # the result only
        if removals is not None:
            self.assertEqual(self.remote_removals() - removals, 1)
        # A good manifest was stored again.
        self.assertNotEqual(self.remote_entries()[manifest[0]], forged)

    def overwrite_remote(self, name: str, data: bytes) -> None:
        raise NotImplementedError

    def remote_removals(self) -> int | None:
        """How many entries the remote has been asked to remove so far; None
        where the server cannot say."""
        return None


@skip_unless_servers("moto_server")
class S3Shared(SharedMixin, RemoteTestCase):
    backend = "s3"
    prefix = "team/kiln-cache"

    def start_remote(self, private: bool = False) -> None:
        # moto takes a while to start: one per class, one bucket per test,
        # and a private one for the test that kills it.
        self.moto = self.start_moto() if private else self.class_moto()
        self.bucket = self.new_bucket(self.moto)
        self.endpoint = self.moto.endpoint

    def configure(self, **kw) -> dict[str, str]:
        return self.s3_env(self.endpoint, self.bucket, prefix="/" + self.prefix + "/", **kw)

    def stop_remote(self) -> None:
        self.assertIsNot(self.moto, self.class_moto())
        self.moto.kill()

    def remote_entries(self) -> dict[str, bytes]:
        out = {}
        for key in self.moto.objects(self.bucket):
            m = re.fullmatch(re.escape(self.prefix) + r"/([0-9a-f]{2})/([0-9a-f]{2})/(\S+)", key)
            self.assertIsNotNone(m, f"object key {key!r} is not {self.prefix}/<k0k1>/<k2k3>/<name>")
            name = m.group(3)
            self.assertEqual((m.group(1), m.group(2)), (name[0:2], name[2:4]), key)
            out[name] = self.moto.get(self.bucket, key)
        return out

    def overwrite_remote(self, name: str, data: bytes) -> None:
        self.moto.put(self.bucket, f"{self.prefix}/{name[0:2]}/{name[2:4]}/{name}", data)

    def test_layout_without_prefix_and_listing_with_boto3(self):
        """No prefix: objects are <k0k1>/<k2k3>/<name> at the bucket's root;
        boto3 lists exactly the local entries, with their bytes."""
        self.start_remote()
        tree = self.checkout("src")
        a = self.machine("a", storage="local,s3", **self.s3_env(self.endpoint, self.bucket))
        self.ok(self.compile_on(a, tree, "g++"))
        local = self.local_entries(a)
        listed = self.moto.objects(self.bucket)
        self.assertEqual(sorted(listed), sorted(local))
        for key in listed:
            self.assertEqual(self.moto.get(self.bucket, key), local[key], key)


    def test_server_side_encryption(self):
        """KILN_S3_SERVER_SIDE_ENCRYPTION=AES256: every object kiln writes
        asks for SSE-S3."""
        self.start_remote()
        tree = self.checkout("src")
        a = self.machine("a", storage="local,s3", KILN_S3_SERVER_SIDE_ENCRYPTION="AES256",
                         **self.s3_env(self.endpoint, self.bucket))
        self.ok(self.compile_on(a, tree, "g++"))
        keys = sorted(self.moto.objects(self.bucket))
        self.assertEqual(len(keys), 2)
        s3 = self.moto.admin()
        for key in keys:
            head = s3.head_object(Bucket=self.bucket, Key=key)
            self.assertEqual(head.get("ServerSideEncryption"), "AES256", key)

    def test_public_cache_read_without_credentials(self):
        """A cache that CI fills and everyone reads anonymously:
        KILN_S3_NO_CREDENTIALS=true with READ_ONLY gets hits, writes nothing."""
        self.start_remote()
        tree_a, tree_b = self.checkout("checkout-a"), self.checkout("checkout-b")
        ci = self.machine("ci", storage="local,s3", **self.s3_env(self.endpoint, self.bucket))
        self.ok(self.compile_on(ci, tree_a, "g++"))
        filled = self.moto.objects(self.bucket)
        for key in filled:  # moto's objects are private unless made public
            self.moto.admin().put_object_acl(Bucket=self.bucket, Key=key, ACL="public-read")
        dev = self.machine("dev", storage="local,s3", KILN_S3_NO_CREDENTIALS="true",
                           **self.s3_env(self.endpoint, self.bucket, keys=None, read_only=True))
        r = self.ok(self.compile_on(dev, tree_b, "g++"))
        self.assertEqual(self.warnings(r), [], r.describe())
        self.assertEqual(self.counters(dev)["direct_hit"], 1)
        self.assertEqual(self.levels(dev).get("s3_hit"), 2)
        self.assertEqual(self.moto.objects(self.bucket), filled)
        # Read-write without credentials: the write is refused before sending.
        self.write("checkout-b/new.cpp", "int fresh() { return 7; }\n")
        rw = self.machine("rw", storage="local,s3", KILN_S3_NO_CREDENTIALS="true",
                          **self.s3_env(self.endpoint, self.bucket, keys=None))
        r = self.ok(self.compile("g++", "-c", "new.cpp", cwd=tree_b, env=rw.env))
        warnings = self.warnings(r)
        self.assertEqual(len(warnings), 1, r.describe())
        self.assertIn("without credentials", warnings[0])
        self.assertEqual(self.levels(rw).get("s3_write_error"), 1)
        self.assertEqual(self.moto.objects(self.bucket), filled)


@skip_unless_servers("redis-server")
class RedisShared(SharedMixin, RemoteTestCase):
    backend = "redis"
    prefix = "kiln:"

    def start_remote(self, private: bool = False) -> None:
        self.redis = self.start_redis()

    def configure(self, **kw) -> dict[str, str]:
        return self.redis_env(self.redis.url(), prefix=self.prefix, **kw)

    def stop_remote(self) -> None:
        self.redis.kill()

    def remote_entries(self) -> dict[str, bytes]:
        out = {}
        for key in self.redis.keys():
            self.assertTrue(key.startswith(self.prefix), key)
            out[key[len(self.prefix):]] = self.redis.get(key)
        return out

    def overwrite_remote(self, name: str, data: bytes) -> None:
        self.redis.set(self.prefix + name, data)

    def remote_removals(self) -> int | None:
        stats = self.redis.command("INFO", "commandstats").decode()
        m = re.search(r"^cmdstat_del:calls=(\d+)", stats, re.M)
        return int(m.group(1)) if m else 0


    def test_expiration_sets_a_ttl(self):
        """KILN_REDIS_EXPIRATION=3600: stored keys expire, and a hit
        refreshes the TTL."""
        self.start_remote()
        tree_a, tree_b = self.checkout("checkout-a"), self.checkout("checkout-b")
        a = self.remote_machine("a")
        a.env["KILN_REDIS_EXPIRATION"] = "3600"
        self.ok(self.compile_on(a, tree_a, "g++"))
        keys = self.redis.keys()
        self.assertEqual(len(keys), 2)
        for key in keys:
            ttl = self.redis.command("TTL", key)
            self.assertTrue(3000 < ttl <= 3600, (key, ttl))
            self.redis.command("EXPIRE", key, 100)
        b = self.remote_machine("b")
        b.env["KILN_REDIS_EXPIRATION"] = "3600"
        self.ok(self.compile_on(b, tree_b, "g++"))
        self.assertEqual(self.levels(b).get("redis_hit"), 2)
        for key in keys:
            self.assertGreater(self.redis.command("TTL", key), 3000, key)

    def test_database_number_in_the_url(self):
        self.start_remote()
        tree = self.checkout("src")
        a = self.machine("a", storage="local,redis",
                         **self.redis_env(self.redis.url() + "/3", prefix=self.prefix))
        self.ok(self.compile_on(a, tree, "g++"))
        self.assertEqual(self.redis.dbsize(), 0)
        c = RedisClient(self.redis.port)
        try:
            c.command("SELECT", 3)
            self.assertEqual(c.command("DBSIZE"), 2)
        finally:
            c.close()


@skip_unless_servers("nginx")
class HttpShared(SharedMixin, RemoteTestCase):
    backend = "http"
    path = "cache/v1"

    def start_remote(self, private: bool = False) -> None:
        self.nginx = self.start_nginx()

    def configure(self, **kw) -> dict[str, str]:
        return self.http_env(self.nginx.url(self.path) + "/", **kw)

    def stop_remote(self) -> None:
        self.nginx.kill()

    def remote_entries(self) -> dict[str, bytes]:
        out = {}
        for rel in self.nginx.files(self.path):
            m = re.fullmatch(r"([0-9a-f]{2})/([0-9a-f]{2})/(\S+)", rel)
            self.assertIsNotNone(m, f"{rel!r} is not <k0k1>/<k2k3>/<name>")
            name = m.group(3)
            self.assertEqual((m.group(1), m.group(2)), (name[0:2], name[2:4]), rel)
            out[name] = (self.nginx.root / self.path / rel).read_bytes()
        self.assertEqual(set(self.nginx.files()), {f"{self.path}/{r}"
                                                   for r in self.nginx.files(self.path)})
        return out

    def overwrite_remote(self, name: str, data: bytes) -> None:
        (self.nginx.root / self.path / name[0:2] / name[2:4] / name).write_bytes(data)


    def test_extra_headers_are_sent(self):
        """KILN_HTTP_HEADERS="X-Kiln-Team: blue; X-Other: 1": the location
        /team/ answers 403 without the header."""
        self.start_remote()
        tree = self.checkout("src")
        a = self.machine("a", storage="local,http",
                         KILN_HTTP_HEADERS="X-Kiln-Team: blue; X-Other: 1",
                         **self.http_env(self.nginx.url("team")))
        r = self.ok(self.compile_on(a, tree, "g++"))
        self.assertEqual(self.warnings(r), [], r.describe())
        self.assertEqual(len(self.nginx.files("team")), 2)
        b = self.machine("b", storage="local,http", **self.http_env(self.nginx.url("team")))
        r = self.ok(self.compile_on(b, tree, "g++", obj="b.o"))
        self.assertIn("HTTP 403", r.err_text)
        self.assertEqual(self.levels(b).get("http_read_error"), 1)


@skip_unless_servers("moto_server", "redis-server")
class ChainOrder(RemoteTestCase):
    def test_value_only_in_s3_is_backfilled_to_redis_and_local(self):
        moto = self.class_moto()
        bucket = self.new_bucket(moto)
        redis = self.start_redis()
        s3 = self.s3_env(moto.endpoint, bucket, prefix="p")
        rd = self.redis_env(redis.url(), prefix="k/")
        for tree in ("a", "b", "c"):
            self.write(f"{tree}/include/shared/util.hpp", HEADER)
            self.write(f"{tree}/main.cpp", SOURCE)

        def cc(m: Machine, tree: str) -> kilntest.Run:
            return self.ok(self.compile("g++", "-c", "main.cpp", "-Iinclude",
                                        cwd=self.dir / tree, env=m.env))

        # A only knows S3.
        a = self.machine("a", storage="local,s3", **s3)
        cc(a, "a")
        in_s3 = {k.rsplit("/", 1)[1] for k in moto.objects(bucket)}
        self.assertEqual(len(in_s3), 2)
        self.assertEqual(redis.dbsize(), 0)

        # B: local, then Redis, then S3.
        b = self.machine("b", storage="local,redis,s3", **s3, **rd)
        r = cc(b, "b")
        self.assertEqual(self.warnings(r), [], r.describe())
        self.assertEqual(self.counters(b)["direct_hit"], 1)
        lb = self.levels(b)
        for k, v in {"local_miss": 2, "redis_miss": 2, "s3_hit": 2, "redis_backfill": 2,
                     "local_backfill": 2}.items():
            self.assertEqual(lb.get(k), v, f"{k}: {lb}")
        self.assertNotIn("s3_write", lb)
        self.assertEqual(redis.keys(), sorted("k/" + n for n in in_s3))
        for n in in_s3:
            self.assertEqual(redis.get("k/" + n),
                             moto.get(bucket, f"p/{n[0:2]}/{n[2:4]}/{n}"))
        self.assertEqual(kilntest.read_bytes(self.dir / "b/main.o"),
                         kilntest.read_bytes(self.dir / "a/main.o"))

        # C knows only Redis: the backfilled values are usable.
        c = self.machine("c", storage="local,redis", **rd)
        cc(c, "c")
        self.assertEqual(self.counters(c)["direct_hit"], 1)
        self.assertEqual(self.levels(c).get("redis_hit"), 2)
        self.assertNotIn("compile", c.event_names())
        self.assertEqual(kilntest.read_bytes(self.dir / "c/main.o"),
                         kilntest.read_bytes(self.dir / "a/main.o"))

    def test_redis_hit_stops_the_search_before_s3(self):
        """A value in Redis is served from there: S3 is never asked."""
        moto = self.class_moto()
        bucket = self.new_bucket(moto)
        redis = self.start_redis()
        for tree in ("a", "b"):
            self.write(f"{tree}/include/shared/util.hpp", HEADER)
            self.write(f"{tree}/main.cpp", SOURCE)
        a = self.machine("a", storage="local,redis", **self.redis_env(redis.url()))
        self.ok(self.compile("g++", "-c", "main.cpp", "-Iinclude", cwd=self.dir / "a", env=a.env))
        b = self.machine("b", storage="local,redis,s3", **self.redis_env(redis.url()),
                         **self.s3_env(moto.endpoint, bucket))
        self.ok(self.compile("g++", "-c", "main.cpp", "-Iinclude", cwd=self.dir / "b", env=b.env))
        lb = self.levels(b)
        self.assertEqual(lb.get("redis_hit"), 2, lb)
        self.assertFalse([k for k in lb if k.startswith("s3_")], lb)
        self.assertEqual(moto.objects(bucket), {})


@skip_unless_servers("moto_server", "redis-server", "nginx")
class CheckStorage(RemoteTestCase):
    def all_levels(self) -> tuple[dict[str, str], object, object, object, str]:
        moto, redis, nginx = self.class_moto(), self.start_redis(), self.start_nginx()
        bucket = self.new_bucket(moto)
        env = {**self.s3_env(moto.endpoint, bucket, prefix="pre"),
               **self.redis_env(redis.url(), prefix="kiln:"),
               **self.http_env(nginx.url("store"))}
        return env, moto, redis, nginx, bucket

    def test_all_backends_ok(self):
        env, moto, redis, nginx, bucket = self.all_levels()
        m = self.machine("a", storage="local,redis,s3,http", **env)
        r = self.kiln("--check-storage", env=m.env)
        self.assertEqual(r.code, 0, r.describe())
        lines = r.text.splitlines()
        self.assertEqual([l.split()[0] for l in lines], ["local", "redis", "s3", "http"],
                         r.describe())
        for line in lines:
            self.assertRegex(line, r"^\w+\s+ok\s+write, read, exists, remove$")
        # The probe is removed again everywhere.
        self.assertEqual(moto.objects(bucket), {})
        self.assertEqual(redis.dbsize(), 0)
        self.assertEqual(nginx.files(), {})
        self.assertEqual(self.entry_files(cache=m.cache), [])

    def test_default_order_and_one_backend_down(self):
        env, moto, redis, nginx, bucket = self.all_levels()
        m = self.machine("a", **env)  # KILN_STORAGE unset: local, redis, s3, http
        redis.kill()
        r = self.kiln("--check-storage", env=m.env)
        self.assertEqual(r.code, 1, r.describe())
        lines = {l.split()[0]: l for l in r.text.splitlines()}
        self.assertEqual(sorted(lines), ["http", "local", "redis", "s3"], r.describe())
        self.assertRegex(lines["redis"], r"^redis\s+FAILED\s+.*127\.0\.0\.1:%d" % redis.port)
        for ok in ("local", "s3", "http"):
            self.assertRegex(lines[ok], r"^\w+\s+ok\s", r.describe())


if __name__ == "__main__":
    kilntest.main()
