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

    def test_c_source(self):
        cc = {"g++": "gcc", "clang++": "clang"}.get(self.cxx, self.cxx)
        self.write("c.c", '#include "util_c.h"\nint c_twice(int x) { return ADD(x, x); }\n')
        self.write("util_c.h", "#define ADD(a, b) ((a) + (b))\n")
        self.ok(self.plain(cc, "-c", "c.c", "-std=c11", "-o", "plain.o"))
        self.ok(self.compile(cc, "-c", "c.c", "-std=c11", "-o", "c.o"))
        self.ok(self.compile(cc, "-c", "c.c", "-std=c11", "-o", "c2.o"))
        s = self.stats()
        self.assertEqual((s["miss"], s["direct_hit"]), (1, 1))
        self.assertEqual(read_bytes(self.dir / "c.o"), read_bytes(self.dir / "plain.o"))
        self.assertEqual(read_bytes(self.dir / "c2.o"), read_bytes(self.dir / "plain.o"))

    def test_same_source_other_compiler_is_a_miss(self):
        # The compiler is part of the key: another compiler's result for the
        # same command line is never served.
        other = [c for c in kilntest.COMPILERS if c != self.cxx]
        if not other:
            kilntest.skip_or_fail(self, "only one compiler installed")
        self.ok(self.compile(self.cxx, "-c", "a.cpp", "-o", "a.o"))
        before = self.stats()
        self.ok(self.compile(other[0], "-c", "a.cpp", "-o", "b.o"))
        self.assertStatsDelta(before, {"miss": 1})
        self.ok(self.plain(other[0], "-c", "a.cpp", "-o", "plain.o"))
        self.assertEqual(read_bytes(self.dir / "b.o"), read_bytes(self.dir / "plain.o"))

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
            kilntest.skip_or_fail(self, "g++ not installed")

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


class FileLink:
    """file_link = hardlink / reflink: objects stored beside the entry and
    linked or cloned into place on a hit."""

    cxx: str

    def setUp(self):
        super().setUp()
        self.write("a.cpp", SOURCE)
        self.write("util.h", HEADER)

    def check_hit(self, mode, args, out):
        self.env["KILN_FILE_LINK"] = mode
        self.ok(self.plain(self.cxx, *args[:-1], "plain.out"))
        want = read_bytes(self.dir / "plain.out")
        self.ok(self.compile(self.cxx, *args))
        self.assertEqual(read_bytes(self.dir / out), want)
        (self.dir / out).unlink()
        before = self.stats()
        self.ok(self.compile(self.cxx, *args))
        self.assertStatsDelta(before, {"direct_hit": 1})
        self.assertEqual(read_bytes(self.dir / out), want)
        self.assertTrue(any(p.name.endswith(".o") for p in self.cache_files()),
                        "no object stored beside the entry")

    def test_hardlink_hit(self):
        self.check_hit("hardlink", ["-c", "a.cpp", "-o", "a.o"], "a.o")
        self.assertGreaterEqual((self.dir / "a.o").stat().st_nlink, 2, "not hard-linked")

    def test_reflink_hit(self):
        self.check_hit("reflink", ["-c", "a.cpp", "-o", "a.o"], "a.o")
        self.assertEqual((self.dir / "a.o").stat().st_nlink, 1)

    def check_output_rewritten_after_hardlinked_hit(self, args, out):
        # hit (output hard-linked to the cache), then a miss for changed
        # source that writes the same output path: the compiler must not
        # write through the link into the cache (g++ -S writes in place).
        self.env["KILN_FILE_LINK"] = "hardlink"
        self.ok(self.plain(self.cxx, *args))
        v1 = read_bytes(self.dir / out)
        (self.dir / out).unlink()
        self.ok(self.compile(self.cxx, *args))
        (self.dir / out).unlink()
        self.ok(self.compile(self.cxx, *args))  # hit: hard link
        self.write("a.cpp", SOURCE.replace("21) == 42", "22) == 44"))
        self.ok(self.compile(self.cxx, *args))  # miss: rewrites `out`
        self.assertNotEqual(read_bytes(self.dir / out), v1)
        self.write("a.cpp", SOURCE, age=90)
        before = self.stats()
        self.ok(self.compile(self.cxx, *args))  # hit of the first result
        self.assertStatsDelta(before, {"direct_hit": 1})
        self.assertEqual(read_bytes(self.dir / out), v1, "the cached copy was changed")

    def test_hardlink_output_rewritten_by_later_miss_object(self):
        self.check_output_rewritten_after_hardlinked_hit(["-c", "a.cpp", "-o", "a.o"], "a.o")

    def test_hardlink_output_rewritten_by_later_miss_assembly(self):
        self.check_output_rewritten_after_hardlinked_hit(["-S", "a.cpp", "-o", "a.s"], "a.s")

    def test_hardlink_object_grown_in_place_is_not_served(self):
        # Documented limit: kiln checks the size of a hard-linked object.
        self.env["KILN_FILE_LINK"] = "hardlink"
        self.ok(self.plain(self.cxx, "-c", "a.cpp", "-o", "a.o"))
        want = read_bytes(self.dir / "a.o")
        self.ok(self.compile(self.cxx, "-c", "a.cpp", "-o", "a.o"))
        (self.dir / "a.o").unlink()
        self.ok(self.compile(self.cxx, "-c", "a.cpp", "-o", "a.o"))  # hit: hard link
        with open(self.dir / "a.o", "ab") as f:  # the build appends in place
            f.write(b"garbage")
        self.touched()
        (self.dir / "b").mkdir()
        self.ok(self.compile(self.cxx, "-c", "a.cpp", "-o", "b/a.o"))
        self.assertEqual(read_bytes(self.dir / "b/a.o"), want)


kilntest.instantiate(globals(), Basic)
kilntest.instantiate(globals(), FileLink)

if __name__ == "__main__":
    kilntest.main()
