"""What bench/run.py and bench/remote.py share: statistics of timings, the
machine-load probe, input ageing, and the generated C++20 project ("gen<N>")
that both build. Python 3.11 standard library only."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import time
from pathlib import Path

OLD_AGE_S = 3600  # generated inputs get mtimes an hour in the past
BUILD_TYPE = "RelWithDebInfo"  # -O2 -g -DNDEBUG: realistic object sizes


def object_targets(build: Path, env: dict | None = None) -> list[str]:
    """The object files of a configured Ninja build: what a compiler cache
    serves. `ninja <these>` builds them without archiving or linking."""
    out = subprocess.run(["ninja", "-C", str(build), "-t", "targets", "all"], env=env,
                         capture_output=True, text=True, check=True).stdout
    names = {line.split(": ", 1)[0] for line in out.splitlines()}
    return sorted(n for n in names if n.endswith(".o"))


def summarize(values: list[float]) -> dict:
    vals = sorted(values)
    out = {"n": len(vals), "median": statistics.median(vals), "min": vals[0], "max": vals[-1]}
    if len(vals) >= 2:
        q = statistics.quantiles(vals, n=4, method="inclusive")
        out["q1"], out["q3"] = q[0], q[2]
    else:
        out["q1"] = out["q3"] = vals[0]
    out["values"] = values
    return out


def compare(a: list[float], b: list[float], target: float | None) -> dict:
    """a vs b: ratio of medians (primary) and the per-pair ratios (a_i / b_i of the
    same interleaved iteration), whose IQR is the spread reported."""
    sa, sb = summarize(a), summarize(b)
    paired = summarize([x / y for x, y in zip(a, b)])
    paired.pop("values")
    ratio = sa["median"] / sb["median"]
    out = {"ratio_of_medians": ratio, "paired_ratio": paired}
    if target is not None:
        out["target"] = target
        out["pass"] = ratio <= target
    return out


def cpu_busy_s() -> float:
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


class LoadProbe:
    """Measures how many cores other processes kept busy during a benchmark."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.busy0 = cpu_busy_s()
        self.own0 = own_cpu_s()
        self.loadavg0 = Path("/proc/loadavg").read_text().split()[:3]

    def finish(self) -> dict:
        wall = time.monotonic() - self.t0
        foreign = (cpu_busy_s() - self.busy0) - (own_cpu_s() - self.own0)
        return {
            "wall_s": round(wall, 1),
            "other_processes_busy_cores": round(max(foreign, 0.0) / wall, 2) if wall > 0 else 0.0,
            "loadavg_before": self.loadavg0,
            "loadavg_after": Path("/proc/loadavg").read_text().split()[:3],
        }


def age_tree(root: Path, age_s: int = OLD_AGE_S) -> None:
    """Sets every file's and directory's mtime under root (inclusive) to now - age_s."""
    t = time.time() - age_s
    for dirpath, _, files in os.walk(root):
        for f in files:
            os.utime(os.path.join(dirpath, f), (t, t))
        os.utime(dirpath, (t, t))


