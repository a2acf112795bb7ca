#!/usr/bin/env python3
"""kiln vs ccache with a shared remote cache (Python 3.11 standard library;
boto3 only to create the S3 bucket on moto).

    python3 bench/remote.py                               # everything
    python3 bench/remote.py --quick --only redis          # CI smoke (bench.remote_smoke)

What it measures (docs/benchmarks.md, section "Remote storage (issue 3)"):

  1 warm   A CI machine with an empty local cache and a populated remote: each remote
           is populated once by a cold build through each tool, then every timed round
           wipes the build directory and the tool's local cache directory, re-configures
           CMake (untimed) and times `ninja -j2`. Projects: /usr/src/googletest and a
           generated 40-file C++20 project with STL includes. Configurations:
           kiln+redis vs ccache+redis, kiln+http vs ccache+http (nginx WebDAV), both
           with target kiln <= 0.7 x ccache; kiln+s3 (moto) vs kiln+redis for context.
           Each round also times `ninja <the .o targets>` from scratch: the object
           files alone, what a cache serves (no archiving or linking); target
           kiln <= 0.7 x ccache on that figure too.
           All configurations are interleaved in the same loop (the order rotates
           each round) and every round starts from the same state.
  2 trips  Requests each tool sends to the remote per hit, in those same timed
           rounds, counted by the server: Redis INFO commandstats after CONFIG
           RESETSTAT, nginx's access log, moto's request log. Target kiln <= 2.
  3 hit    One translation unit, remote-only (kiln: KILN_STORAGE=<backend>; ccache:
           remote_only), so every call is a remote hit: the latency of one hit per
           backend, with local-only hits as the baseline; explains where the time of
           (1) goes.

Hits are verified through each tool's own statistics (warm rounds: every TU a hit,
all from the remote, none from the local level); the exit status is 1 if a
verification failed and never depends on timing ratios. 77: a required program is
missing (ctest SKIP_RETURN_CODE).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))
from common import (BUILD_TYPE, LoadProbe, compare, object_targets, summarize,  # noqa: E402
                    write_gen_project)
from remote_servers import find_program, free_port, port_open  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_KILN = ROOT / "build" / "bin" / "kiln"
DEFAULT_JSON = ROOT / "bench" / "results" / "remote-latest.json"
TARGET_RATIO = 0.7             # kiln/ccache, warm rebuild from a remote
TARGET_OBJECTS_RATIO = 0.7     # the same, object files only (issue 8 part 8)
TARGET_TRIPS = 2.0             # kiln requests per remote hit
BACKENDS = ("redis", "http", "s3")
S3_BUCKET = "kiln-bench"


def log(msg: str = "") -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------
# statistics


# --------------------------------------------------------------------------
# machine load: CPU time of the whole machine minus our own process tree


# --------------------------------------------------------------------------
# servers on 127.0.0.1, each in its own process group, killed with us


class Server:
    def __init__(self, name: str, workdir: Path) -> None:
        self.name, self.dir = name, workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = self.dir / f"{name}.log"
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def start(self, argv_for, prepare=None, env=None) -> None:
        setpriv = find_program("setpriv")
        wrap = [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []
        why = ""
        for _ in range(4):
            port = free_port()
            if prepare:
                prepare(port)
            argv = [str(a) for a in argv_for(port)]
            with open(self.log, "ab") as out:
                self.proc = subprocess.Popen(wrap + argv, stdin=subprocess.DEVNULL, stdout=out,
                                             stderr=subprocess.STDOUT, cwd=self.dir,
                                             env=env or dict(os.environ), start_new_session=True)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and self.proc.poll() is None:
                if port_open(port):
                    self.port = port
                    return
                time.sleep(0.05)
            why = f"{argv[0]} did not start on port {port}: {self.log.read_text(errors='replace')[-2000:]}"
            self.stop()
        raise RuntimeError(why)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass

    # request counting: subclasses
    def mark(self):
        raise NotImplementedError

    def requests_since(self, mark) -> dict:
        raise NotImplementedError


class LogCountingServer(Server):
    """Counts requests by reading the lines its request log got since mark()."""

    request_log: Path

    def mark(self) -> int:
        return self.request_log.stat().st_size if self.request_log.exists() else 0

    def new_lines(self, mark: int) -> list[str]:
        time.sleep(0.3)  # servers log a request after answering it
        with open(self.request_log, "rb") as f:
            f.seek(mark)
            return f.read().decode(errors="replace").splitlines()


class Redis(Server):
    def __init__(self, workdir: Path) -> None:
        super().__init__("redis", workdir)
        exe = find_program("redis-server")
        self.start(lambda p: [exe, "--port", p, "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--dir", self.dir])
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=60)
        self.f = self.sock.makefile("rb")

    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def command(self, *args):
        parts = [b"*%d\r\n" % len(args)]
        for a in args:
            b = a if isinstance(a, bytes) else str(a).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
        self.sock.sendall(b"".join(parts))
        return self._reply()

    def _reply(self):
        line = self.f.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(f"redis: {rest.decode()}")
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RuntimeError(f"redis: unexpected reply {line!r}")

    def info(self, section: str) -> dict:
        out = {}
        for line in self.command("INFO", section).decode().splitlines():
            k, sep, v = line.partition(":")
            if sep and not k.startswith("#"):
                out[k] = v
        return out

    def mark(self) -> None:
        # Our own connection was accepted before the reset: total_connections_received
        # then counts only the tools' connections.
        self.command("CONFIG", "RESETSTAT")

    def requests_since(self, mark) -> dict:
        cmds, usec = {}, 0
        for k, v in self.info("commandstats").items():
            name = k.removeprefix("cmdstat_")
            if name in ("config|resetstat", "info"):
                continue  # ours
            f = dict(kv.split("=") for kv in v.split(","))
            cmds[name.upper()] = int(f["calls"])
            usec += int(f["usec"])
        conns = int(self.info("stats")["total_connections_received"])
        return {"requests": sum(cmds.values()), "by_kind": cmds, "connections": conns,
                "server_usec": usec}

    def stop(self) -> None:
        try:
            self.sock.close()
        except (OSError, AttributeError):
            pass
        super().stop()


_NGINX_CONF = """{user}master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
  log_format counting '$connection $connection_requests $request_method $status '
                      '$body_bytes_sent $request_time $request_uri';
  access_log {dir}/access.log counting;
  client_body_temp_path {dir}/tmp/body;
  proxy_temp_path {dir}/tmp/proxy;
  fastcgi_temp_path {dir}/tmp/fastcgi;
  uwsgi_temp_path {dir}/tmp/uwsgi;
  scgi_temp_path {dir}/tmp/scgi;
  server {{
    listen 127.0.0.1:{port};
    root {dir}/root;
    client_max_body_size 0;
    location /cache/ {{
      dav_methods PUT DELETE;
      create_full_put_path on;
      dav_access user:rw group:r all:r;
    }}
  }}
}}
"""


class Nginx(LogCountingServer):
    def __init__(self, workdir: Path) -> None:
        super().__init__("nginx", workdir)
        exe = find_program("nginx")
        (self.dir / "root" / "cache").mkdir(parents=True, exist_ok=True)
        (self.dir / "tmp").mkdir(exist_ok=True)
        self.request_log = self.dir / "access.log"
        user = "user root;\n" if os.geteuid() == 0 else ""  # else workers run as nobody

        def prepare(port: int) -> None:
            (self.dir / "nginx.conf").write_text(_NGINX_CONF.format(user=user, dir=self.dir,
                                                                    port=port))

        self.start(lambda p: [exe, "-p", self.dir, "-c", self.dir / "nginx.conf",
                              "-e", self.dir / "error.log", "-g", "daemon off;"], prepare)

    def url(self, tool: str) -> str:
        return f"http://127.0.0.1:{self.port}/cache/{tool}"

    def requests_since(self, mark) -> dict:
        kinds, conns, secs = {}, set(), 0.0
        for line in self.new_lines(mark):
            f = line.split(" ")
            if len(f) < 7:
                continue
            conns.add(f[0])
            k = f"{f[2]} {f[3]}"
            kinds[k] = kinds.get(k, 0) + 1
            secs += float(f[5])
        return {"requests": sum(kinds.values()), "by_kind": kinds, "connections": len(conns),
                "server_usec": int(secs * 1e6)}


class Moto(LogCountingServer):
    REGION = "us-east-1"

    def __init__(self, workdir: Path) -> None:
        super().__init__("moto", workdir)
        exe = find_program("moto_server")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
        self.request_log = self.log
        self.start(lambda p: [exe, "-H", "127.0.0.1", "-p", p], env=env)

    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def create_bucket(self, name: str) -> None:
        import boto3
        from botocore.config import Config
        s3 = boto3.client("s3", endpoint_url=self.endpoint(), region_name=self.REGION,
                          aws_access_key_id="testing", aws_secret_access_key="testing",
                          config=Config(s3={"addressing_style": "path"}))
        s3.create_bucket(Bucket=name)

    def requests_since(self, mark) -> dict:
        # werkzeug: 127.0.0.1 - - [date] "GET /bucket/key HTTP/1.1" 200 -
        kinds = {}
        for line in self.new_lines(mark):
            q = line.split('"')
            if len(q) < 3 or " HTTP/" not in q[1]:
                continue
            method = q[1].split(" ")[0]
            status = q[2].split()[0] if q[2].split() else "?"
            k = f"{method} {status}"
            kinds[k] = kinds.get(k, 0) + 1
        return {"requests": sum(kinds.values()), "by_kind": kinds, "connections": None,
                "server_usec": None}


# --------------------------------------------------------------------------
# tools and configurations


class Runner:
    def __init__(self, work: Path) -> None:
        self.logfile = work / "last-command.log"

    def run(self, argv: list[str], env: dict, cwd: Path | str, check: bool = True) -> dict:
        """wall time around fork..wait4, CPU time (user+sys) of the whole tree."""
        with open(self.logfile, "wb") as out:
            t0 = time.perf_counter()
            p = subprocess.Popen([str(a) for a in argv], env=env, cwd=cwd,
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
            _, status, ru = os.wait4(p.pid, 0)
            t1 = time.perf_counter()
        p.returncode = os.waitstatus_to_exitcode(status)
        if check and p.returncode != 0:
            tail = self.logfile.read_bytes()[-4000:].decode(errors="replace")
            raise RuntimeError(f"command failed ({p.returncode}): {shlex.join(map(str, argv))}\n{tail}")
        return {"wall": t1 - t0, "cpu": ru.ru_utime + ru.ru_stime, "rc": p.returncode}


def clean_env(work: Path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KILN_", "CCACHE_", "AWS_"))
           and k not in ("MAKEFLAGS", "CXX", "CC")}
    env["LC_ALL"] = "C"
    env["HOME"] = str(work / "home")  # no ~/.aws, ~/.config of the real user
    return env


class Config:
    """One tool with one remote level, e.g. kiln+redis."""

    def __init__(self, tool: str, backend: str, exe: str, work: Path, base_env: dict,
                 servers: dict) -> None:
        self.tool, self.backend, self.exe = tool, backend, exe
        self.name = f"{tool}+{backend}"
        self.cache_dir = work / f"cache-{tool}-{backend}"
        self.server = servers[backend]
        self.env = dict(base_env)
        if tool == "kiln":
            self.env.update({"KILN_DIR": str(self.cache_dir),
                             "KILN_CONFIG": str(work / "no-such-kiln.toml"),
                             "KILN_STORAGE": f"local,{backend}"})
            self.env.update(kiln_remote_env(backend, servers))
        else:
            self.env.update({"CCACHE_DIR": str(self.cache_dir),
                             "CCACHE_CONFIGPATH": str(work / "no-such-ccache.conf"),
                             "CCACHE_REMOTE_STORAGE": ccache_url(backend, servers)})

    def build_dir(self, work: Path, project: str) -> Path:
        # One build directory per tool and project, the one the remote was populated
        # from: with -g both tools put the working directory into the key.
        return work / f"build-{project}-{self.tool}"

    def wipe_local(self) -> None:
        shutil.rmtree(self.cache_dir, ignore_errors=True)


def kiln_remote_env(backend: str, servers: dict) -> dict:
    s = servers[backend]
    if backend == "redis":
        return {"KILN_REDIS_ENDPOINT": s.url()}
    if backend == "http":
        return {"KILN_HTTP_ENDPOINT": s.url("kiln")}
    return {"KILN_S3_BUCKET": S3_BUCKET, "KILN_S3_ENDPOINT": s.endpoint(),
            "KILN_S3_REGION": Moto.REGION, "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing"}


def ccache_url(backend: str, servers: dict, attrs: str = "") -> str:
    s = servers[backend]
    url = s.url() if backend == "redis" else s.url("ccache")
    return url + attrs


def tool_stats(tool: str, exe: str, env: dict) -> dict:
    """{'direct', 'preprocessed', 'miss', 'remote_hit', 'local_hit', 'remote_write',
    'raw': {...nonzero counters}} from the tool's own statistics."""
    if tool == "kiln":
        out = subprocess.run([exe, "-s", "--json"], env=env, check=True, capture_output=True,
                             text=True).stdout
        d = json.loads(out)
        c, lv = d["counters"], d.get("levels", {})
        remote = [b for b in BACKENDS if any(k.startswith(b + "_") for k in lv)]
        return {"direct": c.get("direct_hit", 0), "preprocessed": c.get("preprocessed_hit", 0),
                "miss": c.get("miss", 0),
                "remote_hit": sum(lv.get(f"{b}_hit", 0) for b in remote),
                "local_hit": lv.get("local_hit", 0),
                "remote_write": sum(lv.get(f"{b}_write", 0) for b in remote),
                "remote_errors": sum(v for k, v in lv.items()
                                     if k.endswith(("_error", "_timeout", "_skipped"))),
                "raw": {"counters": {k: v for k, v in c.items()
                                     if v and k not in ("files", "size")}, "levels": lv}}
    out = subprocess.run([exe, "--print-stats"], env=env, check=True, capture_output=True,
                         text=True).stdout
    c = {}
    for line in out.splitlines():
        k, _, v = line.partition("\t")
        if v.strip().lstrip("-").isdigit():
            c[k] = int(v)
    return {"direct": c.get("direct_cache_hit", 0),
            "preprocessed": c.get("preprocessed_cache_hit", 0),
            "miss": c.get("cache_miss", 0),
            "remote_hit": c.get("remote_storage_hit", 0),
            "local_hit": c.get("local_storage_hit", 0),
            "remote_write": c.get("remote_storage_write", 0),
            "remote_errors": c.get("remote_storage_error", 0) + c.get("remote_storage_timeout", 0),
            "raw": {k: v for k, v in c.items()
                    if v and not k.endswith("timestamp") and k not in ("cache_size_kibibyte",
                                                                       "files_in_cache")}}


