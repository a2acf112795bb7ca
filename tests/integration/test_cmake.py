#!/usr/bin/env python3
"""kiln as CMAKE_CXX_COMPILER_LAUNCHER on a small generated project (8
translation units, headers, a generated header), with Ninja and with Unix
Makefiles, for each compiler: a cold build misses, a rebuild after wiping the
build directory hits 100 %, with identical objects. Also: two checkouts of the
project under one KILN_BASEDIR (build directory inside each) share results."""

import shutil
from pathlib import Path

import kilntest
from kilntest import read_bytes

N_UNITS = 8

CMAKELISTS = """\
cmake_minimum_required(VERSION 3.20)
project(kilndemo LANGUAGES CXX)
set(CMAKE_CXX_STANDARD 17)
configure_file(config.h.in ${CMAKE_BINARY_DIR}/gen/demo/config.h @ONLY)
file(GLOB UNIT_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/unit*.cpp)
add_library(demo STATIC ${UNIT_SOURCES})
target_include_directories(demo PUBLIC ${CMAKE_SOURCE_DIR}/include ${CMAKE_BINARY_DIR}/gen)
add_executable(app src/main.cpp)
target_link_libraries(app PRIVATE demo)
"""

CONFIG_H_IN = """\
#pragma once
#define DEMO_SCALE 3
#define DEMO_NAME "@PROJECT_NAME@"
"""

COMMON_H = """\
#pragma once
#include <string>
#include <vector>
#include "demo/config.h"
namespace demo {
struct Shape {
  virtual ~Shape() = default;
  virtual long area() const = 0;
};
template <typename T>
T scaled(T v) { return v * DEMO_SCALE; }
"""


def unit_source(i: int) -> str:
    return f"""\
#include "demo/common.h"
#include <algorithm>
#include <numeric>
namespace demo {{
namespace {{
struct Rect{i} : Shape {{
  long w, h;
  Rect{i}(long w_, long h_) : w(w_), h(h_) {{}}
  long area() const override {{ return w * h; }}
}};
}}  // namespace
long unit{i}() {{
  std::vector<long> v({i + 3});
  std::iota(v.begin(), v.end(), {i});
  Rect{i} r({i + 1}, 2);
  return scaled(std::accumulate(v.begin(), v.end(), 0L)) + r.area();
}}
}}  // namespace demo
"""


def expected_total() -> int:
    total = 0
    for i in range(N_UNITS):
        total += 3 * sum(range(i, i + i + 3)) + (i + 1) * 2
    return total


def write_project(root: Path) -> None:
    files = {
        "CMakeLists.txt": CMAKELISTS,
        "config.h.in": CONFIG_H_IN,
        "include/demo/common.h": COMMON_H + "".join(
            f"long unit{i}();\n" for i in range(N_UNITS)) + "}  // namespace demo\n",
        "src/main.cpp": "#include <cstdio>\n#include \"demo/common.h\"\nint main() {\n"
                        "  long t = 0;\n" + "".join(f"  t += demo::unit{i}();\n"
                                                      for i in range(N_UNITS)) +
                        "  std::printf(\"%s %ld\\n\", DEMO_NAME, t);\n  return 0;\n}\n",
    }
    for i in range(N_UNITS):
        files[f"src/unit{i}.cpp"] = unit_source(i)
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        kilntest.age_file(p)


def objects(build: Path) -> dict[str, bytes]:
    return {str(p.relative_to(build)): read_bytes(p) for p in sorted(build.rglob("*.o"))}


class CMakeBuild:
    cxx: str

    def setUp(self):
        super().setUp()
        for tool in ("cmake", "ninja", "make"):
            if not shutil.which(tool):
                kilntest.skip_or_fail(self, f"{tool} not installed")
        self.src = self.dir / "project"
        write_project(self.src)
        self.touched()

    def configure(self, src: Path, build: Path, generator: str, launcher=True,
                  build_type="RelWithDebInfo", env=None):
        args = ["cmake", "-S", src, "-B", build, "-G", generator,
                f"-DCMAKE_CXX_COMPILER={shutil.which(self.cxx)}",
                f"-DCMAKE_BUILD_TYPE={build_type}"]
        if launcher:
            args.append(f"-DCMAKE_CXX_COMPILER_LAUNCHER={kilntest.KILN}")
        self.ok(self.run_cmd(args, env=env))
        # configure_file() just wrote a header: kiln would not store results
        # that include a file this new (modified_during_compile).
        self.touched()

    def build(self, build: Path, generator: str, env=None):
        tool = ["ninja", "-C", build, "-j2"] if generator == "Ninja" else \
            ["make", "-C", build, "-j2"]
        r = self.ok(self.run_cmd(tool, env=env))
        app = self.ok(self.run_cmd([build / "app"], env=env))
        self.assertEqual(app.text, f"kilndemo {expected_total()}\n")
        return r

    def check_cold_then_warm(self, generator):
        build = self.dir / "build"
        self.configure(self.src, build, generator)
        self.ok(self.kiln("-z"))
        before = self.stats()
        self.build(build, generator)
        cold = objects(build)
        self.assertEqual(len(cold), N_UNITS + 1, sorted(cold))
        s = self.assertStatsDelta(before, {"miss": N_UNITS + 1})

        shutil.rmtree(build)
        self.configure(self.src, build, generator)
        self.ok(self.kiln("-z"))
        s = self.stats()
        self.build(build, generator)
        self.assertStatsDelta(s, {"direct_hit": N_UNITS + 1})
        self.assertEqual(objects(build), cold, "objects of the warm build differ")

        # A plain build (no launcher) in the same place gives the same objects.
        shutil.rmtree(build)
        self.configure(self.src, build, generator, launcher=False)
        self.build(build, generator)
        self.assertEqual(objects(build), cold, "objects differ from a build without kiln")

    def test_ninja(self):
        self.check_cold_then_warm("Ninja")

    def test_makefiles(self):
        self.check_cold_then_warm("Unix Makefiles")

    def test_header_change_rebuilds_only_dependents(self):
        build = self.dir / "build"
        self.configure(self.src, build, "Ninja")
        self.build(build, "Ninja")
        shutil.rmtree(build)
        # Change what one unit computes through a header only it includes.
        unit = self.src / "src" / "unit0.cpp"
        unit.write_text(unit.read_text().replace('#include "demo/common.h"',
                                                 '#include "demo/common.h"\n#include "extra.h"'))
        kilntest.age_file(unit)
        (self.src / "include" / "extra.h").write_text("#pragma once\n")
        kilntest.age_file(self.src / "include" / "extra.h")
        self.touched()
        self.configure(self.src, build, "Ninja")
        s = self.stats()
        self.build(build, "Ninja")
        self.assertStatsDelta(s, {"direct_hit": N_UNITS, "miss": 1})


