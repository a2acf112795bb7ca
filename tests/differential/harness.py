#!/usr/bin/env python3
"""Differential harness: every compilation through kiln (or ccache) must give
exactly what the plain compiler gives now.

A *scenario* is a small project in a workspace (one or two checkouts), a set of
translation units (compiler, arguments, working directory), an environment and
a sequence of *stages*. Each stage changes something (a header, a flag, the
environment, the working directory ...) and is followed by a *step*: every TU
is compiled twice, once plainly and once through the peer (kiln, or ccache
with --peer ccache), and everything is compared: exit status, stdout, stderr,
and every file the compilation created (object, depfile, .dwo, .gcno ...).

How the two compilations are kept apart (sound for every flag): both run the
*same* command in the *same* working directory with the *same* output names,
one after the other: first the plain compiler, whose outputs (found by
scanning the workspace before and after) are read and removed, then the peer.
So nothing that depends on the output name, the working directory or the
paths (-g, -gsplit-dwarf, --coverage, depfile targets) can differ, and a
missing or extra output shows. Only two things are normalised: the per-compile
stamp of a .gcno (bytes 8..12, and the same stamp where the object embeds it),
and, in base_dir scenarios, paths inside depfiles (resolved to real paths).

With base_dir the peer runs the compiler with absolute paths under the
workspace rewritten relative to the working directory (docs/direct-mode.md), so
the reference is the plain compiler given that rewritten command line; a
rewritten path that would name another file (a symlink followed by `..`) is
kept absolute in the reference, so a peer that compiles the other file fails.

Configurations: the mode is direct (the default configuration), depend (-MD
added to every TU) or preprocessor (KILN_DIRECT=false; ccache: CCACHE_DEPEND,
CCACHE_NODIRECT); the storage is local, or remote: a redis-server on a free
loopback port as a level (KILN_REDIS_ENDPOINT; ccache: CCACHE_REMOTE_STORAGE)
and an empty local cache at every step, so that hits come from Redis. The peer
runs with its own cache directory and no configuration file. The kiln binary is
copied at start, so a rebuild during a run changes nothing.

Timing: kiln does not store a result whose inputs changed within 50 ms of its
start, and trusts a file's stat only once it is 2 s old. Files written here get
an mtime 600 s in the past and every compile waits until 0.15 s after the last
write (ctime cannot be set back). Projects are created, then left alone for
2.1 s before their first build, so unchanged files are "old" as in a real
checkout and only the files a stage changes are new.

Usage (see --help):
    harness.py --kiln build/bin/kiln                 # the mutation table
    harness.py --kiln build/bin/kiln --random --seed 1 --seconds 150
    harness.py --kiln build/bin/kiln --self-check    # KILN_DISABLE=1: must all pass
    harness.py --kiln build/bin/kiln --peer ccache   # the same against ccache
    harness.py --kiln build/bin/kiln --table         # both peers, markdown table
Every failure prints a shell reproduction (checked to reproduce, reduced to the
failing TU when that still fails). The last line is "N passed, N failed"
(counting steps); the exit status is 1 if any step failed.
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "tests" / "integration"))
sys.path.insert(0, str(HERE))  # the harness's modules, beside this file
import kilntest  # noqa: E402
import remote_servers  # noqa: E402
from jobs import init_worker, random_batches, run_jobs, table_jobs  # noqa: E402
from mutations import MUTATIONS  # noqa: E402
from peers import Peer, have_redis, peer_for, storages_of  # noqa: E402
from projects import available_projects  # noqa: E402
from report import describe, markdown_table  # noqa: E402
from runner import Result  # noqa: E402

DEFAULT_CCACHE = "/usr/bin/ccache"


# --- the command line -------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kiln", default=os.environ.get("KILN_BINARY", str(REPO / "build/bin/kiln")),
                   help="the kiln binary (default: build/bin/kiln)")
    p.add_argument("--ccache", default=DEFAULT_CCACHE, help="the ccache binary for --peer ccache")
    p.add_argument("--peer", choices=["kiln", "ccache"], default="kiln",
                   help="what runs against the plain compiler")
    p.add_argument("--self-check", action="store_true",
                   help="run the peer disabled (KILN_DISABLE=1, CCACHE_DISABLE=1): every step "
                        "must pass, else the harness is wrong")
    p.add_argument("--table", action="store_true",
                   help="run the mutation table for kiln and ccache; print a markdown table")
    p.add_argument("--random", action="store_true", help="random scenarios instead of the table")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--count", type=int, default=0,
                   help="random scenarios (0: until --seconds, or 20 without --seconds)")
    p.add_argument("--index", type=int, default=None, help="run only this random scenario")
    p.add_argument("--seconds", type=float, default=0, help="stop starting scenarios after this")
    p.add_argument("--mutations", default="", help="regular expression on mutation names")
    p.add_argument("--projects", default=",".join(available_projects()),
                   help="gen (generated) and gtest (if /usr/src/googletest is installed)")
    p.add_argument("--configs", default="all",
                   help="mode/storage pairs to run the generated project in, e.g. "
                        "direct/local,depend/remote; 'all': every mode (direct, depend, "
                        "preprocessor) with every storage (local, remote)")
    p.add_argument("--gtest-configs", default="direct/local,preprocessor/remote",
                   help="the same for the (slower) googletest project")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 2,
                   help="scenarios run in parallel (default: one per core)")
    p.add_argument("--no-verify", action="store_true",
                   help="do not run the reproductions to check and reduce them")
    p.add_argument("--max-verify", type=int, default=12,
                   help="check and reduce the reproductions of at most this many failing "
                        "scenarios (the others print the full, unchecked script)")
    p.add_argument("--workdir", default=None, help="keep everything here (default: a temp dir)")
    p.add_argument("--list", action="store_true", help="list the mutations")
    args = p.parse_args(argv)
    if args.random and not (args.count or args.seconds):
        args.count = 20
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.list:
        for m in MUTATIONS.values():
            print(f"{m.name:28} [{', '.join(m.projects)}] {m.doc}")
        return 0
    tools = ["kiln", "ccache"] if args.table else [args.peer]
    root = Path(args.workdir or tempfile.mkdtemp(prefix="kiln-differential-"))
    root.mkdir(parents=True, exist_ok=True)
    peers = [peer_for(args, t, root) for t in tools]
    if kilntest.servers_required():
        # CI must not pass with configurations silently left out.
        if not have_redis():
            sys.exit("redis-server is not installed (KILN_REQUIRE_SERVERS is set)")
        if "gtest" not in available_projects():
            sys.exit("googletest's sources are not installed (KILN_REQUIRE_SERVERS is set)")
    if not have_redis():
        print("redis-server is not installed: remote configurations are skipped")
    redis = None
    if "remote" in storages_of(args):
        redis = remote_servers.RedisServer(root / "redis")
    start = time.time()
    deadline = start + args.seconds if args.seconds else 0.0
    counter = multiprocessing.Value("i", 0)
    budget = multiprocessing.Value("i", args.max_verify)
    results: list[Result] = []
    def report(r: Result) -> None:
        if not r.error.startswith("skipped"):
            print(describe(r, with_repro=not args.table), flush=True)

    try:
        with multiprocessing.get_context("fork").Pool(
                args.jobs, init_worker, (counter, budget, redis.port if redis else None)) as pool:
            if args.random:
                for batch in random_batches(args, peers[0], root, deadline):
                    results += run_jobs(batch, pool, report)
            else:
                jobs = table_jobs(args, peers, root)
                for job in jobs:
                    job.deadline = deadline
                results = run_jobs(jobs, pool, report)
    finally:
        if redis:
            redis.stop()
        if not args.workdir:
            shutil.rmtree(root, ignore_errors=True)
    return finish(args, peers, results, time.time() - start)


def finish(args: argparse.Namespace, peers: list[Peer], results: list[Result],
           seconds: float) -> int:
    ran = [r for r in results if not r.error.startswith("skipped")]
    failed = sum(len(r.failed_steps) + (1 if r.error else 0) for r in ran)
    passed = sum(r.steps for r in ran) - sum(len(r.failed_steps) for r in ran)
    if args.table:
        print(f"\n<!-- python3 tests/differential/harness.py --table, "
              f"{datetime.date.today().isoformat()}, {seconds:.0f} s -->")
        print(markdown_table(ran, peers))
    bad = sorted({r.name + f" [{r.cfg}] {r.peer}" for r in ran if r.failures or r.error})
    print(f"\n{len(ran)} scenarios in {seconds:.0f} s; failing scenarios: {len(bad)}")
    for b in bad:
        print(f"  {b}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
