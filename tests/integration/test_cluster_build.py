#!/usr/bin/env python3
"""kiln as the build cluster's client: misses compiled on workers
(kiln-scheduler and kiln-worker on loopback, bubblewrap, toolchains packed
from the machine's compilers), objects byte-identical to a build without
kiln, compile errors as a local compile prints them, workers killed and
replaced on their addresses in the middle of a build, and the fallback to a
local compile counted by reason (or refused with dist.fallback_to_local off).

    python3 tests/integration/test_cluster_build.py --kiln build/bin/kiln
"""

import json
import shutil
import ssl
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kilntest  # noqa: E402
from cluster import Cluster, Daemon, wait_until  # noqa: E402
from kilntest import read_bytes  # noqa: E402

GOOGLETEST = Path("/usr/src/googletest")


def objects(build: Path) -> dict[str, bytes]:
    return {str(p.relative_to(build)): read_bytes(p) for p in sorted(build.rglob("*.o"))}


def write_project(root: Path, units: int) -> None:
    (root / "src").mkdir(parents=True, exist_ok=True)
    (root / "include").mkdir(exist_ok=True)
    (root / "include" / "common.h").write_text(
        "#pragma once\n#include <vector>\n#include <string>\nint unit_sum(int);\n")
    names = []
    for i in range(units):
        (root / "src" / f"u{i:02}.cpp").write_text(
            f'#include "common.h"\n#include <map>\n'
            f"int f{i}(int x) {{ std::vector<int> v(x, {i}); std::map<int, std::string> m;\n"
            f"  m[x] = std::to_string(x); int s = 0; for (int y : v) s += y; return s; }}\n")
        names.append(f"src/u{i:02}.cpp")
    (root / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.16)\nproject(gen CXX)\n"
        f"add_library(gen STATIC {' '.join(names)})\n"
        "target_include_directories(gen PRIVATE include)\n"
        "target_compile_options(gen PRIVATE -g -O1)\n")


