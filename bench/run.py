#!/usr/bin/env python3
"""kiln vs ccache benchmarks (Python 3.11 standard library only).

    python3 bench/run.py                      # everything, full repetitions
    python3 bench/run.py --quick --only a     # CI smoke (bench.smoke in ctest)

Benchmarks (docs/benchmarks.md explains each and records the figures):
  a  hit    one heavy translation unit (30 standard headers, g++ -std=c++20 -O2 -c),
            direct-mode hits, kiln and ccache interleaved; target kiln <= 0.5 x ccache
  b  warm   wipe build dir, re-configure (untimed), time `ninja` with a warm cache,
            googletest and a generated 40-file project; target kiln <= 0.7 x ccache.
            Each round also times `ninja <the .o targets>` (object files only, no
            archiving or linking: what a cache serves); target kiln <= 0.5 x ccache
  c  cold   build with an empty cache vs plain g++ (no launcher);
            target kiln <= 1.03 x plain (ccache reported for context)
  d  RSS    peak RSS of one hit (kiln vs ccache), recorded inside a and b;
            c records one forced miss (whole process tree, i.e. cc1plus)

Every timed loop alternates the tools (and their order) in the same loop, on the
same inputs, each tool with its own fresh cache directory and no user
configuration. Hits are verified through each tool's own statistics; the exit
status is 1 if a verification failed (a tool did not hit/miss as expected) and
never depends on timing ratios (shared machines are noisy).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (object_targets, BUILD_TYPE, LoadProbe, age_tree, compare, summarize,  # noqa: E402
                    write_gen_project)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_KILN = ROOT / "build" / "bin" / "kiln"
DEFAULT_JSON = ROOT / "bench" / "results" / "latest.json"

# "warm_objects": the warm rebuild of the object files alone (issue 8 part 8):
# archiving and linking, which no cache touches, are most of a whole warm build.
TARGETS = {"hit": 0.5, "warm": 0.7, "warm_objects": 0.5, "cold": 1.03}

HEAVY_HEADERS = [
    "algorithm", "iostream", "map", "unordered_map", "vector", "string", "regex", "thread",
    "future", "chrono", "functional", "memory", "sstream", "fstream", "variant", "optional",
    "filesystem", "random", "set", "deque", "list", "numeric", "iomanip", "complex",
    "valarray", "bitset", "atomic", "mutex", "condition_variable", "ranges",
]


def log(msg: str) -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------
# statistics helpers


# --------------------------------------------------------------------------
# machine load: CPU busy time of the whole machine minus our own process tree


# --------------------------------------------------------------------------
# process helpers


class Timed:
    def __init__(self, wall: float, cpu: float, maxrss_kb: int, rc: int) -> None:
        self.wall, self.cpu, self.maxrss_kb, self.rc = wall, cpu, maxrss_kb, rc


class Runner:
    def __init__(self, work: Path) -> None:
        self.logfile = work / "last-command.log"

    def run(self, argv: list[str], env: dict, cwd: Path | str, check: bool = True) -> Timed:
        """Runs argv with stdout/stderr to a log file; wall time around fork..wait4;
        CPU time (user + sys) and ru_maxrss of the child and its waited-for
        descendants from wait4."""
        with open(self.logfile, "wb") as out:
            t0 = time.perf_counter()
            p = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=subprocess.STDOUT)
            _, status, ru = os.wait4(p.pid, 0)
            t1 = time.perf_counter()
        p.returncode = os.waitstatus_to_exitcode(status)
        if check and p.returncode != 0:
            tail = self.logfile.read_bytes()[-4000:].decode(errors="replace")
            raise RuntimeError(f"command failed ({p.returncode}): {shlex.join(argv)}\n{tail}")
        return Timed(t1 - t0, ru.ru_utime + ru.ru_stime, ru.ru_maxrss, p.returncode)

    def output(self, argv: list[str], env: dict | None = None, cwd=None) -> str:
        return subprocess.run(argv, env=env, cwd=cwd, check=True, capture_output=True,
                              text=True).stdout


def clean_env() -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KILN_", "CCACHE_")) and k not in ("MAKEFLAGS", "CXX", "CC")}
    env["LC_ALL"] = "C"
    return env


class Tool:
    """A way to run the compiler: 'kiln', 'ccache' (as launchers) or 'plain'."""

    def __init__(self, name: str, exe: str | None, work: Path, base_env: dict,
                 extra_env: dict | None = None) -> None:
        self.name, self.exe = name, exe
        self.cache_dir = work / f"cache-{name}"
        self.env = dict(base_env)
        if name == "kiln":
            self.env["KILN_DIR"] = str(self.cache_dir)
            self.env["KILN_CONFIG"] = str(work / "no-such-kiln.toml")
        elif name == "ccache":
            self.env["CCACHE_DIR"] = str(self.cache_dir)
            self.env["CCACHE_CONFIGPATH"] = str(work / "no-such-ccache.conf")
        self.env.update(extra_env or {})

    @property
    def launcher(self) -> list[str]:
        return [self.exe] if self.exe else []

    def cmake_args(self) -> list[str]:
        if not self.exe:
            return []
        return [f"-DCMAKE_CXX_COMPILER_LAUNCHER={self.exe}",
                f"-DCMAKE_C_COMPILER_LAUNCHER={self.exe}"]

    def reset(self) -> None:
        shutil.rmtree(self.cache_dir, ignore_errors=True)

    def zero(self) -> None:
        if self.exe:
            subprocess.run([self.exe, "-z"], env=self.env, check=True, capture_output=True)

    def stats(self) -> dict:
        """{'direct': n, 'preprocessed': n, 'miss': n, 'other': {counter: n}}"""
        if self.name == "kiln":
            out = subprocess.run([self.exe, "-s", "--json"], env=self.env, check=True,
                                 capture_output=True, text=True).stdout
            c = json.loads(out)["counters"]
            ignore = {"direct_hit", "preprocessed_hit", "miss", "files", "size", "cleanups"}
            return {"direct": c.get("direct_hit", 0), "preprocessed": c.get("preprocessed_hit", 0),
                    "miss": c.get("miss", 0),
                    "other": {k: v for k, v in c.items() if v and k not in ignore}}
        if self.name == "ccache":
            out = subprocess.run([self.exe, "--print-stats"], env=self.env, check=True,
                                 capture_output=True, text=True).stdout
            c = {}
            for line in out.splitlines():
                k, _, v = line.partition("\t")
                if v.strip().lstrip("-").isdigit():
                    c[k] = int(v)
            ignore = {"direct_cache_hit", "preprocessed_cache_hit", "cache_miss",
                      "direct_cache_miss", "preprocessed_cache_miss", "files_in_cache",
                      "cache_size_kibibyte", "cleanups_performed", "stats_updated_timestamp",
                      "stats_zeroed_timestamp"}
            return {"direct": c.get("direct_cache_hit", 0),
                    "preprocessed": c.get("preprocessed_cache_hit", 0),
                    "miss": c.get("cache_miss", 0),
                    "other": {k: v for k, v in c.items()
                              if v and k not in ignore and not k.startswith(("local_", "remote_"))}}
        return {}


def env_pairs(items: list[str]) -> dict:
    out = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep:
            raise SystemExit(f"error: expected KEY=VALUE, got {item!r}")
        out[k] = v
    return out


def settle() -> None:
    # kiln does not trust a stat younger than 2 s (ctime included): let the ctimes
    # that os.utime just set age past that window.
    time.sleep(2.2)


# --------------------------------------------------------------------------
# generated inputs

HEAVY_LOCAL_HPP = """\
#pragma once
// A project header next to the source (exercises the non-system header path).
namespace heavy {
inline constexpr int k_scale = 3;
template <class T> T scaled(T x) { return x * k_scale; }
}  // namespace heavy
"""

HEAVY_BODY = """
#include "heavy_local.hpp"