GEN_SNIPPETS = {
    "algorithm": "std::vector<int> w(v); std::sort(w.begin(), w.end()); acc += w.empty() ? 0 : w.front();",
    "map": "std::map<std::string, int> m; for (int x : v) m[std::to_string(x)] += x; acc += static_cast<long>(m.size());",
    "unordered_map": "std::unordered_map<int, std::string> m; for (int x : v) m.emplace(x, std::to_string(x)); acc += static_cast<long>(m.size());",
    "sstream": "std::ostringstream os; for (int x : v) os << x << ','; out += os.str();",
    "regex": "std::regex re(\"[0-9]+,\"); acc += std::regex_search(out, re) ? 1 : 0;",
    "set": "std::set<int> s(v.begin(), v.end()); acc += static_cast<long>(s.size());",
    "deque": "std::deque<int> d(v.begin(), v.end()); d.push_front(1); acc += d.front();",
    "list": "std::list<int> l(v.begin(), v.end()); l.sort(); acc += static_cast<long>(l.size());",
    "numeric": "acc += std::accumulate(v.begin(), v.end(), 0L);",
    "functional": "std::function<long(int)> f = [](int x) { return 2L * x; }; for (int x : v) acc += f(x);",
    "optional": "std::optional<int> o = v.empty() ? std::nullopt : std::optional<int>(v[0]); acc += o.value_or(0);",
    "variant": "std::variant<int, std::string> var = out; acc += std::visit([](auto& x) { if constexpr (std::is_same_v<std::decay_t<decltype(x)>, int>) return 1L; else return 2L; }, var);",
    "memory": "auto sp = std::make_shared<std::vector<int>>(v); acc += static_cast<long>(sp->size());",
    "random": "std::mt19937 g(7); std::uniform_int_distribution<int> dist(0, 9); acc += dist(g);",
    "chrono": "acc += static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::seconds(1)).count());",
    "iomanip": "{ std::ostringstream os2; os2 << std::setw(6) << std::hex << acc; out += os2.str(); }",
    "bitset": "acc += static_cast<long>(std::bitset<32>(static_cast<unsigned long>(acc)).count());",
    "complex": "acc += static_cast<long>(std::abs(std::complex<double>(3, 4)));",
    "array": "std::array<int, 4> a{1, 2, 3, 4}; acc += a[static_cast<size_t>(acc) % 4];",
    "tuple": "auto t = std::make_tuple(1, 2L, out); acc += std::get<1>(t);",
    "ranges": "for (int x : v | std::views::filter([](int y) { return y % 3 == 0; })) acc += x;",
    "string_view": "std::string_view sv(out); acc += static_cast<long>(sv.find(','));",
}


GEN_ORDER = list(GEN_SNIPPETS)


GEN_PER_UNIT = 8


def write_gen_project(root: Path, units: int) -> None:
    (root / "src").mkdir(parents=True, exist_ok=True)
    (root / "include" / "gen").mkdir(parents=True, exist_ok=True)
    (root / "include" / "gen" / "common.hpp").write_text(
        "#pragma once\n#include <string>\n#include <vector>\n\nnamespace gen {\n"
        "struct Record {\n  std::string name;\n  std::vector<int> values;\n};\n"
        "inline long weight(const Record& r) { return static_cast<long>(r.values.size()); }\n"
        "}  // namespace gen\n")
    names = []
    for i in range(units):
        n = f"unit_{i:02d}"
        names.append(n)
        (root / "include" / "gen" / f"{n}.hpp").write_text(
            f"#pragma once\n#include \"gen/common.hpp\"\n\nnamespace gen {{\n"
            f"long {n}(const Record& r, std::string& out);\n}}  // namespace gen\n")
        headers = [GEN_ORDER[(i * 3 + k) % len(GEN_ORDER)] for k in range(GEN_PER_UNIT)]
        headers = list(dict.fromkeys(headers))
        if "iomanip" in headers and "sstream" not in headers:
            headers.append("sstream")
        if "variant" in headers:
            headers.append("type_traits")
        body = "\n".join(f"  {{ {GEN_SNIPPETS[h]} }}" for h in headers if h in GEN_SNIPPETS)
        (root / "src" / f"{n}.cpp").write_text(
            f"#include \"gen/{n}.hpp\"\n\n"
            + "".join(f"#include <{h}>\n" for h in headers)
            + f"\nnamespace gen {{\n\nlong {n}(const Record& r, std::string& out) {{\n"
            f"  const std::vector<int>& v = r.values;\n  long acc = weight(r) + {i};\n"
            f"{body}\n  return acc;\n}}\n\n}}  // namespace gen\n")
    (root / "src" / "main.cpp").write_text(
        "#include <iostream>\n"
        + "".join(f"#include \"gen/{n}.hpp\"\n" for n in names)
        + "\nint main() {\n  gen::Record r{\"r\", {1, 2, 3, 4, 5, 6}};\n  std::string out;\n"
        "  long total = 0;\n"
        + "".join(f"  total += gen::{n}(r, out);\n" for n in names)
        + "  std::cout << total << ' ' << out.size() << '\\n';\n}\n")
    (root / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.20)\nproject(kiln_bench_gen CXX)\n"
        "set(CMAKE_CXX_STANDARD 20)\nset(CMAKE_CXX_STANDARD_REQUIRED ON)\n"
        "add_library(gen STATIC\n" + "".join(f"  src/{n}.cpp\n" for n in names) + ")\n"
        "target_include_directories(gen PUBLIC include)\n"
        "add_executable(gen_app src/main.cpp)\ntarget_link_libraries(gen_app PRIVATE gen)\n")
    age_tree(root)