class ClusterBuild(kilntest.KilnTestCase):
    cxx = "g++"

    def setUp(self):
        super().setUp()
        if not Path("/usr/bin/bwrap").exists():
            raise kilntest.missing_tool("bubblewrap (/usr/bin/bwrap)")
        # Dead workers stay listed for 5 s (25 missed heartbeats of 200 ms):
        # the scheduler hands them out meanwhile, as a slow pruning would.
        self.cluster = Cluster(Path(kilntest.KILN).resolve().parent, self.dir, missed=25)
        self.addCleanup(self.cluster.close)
        self.cluster.scheduler()

    def start_workers(self, ids):
        for i in ids:
            self.cluster.worker(i)
        self.cluster.wait_for(set(ids))

    def dist(self) -> dict:
        return self.stats_json()["dist"]

    def build(self, source: Path, build: Path, env, launcher=True, jobs=4, extra=()):
        if build.exists():
            shutil.rmtree(build)
        args = ["cmake", "-S", source, "-B", build, "-G", "Ninja",
                f"-DCMAKE_CXX_COMPILER={shutil.which(self.cxx)}", *extra]
        if launcher:
            args.append(f"-DCMAKE_CXX_COMPILER_LAUNCHER={kilntest.KILN}")
        self.ok(self.run_cmd(args, env=env))
        self.touched()
        return self.run_cmd(["ninja", "-C", build, f"-j{jobs}"], env=env, timeout=1200)

    def test_googletest_compiles_on_the_cluster(self):
        self.start_workers(["w-a", "w-b", "w-c"])
        extra = ["-Dgtest_build_samples=OFF", "-DINSTALL_GTEST=OFF"]
        self.ok(self.build(GOOGLETEST, self.dir / "plain", self.env, launcher=False, extra=extra))
        plain = objects(self.dir / "plain")
        env = dict(self.env, **self.cluster.client_env(KILN_DIST_FALLBACK_TO_LOCAL="false"))
        self.ok(self.build(GOOGLETEST, self.dir / "plain", env, extra=extra))
        self.assertEqual(objects(self.dir / "plain"), plain, "objects differ from a local build")
        d = self.dist()
        self.assertEqual(d["jobs"], len(plain), d)
        self.assertEqual(d["succeeded"], len(plain), d)
        self.assertEqual(d["local_fallbacks"], {}, d)
        self.assertGreater(d["bytes_sent"], 0)
        # Every job is in a worker's log with its job_id and server_id.
        logs = "".join((self.dir / f"{w}.log").read_text() for w in ("w-a", "w-b", "w-c"))
        self.assertEqual(logs.count('"event":"job_finished"'), len(plain), logs[-2000:])

    def test_compile_error_is_the_local_one(self):
        self.start_workers(["w-a"])
        self.write("bad.cpp", "int f() { return undeclared_name; }\n")
        plain = self.plain("g++", "-c", "bad.cpp", "-o", "plain.o")
        env = dict(self.env, **self.cluster.client_env(KILN_DIST_FALLBACK_TO_LOCAL="false"))
        r = self.compile("g++", "-c", "bad.cpp", "-o", "bad.o", env=env)
        self.assertEqual(r.code, plain.code)
        self.assertEqual(r.err, plain.err)
        d = self.dist()
        self.assertEqual((d["jobs"], d["succeeded"], d["retries"]), (1, 1, {}), d)

    def test_an_https_scheduler_is_verified_against_its_configured_ca(self):
        # The scheduler serves HTTPS with a certificate from configuration;
        # workers and clients trust exactly that CA (dist.scheduler_ca).
        cert, key = self.dir / "sched.pem", self.dir / "sched.key"
        self.ok(self.run_cmd(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                              "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                              "-addext", "subjectAltName=IP:127.0.0.1"]))
        c = self.cluster
        tls = Daemon([str(c.bin / "kiln-scheduler"), "--listen", "127.0.0.1:0",
                      "--heartbeat-interval-ms", "200", "--tls-cert", str(cert), "--tls-key",
                      str(key), "--log-file", str(self.dir / "tls-scheduler.log")], c.env)
        c.daemons.append(tls)
        url = f"https://{tls.address}"
        worker = Daemon([str(c.bin / "kiln-worker"), "--listen", "127.0.0.1:0", "--scheduler", url,
                         "--scheduler-ca", str(cert), "--server-id", "w-tls", "--work-dir",
                         str(self.dir / "work-tls"), "--log-file", str(self.dir / "w-tls.log")],
                        c.env)
        c.daemons.append(worker)
        ctx = ssl.create_default_context(cafile=str(cert))
        wait_until(lambda: json.loads(urllib.request.urlopen(url + "/status", context=ctx,
                                                             timeout=5).read())["workers"],
                   what="the worker registered over HTTPS")
        self.write("t.cpp", "int twice(int x) { return 2 * x; }\n")
        env = dict(self.env, KILN_DIST_SCHEDULER_URL=url, KILN_DIST_TOKEN=c.CLIENT_TOKEN,
                   KILN_DIST_SCHEDULER_CA=str(cert), KILN_DIST_FALLBACK_TO_LOCAL="false")
        self.ok(self.compile("g++", "-c", "t.cpp", "-o", "t.o", env=env))
        d = self.dist()
        self.assertEqual((d["jobs"], d["succeeded"], d["local_fallbacks"]), (1, 1, {}), d)
        self.assertIn('"event":"job_finished"', (self.dir / "w-tls.log").read_text())
        # Without the CA the scheduler's certificate is not trusted: nothing
        # reaches the cluster, and with fallback off the compile fails.
        self.write("u.cpp", "int thrice(int x) { return 3 * x; }\n")
        env.pop("KILN_DIST_SCHEDULER_CA")
        env["KILN_DIST_SCHEDULER_WAIT_S"] = "1"
        env["KILN_LOGFILE"] = str(self.dir / "kiln.log")
        r = self.compile("g++", "-c", "u.cpp", "-o", "u.o", env=env)
        self.assertNotEqual(r.code, 0, r.err)
        self.assertIn(b"scheduler_unreachable", r.err)
        self.assertIn("certificate", (self.dir / "kiln.log").read_text())
        self.assertEqual(self.dist()["succeeded"], 1)

    def test_has_include_probe_is_seen_on_the_worker(self):
        # A header that __has_include finds but nothing includes: clang lists
        # it in its dependency output, GCC does not (kiln takes it from the
        # trace). Without it the worker would compile the other branch and
        # return a different object. clang's driver also reads files that
        # are not inputs (/etc/os-release, a symbolic link): the job still
        # goes to the cluster.
        self.start_workers(["w-a"])
        self.write("inc/probed.h", "#error never included\n")
        self.write("p.cpp", "#if __has_include(<probed.h>)\nint have_probed() { return 1; }\n"
                            "#else\nint have_probed() { return 2; }\n#endif\n")
        env = dict(self.env, **self.cluster.client_env(KILN_DIST_FALLBACK_TO_LOCAL="false"))
        for n, cxx in enumerate(("g++", "clang++"), start=1):
            with self.subTest(cxx=cxx):
                self.ok(self.plain(cxx, "-Iinc", "-c", "p.cpp", "-o", f"plain-{cxx}.o"))
                self.ok(self.compile(cxx, "-Iinc", "-c", "p.cpp", "-o", f"p-{cxx}.o", env=env))
                self.assertEqual((self.dir / f"p-{cxx}.o").read_bytes(),
                                 (self.dir / f"plain-{cxx}.o").read_bytes())
                d = self.dist()
                self.assertEqual((d["jobs"], d["succeeded"], d["local_fallbacks"]), (n, n, {}), d)

    def test_workers_replaced_on_their_addresses_mid_build(self):
        self.start_workers(["w-a", "w-b", "w-c"])
        root = self.dir / "gen"
        write_project(root, 24)
        self.ok(self.build(root, self.dir / "plain", self.env, launcher=False))
        plain = objects(self.dir / "plain")
        env = dict(self.env, **self.cluster.client_env(KILN_DIST_FALLBACK_TO_LOCAL="false"))
        result = {}

        def run():  # in the same directory: -g objects name it
            result["r"] = self.build(root, self.dir / "plain", env, jobs=3)

        t = threading.Thread(target=run)
        t.start()
        # Once jobs flow, scale in to one worker, then out to three again: the
        # new workers on the old ones' ports, with new certificates and ids,
        # before the scheduler prunes the dead ones.
        wait_until(lambda: "job_finished" in (self.dir / "w-a.log").read_text()
                   + (self.dir / "w-b.log").read_text() + (self.dir / "w-c.log").read_text(),
                   timeout=120, what="the first jobs")
        old = {d.argv[d.argv.index("--server-id") + 1]: d for d in self.cluster.daemons[1:]}
        ports = {i: old[i].port for i in ("w-b", "w-c")}
        for i in ("w-b", "w-c"):
            old[i].signal(signal.SIGKILL)
        time.sleep(0.3)
        for i in ("w-b", "w-c"):
            self.cluster.worker(f"{i}-new", port=ports[i])
        t.join(timeout=600)
        self.ok(result["r"])
        self.assertEqual(objects(self.dir / "plain"), plain, "objects differ from a local build")
        d = self.dist()
        self.assertEqual(d["local_fallbacks"], {}, d)
        self.assertEqual(d["succeeded"], len(plain), d)
        # Some jobs went to the dead workers' addresses, where the newcomers'
        # certificates did not verify: retried elsewhere.
        self.assertGreaterEqual(sum(d["retries"].values()), 1, d)

    def test_scheduler_restarted_mid_build(self):
        self.start_workers(["w-a", "w-b"])
        root = self.dir / "gen"
        write_project(root, 16)
        self.ok(self.build(root, self.dir / "b", self.env, launcher=False))
        plain = objects(self.dir / "b")
        env = dict(self.env, **self.cluster.client_env(KILN_DIST_FALLBACK_TO_LOCAL="false"))
        result = {}
        t = threading.Thread(target=lambda: result.update(
            r=self.build(root, self.dir / "b", env, jobs=3)))
        t.start()
        wait_until(lambda: '"job_allocated"' in (self.dir / "scheduler.log").read_text(),
                   timeout=120, what="the first allocation")
        scheduler = self.cluster.daemons[0]
        port = scheduler.port
        scheduler.signal(signal.SIGKILL)
        time.sleep(1.0)
        self.cluster.scheduler(port)  # the workers find it again; clients ask again
        t.join(timeout=600)
        self.ok(result["r"])
        self.assertEqual(objects(self.dir / "b"), plain)
        d = self.dist()
        self.assertEqual(d["local_fallbacks"], {}, d)
        self.assertEqual(d["succeeded"], len(plain), d)
        self.assertGreaterEqual(d["retries"].get("scheduler", 0), 1, d)  # it was down

    def test_unreachable_scheduler_falls_back_or_fails(self):
        self.write("a.cpp", "int a() { return 1; }\n")
        env = dict(self.env, KILN_DIST_SCHEDULER_URL="http://127.0.0.1:9",
                   KILN_DIST_TOKEN="x", KILN_DIST_SCHEDULER_WAIT_S="1")
        t0 = time.time()
        self.ok(self.compile("g++", "-c", "a.cpp", "-o", "a.o", env=env))
        self.assertGreaterEqual(time.time() - t0, 0.7)  # it asked again before giving up
        self.assertEqual(self.dist()["local_fallbacks"], {"scheduler_unreachable": 1})
        self.assertGreaterEqual(self.dist()["retries"].get("scheduler", 0), 2)
        # Marked down: the next compile does not wait for it.
        self.write("c.cpp", "int c() { return 3; }\n")
        t0 = time.time()
        self.ok(self.compile("g++", "-c", "c.cpp", "-o", "c.o", env=env))
        self.assertLess(time.time() - t0, 0.7)
        self.assertEqual(self.dist()["local_fallbacks"], {"scheduler_unreachable": 2})
        self.write("b.cpp", "int b() { return 2; }\n")
        r = self.compile("g++", "-c", "b.cpp", "-o", "b.o",
                         env=dict(env, KILN_DIST_FALLBACK_TO_LOCAL="false"))
        self.assertNotEqual(r.code, 0)
        self.assertIn("build cluster could not compile", r.err_text)
        self.assertFalse((self.dir / "b.o").exists())


if __name__ == "__main__":
    kilntest.main()