class BaseDir:
    """Two checkouts under one base directory share results."""

    cxx: str

    def setUp(self):
        super().setUp()
        for tool in ("cmake", "ninja"):
            if not shutil.which(tool):
                kilntest.skip_or_fail(self, f"{tool} not installed")
        self.base = self.dir / "work"
        for c in ("checkout1", "checkout2"):
            write_project(self.base / c)
        self.touched()

    def build_checkout(self, name, build_type, env):
        src = self.base / name
        build = src / "build"
        self.ok(self.run_cmd(["cmake", "-S", src, "-B", build, "-G", "Ninja",
                              f"-DCMAKE_CXX_COMPILER={shutil.which(self.cxx)}",
                              f"-DCMAKE_BUILD_TYPE={build_type}",
                              f"-DCMAKE_CXX_COMPILER_LAUNCHER={kilntest.KILN}"], env=env))
        self.touched()  # see CMakeBuild.configure
        s = self.stats()
        self.ok(self.run_cmd(["ninja", "-C", build, "-j2"], env=env))
        app = self.ok(self.run_cmd([build / "app"]))
        self.assertEqual(app.text, f"kilndemo {expected_total()}\n")
        after = self.stats()
        return {k: after[k] - s[k] for k in ("direct_hit", "preprocessed_hit", "miss")}, \
            objects(build)

    def check_checkouts(self, build_type, extra_env=None):
        env = dict(self.env, KILN_BASEDIR=str(self.base), **(extra_env or {}))
        first, obj1 = self.build_checkout("checkout1", build_type, env)
        self.assertEqual(first, {"direct_hit": 0, "preprocessed_hit": 0, "miss": N_UNITS + 1})
        second, obj2 = self.build_checkout("checkout2", build_type, env)
        self.assertEqual(second,
                         {"direct_hit": N_UNITS + 1, "preprocessed_hit": 0, "miss": 0})
        return obj1, obj2

    def test_release_build_in_two_checkouts(self):
        obj1, obj2 = self.check_checkouts("Release")
        self.assertEqual(obj1, obj2)

    def test_header_change_in_second_checkout_after_hits(self):
        # The depfiles that hits wrote in checkout2 must name checkout2's
        # headers: Ninja then rebuilds after a header change there, and kiln
        # must not serve checkout1's results for it.
        env = dict(self.env, KILN_BASEDIR=str(self.base))
        self.check_checkouts("Release")
        header = self.base / "checkout2" / "include" / "demo" / "common.h"
        header.write_text(header.read_text().replace("v * DEMO_SCALE", "v * DEMO_SCALE + 1"))
        self.touched()  # mtime now: newer than the objects, for Ninja
        build = self.base / "checkout2" / "build"
        s = self.stats()
        self.ok(self.run_cmd(["ninja", "-C", build, "-j2"], env=env))
        after = self.stats()
        self.assertEqual(after["miss"] - s["miss"], N_UNITS + 1,
                         "units using the changed header were not all recompiled")
        app = self.ok(self.run_cmd([build / "app"]))
        self.assertEqual(app.text, f"kilndemo {expected_total() + N_UNITS}\n")

    def test_debug_build_in_two_checkouts_without_hash_dir(self):
        self.check_checkouts("Debug", {"KILN_HASHDIR": "false"})

    def test_without_base_dir_checkouts_do_not_share(self):
        # The control: absolute paths differ, so nothing is shared.
        first, _ = self.build_checkout("checkout1", "Release", self.env)
        second, _ = self.build_checkout("checkout2", "Release", self.env)
        self.assertEqual(second["direct_hit"] + second["preprocessed_hit"], 0, second)

    def test_debug_build_with_hash_dir_does_not_share(self):
        # Debug info names the working directory: hash_dir keeps them apart.
        env = dict(self.env, KILN_BASEDIR=str(self.base))
        self.build_checkout("checkout1", "Debug", env)
        second, _ = self.build_checkout("checkout2", "Debug", env)
        self.assertEqual(second["direct_hit"] + second["preprocessed_hit"], 0, second)


kilntest.instantiate(globals(), CMakeBuild)
kilntest.instantiate(globals(), BaseDir)

if __name__ == "__main__":
    kilntest.main()