# --------------------------------------------------------------------------
# the generated project (the same generator as bench/run.py's benchmark b)


# --------------------------------------------------------------------------
# the benchmark


class Bench:
    def __init__(self, args, work: Path, servers: dict) -> None:
        self.args, self.work, self.servers = args, work, servers
        self.runner = Runner(work)
        self.base_env = clean_env(work)
        (work / "home").mkdir(exist_ok=True)
        self.failures: list[str] = []
        self.configs: list[Config] = []
        for b in args.only:
            self.configs.append(Config("kiln", b, args.kiln, work, self.base_env, servers))
            if b != "s3":  # ccache 4.7 has no S3 backend
                self.configs.append(Config("ccache", b, args.ccache, work, self.base_env,
                                           servers))

    def fail(self, msg: str) -> None:
        log(f"  VERIFY FAILED: {msg}")
        self.failures.append(msg)

    def projects(self) -> list[dict]:
        out = []
        gen = self.work / "gen-src"
        write_gen_project(gen, self.args.gen_units)
        time.sleep(2.2)  # let the ctimes age past kiln's "too recent" window
        if not self.args.quick:
            gt = Path(self.args.googletest)
            if (gt / "CMakeLists.txt").exists():
                out.append({"name": "googletest", "src": gt})
            else:
                log(f"  (skipping googletest: {gt} not found)")
        out.append({"name": f"gen{self.args.gen_units}", "src": gen})
        return out

    def configure(self, proj: dict, tool: str, exe: str, env: dict, build: Path) -> int:
        shutil.rmtree(build, ignore_errors=True)
        self.runner.run(["cmake", "-S", proj["src"], "-B", build, "-G", "Ninja",
                         f"-DCMAKE_BUILD_TYPE={BUILD_TYPE}", "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON",
                         f"-DCMAKE_CXX_COMPILER_LAUNCHER={exe}",
                         f"-DCMAKE_C_COMPILER_LAUNCHER={exe}"], env, self.work)
        return len(json.loads((build / "compile_commands.json").read_text()))

    def ninja(self, env: dict, build: Path, targets: list[str] | None = None) -> dict:
        """Times `ninja -j<jobs> [targets]`; splits .ninja_log into compile edges
        (*.o, what a cache serves) and the rest (archive, link)."""
        (build / ".ninja_log").unlink(missing_ok=True)
        r = self.runner.run(["ninja", "-C", build, f"-j{self.args.jobs}"] + (targets or []), env,
                            self.work)
        ce, other, lo, hi, n = 0, 0, None, None, 0
        for line in (build / ".ninja_log").read_text().splitlines():
            f = line.split("\t")
            if line.startswith("#") or len(f) < 4:
                continue
            start, end = int(f[0]), int(f[1])
            if f[3].endswith(".o"):
                ce += end - start
                n += 1
                lo = start if lo is None else min(lo, start)
                hi = end if hi is None else max(hi, end)
            else:
                other += end - start
        return {"wall": r["wall"], "cpu": r["cpu"], "compile_edges_ms": ce,
                "mean_compile_edge_ms": ce / n if n else 0.0, "other_edges_ms": other,
                "compile_span_ms": (hi - lo) if lo is not None else 0}

    # ---- populate: one cold build per tool writes every selected remote at once
    def populate(self, proj: dict) -> dict:
        out = {}
        tus = 0
        for tool, exe in (("kiln", self.args.kiln), ("ccache", self.args.ccache)):
            cfgs = [c for c in self.configs if c.tool == tool]
            if not cfgs:
                continue
            backends = [c.backend for c in cfgs]
            env = dict(cfgs[0].env)
            cache = self.work / f"cache-{tool}-populate"
            shutil.rmtree(cache, ignore_errors=True)
            # Generous timeouts: a slow write here would only leave holes in the remote.
            if tool == "kiln":
                env.update({"KILN_DIR": str(cache), "KILN_STORAGE": ",".join(["local"] + backends),
                            "KILN_REMOTE_CONNECT_TIMEOUT": "5000",
                            "KILN_REMOTE_REQUEST_TIMEOUT": "60000"})
                for b in backends:
                    env.update(kiln_remote_env(b, self.servers))
            else:
                env.update({"CCACHE_DIR": str(cache), "CCACHE_REMOTE_STORAGE": " ".join(
                    ccache_url(b, self.servers, "|connect-timeout=5000|operation-timeout=60000")
                    for b in backends)})
            build = cfgs[0].build_dir(self.work, proj["name"])
            tus = self.configure(proj, tool, exe, env, build)
            shutil.rmtree(cache, ignore_errors=True)  # configure may have compiled through it
            marks = {b: self.servers[b].mark() for b in backends}
            r = self.ninja(env, build)
            reqs = {b: self.servers[b].requests_since(marks[b]) for b in backends}
            st = tool_stats(tool, exe, env)
            if st["miss"] != tus or st["direct"] + st["preprocessed"] != 0:
                self.fail(f"populate/{proj['name']}: {tool} expected {tus} misses: {st['raw']}")
            out[tool] = {"backends": backends, "ninja_wall_s": r["wall"], "ninja_cpu_s": r["cpu"],
                         "requests": reqs,
                         "requests_per_miss": {b: reqs[b]["requests"] / tus for b in backends},
                         "stats": st}
            log(f"  populate {proj['name']}: {tool} cold build writing to "
                f"{'+'.join(backends)}: {r['wall']:.1f} s, "
                + ", ".join(f"{b} {reqs[b]['requests'] / tus:.2f} req/miss" for b in backends))
        return {"tus": tus, "tools": out}

    # ---- 1 + 2: warm rebuilds with an empty local cache
    def warm(self, proj: dict) -> dict:
        rounds = self.args.rounds
        name = proj["name"]
        runs = {c.name: [] for c in self.configs}
        objects_runs = {c.name: [] for c in self.configs}
        tus = 0
        n = len(self.configs)
        for i in range(rounds):
            order = self.configs[i % n:] + self.configs[:i % n]
            if i % 2:
                order = order[::-1]
            for c in order:
                # The whole build, then the object files alone (what a cache
                # serves), each from an empty build directory and local cache.
                for what, into in (("all", runs), ("objects", objects_runs)):
                    build = c.build_dir(self.work, name)
                    c.wipe_local()
                    tus = self.configure(proj, c.tool, c.exe, c.env, build)
                    targets = object_targets(build, c.env) if what == "objects" else None
                    c.wipe_local()  # empty local cache, whatever configure did
                    mark = c.server.mark()
                    r = self.ninja(c.env, build, targets)
                    r["remote"] = c.server.requests_since(mark)
                    st = tool_stats(c.tool, c.exe, c.env)
                    r["stats"] = st
                    hits = st["direct"] + st["preprocessed"]
                    r["requests_per_hit"] = r["remote"]["requests"] / hits if hits else None
                    bad = []
                    if hits != tus or st["miss"]:
                        bad.append(f"{hits} hits and {st['miss']} misses for {tus} TUs")
                    if st["remote_hit"] < tus:
                        bad.append(f"only {st['remote_hit']} remote hits for {tus} TUs")
                    if st["local_hit"]:
                        bad.append(f"{st['local_hit']} local hits (the local cache was empty)")
                    if st["remote_write"]:
                        # Rounds must leave the remote as they found it.
                        bad.append(f"{st['remote_write']} writes to the remote")
                    if bad:
                        self.fail(f"warm/{name} round {i} ({what}): {c.name}: {'; '.join(bad)}: "
                                  f"{st['raw']}")
                    into[c.name].append(r)
                    log(f"  round {i + 1}/{rounds} {c.name:13s} {what:7s} {r['wall']:6.2f} s  "
                        f"{r['remote']['requests']} requests, {hits} hits "
                        f"({st['direct']} direct), {st['miss']} misses")
        res = self.summarize_warm(name, tus, runs)
        objects = self.summarize_warm(name, tus, objects_runs, TARGET_OBJECTS_RATIO)
        res["objects"] = {"configs": {k: {kk: v[kk] for kk in ("ninja_wall_s", "ninja_cpu_s")}
                                      for k, v in objects["configs"].items()},
                          "comparisons": objects["comparisons"]}
        return res

    def summarize_warm(self, name: str, tus: int, runs: dict,
                       target: float = TARGET_RATIO) -> dict:
        def col(k, f):
            return [r[f] for r in runs[k]]

        res = {"tus": tus, "configs": {}}
        for k, rs in runs.items():
            per_hit = [r["requests_per_hit"] for r in rs if r["requests_per_hit"] is not None]
            kinds: dict[str, int] = {}
            for r in rs:
                for kk, v in r["remote"]["by_kind"].items():
                    kinds[kk] = kinds.get(kk, 0) + v
            conns = [r["remote"]["connections"] for r in rs if r["remote"]["connections"] is not None]
            res["configs"][k] = {
                "ninja_wall_s": summarize(col(k, "wall")),
                "ninja_cpu_s": summarize(col(k, "cpu")),
                "compile_edges_ms": summarize(col(k, "compile_edges_ms")),
                "mean_compile_edge_ms": summarize(col(k, "mean_compile_edge_ms")),
                "compile_span_ms": summarize(col(k, "compile_span_ms")),
                "other_edges_ms": summarize(col(k, "other_edges_ms")),
                "requests_per_hit": statistics.median(per_hit) if per_hit else None,
                "requests_per_round_by_kind": {kk: v / len(rs) for kk, v in sorted(kinds.items())},
                "connections_per_hit": (statistics.median(conns) / tus) if conns and tus else None,
                "remote_writes_per_round": statistics.median(r["stats"]["remote_write"] for r in rs),
                "rounds": [{kk: v for kk, v in r.items() if kk != "stats"} | {
                    "stats": r["stats"]["raw"]} for r in rs],
            }
        res["comparisons"] = {}
        for b in ("redis", "http"):
            k, c = f"kiln+{b}", f"ccache+{b}"
            if k in runs and c in runs:
                cmp = compare(col(k, "wall"), col(c, "wall"), target)
                cmp["cpu"] = compare(col(k, "cpu"), col(c, "cpu"), None)
                cmp["compile_edges"] = compare(col(k, "compile_edges_ms"),
                                               col(c, "compile_edges_ms"), None)
                # kiln/ccache if every kiln hit took no time: what ninja, ar and ld cost
                rest = [r["wall"] - r["compile_span_ms"] / 1000 for r in runs[k]]
                cmp["floor_if_kiln_hits_were_free"] = (statistics.median(rest) /
                                                       statistics.median(col(c, "wall")))
                res["comparisons"][f"{k} vs {c}"] = cmp
        if "kiln+s3" in runs and "kiln+redis" in runs:
            cmp = compare(col("kiln+s3", "wall"), col("kiln+redis", "wall"), None)
            cmp["compile_edges"] = compare(col("kiln+s3", "compile_edges_ms"),
                                           col("kiln+redis", "compile_edges_ms"), None)
            res["comparisons"]["kiln+s3 vs kiln+redis"] = cmp
        return res

    # ---- 3: one TU, remote-only hits (and local-only hits as the baseline)
    def hit_latency(self, proj: dict) -> dict:
        reps = self.args.hit_reps
        variants = []  # (label, tool, exe, env)
        for tool, exe in (("kiln", self.args.kiln), ("ccache", self.args.ccache)):
            cfgs = [c for c in self.configs if c.tool == tool]
            if not cfgs:
                continue
            cache = self.work / f"cache-hit-{tool}-local"
            env = dict(cfgs[0].env)
            if tool == "kiln":
                env.update({"KILN_DIR": str(cache), "KILN_STORAGE": "local"})
            else:
                env.update({"CCACHE_DIR": str(cache)})
                env.pop("CCACHE_REMOTE_STORAGE", None)
            variants.append((f"{tool}+local", tool, exe, env))
            for c in cfgs:
                env = dict(c.env)
                cache = self.work / f"cache-hit-{c.name}"
                if tool == "kiln":
                    env.update({"KILN_DIR": str(cache), "KILN_STORAGE": c.backend})
                else:
                    env.update({"CCACHE_DIR": str(cache), "CCACHE_REMOTE_ONLY": "1"})
                variants.append((f"{c.name} (remote only)", tool, exe, env))
        # The exact command ninja ran for the TU with the largest object (from the
        # populated build directory, so its key is the one stored in the remotes).
        cmds = {}
        for tool in {v[1] for v in variants}:
            build = self.work / f"build-{proj['name']}-{tool}"
            out = subprocess.run(["ninja", "-C", build, "-t", "compdb"], env=self.base_env,
                                 check=True, capture_output=True, text=True).stdout
            best = None
            for e in json.loads(out):
                o = Path(e["directory"]) / e.get("output", "")
                if not str(o).endswith(".o") or not o.exists():
                    continue
                if best is None or o.stat().st_size > best[0]:
                    argv = shlex.split(e["command"])
                    if argv and argv[0].endswith(("/kiln", "/ccache", "kiln", "ccache")):
                        argv = argv[1:]
                    best = (o.stat().st_size, argv, e["directory"], o.name)
            cmds[tool] = best
        for label, tool, exe, env in variants:
            shutil.rmtree(env.get("KILN_DIR") or env["CCACHE_DIR"], ignore_errors=True)
            _, argv, cwd, _ = cmds[tool]
            self.runner.run([exe] + argv, env, cwd)  # local: the miss; remote: a first hit
            self.runner.run([exe] + argv, env, cwd)
            subprocess.run([exe, "-z"], env=env, check=True, capture_output=True)
        times = {v[0]: [] for v in variants}
        cpu = {v[0]: [] for v in variants}
        for i in range(reps):
            for label, tool, exe, env in (variants if i % 2 == 0 else variants[::-1]):
                _, argv, cwd, _ = cmds[tool]
                r = self.runner.run([exe] + argv, env, cwd)
                times[label].append(r["wall"] * 1000)
                cpu[label].append(r["cpu"] * 1000)
        res = {"reps": reps, "tu": {t: f"{c[3]} ({c[0]} bytes)" for t, c in cmds.items()},
               "wall_ms": {k: summarize(v) for k, v in times.items()},
               "cpu_ms": {k: summarize(v) for k, v in cpu.items()}}
        for label, tool, exe, env in variants:
            st = tool_stats(tool, exe, env)
            hits = st["direct"] + st["preprocessed"]
            if hits != reps or st["miss"]:
                self.fail(f"hit latency: {label}: {hits} hits, {st['miss']} misses for {reps} "
                          f"calls: {st['raw']}")
            elif "remote" in label and st["remote_hit"] < reps:
                self.fail(f"hit latency: {label}: only {st['remote_hit']} remote hits")
        log(f"  one TU ({', '.join(res['tu'].values())}), {reps} interleaved calls each:")
        for k, s in res["wall_ms"].items():
            log(f"    {k:28s} median {s['median']:7.2f} ms  [{s['min']:.2f}, {s['max']:.2f}]  "
                f"cpu {res['cpu_ms'][k]['median']:.2f} ms")
        return res


