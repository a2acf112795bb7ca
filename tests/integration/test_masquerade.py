#!/usr/bin/env python3
"""Masquerading: a directory of symlinks named g++, clang++, ... pointing at
kiln, put first in PATH, so that build systems call kiln without knowing. kiln
must find the real compiler further down PATH and never call itself, also when
the link directory (or another one like it) is in PATH twice."""

import os
import shutil

import kilntest
from kilntest import read_bytes

SOURCE = "int masq(int a) { return a + 1; }\n"


class Masquerade:
    cxx: str

    def setUp(self):
        super().setUp()
        self.write("m.cpp", SOURCE)
        self.real_dir = os.path.dirname(shutil.which(self.cxx))

    def with_path(self, *dirs):
        env = dict(self.env)
        env["PATH"] = os.pathsep.join([*map(str, dirs), env.get("PATH", "")])
        return env

    def check_masquerade(self, env):
        self.ok(self.plain(self.cxx, "-c", "m.cpp", "-o", "plain.o"))
        want = read_bytes(self.dir / "plain.o")
        before = self.stats()
        # The short timeout catches kiln calling itself in a loop.
        r = self.ok(self.run_cmd([self.cxx, "-c", "m.cpp", "-o", "m.o"], env=env, timeout=60))
        s = self.assertStatsDelta(before, {"miss": 1})
        self.assertEqual(read_bytes(self.dir / "m.o"), want)
        (self.dir / "m.o").unlink()
        r = self.ok(self.run_cmd([self.cxx, "-c", "m.cpp", "-o", "m.o"], env=env, timeout=60))
        self.assertStatsDelta(s, {"direct_hit": 1})
        self.assertEqual(read_bytes(self.dir / "m.o"), want)
        return r

    def test_symlink_first_in_path(self):
        d = self.masquerade_dir()
        self.assertEqual(shutil.which(self.cxx, path=self.with_path(d)["PATH"]),
                         str(d / self.cxx))
        self.check_masquerade(self.with_path(d))

    def test_symlink_dir_twice_in_path(self):
        d = self.masquerade_dir()
        self.check_masquerade(self.with_path(d, d, d))

    def test_two_symlink_dirs_in_path(self):
        d1 = self.masquerade_dir("kbin1")
        d2 = self.masquerade_dir("kbin2")
        self.check_masquerade(self.with_path(d1, d2, d1))

    def test_relative_symlink_and_relative_path_entry(self):
        d = self.dir / "rel"
        d.mkdir()
        (d / self.cxx).symlink_to(os.path.relpath(kilntest.KILN, d))
        self.check_masquerade(self.with_path("rel"))

    def test_copy_of_kiln_named_like_the_compiler(self):
        d = self.dir / "copy"
        d.mkdir()
        shutil.copy2(kilntest.KILN, d / self.cxx)
        self.check_masquerade(self.with_path(d))

    def test_explicit_compiler_with_masquerade_dir_in_path(self):
        # `kiln g++` must skip the link to itself too.
        d = self.masquerade_dir()
        env = self.with_path(d)
        self.ok(self.compile(self.cxx, "-c", "m.cpp", "-o", "a.o", env=env, timeout=60))
        self.ok(self.compile(self.cxx, "-c", "m.cpp", "-o", "a.o", env=env, timeout=60))
        self.assertEqual(self.stats()["direct_hit"], 1)

    def test_link_through_masquerade(self):
        # Uncacheable calls exec the real compiler (not kiln again).
        d = self.masquerade_dir()
        self.write("main.cpp", "int masq(int);\nint main() { return masq(41) - 42; }\n")
        env = self.with_path(d)
        self.ok(self.run_cmd([self.cxx, "main.cpp", "m.cpp", "-o", "prog"], env=env, timeout=60))
        self.assertEqual(self.run_cmd([self.dir / "prog"]).code, 0)
        self.assertEqual(self.stats()["called_for_link"], 1)

    def test_no_real_compiler_in_path(self):
        # Only kiln's links in PATH: a clear error, not a loop.
        d = self.masquerade_dir()
        env = dict(self.env, PATH=str(d))
        r = self.run_cmd([d / self.cxx, "-c", "m.cpp"], env=env, timeout=60)
        self.assertNotEqual(r.code, 0)
        self.assertIn(b"kiln", r.err)
        self.assertIn(self.cxx.encode(), r.err)


kilntest.instantiate(globals(), Masquerade)

if __name__ == "__main__":
    kilntest.main()
