#!/usr/bin/env python3
"""Basic caching: a miss then a hit, objects identical to the plain compiler's,
compiler output replayed byte for byte, failing compiles passed through and not
cached."""

import kilntest
from kilntest import read_bytes

SOURCE = """\
#include "util.h"
int twice(int x) { return util_add(x, x); }
int main() { return twice(21) == 42 ? 0 : 1; }
"""

HEADER = """\
#pragma once
inline int util_add(int a, int b) { return a + b; }
"""

WARNING_SOURCE = """\
#include <cstdio>
int f(int a) {
  int unused_variable;
  return a * 2;
}
#warning "this is a warning from the preprocessor"
"""

ERROR_SOURCE = """\
int f() { return undeclared_name + 1; }
"""


class Basic:
    cxx: str

    def setUp(self):
        super().setUp()
        self.write("a.cpp", SOURCE)
        self.write("util.h", HEADER)

    def test_miss_then_hit(self):
        before = self.stats()
        self.ok(self.compile(self.cxx, "-c", "a.cpp", "-o", "a.o"))
        s = self.assertStatsDelta(before, {"miss": 1})
        miss_obj = read_bytes(self.dir / "a.o")
        self.assertGreater(s["files"], 0, "nothing stored")
        (self.dir / "a.o").unlink()

        self.ok(self.compile(self.cxx, "-c", "a.cpp", "-o", "a.o"))
        self.assertStatsDelta(s, {"direct_hit": 1})
        self.assertEqual(read_bytes(self.dir / "a.o"), miss_obj)

    def test_object_identical_to_plain_compile(self):
        self.ok(self.plain(self.cxx, "-c", "a.cpp", "-O2", "-o", "plain.o"))
        plain = read_bytes(self.dir / "plain.o")
        self.ok(self.compile(self.cxx, "-c", "a.cpp", "-O2", "-o", "miss.o"))
        self.ok(self.compile(self.cxx, "-c", "a.cpp", "-O2", "-o", "hit.o"))
        s = self.stats()
        self.assertEqual((s["miss"], s["direct_hit"]), (1, 1))
        self.assertEqual(read_bytes(self.dir / "miss.o"), plain, "object of a miss differs")
        self.assertEqual(read_bytes(self.dir / "hit.o"), plain, "object of a hit differs")

    def test_default_output_name(self):
        # No -o: the object is a.o in the working directory, also on a hit.
        sub = self.dir / "out"
        sub.mkdir()
        self.ok(self.plain(self.cxx, "-c", "../a.cpp", cwd=sub))
        plain = read_bytes(sub / "a.o")
        (sub / "a.o").unlink()
        self.ok(self.compile(self.cxx, "-c", "../a.cpp", cwd=sub))
        self.assertEqual(read_bytes(sub / "a.o"), plain)
        (sub / "a.o").unlink()
        self.ok(self.compile(self.cxx, "-c", "../a.cpp", cwd=sub))
        self.assertEqual(read_bytes(sub / "a.o"), plain)
        self.assertEqual(self.stats()["direct_hit"], 1)

    def test_stderr_replayed_byte_for_byte(self):
        self.write("w.cpp", WARNING_SOURCE)
        args = ["-c", "w.cpp", "-Wall", "-o", "w.o"]
        plain = self.ok(self.plain(self.cxx, *args))
        self.assertIn(b"warning", plain.err, "test source does not warn")
        miss = self.ok(self.compile(self.cxx, *args))
        hit = self.ok(self.compile(self.cxx, *args))
        s = self.stats()
        self.assertEqual((s["miss"], s["direct_hit"]), (1, 1))
        self.assertEqual(miss.err, plain.err, "stderr of a miss differs from the compiler's")
        self.assertEqual(hit.err, plain.err, "stderr of a hit differs from the compiler's")
        self.assertEqual(hit.out, plain.out)

    def test_preprocessed_hit_replays_stderr(self):
        self.write("w.cpp", WARNING_SOURCE)
        self.env["KILN_DIRECT"] = "false"
        args = ["-c", "w.cpp", "-Wall", "-o", "w.o"]
        plain = self.ok(self.plain(self.cxx, *args))
        self.ok(self.compile(self.cxx, *args))
        hit = self.ok(self.compile(self.cxx, *args))
        self.assertEqual(self.stats()["preprocessed_hit"], 1)
        self.assertEqual(hit.err, plain.err)

    def test_failing_compile_passed_through_and_not_cached(self):
        self.write("bad.cpp", ERROR_SOURCE)
        args = ["-c", "bad.cpp", "-o", "bad.o"]
        plain = self.plain(self.cxx, *args)
        self.assertNotEqual(plain.code, 0)
        self.assertFalse((self.dir / "bad.o").exists())
        before = self.stats()
        for attempt in range(2):
            r = self.compile(self.cxx, *args)
            self.assertEqual(r.code, plain.code, r.describe())
            self.assertEqual(r.err, plain.err, f"attempt {attempt}")
            self.assertEqual(r.out, plain.out)
            self.assertFalse((self.dir / "bad.o").exists(), "an object appeared")
        after = self.assertStatsDelta(before, {"compile_failed": 2})
        self.assertEqual(after["files"], 0)
        self.assertEqual(self.entry_files(), [], "a failed compile left entries")


class BasicGcc(kilntest.KilnTestCase):
    """What only gcc can show: output on stdout (an assembler listing)."""

    def setUp(self):
        super().setUp()
        if "g++" not in kilntest.COMPILERS:
            self.skipTest("g++ not installed")

    def test_stdout_replayed_byte_for_byte(self):
        self.write("w.cpp", WARNING_SOURCE)
        args = ["-c", "w.cpp", "-Wall", "-Wa,-adhln", "-o", "w.o"]
        plain = self.ok(self.plain("g++", *args))
        self.assertIn(b"_Z1fi", plain.out, "expected an assembler listing on stdout")
        miss = self.ok(self.compile("g++", *args))
        hit = self.ok(self.compile("g++", *args))
        self.assertEqual(self.stats()["direct_hit"], 1)
        self.assertEqual(miss.out, plain.out)
        self.assertEqual(hit.out, plain.out)
        self.assertEqual(hit.err, plain.err)


kilntest.instantiate(globals(), Basic)

if __name__ == "__main__":
    kilntest.main()
