#!/usr/bin/env python3
"""A real project through kiln: googletest (+ googlemock and its samples) from
/usr/src/googletest, built with CMake and Ninja (-j2) and kiln as the compiler
launcher. A cold build must give the same objects as a build without kiln; a
rebuild after wiping the build directory must be 100 % direct hits with the
same objects; a build directory elsewhere, with KILN_BASEDIR at a common
parent, must hit 100 % too. Slow (a few minutes): it has its own file."""

import shutil
from pathlib import Path

import kilntest
from kilntest import read_bytes

GOOGLETEST = Path("/usr/src/googletest")


def objects(build: Path) -> dict[str, bytes]:
    return {str(p.relative_to(build)): read_bytes(p) for p in sorted(build.rglob("*.o"))}


class GoogleTest(kilntest.KilnTestCase):
    cxx = kilntest.COMPILERS[0] if kilntest.COMPILERS else "g++"

    def setUp(self):
        super().setUp()
        if not (GOOGLETEST / "CMakeLists.txt").exists():
            kilntest.skip_or_fail(self, f"{GOOGLETEST} not installed")
        for tool in ("cmake", "ninja"):
            if not shutil.which(tool):
                kilntest.skip_or_fail(self, f"{tool} not installed")

    def build(self, build: Path, launcher: bool, env=None) -> dict[str, int]:
        """Configures and builds; returns the change of hit/miss counters."""
        if build.exists():
            shutil.rmtree(build)
        args = ["cmake", "-S", GOOGLETEST, "-B", build, "-G", "Ninja",
                f"-DCMAKE_CXX_COMPILER={shutil.which(self.cxx)}", "-Dgtest_build_samples=ON",
                "-DINSTALL_GTEST=OFF"]
        if launcher:
            args.append(f"-DCMAKE_CXX_COMPILER_LAUNCHER={kilntest.KILN}")
        self.ok(self.run_cmd(args, env=env))
        self.touched()  # files configure wrote must not count as "too new"
        before = self.stats()
        self.ok(self.run_cmd(["ninja", "-C", build, "-j2"], env=env, timeout=1200))
        after = self.stats()
        # The samples link and run: the objects are usable.
        r = self.ok(self.run_cmd([build / "googletest" / "sample1_unittest"], env=env))
        self.assertIn(b"PASSED", r.out)
        return {k: after[k] - before[k] for k in after
                if after[k] != before[k] and k not in ("files", "size", "cleanups")}

    def test_googletest_cold_warm_and_other_build_dir(self):
        build = self.dir / "build"
        self.assertEqual(self.build(build, launcher=False), {})
        plain = objects(build)
        self.assertGreaterEqual(len(plain), 8, sorted(plain))
        n = len(plain)

        cold = self.build(build, launcher=True)
        self.assertEqual(cold, {"miss": n}, "cold build")
        self.assertEqual(objects(build), plain, "cold build: objects differ from plain build")

        warm = self.build(build, launcher=True)
        self.assertEqual(warm, {"direct_hit": n}, "warm build: not 100 % direct hits")
        self.assertEqual(objects(build), plain, "warm build: objects differ from plain build")

        env = dict(self.env, KILN_BASEDIR=str(self.dir))
        other = self.dir / "elsewhere" / "deeper" / "build"
        moved = self.build(other, launcher=True, env=env)
        self.assertEqual(moved, {"direct_hit": n},
                         "build directory at another path: not 100 % direct hits")
        self.assertEqual(objects(other), plain)
        s = self.stats()
        self.assertEqual(s["corrupt_entry"] + s["error_internal"] + s["error_storage_read"] +
                         s["error_storage_write"], 0, s)


if __name__ == "__main__":
    kilntest.main()