# --------------------------------------------------------------------------
# report


def table(results: dict) -> str:
    lines = []
    for pname, p in results.get("projects", {}).items():
        w = p["warm"]
        lines.append(f"{pname}: {w['tus']} TUs, warm rebuild from the remote, empty local cache")
        rows = [("config", "median s", "min-max s", "cpu s", "edge ms", "req/hit", "conn/hit",
                 "by kind (per round)")]
        for k, c in w["configs"].items():
            s = c["ninja_wall_s"]
            kinds = ", ".join(f"{kk} {v:g}" for kk, v in c["requests_per_round_by_kind"].items())
            rows.append((k, f"{s['median']:.2f}", f"{s['min']:.2f}-{s['max']:.2f}",
                         f"{c['ninja_cpu_s']['median']:.2f}",
                         f"{c['mean_compile_edge_ms']['median']:.0f}",
                         f"{c['requests_per_hit']:.2f}" if c["requests_per_hit"] is not None else "-",
                         f"{c['connections_per_hit']:.2f}" if c["connections_per_hit"] is not None else "-",
                         kinds))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for j, r in enumerate(rows):
            lines.append("  " + "  ".join(x.ljust(wd) for x, wd in zip(r, widths)).rstrip())
            if j == 0:
                lines.append("  " + "  ".join("-" * wd for wd in widths))
        for label, cmp in w["comparisons"].items():
            p_ = cmp["paired_ratio"]
            line = (f"  {label}: {cmp['ratio_of_medians']:.3f} (per-round {p_['min']:.2f}-"
                    f"{p_['max']:.2f})")
            if "cpu" in cmp:
                line += f", cpu {cmp['cpu']['ratio_of_medians']:.3f}"
            line += f", compile edges {cmp['compile_edges']['ratio_of_medians']:.3f}"
            if "floor_if_kiln_hits_were_free" in cmp:
                line += f", floor {cmp['floor_if_kiln_hits_were_free']:.3f}"
            if "target" in cmp:
                line += f"; target <= {cmp['target']}: {'PASS' if cmp['pass'] else 'MISS'}"
            lines.append(line)
        if "objects" in w:
            lines.append("  object files only (ninja <the .o targets>: no archiving or linking):")
            for k, c in w["objects"]["configs"].items():
                s = c["ninja_wall_s"]
                lines.append(f"    {k:13s} median {s['median']:.2f} s  min-max {s['min']:.2f}-"
                             f"{s['max']:.2f}  cpu {c['ninja_cpu_s']['median']:.2f} s")
            for label, cmp in w["objects"]["comparisons"].items():
                p_ = cmp["paired_ratio"]
                line = (f"    {label}: {cmp['ratio_of_medians']:.3f} (per-round {p_['min']:.2f}-"
                        f"{p_['max']:.2f})")
                if "target" in cmp:
                    line += f"; target <= {cmp['target']}: {'PASS' if cmp['pass'] else 'MISS'}"
                lines.append(line)
        for k, c in w["configs"].items():
            if k.startswith("kiln+") and c["requests_per_hit"] is not None:
                ok = c["requests_per_hit"] <= TARGET_TRIPS
                lines.append(f"  {k} round trips per hit {c['requests_per_hit']:.2f}; target <= "
                             f"{TARGET_TRIPS:g}: {'PASS' if ok else 'MISS'}")
        if "hit_latency" in p:
            h = p["hit_latency"]
            lines.append(f"  one hit of {', '.join(h['tu'].values())} (median of {h['reps']}):")
            for k, s in h["wall_ms"].items():
                lines.append(f"    {k:28s} wall {s['median']:7.2f} ms  cpu "
                             f"{h['cpu_ms'][k]['median']:6.2f} ms")
        lines.append("")
    return "\n".join(lines)


