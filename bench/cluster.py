#!/usr/bin/env python3
"""kiln's build cluster against distcc and a local build (issue 9 part 12 (a),
docs/benchmarks.md, "Build cluster"). Python 3.11 standard library.

    python3 bench/cluster.py                     # googletest and gen40, 2 rounds
    python3 bench/cluster.py --only gen40 --rounds 3

Every configuration builds the same project from an empty build directory
with `ninja -j<jobs>` after an untimed configure, interleaved round by round:

  local   plain g++
  kiln    kiln as the compiler launcher with an empty cache each round (the
          packed toolchain kept, as a client keeps it across builds, and
          the workers holding it after an untimed warm-up build) and
          KILN_DIST_SCHEDULER_URL set: every TU is a miss compiled on the
          cluster (kiln-scheduler and <workers> kiln-workers on loopback,
          fallback to local off, so nothing is compiled here)
  distcc  distcc as the launcher, distccd on loopback (plain mode: the
          preprocessor runs here, the compile there)
  kiln-churn (part 12 (c); not with --no-churn) kiln as above, while the
          cluster is scaled in and out: a quarter of the way into the build
          (by the round's kiln time) the last worker is killed (SIGKILL, its
          running jobs lost), half way a new worker with a new id, a new
          certificate and an empty toolchain cache takes its port, as behind
          a proxy. Run last in each round (the cluster is put back after it)
          and reported against kiln without the churn; any local fallback is
          a failure.

  icecream icecc as the launcher (not with --no-icecream, or without root,
          icecc or ip): a client daemon that takes no job itself (-m 0) and
          a worker daemon with the icecream scheduler, each in a network
          namespace of its own joined by a veth pair (10.231.0.1 and .2),
          since iceccd listens on every interface and broadcasts. The worker
          daemon also gets a mount namespace with its own /var/run/icecc;
          icecc reaches the client daemon through /var/run/icecc/iceccd.socket.
          The native environment is made by a warm-up compile before timing.

Everything runs on this machine's cores, so the cluster's and distcc's
overheads add to the same CPU that compiles: the ratios measure overhead,
not the speed-up of real remote machines. Target (issue 9): kiln <= 0.9 x
distcc and kiln <= 1.08 x local. The exit status is 1 if a configuration did
not build or kiln compiled a TU locally; never because of a ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))
from cluster import Cluster  # noqa: E402
from common import LoadProbe, compare, summarize, write_gen_project  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GOOGLETEST = Path("/usr/src/googletest")
TARGET_DISTCC = 0.9
TARGET_LOCAL = 1.08


def log(msg: str = "") -> None:
    print(msg, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def configure(source: Path, build: Path, launcher: str | None, env: dict, extra: list[str]):
    if build.exists():
        shutil.rmtree(build)
    args = ["cmake", "-S", str(source), "-B", str(build), "-G", "Ninja",
            f"-DCMAKE_CXX_COMPILER={shutil.which('g++')}", "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
            *extra]
    if launcher:
        args.append(f"-DCMAKE_CXX_COMPILER_LAUNCHER={launcher}")
    subprocess.run(args, env=env, check=True, capture_output=True)


class Icecream:
    """icecc-scheduler and two iceccd, in network namespaces this creates."""

    NS_CLIENT = "kiln-bench-ice-c"
    NS_WORKER = "kiln-bench-ice-w"

    def __init__(self, work: Path, slots: int):
        self.work = work
        self.procs: list[subprocess.Popen] = []
        self.up = False
        self.slots = slots

    @staticmethod
    def available() -> bool:
        return (os.geteuid() == 0 and all(shutil.which(t) for t in
                                           ("icecc", "iceccd", "icecc-scheduler", "ip", "unshare")))

    def _ip(self, *args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    def start(self) -> None:
        self.stop()  # leftovers of an interrupted run
        self.up = True
        c, w = self.NS_CLIENT, self.NS_WORKER
        self._ip("netns", "add", c)
        self._ip("netns", "add", w)
        self._ip("link", "add", "kbi-c", "type", "veth", "peer", "name", "kbi-w")
        self._ip("link", "set", "kbi-c", "netns", c)
        self._ip("link", "set", "kbi-w", "netns", w)
        for ns, dev, addr in ((c, "kbi-c", "10.231.0.1/24"), (w, "kbi-w", "10.231.0.2/24")):
            self._ip("-n", ns, "addr", "add", addr, "dev", dev)
            self._ip("-n", ns, "link", "set", "lo", "up")
            self._ip("-n", ns, "link", "set", dev, "up")
        port = "18765"
        logs = self.work / "icecream"
        logs.mkdir(exist_ok=True)
        # iceccd drops to the icecc user: it must reach and write its
        # environment directories (mkdtemp makes the work directory 0700).
        os.chmod(self.work, 0o755)
        os.chmod(logs, 0o777)

        def spawn(argv, name):
            self.procs.append(subprocess.Popen(argv, stdout=open(logs / f"{name}.out", "w"),
                                               stderr=subprocess.STDOUT))

        spawn(["ip", "netns", "exec", w, "icecc-scheduler", "-p", port], "scheduler")
        time.sleep(0.5)
        spawn(["ip", "netns", "exec", w, "unshare", "-m", "sh", "-c",
               "mount -t tmpfs tmpfs /var/run/icecc && exec iceccd -s 10.231.0.2:" + port +
               f" -m {self.slots} -N ice-worker -b {logs}/envs-w -vv"], "worker")
        spawn(["ip", "netns", "exec", c, "iceccd", "-s", "10.231.0.2:" + port, "-m", "0",
               "-N", "ice-client", "-b", str(logs / "envs-c"), "-vv"], "client")
        # Both daemons must have joined the scheduler before a compile asks.
        deadline = time.time() + 30
        while time.time() < deadline:
            text = "".join((logs / f"{n}.out").read_text(errors="replace")
                           for n in ("worker", "client"))
            if text.count("Connected to scheduler") >= 2:
                return
            time.sleep(0.2)
        raise RuntimeError(f"icecream daemons did not join their scheduler; see {logs}")

    def prefix(self) -> tuple[str, ...]:
        """Runs a command in the client's namespace: icecc talks to the
        worker daemon itself once its daemon has named it."""
        return ("ip", "netns", "exec", self.NS_CLIENT)

    def compiled_remotely(self) -> int:
        """Jobs the worker daemon compiled (its log names each one)."""
        text = (self.work / "icecream" / "worker.out").read_text(errors="replace")
        return text.count("Remote compilation completed")

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        self.procs.clear()
        for ns in (self.NS_CLIENT, self.NS_WORKER):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def clear_cache(cache: Path) -> None:
    """An empty kiln cache (every TU a miss), but the packed toolchain kept,
    as a client keeps it across builds."""
    if cache.exists():
        for entry in cache.iterdir():
            if entry.name != "toolchains":
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink()


def timed_build(build: Path, jobs: int, env: dict, prefix: tuple[str, ...] = ()) -> float:
    t0 = time.monotonic()
    r = subprocess.run([*prefix, "ninja", "-C", str(build), f"-j{jobs}"], env=env,
                       capture_output=True, text=True)
    took = time.monotonic() - t0
    if r.returncode != 0:
        raise RuntimeError(f"build failed in {build}:\n{r.stdout[-3000:]}\n{r.stderr[-2000:]}")
    return took


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", default=str(ROOT / "build" / "bin" / "kiln"))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--only", default="googletest,gen40")
    ap.add_argument("--no-churn", action="store_true", help="skip kiln-churn (part 12 (c))")
    ap.add_argument("--no-icecream", action="store_true", help="skip icecream")
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "cluster-latest.json"))
    args = ap.parse_args()
    kiln = Path(args.kiln).resolve()
    for tool in ("cmake", "ninja", "g++", "distcc", "distccd"):
        if not shutil.which(tool):
            log(f"missing: {tool}")
            return 77

    work = Path(tempfile.mkdtemp(prefix="kiln-bench-cluster-"))
    base_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("KILN_", "DISTCC_", "CCACHE_"))}
    cluster = Cluster(kiln.parent, work, heartbeat_ms=1000, missed=5)
    distccd = None
    icecream = Icecream(work, os.cpu_count() or 2) \
        if not args.no_icecream and Icecream.available() else None
    failures: list[str] = []
    results: dict = {"command": " ".join(sys.argv), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                     "settings": vars(args), "projects": {}}
    probe = LoadProbe()
    try:
        cluster.scheduler()
        cores = max(1, (os.cpu_count() or 2) // args.workers)
        ids = [f"bench-w{i}" for i in range(args.workers)]
        workers = {i: cluster.worker(i, cores=cores) for i in ids}
        cluster.wait_for(set(ids))
        port = free_port()
        distccd = subprocess.Popen(
            ["distccd", "--no-detach", "--daemon", "--listen", "127.0.0.1", "--port", str(port),
             "--allow", "127.0.0.1", "--jobs", str(os.cpu_count() or 2), "--user", "nobody",
             "--log-file", str(work / "distccd.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)

        kiln_env = dict(base_env, **cluster.client_env(KILN_DIST_FALLBACK_TO_LOCAL="false"),
                        KILN_CONFIG=str(work / "no-config.toml"))
        (work / "distcc-dir").mkdir(exist_ok=True)
        distcc_env = dict(base_env, DISTCC_HOSTS=f"127.0.0.1:{port}/{os.cpu_count() or 2}",
                          DISTCC_DIR=str(work / "distcc-dir"), DISTCC_FALLBACK="0")
        projects = {}
        if "googletest" in args.only:
            projects["googletest"] = (GOOGLETEST, ["-Dgtest_build_samples=ON", "-DINSTALL_GTEST=OFF"])
        if "gen40" in args.only:
            write_gen_project(work / "gen40", 40)
            projects["gen40"] = (work / "gen40", [])

        if icecream:
            icecream.start()
            # The native environment (icecc-create-env), made once, untimed.
            (work / "warm.cpp").write_text("int main() { return 0; }\n")
            subprocess.run([*icecream.prefix(), "icecc", shutil.which("g++"), "-c",
                            str(work / "warm.cpp"), "-o", str(work / "warm.o")],
                           env=base_env, check=True, capture_output=True)
        configs = {
            "local": (None, base_env),
            "kiln": (str(kiln), kiln_env),
            "distcc": (shutil.which("distcc"), distcc_env),
        }
        if icecream:
            configs["icecream"] = (shutil.which("icecc"), base_env)  # icecream's defaults
        for name, (source, extra) in projects.items():
            log(f"== {name}: ninja -j{args.jobs}, {args.rounds} interleaved rounds")
            # Warm, untimed: every kiln worker gets the toolchain (as
            # icecream's worker got its environment above), so the rounds
            # time builds on a running cluster, not its first upload.
            warm = work / f"build-{name}-warm"
            warm_env = dict(kiln_env, KILN_DIR=str(work / "kiln-cache"))
            configure(source, warm, str(kiln), warm_env, extra)
            timed_build(warm, args.jobs, warm_env)
            shutil.rmtree(warm, ignore_errors=True)
            times: dict[str, list[float]] = {c: [] for c in [*configs, "kiln-churn"]}
            kiln_stats = []
            churn_stats = []
            ice_seen = icecream.compiled_remotely() if icecream else 0
            for r in range(args.rounds):
                order = list(configs)
                order = order[r % len(order):] + order[:r % len(order)]
                for c in order:
                    launcher, env = configs[c]
                    build = work / f"build-{name}-{c}"
                    if c == "kiln":
                        cache = work / "kiln-cache"
                        clear_cache(cache)
                        env = dict(env, KILN_DIR=str(cache))
                    configure(source, build, launcher, env, extra)
                    try:
                        t = timed_build(build, args.jobs, env,
                                        icecream.prefix() if c == "icecream" else ())
                    except RuntimeError as e:
                        failures.append(f"{name}/{c}: {e}")
                        log(f"  round {r + 1} {c:7s} FAILED")
                        continue
                    times[c].append(t)
                    extra_note = ""
                    if c == "icecream":
                        remote = icecream.compiled_remotely()
                        extra_note = f"  compiled by the worker daemon: {remote - ice_seen}"
                        ice_seen = remote
                    if c == "kiln":
                        st = json.loads(subprocess.run([str(kiln), "-s", "--json"], env=env,
                                                       capture_output=True, text=True).stdout)
                        kiln_stats.append(st["dist"])
                        if st["dist"]["local_fallbacks"]:
                            failures.append(f"{name}: local fallbacks {st['dist']}")
                        extra_note = (f"  cluster jobs {st['dist']['succeeded']}/"
                                      f"{st['dist']['jobs']}, retries {st['dist']['retries']}")
                    log(f"  round {r + 1} {c:7s} {t:7.2f} s{extra_note}")
                if not args.no_churn and len(ids) >= 2:
                    build = work / f"build-{name}-kiln-churn"
                    env = dict(kiln_env, KILN_DIR=str(work / "kiln-cache"))
                    clear_cache(work / "kiln-cache")
                    configure(source, build, str(kiln), env, extra)
                    ref = times["kiln"][-1] if times["kiln"] else 8.0
                    victim = ids[-1]
                    events: list[str] = []
                    result: dict = {}

                    def churn():
                        t0 = time.monotonic()
                        time.sleep(0.25 * ref)
                        port = workers[victim].port
                        workers[victim].signal(signal.SIGKILL)
                        events.append(f"{time.monotonic() - t0:.1f} s: {victim} killed")
                        time.sleep(max(0.0, 0.5 * ref - (time.monotonic() - t0)))
                        if "done" in result:
                            return
                        new_id = f"{victim}-r{r + 1}"
                        result["new"] = cluster.worker(new_id, port=port, cores=cores)
                        events.append(f"{time.monotonic() - t0:.1f} s: {new_id} on port {port}")

                    th = threading.Thread(target=churn)
                    th.start()
                    try:
                        t = timed_build(build, args.jobs, env)
                    except RuntimeError as e:
                        failures.append(f"{name}/kiln-churn: {e}")
                        t = None
                    result["done"] = True
                    th.join()
                    st = json.loads(subprocess.run([str(kiln), "-s", "--json"], env=env,
                                                   capture_output=True, text=True).stdout)["dist"]
                    churn_stats.append({"events": events, "dist": st})
                    if st["local_fallbacks"]:
                        failures.append(f"{name}/kiln-churn: local fallbacks {st}")
                    if t is not None:
                        times["kiln-churn"].append(t)
                        log(f"  round {r + 1} kiln-churn {t:7.2f} s  cluster jobs {st['succeeded']}/"
                            f"{st['jobs']}, retries {st['retries']}, local fallbacks "
                            f"{st['local_fallbacks']}; {'; '.join(events)}")
                    # The cluster as it was for the next round: the
                    # newcomer leaves, the old worker comes back on its port
                    # with its toolchains (kept on disk).
                    if "new" in result:
                        result["new"].signal(signal.SIGKILL)
                    workers[victim] = cluster.worker(victim, cores=cores)
                    cluster.wait_for(set(ids))
            proj = {"times": {c: summarize(v) for c, v in times.items() if v}, "kiln_dist": kiln_stats,
                    "kiln_churn": churn_stats}
            if times["kiln"] and times["local"] and times["distcc"]:
                proj["kiln_over_local"] = compare(times["kiln"], times["local"], TARGET_LOCAL)
                proj["kiln_over_distcc"] = compare(times["kiln"], times["distcc"], TARGET_DISTCC)
                proj["distcc_over_local"] = compare(times["distcc"], times["local"], None)
                for key, target in (("kiln_over_local", TARGET_LOCAL),
                                    ("kiln_over_distcc", TARGET_DISTCC),
                                    ("distcc_over_local", None)):
                    ratio = proj[key]["ratio_of_medians"]
                    verdict = "" if target is None else (
                        f"; target <= {target}: {'PASS' if ratio <= target else 'MISS'}")
                    log(f"  {key.replace('_over_', '/')}: {ratio:.3f}{verdict}")
            if times.get("icecream") and times["kiln"] and times["local"]:
                proj["kiln_over_icecream"] = compare(times["kiln"], times["icecream"], None)
                proj["icecream_over_local"] = compare(times["icecream"], times["local"], None)
                log(f"  kiln/icecream: {proj['kiln_over_icecream']['ratio_of_medians']:.3f}; "
                    f"icecream/local: {proj['icecream_over_local']['ratio_of_medians']:.3f}")
            if times["kiln-churn"] and times["kiln"]:
                proj["churn_over_kiln"] = compare(times["kiln-churn"], times["kiln"], None)
                log(f"  kiln-churn/kiln: {proj['churn_over_kiln']['ratio_of_medians']:.3f}")
            results["projects"][name] = proj
    finally:
        if icecream:
            icecream.stop()
        if distccd:
            distccd.send_signal(signal.SIGTERM)
            try:
                distccd.wait(timeout=10)
            except subprocess.TimeoutExpired:
                distccd.kill()
        cluster.close()
    results["machine_load"] = probe.finish()
    results["failures"] = failures
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=1))
    log(f"results: {args.json}")
    shutil.rmtree(work, ignore_errors=True)
    for f in failures:
        log(f"FAILED: {f[:2000]}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