int heavy_entry(int argc, char** argv) {
  std::vector<int> v(static_cast<size_t>(argc) + 64);
  std::iota(v.begin(), v.end(), 1);
  std::shuffle(v.begin(), v.end(), std::mt19937(42));
  std::sort(v.begin(), v.end());
  std::map<std::string, int> by_name;
  std::unordered_map<int, std::string> by_id;
  for (int x : v) {
    by_name[std::to_string(x)] = heavy::scaled(x);
    by_id.emplace(x, std::to_string(x));
  }
  std::regex re("[0-9]+(a|b)*");
  bool matched = std::regex_match(argc > 1 ? std::string(argv[1]) : std::string("12ab"), re);
  std::ostringstream os;
  os << std::setw(8) << std::fixed << std::setprecision(2) << std::complex<double>(1, 2).real();
  auto odd = v | std::views::filter([](int x) { return x % 2 != 0; })
               | std::views::transform([](int x) { return x * x; });
  long sum = std::accumulate(odd.begin(), odd.end(), 0L);
  std::variant<int, std::string> var = os.str();
  std::optional<long> opt = sum;
  std::set<int> s(v.begin(), v.end());
  std::deque<int> d(v.begin(), v.end());
  std::list<int> l(v.begin(), v.end());
  std::bitset<64> bits(static_cast<unsigned long long>(sum));
  std::valarray<double> va(1.5, 8);
  std::atomic<long> total{0};
  std::mutex mu;
  std::condition_variable cv;
  auto fut = std::async(std::launch::deferred, [&] { std::lock_guard g(mu); return total += sum; });
  std::function<size_t()> count = [&] { return s.size() + d.size() + l.size(); };
  auto t0 = std::chrono::steady_clock::now();
  std::filesystem::path p = std::filesystem::path("/tmp") / "heavy";
  std::ofstream unused_stream;
  auto ptr = std::make_shared<std::string>(p.string());
  std::thread th([] {});
  th.join();
  cv.notify_all();
  std::cout << by_name.size() << by_id.size() << matched << std::get<std::string>(var)
            << *opt << bits.count() << va.sum() << fut.get() << count() << *ptr
            << (std::chrono::steady_clock::now() - t0).count() << "\\n";
  return 0;
}
"""


def write_heavy(dirpath: Path) -> Path:
    src = dirpath / "src"
    src.mkdir(parents=True, exist_ok=True)
    (src / "heavy_local.hpp").write_text(HEAVY_LOCAL_HPP)
    text = "".join(f"#include <{h}>\n" for h in HEAVY_HEADERS) + HEAVY_BODY
    (src / "heavy.cc").write_text(text)
    age_tree(src)
    return src / "heavy.cc"


# --------------------------------------------------------------------------
# the benchmarks


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.runner = Runner(work)
        base = clean_env()
        self.kiln = Tool("kiln", args.kiln, work, base, env_pairs(args.kiln_env))
        self.ccache = Tool("ccache", args.ccache, work, base, env_pairs(args.ccache_env))
        self.plain = Tool("plain", None, work, base)
        self.failures: list[str] = []
        self.time_bin = shutil.which("time", path="/usr/bin")

    def fail(self, msg: str) -> None:
        log(f"  VERIFY FAILED: {msg}")
        self.failures.append(msg)

    def peak_rss(self, tool: Tool, argv: list[str], cwd: Path, n: int = 3) -> dict:
        """Peak RSS (KiB) of `tool argv`, n runs, with /usr/bin/time -f %M (max over the
        process and its waited-for children). Without /usr/bin/time, falls back to
        ru_maxrss from wait4, which is only an upper bound: the child starts as a copy
        of this Python process (~18 MiB) and the high-water mark survives exec."""
        vals = []
        for _ in range(n):
            if self.time_bin:
                out = self.work / "time.out"
                self.runner.run([self.time_bin, "-f", "%M", "-o", str(out)] + tool.launcher + argv,
                                tool.env, cwd)
                vals.append(int(out.read_text().split()[-1]))
            else:
                vals.append(self.runner.run(tool.launcher + argv, tool.env, cwd).maxrss_kb)
        return {"median_kib": statistics.median(vals), "values_kib": vals,
                "method": "/usr/bin/time -f %M" if self.time_bin
                          else "wait4 ru_maxrss (upper bound: includes python's RSS at fork)"}

    # ---- (a)
    def bench_hit(self) -> dict:
        reps = self.args.reps_hit
        log(f"\n== (a) hit: heavy TU, {len(HEAVY_HEADERS)} headers, {reps} interleaved reps each")
        d = self.work / "hit"
        src = write_heavy(d)
        tools = [self.kiln, self.ccache]
        argv = {}
        for t in tools:
            (d / f"out-{t.name}").mkdir(parents=True, exist_ok=True)
            argv[t.name] = ["g++", "-std=c++20", "-O2", "-c", str(src.relative_to(d)),
                            "-o", f"out-{t.name}/heavy.o"]
        settle()
        probe = LoadProbe()
        cold = {}
        for t in tools:
            t.reset()
            t.zero()
            cold[t.name] = self.runner.run(t.launcher + argv[t.name], t.env, d).wall
            # The cold compile must have stored a direct-mode entry: check that the
            # next call is a direct hit (up to 3 tries, 2 s apart, then report).
            for attempt in range(3):
                t.zero()
                self.runner.run(t.launcher + argv[t.name], t.env, d)
                if t.stats()["direct"] == 1:
                    break
                time.sleep(2.2)
            else:
                self.fail(f"hit: {t.name} gave no direct hit after warming: {t.stats()}")
        log("  cold compile (s): " + ", ".join(f"{k} {v:.2f}" for k, v in cold.items()))
        warm = 5 if not self.args.quick else 2
        for i in range(warm):  # page cache, dentries
            for t in tools:
                self.runner.run(t.launcher + argv[t.name], t.env, d)
        for t in tools:
            t.zero()
        times = {t.name: [] for t in tools}
        cpu = {t.name: [] for t in tools}
        for i in range(reps):
            for t in (tools if i % 2 == 0 else tools[::-1]):
                r = self.runner.run(t.launcher + argv[t.name], t.env, d)
                times[t.name].append(r.wall * 1000)
                cpu[t.name].append(r.cpu * 1000)
        verify = {}
        for t in tools:
            st = t.stats()
            verify[t.name] = st
            if st["direct"] != reps:
                self.fail(f"hit: {t.name} direct hits {st['direct']} != {reps}: {st}")
        res = {
            "command": {k: shlex.join(v) for k, v in argv.items()},
            "cwd_layout": "src/heavy.cc + src/heavy_local.hpp, objects in out-<tool>/",
            "reps": reps,
            "cold_compile_s": cold,
            "object_bytes": (d / "out-kiln" / "heavy.o").stat().st_size,
            "wall_ms": {k: summarize(v) for k, v in times.items()},
            "cpu_ms": {k: summarize(v) for k, v in cpu.items()},
            "kiln_vs_ccache": compare(times["kiln"], times["ccache"], TARGETS["hit"]),
            "kiln_vs_ccache_cpu": compare(cpu["kiln"], cpu["ccache"], None),
            "stats_after_timed_loop": verify,
        }
        res["peak_rss_one_hit"] = {t.name: self.peak_rss(t, argv[t.name], d) for t in tools}
        if self.args.hyperfine and shutil.which("hyperfine"):
            res["hyperfine"] = self.hyperfine_hit(tools, argv, d, reps)
        res["machine_load"] = probe.finish()
        self.print_hit(res)
        return res

    def hyperfine_hit(self, tools: list[Tool], argv: dict, d: Path, reps: int) -> dict:
        env = dict(self.kiln.env)
        env.update(self.ccache.env)  # both tools' variables; neither reads the other's
        out = self.work / "hyperfine.json"
        warmup = 10
        cmd = ["hyperfine", "-N", "--style", "none", "--warmup", str(warmup), "--runs", str(reps),
               "--export-json", str(out)]
        for t in tools:
            cmd += ["-n", t.name, shlex.join(t.launcher + argv[t.name])]
        for t in tools:
            t.zero()
        self.runner.run(cmd, env, d)
        data = json.loads(out.read_text())["results"]
        res = {"note": "hyperfine runs all kiln reps, then all ccache reps (not interleaved)",
               "command": shlex.join(cmd)}
        for r in data:
            res[r["command"]] = {k: r[k] * 1000 for k in ("mean", "stddev", "median", "min", "max")}
        res["ratio_of_medians"] = res["kiln"]["median"] / res["ccache"]["median"]
        for t in tools:
            st = t.stats()
            if st["direct"] != reps + warmup:
                self.fail(f"hit/hyperfine: {t.name} direct hits {st['direct']} != {reps + warmup}")
        return res

    def print_hit(self, res: dict) -> None:
        w = res["wall_ms"]
        for name in ("kiln", "ccache"):
            s = w[name]
            log(f"  {name:7s} median {s['median']:7.2f} ms  IQR [{s['q1']:.2f}, {s['q3']:.2f}]"
                f"  min/max [{s['min']:.2f}, {s['max']:.2f}]  cpu {res['cpu_ms'][name]['median']:.2f}"
                f" ms  peak RSS {res['peak_rss_one_hit'][name]['median_kib']} KiB")
        c = res["kiln_vs_ccache"]
        log(f"  kiln/ccache {c['ratio_of_medians']:.3f} (paired IQR "
            f"[{c['paired_ratio']['q1']:.3f}, {c['paired_ratio']['q3']:.3f}]), cpu "
            f"{res['kiln_vs_ccache_cpu']['ratio_of_medians']:.3f}, target <= "
            f"{c['target']} -> {'PASS' if c['pass'] else 'MISS'}")
        if "hyperfine" in res:
            h = res["hyperfine"]
            log(f"  hyperfine: kiln {h['kiln']['median']:.2f} ms, ccache "
                f"{h['ccache']['median']:.2f} ms, ratio {h['ratio_of_medians']:.3f}")

    # ---- projects for (b) and (c)
    def projects(self) -> list[dict]:
        out = []
        gt = Path(self.args.googletest)
        if (gt / "CMakeLists.txt").exists():
            out.append({"name": "googletest", "src": gt})
        else:
            log(f"  (skipping googletest: {gt} not found)")
        gen = self.work / "gen-src"
        if not gen.exists():
            write_gen_project(gen, self.args.gen_units)
            settle()
        out.append({"name": f"gen{self.args.gen_units}", "src": gen})
        return out

    def configure(self, proj: dict, tool: Tool, build: Path) -> int:
        shutil.rmtree(build, ignore_errors=True)
        self.runner.run(["cmake", "-S", str(proj["src"]), "-B", str(build), "-G", "Ninja",
                         f"-DCMAKE_BUILD_TYPE={BUILD_TYPE}", "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON"]
                        + tool.cmake_args(), tool.env, self.work)
        return len(json.loads((build / "compile_commands.json").read_text()))

    def ninja(self, tool: Tool, build: Path, targets: list[str] | None = None) -> dict:
        """Times `ninja -j<jobs> [targets]` in a configured build dir. Besides wall
        and CPU time, splits the edges from .ninja_log into compile edges
        (outputs *.o, the part a compiler cache serves) and the rest
        (archive/link steps)."""
        (build / ".ninja_log").unlink(missing_ok=True)
        r = self.runner.run(["ninja", "-C", str(build), f"-j{self.args.jobs}"] + (targets or []),
                            tool.env, self.work)
        compile_ms = other_ms = 0
        compile_span = [None, None]
        logf = build / ".ninja_log"
        if logf.exists():
            for line in logf.read_text().splitlines():
                f = line.split("\t")
                if line.startswith("#") or len(f) < 4:
                    continue
                start, end, out = int(f[0]), int(f[1]), f[3]
                if out.endswith(".o"):
                    compile_ms += end - start
                    compile_span[0] = start if compile_span[0] is None else min(compile_span[0], start)
                    compile_span[1] = end if compile_span[1] is None else max(compile_span[1], end)
                else:
                    other_ms += end - start
        return {"wall": r.wall, "cpu": r.cpu, "compile_edges_ms": compile_ms,
                "other_edges_ms": other_ms,
                "compile_span_ms": (compile_span[1] - compile_span[0]) if compile_span[0] is not None else 0}

    def compile_commands(self, tool: Tool, build: Path) -> list[tuple[list[str], Path, Path]]:
        """The exact compile commands ninja runs (`ninja -t compdb`, so with the
        -MD/-MF flags compile_commands.json leaves out), launcher stripped:
        [(argv, directory, object path)]."""
        out = self.runner.output(["ninja", "-C", str(build), "-t", "compdb"], tool.env)
        cmds = []
        for e in json.loads(out):
            if not e.get("output", "").endswith(".o") or " -c " not in e.get("command", ""):
                continue
            argv = shlex.split(e["command"])
            if tool.exe and argv[0] == tool.exe:
                argv = argv[1:]
            d = Path(e["directory"])
            cmds.append((argv, d, d / e["output"]))
        return cmds

    def largest_tu(self, tool: Tool, build: Path) -> tuple[list[str], Path]:
        """The compile command (without launcher) whose object file is largest."""
        cmds = self.compile_commands(tool, build)
        argv, d, _ = max(cmds, key=lambda c: c[2].stat().st_size if c[2].exists() else 0)
        return argv, d

    # ---- (b)
    def bench_warm(self) -> dict:
        rounds = self.args.rounds_warm
        log(f"\n== (b) warm rebuild: wipe + configure (untimed) + ninja -j{self.args.jobs}, "
            f"{rounds} interleaved rounds each")
        results = {}
        tools = [self.kiln, self.ccache]
        for proj in self.projects():
            probe = LoadProbe()
            name = proj["name"]
            builds = {t.name: self.work / f"build-{name}-{t.name}" for t in tools}
            cold, tus = {}, {}
            for t in tools:
                t.reset()
                tus[t.name] = self.configure(proj, t, builds[t.name])
                t.zero()
                cold[t.name] = self.ninja(t, builds[t.name])["wall"]
                st = t.stats()
                if st["miss"] != tus[t.name]:
                    self.fail(f"warm/{name}: {t.name} cold build misses {st['miss']} != "
                              f"{tus[t.name]} TUs: {st}")
            runs = {t.name: [] for t in tools}
            objects_runs = {t.name: [] for t in tools}
            hit_stats = {t.name: [] for t in tools}
            for i in range(rounds):
                # Each round times the whole build and then the object files
                # alone (what a cache serves), from a fresh build directory each.
                for t in (tools if i % 2 == 0 else tools[::-1]):
                    for what, into in (("all", runs), ("objects", objects_runs)):
                        self.configure(proj, t, builds[t.name])
                        targets = object_targets(builds[t.name], t.env) if what == "objects" else None
                        t.zero()
                        into[t.name].append(self.ninja(t, builds[t.name], targets))
                        st = t.stats()
                        hit_stats[t.name].append(st)
                        n = tus[t.name]
                        if st["direct"] + st["preprocessed"] != n or st["miss"] != 0:
                            self.fail(f"warm/{name} round {i} ({what}): {t.name} not 100% hits "
                                      f"({n} TUs): {st}")
            rss = {}
            for t in tools:
                argv, cwd = self.largest_tu(t, builds[t.name])
                t.zero()
                rss[t.name] = self.peak_rss(t, argv, cwd)
                rss[t.name]["tu"] = Path(argv[-1]).name
                st = t.stats()
                if st["direct"] != 3:
                    self.fail(f"warm/{name}: {t.name} RSS probe was not 3 direct hits: {st}")
            res = {"tus": tus["kiln"], "cold_populate_s": cold}
            res.update(self.build_summary(runs, "ccache", TARGETS["warm"]))
            res["objects"] = self.build_summary(objects_runs, "ccache", TARGETS["warm_objects"])
            res.update({
                "all_hits": all(s["direct"] + s["preprocessed"] == tus[k] and s["miss"] == 0
                                for k, v in hit_stats.items() for s in v),
                "all_direct_hits": all(s["direct"] == tus[k] for k, v in hit_stats.items()
                                       for s in v),
                "stats_last_round": {k: v[-1] for k, v in hit_stats.items()},
                "peak_rss_one_hit": rss,
                "machine_load": probe.finish(),
            })
            results[name] = res
            self.print_build(f"warm {name} ({res['tus']} TUs)", res, "ccache")
            self.print_build(f"warm {name}, object files only", res["objects"], "ccache")
            log(f"    100% hits: {res['all_hits']} (direct: {res['all_direct_hits']}); "
                f"peak RSS one hit ({rss['kiln']['tu']}): kiln {rss['kiln']['median_kib']} KiB, "
                f"ccache {rss['ccache']['median_kib']} KiB")
        return results

    @staticmethod
    def build_summary(runs: dict, ref: str, target: float) -> dict:
        col = lambda k, key: [r[key] for r in runs[k]]
        out = {
            "ninja_wall_s": {k: summarize(col(k, "wall")) for k in runs},
            "ninja_cpu_s": {k: summarize(col(k, "cpu")) for k in runs},
            "compile_edges_ms": {k: summarize(col(k, "compile_edges_ms")) for k in runs},
            "other_edges_ms": {k: summarize(col(k, "other_edges_ms")) for k in runs},
            "compile_span_ms": {k: summarize(col(k, "compile_span_ms")) for k in runs},
        }
        if ref == "ccache":
            # What kiln/ccache would be if every kiln hit took no time at all: kiln's
            # wall time minus the span of its compile edges, over ccache's wall time.
            rest = [r["wall"] - r["compile_span_ms"] / 1000 for r in runs["kiln"]]
            out["floor_ratio_if_kiln_hits_were_free"] = (
                statistics.median(rest) / statistics.median(col(ref, "wall")))
        others = [k for k in runs if k != ref]
        for k in others:
            out[f"{k}_vs_{ref}"] = compare(col(k, "wall"), col(ref, "wall"),
                                           target if k == "kiln" else None)
            out[f"{k}_vs_{ref}_cpu"] = compare(col(k, "cpu"), col(ref, "cpu"), None)
            if all(col(ref, "compile_edges_ms")):
                out[f"{k}_vs_{ref}_compile_edges"] = compare(
                    col(k, "compile_edges_ms"), col(ref, "compile_edges_ms"), None)
        return out

    # ---- (c)
    def bench_cold(self) -> dict:
        rounds = self.args.rounds_cold
        log(f"\n== (c) cold: empty cache vs no cache, ninja -j{self.args.jobs}, "
            f"{rounds} interleaved rounds each")
        results = {}
        tools = [self.plain, self.kiln, self.ccache]
        for proj in self.projects():
            probe = LoadProbe()
            name = proj["name"]
            runs = {t.name: [] for t in tools}
            tus = 0
            for i in range(rounds):
                order = tools[i % 3:] + tools[:i % 3]
                for t in order:
                    build = self.work / f"cold-{name}-{t.name}"
                    t.reset()
                    tus = self.configure(proj, t, build)
                    t.zero()
                    runs[t.name].append(self.ninja(t, build))
                    if t.exe:
                        st = t.stats()
                        if st["miss"] != tus or st["direct"] + st["preprocessed"] != 0:
                            self.fail(f"cold/{name} round {i}: {t.name} expected {tus} "
                                      f"misses: {st}")
            # one forced miss of the largest TU (recache): whole process tree peak
            argv, cwd = self.largest_tu(self.plain, self.work / f"cold-{name}-plain")
            rss = {}
            for t in tools:
                t.env["KILN_RECACHE"] = t.env["CCACHE_RECACHE"] = "1"
                try:
                    rss[t.name] = self.peak_rss(t, argv, cwd, n=1)
                    rss[t.name]["tu"] = Path(argv[-1]).name
                finally:
                    del t.env["KILN_RECACHE"], t.env["CCACHE_RECACHE"]
            res = {"tus": tus}
            res.update(self.build_summary(runs, "plain", TARGETS["cold"]))
            res["peak_rss_one_miss_tree"] = rss
            res["machine_load"] = probe.finish()
            results[name] = res
            self.print_build(f"cold {name} ({tus} TUs)", res, "plain")
        return results

    def print_build(self, title: str, res: dict, ref: str) -> None:
        log(f"  {title}")
        for name, s in res["ninja_wall_s"].items():
            cpu = res["ninja_cpu_s"][name]["median"]
            ce = res["compile_edges_ms"][name]["median"]
            log(f"    {name:7s} median {s['median']:7.2f} s  min/max [{s['min']:.2f}, "
                f"{s['max']:.2f}]  cpu {cpu:.2f} s  compile edges {ce:.0f} ms")
        for k in res["ninja_wall_s"]:
            if k == ref:
                continue
            cmp = res[f"{k}_vs_{ref}"]
            line = (f"    {k}/{ref} {cmp['ratio_of_medians']:.3f} (paired min/max "
                    f"[{cmp['paired_ratio']['min']:.3f}, {cmp['paired_ratio']['max']:.3f}]), "
                    f"cpu {res[f'{k}_vs_{ref}_cpu']['ratio_of_medians']:.3f}")
            if f"{k}_vs_{ref}_compile_edges" in res:
                line += f", compile edges {res[f'{k}_vs_{ref}_compile_edges']['ratio_of_medians']:.3f}"
            if "target" in cmp:
                line += f"; target <= {cmp['target']} -> {'PASS' if cmp['pass'] else 'MISS'}"
            log(line)
        if "floor_ratio_if_kiln_hits_were_free" in res:
            log(f"    floor: kiln/ccache would be {res['floor_ratio_if_kiln_hits_were_free']:.3f} "
                "if kiln's hits took no time (the rest is ninja, archiving, linking)")


# --------------------------------------------------------------------------
# summary


def table(results: dict) -> str:
    rows = [("benchmark", "kiln", "reference", "ratio", "spread of paired ratios", "cpu ratio",
             "target", "result")]

    def add(label, walls, cmp, who, ref, unit, cpu_cmp=None):
        k, r = walls[who], walls[ref]
        p = cmp["paired_ratio"]
        rows.append((label, f"{k['median']:.2f} {unit}", f"{ref} {r['median']:.2f} {unit}",
                     f"{cmp['ratio_of_medians']:.3f}",
                     f"IQR {p['q1']:.2f}-{p['q3']:.2f}, min-max {p['min']:.2f}-{p['max']:.2f}",
                     f"{cpu_cmp['ratio_of_medians']:.3f}" if cpu_cmp else "-",
                     f"<= {cmp['target']}" if "target" in cmp else "-",
                     ("PASS" if cmp["pass"] else "MISS") if "pass" in cmp else "-"))

    if "hit" in results:
        h = results["hit"]
        add(f"a hit heavy.cc ({h['reps']}x)", h["wall_ms"], h["kiln_vs_ccache"], "kiln", "ccache",
            "ms", h.get("kiln_vs_ccache_cpu"))
    for name, r in results.get("warm", {}).items():
        add(f"b warm {name} ({r['tus']} TUs)", r["ninja_wall_s"], r["kiln_vs_ccache"], "kiln",
            "ccache", "s", r["kiln_vs_ccache_cpu"])
        if "kiln_vs_ccache_compile_edges" in r:
            ce = {k: {kk: v[kk] / 1000 for kk in ("median",)} for k, v in r["compile_edges_ms"].items()}
            add("  (compile edges only)", ce, r["kiln_vs_ccache_compile_edges"], "kiln", "ccache", "s")
        if "objects" in r:
            o = r["objects"]
            add(f"b warm {name}, object files only", o["ninja_wall_s"], o["kiln_vs_ccache"], "kiln",
                "ccache", "s", o["kiln_vs_ccache_cpu"])
    for name, r in results.get("cold", {}).items():
        add(f"c cold {name} ({r['tus']} TUs)", r["ninja_wall_s"], r["kiln_vs_plain"], "kiln",
            "plain", "s", r["kiln_vs_plain_cpu"])
        add(f"  ccache cold {name} (context)", r["ninja_wall_s"], r["ccache_vs_plain"], "ccache",
            "plain", "s", r["ccache_vs_plain_cpu"])
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if "hit" in results:
        p = results["hit"]["peak_rss_one_hit"]
        lines.append(f"d peak RSS, one hit of heavy.cc: kiln {p['kiln']['median_kib']} KiB, "
                     f"ccache {p['ccache']['median_kib']} KiB "
                     f"({p['kiln']['median_kib'] / p['ccache']['median_kib']:.2f})")
    for name, r in results.get("warm", {}).items():
        p = r["peak_rss_one_hit"]
        lines.append(f"d peak RSS, one hit of {name}/{p['kiln']['tu']}: kiln "
                     f"{p['kiln']['median_kib']} KiB, ccache {p['ccache']['median_kib']} KiB "
                     f"({p['kiln']['median_kib'] / p['ccache']['median_kib']:.2f})")
    for name, r in results.get("cold", {}).items():
        p = r["peak_rss_one_miss_tree"]
        lines.append(f"d peak RSS, one miss of {name}/{p['kiln']['tu']} (process tree, i.e. "
                     f"cc1plus): kiln {p['kiln']['median_kib']}, ccache "
                     f"{p['ccache']['median_kib']}, plain {p['plain']['median_kib']} KiB")
    return "\n".join(lines)


def machine_info(args) -> dict:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break

    def first_line(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()[0]
        except (OSError, IndexError):
            return None

    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "mem_total": next((l.split(":")[1].strip() for l in
                           Path("/proc/meminfo").read_text().splitlines()
                           if l.startswith("MemTotal")), None),
        "versions": {
            "kiln": first_line([args.kiln, "-V"]),
            "ccache": first_line([args.ccache, "--version"]),
            "g++": first_line(["g++", "--version"]),
            "cmake": first_line(["cmake", "--version"]),
            "ninja": first_line(["ninja", "--version"]),
            "hyperfine": first_line(["hyperfine", "--version"]),
            "python": platform.python_version(),
        },
        "kiln_binary": {"path": args.kiln,
                        "mtime": time.strftime("%Y-%m-%dT%H:%M:%S%z",
                                               time.localtime(os.stat(args.kiln).st_mtime)),
                        "size": os.stat(args.kiln).st_size},
        "source_tree": {"commit": first_line(["git", "-C", str(ROOT), "rev-parse", "--short",
                                              "HEAD"]),
                        "modified_files": len(subprocess.run(
                            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                            capture_output=True, text=True).stdout.splitlines())},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kiln", default=str(DEFAULT_KILN), help="kiln binary (default build/bin/kiln)")
    ap.add_argument("--ccache", default="/usr/bin/ccache")
    ap.add_argument("--quick", action="store_true", help="few repetitions (CI smoke)")
    ap.add_argument("--only", default="a,b,c", help="comma list of a,b,c (d is inside a and b)")
    ap.add_argument("--reps-hit", type=int, help="(a) repetitions per tool (default 100, quick 10)")
    ap.add_argument("--rounds-warm", type=int, help="(b) rounds per tool (default 5, quick 2)")
    ap.add_argument("--rounds-cold", type=int, help="(c) rounds per tool (default 3, quick 1)")
    ap.add_argument("--jobs", type=int, default=2, help="ninja -j (default 2)")
    ap.add_argument("--gen-units", type=int, help="generated project size (default 40, quick 12)")
    ap.add_argument("--googletest", default="/usr/src/googletest")
    ap.add_argument("--kiln-env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra environment for kiln (e.g. KILN_FILE_LINK=hardlink); "
                    "default: kiln's defaults")
    ap.add_argument("--ccache-env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra environment for ccache (e.g. CCACHE_HARDLINK=1)")
    ap.add_argument("--no-hyperfine", dest="hyperfine", action="store_false",
                    help="skip the hyperfine run in (a) (skipped anyway with --quick)")
    ap.add_argument("--json", default=str(DEFAULT_JSON), help="result file (default "
                    "bench/results/latest.json)")
    ap.add_argument("--workdir", help="scratch directory (default: a new one under /tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args()

    args.kiln = str(Path(args.kiln).resolve())
    if not os.access(args.kiln, os.X_OK):
        print(f"error: kiln binary {args.kiln} is not executable", file=sys.stderr)
        return 2
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    if not only <= {"a", "b", "c", "d"}:
        print(f"error: --only takes a,b,c (got {args.only})", file=sys.stderr)
        return 2
    needed = [args.ccache, "g++"] + (["cmake", "ninja"] if only & {"b", "c"} else [])
    missing = [x for x in needed if not shutil.which(x)]
    if missing:
        print(f"skipped: not installed: {', '.join(missing)}", file=sys.stderr)
        return 77  # ctest SKIP_RETURN_CODE
    if args.quick:
        args.hyperfine = False
    args.reps_hit = args.reps_hit or (10 if args.quick else 100)
    args.rounds_warm = args.rounds_warm or (2 if args.quick else 5)
    args.rounds_cold = args.rounds_cold or (1 if args.quick else 3)
    args.gen_units = args.gen_units or (12 if args.quick else 40)

    script = Path(sys.argv[0]).resolve()
    rel = script.relative_to(ROOT) if script.is_relative_to(ROOT) else script
    command = shlex.join(["python3", str(rel)] + sys.argv[1:])  # from the repository root
    log(f"command: {command}")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="kiln-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    work = work.resolve()
    log(f"scratch: {work}")

    bench = Bench(args, work)
    out = {"command": command, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "machine": machine_info(args),
           "settings": {"build_type": BUILD_TYPE, "jobs": args.jobs, "reps_hit": args.reps_hit,
                        "rounds_warm": args.rounds_warm, "rounds_cold": args.rounds_cold,
                        "gen_units": args.gen_units, "quick": args.quick,
                        "tool_config": "defaults; KILN_CONFIG / CCACHE_CONFIGPATH point at "
                                       "nonexistent files; fresh cache dir per tool",
                        "kiln_env": env_pairs(args.kiln_env),
                        "ccache_env": env_pairs(args.ccache_env)},
           "targets": TARGETS, "results": {}}
    probe = LoadProbe()
    try:
        if "a" in only or ("d" in only and "b" not in only):
            out["results"]["hit"] = bench.bench_hit()
        if "b" in only:
            out["results"]["warm"] = bench.bench_warm()
        if "c" in only:
            out["results"]["cold"] = bench.bench_cold()
    except RuntimeError as e:
        bench.fail(str(e))
    finally:
        out["machine_load"] = probe.finish()
        out["verification_failures"] = bench.failures
        out["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)

    log("\n" + table(out["results"]))
    load = out["machine_load"]
    log(f"\nother processes kept {load['other_processes_busy_cores']} of {os.cpu_count()} cores "
        f"busy on average (loadavg before {' '.join(load['loadavg_before'])}, after "
        f"{' '.join(load['loadavg_after'])})")
    json_path = Path(args.json)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(out, indent=2) + "\n")
    log(f"results: {json_path}")
    log(f"command: {command}")
    if bench.failures:
        log(f"{len(bench.failures)} verification failure(s):")
        for f in bench.failures:
            log(f"  - {f.splitlines()[0]}")
        return 1
    log("verification: every expected hit/miss was observed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
