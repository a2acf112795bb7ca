#!/usr/bin/env python3
"""A remote server killed (SIGKILL) in the middle of a CMake + Ninja build
that uses kiln as CMAKE_CXX_COMPILER_LAUNCHER with a Redis or S3 level: the
build still succeeds, every object is byte-identical to a build without
kiln, the program runs, the objects compiled before the kill reached the
remote, and the error counters of kiln -s --json are non-zero."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import kilntest
from remote_servers import Machine, RemoteTestCase, find_program

N_UNITS = 20
KILL_AFTER = 4  # objects

CMAKELISTS = """\
cmake_minimum_required(VERSION 3.20)
project(remotebuild LANGUAGES CXX)
set(CMAKE_CXX_STANDARD 17)
file(GLOB UNITS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/unit*.cpp)
add_executable(app src/main.cpp ${UNITS})
target_include_directories(app PRIVATE ${CMAKE_SOURCE_DIR}/include)
"""

UNIT = """\
#include "rb/common.hpp"
#include <algorithm>
#include <map>
#include <sstream>
long unit{i}() {{
  std::map<int, std::string> m;
  for (int k = 0; k < {n}; ++k) m[k] = std::to_string(k * {i});
  std::ostringstream os;
  for (auto& [k, v] : m) os << v;
  std::string s = os.str();
  return static_cast<long>(std::count(s.begin(), s.end(), '1')) + rb::base({i});
}}
"""


def expected_total() -> int:
    total = 0
    for i in range(N_UNITS):
        s = "".join(str(k * i) for k in range(i + 5))
        total += s.count("1") + 10 * i
    return total


def write_project(root: Path) -> None:
    files = {
        "CMakeLists.txt": CMAKELISTS,
        "include/rb/common.hpp": "#pragma once\n#include <string>\n#include <vector>\n"
                                 "namespace rb { inline long base(long i) { return 10 * i; } }\n"
                                 + "".join(f"long unit{i}();\n" for i in range(N_UNITS)),
        "src/main.cpp": "#include <cstdio>\n#include \"rb/common.hpp\"\nint main() {\n"
                        "  long t = 0;\n" + "".join(f"  t += unit{i}();\n" for i in range(N_UNITS))
                        + "  std::printf(\"%ld\\n\", t);\n}\n",
    }
    for i in range(N_UNITS):
        files[f"src/unit{i:02d}.cpp"] = UNIT.format(i=i, n=i + 5)
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        kilntest.age_file(p)


def objects(build: Path) -> dict[str, bytes]:
    return {str(p.relative_to(build)): kilntest.read_bytes(p)
            for p in sorted(build.rglob("*.o"))}


class KilledMidBuild(RemoteTestCase):
    """One project and one reference build (no kiln) for the class; each
    test builds it in its own build directory with its own cache."""

    project: Path
    reference: dict[str, bytes]
    _tmp: Path

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        for tool in ("cmake", "ninja", "g++"):
            if not shutil.which(tool):
                raise kilntest.missing_tool(f"{tool} not installed")
        cls._tmp = Path(tempfile.mkdtemp(prefix="kiln-it-KilledMidBuild-"))
        cls.project = cls._tmp / "project"
        write_project(cls.project)
        time.sleep(0.2)
        ref = cls._tmp / "build-ref"
        env = kilntest.clean_env()
        cls._cmake(ref, None, env)
        subprocess.run(["ninja", "-C", str(ref), "-j2"], check=True, env=env,
                       stdout=subprocess.DEVNULL)
        cls.reference = objects(ref)
        if len(cls.reference) != N_UNITS + 1:
            raise AssertionError(f"reference build: {sorted(cls.reference)}")

    @classmethod
    def tearDownClass(cls) -> None:
        shutil.rmtree(cls._tmp, ignore_errors=True)
        super().tearDownClass()

    @classmethod
    def _cmake(cls, build: Path, launcher: str | None, env: dict) -> None:
        args = ["cmake", "-S", str(cls.project), "-B", str(build), "-G", "Ninja",
                f"-DCMAKE_CXX_COMPILER={shutil.which('g++')}", "-DCMAKE_BUILD_TYPE=Release"]
        if launcher:
            args.append(f"-DCMAKE_CXX_COMPILER_LAUNCHER={launcher}")
        subprocess.run(args, check=True, env=env, stdout=subprocess.DEVNULL)

    def build_and_kill(self, m: Machine, kill, remote_count) -> tuple[int, float]:
        """Builds with kiln on machine m, kills the server once KILL_AFTER
        objects exist; returns (entries on the remote just before the kill,
        seconds the build took)."""
        build = self._tmp / f"build-{self.id().rsplit('.', 1)[-1]}"
        shutil.rmtree(build, ignore_errors=True)
        self.addCleanup(shutil.rmtree, build, ignore_errors=True)
        self._cmake(build, kilntest.KILN, m.env)
        # Statistics and remote contents of the build alone, not of CMake's
        # compiler checks.
        self.ok(self.kiln("-z", env=m.env))
        start = time.monotonic()
        ninja = subprocess.Popen(["ninja", "-C", str(build), "-j1"], env=m.env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        stored_before_kill = -1
        try:
            while ninja.poll() is None:
                if len(list(build.rglob("*.o"))) >= KILL_AFTER:
                    stored_before_kill = remote_count()
                    kill()
                    break
                time.sleep(0.02)
            out, _ = ninja.communicate(timeout=280)
        finally:
            if ninja.poll() is None:
                ninja.kill()
                ninja.wait()
        took = time.monotonic() - start
        text = out.decode(errors="replace")
        self.assertEqual(ninja.returncode, 0, text)
        self.assertGreaterEqual(stored_before_kill, 0, "the build ended before the kill:\n" + text)
        got = objects(build)
        self.assertEqual(sorted(got), sorted(self.reference))
        for name, data in got.items():
            self.assertEqual(data, self.reference[name], f"{name} differs from the reference")
        app = subprocess.run([str(build / "app")], capture_output=True, text=True)
        self.assertEqual(app.stdout, f"{expected_total()}\n")
        # The warning about the dead server reached the build's output.
        self.assertIn("kiln: warning: storage", text)
        return stored_before_kill, took

    def check_counters(self, m: Machine, level: str, stored_before_kill: int) -> None:
        s = self.stats_json(env=m.env)
        c, lv = s["counters"], s["levels"]
        self.assertEqual(c["miss"], N_UNITS + 1, c)
        self.assertGreater(c["error_storage_read"] + c["error_storage_write"], 0, c)
        self.assertGreater(lv.get(f"{level}_read_error", 0) + lv.get(f"{level}_write_error", 0),
                           0, lv)
        # Before the kill, results and manifests went to the remote.
        self.assertGreaterEqual(stored_before_kill, 2)
        self.assertGreaterEqual(lv.get(f"{level}_write", 0), 2, lv)
        self.assertLess(lv.get(f"{level}_write", 0), 2 * (N_UNITS + 1), lv)
        self.assertEqual(lv.get("local_write"), 2 * (N_UNITS + 1), lv)
        # Every object is in the local cache: a rebuild from it is all hits.
        self.assertEqual(len(self.entry_files(cache=m.cache, kind="R")), N_UNITS + 1)

    def test_redis_killed(self):
        if not find_program("redis-server"):
            kilntest.skip_or_fail(self, "redis-server not installed")
        redis = self.start_redis()
        m = self.machine("a", storage="local,redis", **self.redis_env(redis.url()))
        stored, took = self.build_and_kill(m, redis.kill, redis.dbsize)
        self.assertFalse(redis.running)
        self.check_counters(m, "redis", stored)

    def test_s3_killed(self):
        if not find_program("moto_server"):
            kilntest.skip_or_fail(self, "moto_server not installed")
        moto = self.start_moto()  # its own: it is killed
        moto.create_bucket("kiln-build")
        m = self.machine("a", storage="local,s3", **self.s3_env(moto.endpoint, "kiln-build"))
        stored, took = self.build_and_kill(m, moto.kill,
                                           lambda: len(moto.objects("kiln-build")))
        self.assertFalse(moto.running)
        self.check_counters(m, "s3", stored)


if __name__ == "__main__":
    kilntest.main()
