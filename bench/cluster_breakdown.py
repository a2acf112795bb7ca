#!/usr/bin/env python3
"""Where a cluster job's time goes (docs/benchmarks.md, "Build cluster"): builds
googletest with its samples (18 TUs, default build type) through
kiln's cluster on loopback (a scheduler, two one-core workers, fallback off,
an empty cache) and sums what kiln's logs say of every job:

  client  dist_compiled: prepare_ms (the dependency scan and reading inputs),
          cluster_ms (allocation, upload, the worker, the answer), job_bytes
  worker  job_finished: setup_ms (decoding and the job's root), run_ms (the
          sandboxed compiler), total_ms (with the outputs read)

    python3 bench/cluster_breakdown.py [--kiln build/bin/kiln] [--local]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from cluster import Cluster  # noqa: E402


def busy_cpu_s() -> float:
    """CPU time the whole machine spent busy (user, nice, system, irq), from
    /proc/stat: the cluster's daemons and their compiles are not our children."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", default=str(ROOT / "build" / "bin" / "kiln"))
    ap.add_argument("--local", action="store_true",
                    help="also build it with plain g++ afterwards, for its time and CPU")
    args = ap.parse_args()
    kiln = Path(args.kiln).resolve()
    work = Path(tempfile.mkdtemp(prefix="kiln-breakdown-"))
    c = Cluster(kiln.parent, work, heartbeat_ms=1000)
    try:
        c.scheduler()
        c.worker("w0", cores=1)
        c.worker("w1", cores=1)
        c.wait_for({"w0", "w1"})
        env = dict(c.env, **c.client_env(KILN_DIST_FALLBACK_TO_LOCAL="false"),
                   KILN_DIR=str(work / "cache"), KILN_CONFIG=str(work / "none.toml"),
                   KILN_LOGFILE=str(work / "client.log"))
        b = work / "b"
        subprocess.run(["cmake", "-S", "/usr/src/googletest", "-B", str(b), "-G", "Ninja",
                        "-Dgtest_build_samples=ON", "-DINSTALL_GTEST=OFF",
                        f"-DCMAKE_CXX_COMPILER_LAUNCHER={kiln}"],
                       env=env, check=True, capture_output=True)
        busy = busy_cpu_s()
        t = time.monotonic()
        subprocess.run(["ninja", "-C", str(b), "-j2"], env=env, check=True, capture_output=True)
        print(f"build: {time.monotonic() - t:.1f} s, the machine's CPU busy "
              f"{busy_cpu_s() - busy:.1f} s")
        if args.local:
            lb = work / "local"
            subprocess.run(["cmake", "-S", "/usr/src/googletest", "-B", str(lb), "-G", "Ninja",
                            "-Dgtest_build_samples=ON", "-DINSTALL_GTEST=OFF"],
                           env=c.env, check=True, capture_output=True)
            busy = busy_cpu_s()
            t = time.monotonic()
            subprocess.run(["ninja", "-C", str(lb), "-j2"], env=c.env, check=True,
                           capture_output=True)
            print(f"local build: {time.monotonic() - t:.1f} s, the machine's CPU busy "
                  f"{busy_cpu_s() - busy:.1f} s")
        client = [json.loads(line) for line in (work / "client.log").read_text().splitlines()]
        jobs = [j for j in client if j["event"] == "dist_compiled"]
        print(f"client: {len(jobs)} jobs, prepare {sum(j['prepare_ms'] for j in jobs)} ms, "
              f"cluster {sum(j['cluster_ms'] for j in jobs)} ms, "
              f"{sum(j['job_bytes'] for j in jobs)} bytes sent")
        done = []
        for w in ("w0", "w1"):
            done += [j for j in map(json.loads, (work / f"{w}.log").read_text().splitlines())
                     if j["event"] == "job_finished"]
        print(f"workers: {len(done)} jobs, setup {sum(j['setup_ms'] for j in done)} ms, "
              f"run {sum(j['run_ms'] for j in done)} ms, "
              f"total {sum(j['total_ms'] for j in done)} ms")
    finally:
        c.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