def machine_info(args) -> dict:
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), "?")

    def first_line(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()[0]
        except (OSError, IndexError):
            return None

    return {"nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
            "mem_total": next((l.split(":")[1].strip() for l in
                               Path("/proc/meminfo").read_text().splitlines()
                               if l.startswith("MemTotal")), None),
            "versions": {"kiln": first_line([args.kiln, "-V"]),
                         "ccache": first_line([args.ccache, "--version"]),
                         "g++": first_line(["g++", "--version"]),
                         "cmake": first_line(["cmake", "--version"]),
                         "ninja": first_line(["ninja", "--version"]),
                         "redis-server": first_line(["redis-server", "--version"]),
                         "nginx": (subprocess.run([find_program("nginx") or "nginx", "-v"],
                                                  capture_output=True, text=True).stderr.strip()
                                   if find_program("nginx") else None),
                         "moto_server": first_line([sys.executable, "-c",
                                                    "import moto; print(moto.__version__)"]),
                         "python": platform.python_version()},
            "kiln_binary": {"path": args.kiln,
                            "mtime": time.strftime("%Y-%m-%dT%H:%M:%S%z",
                                                   time.localtime(os.stat(args.kiln).st_mtime))},
            "source_tree": {"commit": first_line(["git", "-C", str(ROOT), "rev-parse", "--short",
                                                  "HEAD"])}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kiln", default=str(DEFAULT_KILN), help="kiln binary (its plugin "
                    "libkiln-remote.so beside it); default build/bin/kiln")
    ap.add_argument("--ccache", default="/usr/bin/ccache")
    ap.add_argument("--quick", action="store_true",
                    help="1 round, generated project only (smoke test)")
    ap.add_argument("--only", default="redis,http,s3", help="backends: comma list of "
                    "redis,http,s3 (default all)")
    ap.add_argument("--rounds", type=int, help="timed rounds per configuration (default 7, quick 1)")
    ap.add_argument("--hit-reps", type=int, help="calls per variant in the one-TU hit "
                    "latency part (default 30, quick 3)")
    ap.add_argument("--jobs", type=int, default=2, help="ninja -j (default 2)")
    ap.add_argument("--gen-units", type=int, help="generated project size (default 40, quick 12)")
    ap.add_argument("--googletest", default="/usr/src/googletest")
    ap.add_argument("--json", default=str(DEFAULT_JSON),
                    help="result file (default bench/results/remote-latest.json)")
    ap.add_argument("--workdir", help="scratch directory (default: a new one under /tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args()

    args.kiln = str(Path(args.kiln).resolve())
    if not os.access(args.kiln, os.X_OK):
        print(f"error: kiln binary {args.kiln} is not executable", file=sys.stderr)
        return 2
    if not (Path(args.kiln).parent / "libkiln-remote.so").exists() \
            and not os.environ.get("KILN_REMOTE_PLUGIN"):
        print(f"error: {Path(args.kiln).parent / 'libkiln-remote.so'} is missing "
              "(ninja kiln_remote_plugin)", file=sys.stderr)
        return 2
    args.only = [b.strip() for b in args.only.split(",") if b.strip()]
    if not args.only or not set(args.only) <= set(BACKENDS):
        print(f"error: --only takes redis,http,s3 (got {','.join(args.only)})", file=sys.stderr)
        return 2
    args.only = [b for b in BACKENDS if b in args.only]
    needed = [args.ccache, "g++", "cmake", "ninja"]
    needed += {"redis": ["redis-server"], "http": ["nginx"], "s3": ["moto_server"]}[args.only[0]]
    for b in args.only[1:]:
        needed += {"redis": ["redis-server"], "http": ["nginx"], "s3": ["moto_server"]}[b]
    missing = [x for x in needed if not find_program(x) and not os.access(x, os.X_OK)]
    if "s3" in args.only:
        try:
            import boto3  # noqa: F401
        except ImportError:
            missing.append("python3 boto3")
    if missing:
        print(f"skipped: not installed: {', '.join(missing)}", file=sys.stderr)
        return 77
    args.rounds = args.rounds or (1 if args.quick else 7)
    args.hit_reps = args.hit_reps or (3 if args.quick else 30)
    args.gen_units = args.gen_units or (12 if args.quick else 40)

    script = Path(sys.argv[0]).resolve()
    rel = script.relative_to(ROOT) if script.is_relative_to(ROOT) else script
    command = shlex.join(["python3", str(rel)] + sys.argv[1:])
    log(f"command: {command}")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="kiln-bench-remote-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    log(f"scratch: {work}")

    out = {"command": command, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "machine": machine_info(args),
           "settings": {"build_type": BUILD_TYPE, "jobs": args.jobs, "rounds": args.rounds,
                        "hit_reps": args.hit_reps, "gen_units": args.gen_units,
                        "quick": args.quick, "backends": args.only,
                        "tool_config": "defaults (KILN_CONFIG / CCACHE_CONFIGPATH point at "
                                       "nonexistent files); kiln KILN_STORAGE=local,<backend>; "
                                       "ccache remote_storage=<url>; default remote timeouts "
                                       "in timed rounds"},
           "targets": {"kiln_over_ccache_warm": TARGET_RATIO,
                       "kiln_over_ccache_warm_objects": TARGET_OBJECTS_RATIO,
                       "kiln_round_trips_per_hit": TARGET_TRIPS},
           "results": {"projects": {}}}
    servers: dict = {}
    failures: list[str] = []
    probe = LoadProbe()
    try:
        if "redis" in args.only:
            servers["redis"] = Redis(work / "srv-redis")
        if "http" in args.only:
            servers["http"] = Nginx(work / "srv-nginx")
        if "s3" in args.only:
            servers["s3"] = Moto(work / "srv-moto")
            servers["s3"].create_bucket(S3_BUCKET)
        log("servers: " + ", ".join(f"{k} 127.0.0.1:{s.port}" for k, s in servers.items()))
        bench = Bench(args, work, servers)
        failures = bench.failures
        for proj in bench.projects():
            log(f"\n== {proj['name']}")
            p_probe = LoadProbe()
            res = {"populate": bench.populate(proj)}
            log(f"  warm rebuilds, {args.rounds} interleaved round(s), ninja -j{args.jobs}")
            res["warm"] = bench.warm(proj)
            if proj["name"].startswith("gen"):
                res["hit_latency"] = bench.hit_latency(proj)
            res["machine_load"] = p_probe.finish()
            out["results"]["projects"][proj["name"]] = res
    except RuntimeError as e:
        failures.append(str(e))
        log(f"ERROR: {e}")
    finally:
        for s in servers.values():
            s.stop()
        out["machine_load"] = probe.finish()
        out["verification_failures"] = failures
        out["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)

    log("\n" + table(out["results"]))
    load = out["machine_load"]
    log(f"other processes kept {load['other_processes_busy_cores']} of {os.cpu_count()} cores "
        f"busy on average (loadavg before {' '.join(load['loadavg_before'])}, after "
        f"{' '.join(load['loadavg_after'])}); wall {load['wall_s']} s")
    json_path = Path(args.json)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(out, indent=2) + "\n")
    log(f"results: {json_path}")
    log(f"command: {command}")
    if failures:
        log(f"{len(failures)} verification failure(s):")
        for f in failures:
            log(f"  - {f.splitlines()[0]}")
        return 1
    log("verification: every TU of every warm round was a hit served by the remote")
    return 0


if __name__ == "__main__":
    sys.exit(main())
