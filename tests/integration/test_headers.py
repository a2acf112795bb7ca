#!/usr/bin/env python3
"""Header changes and direct mode: a changed header, macro or flag is a miss;
a touched but unchanged header is a hit; a header that would now shadow the one
the compiler found (earlier -I directory, or next to the includer) is never a
wrong hit.

Files get old mtimes (kilntest.write) so that kiln caches them: it refuses to
store when an input changed within 50 ms of the compile and distrusts stats
younger than ~2 s."""

import os
import shutil

import kilntest
from kilntest import read_bytes

SOURCE = """\
#include "x.h"
int value() { return X_VALUE * FACTOR; }
#ifndef FACTOR
#error FACTOR not defined
#endif
"""


def header(value: int) -> str:
    return f"#pragma once\n#define X_VALUE {value}\n"


class Headers:
    cxx: str

    def setUp(self):
        super().setUp()
        self.write("src/a.cpp", SOURCE)

    def expect_object(self, args, name="a.o"):
        """Checks that kiln's object equals the plain compiler's for the
        current files."""
        obj = read_bytes(self.dir / name)
        self.ok(self.plain(self.cxx, *[a if a != name else "plain.o" for a in args]))
        self.assertEqual(obj, read_bytes(self.dir / "plain.o"),
                         "kiln's object differs from the compiler's: stale result served")

    def compile_counting(self, args):
        """Compiles through kiln; returns the change of hit/miss counters."""
        before = self.stats()
        self.ok(self.compile(self.cxx, *args))
        after = self.stats()
        return {k: after[k] - before[k]
                for k in ("direct_hit", "preprocessed_hit", "miss", "time_macro", "local_time")
                if after[k] != before[k]}

    def test_header_content_change_is_a_miss(self):
        self.write("inc/x.h", header(1))
        args = ["-c", "src/a.cpp", "-Iinc", "-DFACTOR=2", "-o", "a.o"]
        self.assertEqual(self.compile_counting(args), {"miss": 1})
        self.assertEqual(self.compile_counting(args), {"direct_hit": 1})
        self.write("inc/x.h", header(2))
        self.assertEqual(self.compile_counting(args), {"miss": 1})
        self.expect_object(args)
        self.assertEqual(self.compile_counting(args), {"direct_hit": 1})
        self.expect_object(args)

    def test_same_size_same_mtime_different_content_is_a_miss(self):
        h = self.write("inc/x.h", header(1))
        args = ["-c", "src/a.cpp", "-Iinc", "-DFACTOR=2", "-o", "a.o"]
        self.assertEqual(self.compile_counting(args), {"miss": 1})
        st = os.stat(h)
        self.write("inc/x.h", header(7), age=None)
        os.utime(h, ns=(st.st_atime_ns, st.st_mtime_ns))
        self.touched()
        self.assertEqual(os.stat(h).st_size, st.st_size)
        self.assertNotEqual(self.compile_counting(args).get("direct_hit"), 1)
        self.expect_object(args)

    def test_touched_header_is_a_hit(self):
        h = self.write("inc/x.h", header(1))
        args = ["-c", "src/a.cpp", "-Iinc", "-DFACTOR=2", "-o", "a.o"]
        self.assertEqual(self.compile_counting(args), {"miss": 1})
        kilntest.age_file(h, 50)
        self.touched()
        self.assertEqual(self.compile_counting(args), {"direct_hit": 1})
        # Rewritten with the same content (new inode, new mtime): still a hit.
        self.write("inc/x.h", header(1), age=None)
        self.assertEqual(self.compile_counting(args), {"direct_hit": 1})
        self.expect_object(args)

    def test_macro_change_is_a_miss(self):
        self.write("inc/x.h", header(1))
        base = ["-c", "src/a.cpp", "-Iinc", "-o", "a.o"]
        self.assertEqual(self.compile_counting(base + ["-DFACTOR=2"]), {"miss": 1})
        self.assertEqual(self.compile_counting(base + ["-DFACTOR=3"]), {"miss": 1})
        self.expect_object(base + ["-DFACTOR=3"])
        self.assertEqual(self.compile_counting(base + ["-DFACTOR=2"]), {"direct_hit": 1})
        self.expect_object(base + ["-DFACTOR=2"])
        # Also with direct mode off: the macro changes the preprocessed source.
        self.env["KILN_DIRECT"] = "false"
        self.assertEqual(self.compile_counting(base + ["-DFACTOR=4"]), {"miss": 1})
        self.expect_object(base + ["-DFACTOR=4"])

    def test_optimization_flag_change_is_a_miss(self):
        self.write("inc/x.h", header(1))
        base = ["-c", "src/a.cpp", "-Iinc", "-DFACTOR=2", "-o", "a.o"]
        self.assertEqual(self.compile_counting(base + ["-O0"]), {"miss": 1})
        self.assertEqual(self.compile_counting(base + ["-O2"]), {"miss": 1})
        self.expect_object(base + ["-O2"])
        self.assertEqual(self.compile_counting(base + ["-O0"]), {"direct_hit": 1})
        self.expect_object(base + ["-O0"])
        self.env["KILN_DIRECT"] = "false"
        self.assertEqual(self.compile_counting(base + ["-O1"]), {"miss": 1})
        self.expect_object(base + ["-O1"])

    def check_shadowing(self, create_dir_a: bool):
        if create_dir_a:
            (self.dir / "a").mkdir()
        self.write("b/x.h", header(1))
        args = ["-c", "src/a.cpp", "-Ia", "-Ib", "-DFACTOR=1", "-o", "a.o"]
        self.assertEqual(self.compile_counting(args), {"miss": 1})
        self.assertEqual(self.compile_counting(args), {"direct_hit": 1})
        # a/x.h now comes first in the search path.
        self.write("a/x.h", header(5))
        counts = self.compile_counting(args)
        self.assertNotIn("direct_hit", counts, "wrong direct hit: a/x.h shadows b/x.h")
        self.assertEqual(counts, {"miss": 1})
        self.expect_object(args)
        # And with a/x.h in place, the new result is found directly.
        self.assertEqual(self.compile_counting(args), {"direct_hit": 1})
        self.expect_object(args)
        # Removing it again brings the first result back.
        (self.dir / "a" / "x.h").unlink()
        self.touched()
        counts = self.compile_counting(args)
        self.assertEqual(counts.get("miss", 0), 0, counts)
        self.expect_object(args)

    def test_shadowing_header_in_earlier_include_dir(self):
        self.check_shadowing(create_dir_a=True)

    def test_shadowing_header_in_earlier_include_dir_created_later(self):
        self.check_shadowing(create_dir_a=False)

    def test_shadowing_header_next_to_source(self):
        self.write("inc/x.h", header(1))
        args = ["-c", "src/a.cpp", "-Iinc", "-DFACTOR=1", "-o", "a.o"]
        self.assertEqual(self.compile_counting(args), {"miss": 1})
        self.assertEqual(self.compile_counting(args), {"direct_hit": 1})
        # "x.h" next to the source is found before -I for #include "x.h".
        self.write("src/x.h", header(9))
        counts = self.compile_counting(args)
        self.assertNotIn("direct_hit", counts, "wrong direct hit: src/x.h shadows inc/x.h")
        self.expect_object(args)

    def test_shadowing_header_next_to_including_header(self):
        # x.h includes "y.h" found via -Ideep; y.h created next to x.h wins.
        self.write("src/a.cpp", '#include "x.h"\nint value() { return Y_VALUE * FACTOR; }\n')
        self.write("inc/x.h", '#pragma once\n#include "y.h"\n')
        self.write("deep/y.h", "#define Y_VALUE 1\n")
        args = ["-c", "src/a.cpp", "-Iinc", "-Ideep", "-DFACTOR=1", "-o", "a.o"]
        self.assertEqual(self.compile_counting(args), {"miss": 1})
        self.assertEqual(self.compile_counting(args), {"direct_hit": 1})
        self.write("inc/y.h", "#define Y_VALUE 2\n")
        counts = self.compile_counting(args)
        self.assertNotIn("direct_hit", counts, "wrong direct hit: inc/y.h shadows deep/y.h")
        self.expect_object(args)

    def test_new_header_in_subdirectory_path(self):
        # #include "sub/x.h" via -Ib; a/sub/x.h appears (a and a/sub new).
        self.write("src/a.cpp", SOURCE.replace('"x.h"', '"sub/x.h"'))
        self.write("b/sub/x.h", header(1))
        (self.dir / "a").mkdir()
        args = ["-c", "src/a.cpp", "-Ia", "-Ib", "-DFACTOR=1", "-o", "a.o"]
        self.assertEqual(self.compile_counting(args), {"miss": 1})
        self.assertEqual(self.compile_counting(args), {"direct_hit": 1})
        self.write("a/sub/x.h", header(3))
        counts = self.compile_counting(args)
        self.assertNotIn("direct_hit", counts, "wrong direct hit: a/sub/x.h shadows b/sub/x.h")
        self.expect_object(args)

    def check_modified_during(self, phase, args, env):
        """A compiler wrapper touches the header when its argv contains
        `phase` (-c: compiling, -E: preprocessing). Its ctime is then newer
        than kiln's start, it may have been read half-written, and nothing
        must be stored."""
        h = self.write("inc/x.h", header(1))
        real = shutil.which(self.cxx)
        wrapper = self.write("cc/" + self.cxx, f"""#!/bin/sh
for a in "$@"; do [ "$a" = "{phase}" ] && touch '{h}'; done
exec '{real}' "$@"
""")
        wrapper.chmod(0o755)
        self.env.update(env)
        before = self.stats()
        self.ok(self.compile(wrapper, *args))
        self.ok(self.compile(wrapper, *args))
        self.assertStatsDelta(before, {"miss": 2, "modified_during_compile": 2})
        self.assertEqual(self.entry_files(), [])
        self.expect_object([a for a in args if not a.startswith("-M")])

    def test_header_modified_while_compiling_depend_mode(self):
        self.check_modified_during(
            "-c", ["-c", "src/a.cpp", "-Iinc", "-DFACTOR=2", "-MD", "-o", "a.o"], {})

    def test_header_modified_while_preprocessing_direct_mode(self):
        self.check_modified_during(
            "-E", ["-c", "src/a.cpp", "-Iinc", "-DFACTOR=2", "-o", "a.o"], {})

    def test_removed_header_falls_back_to_later_include_dir(self):
        self.write("a/x.h", header(1))
        self.write("b/x.h", header(2))
        args = ["-c", "src/a.cpp", "-Ia", "-Ib", "-DFACTOR=1", "-o", "a.o"]
        self.assertEqual(self.compile_counting(args), {"miss": 1})
        (self.dir / "a" / "x.h").unlink()
        self.touched()
        counts = self.compile_counting(args)
        self.assertNotIn("direct_hit", counts, "wrong direct hit: a/x.h is gone")
        self.expect_object(args)

    def test_forced_include_change_is_a_miss(self):
        self.write("inc/x.h", header(1))
        self.write("forced.h", "#define FACTOR 4\n")
        args = ["-c", "src/a.cpp", "-Iinc", "-include", "forced.h", "-o", "a.o"]
        self.assertEqual(self.compile_counting(args), {"miss": 1})
        self.assertEqual(self.compile_counting(args), {"direct_hit": 1})
        self.write("forced.h", "#define FACTOR 5\n")
        self.assertEqual(self.compile_counting(args), {"miss": 1})
        self.expect_object(args)

    def test_isystem_header_change_is_a_miss(self):
        self.write("sys/x.h", header(1))
        args = ["-c", "src/a.cpp", "-isystem", "sys", "-DFACTOR=1", "-o", "a.o"]
        self.assertEqual(self.compile_counting(args), {"miss": 1})
        self.assertEqual(self.compile_counting(args), {"direct_hit": 1})
        self.write("sys/x.h", header(6))
        self.assertEqual(self.compile_counting(args), {"miss": 1})
        self.expect_object(args)

    def test_cpath_change_is_a_miss(self):
        self.write("one/x.h", header(1))
        self.write("two/x.h", header(2))
        args = ["-c", "src/a.cpp", "-DFACTOR=1", "-o", "a.o"]
        self.env["CPATH"] = str(self.dir / "one")
        self.assertEqual(self.compile_counting(args), {"miss": 1})
        self.assertEqual(self.compile_counting(args), {"direct_hit": 1})
        self.env["CPATH"] = str(self.dir / "two")
        counts = self.compile_counting(args)
        self.assertNotIn("direct_hit", counts)
        self.expect_object(args)

    def test_date_macro_is_cached_only_with_source_date_epoch(self):
        # The compiler asks for the local time for __DATE__ as for __TIME__
        # (however they are spelled): not cached, unless SOURCE_DATE_EPOCH
        # fixes both (it is in the key).
        self.write("src/d.cpp", 'const char* d() { return __DATE__; }\n')
        args = ["-c", "src/d.cpp", "-o", "d.o"]
        self.assertEqual(self.compile_counting(args), {"miss": 1, "local_time": 1})
        self.assertEqual(self.compile_counting(args), {"miss": 1, "local_time": 1})
        self.env["SOURCE_DATE_EPOCH"] = "1700000000"
        if "clang" in self.cxx:
            # clang 14 does not read SOURCE_DATE_EPOCH (15 does): still the local time.
            self.assertEqual(self.compile_counting(args), {"miss": 1, "local_time": 1})
            return
        self.assertEqual(self.compile_counting(args), {"miss": 1})
        self.assertEqual(self.compile_counting(args), {"direct_hit": 1})

    def test_time_macro_made_by_token_pasting_is_not_cached(self):
        self.write("src/p.cpp", '#define C(a, b) a##b\nconst char* t() { return C(__TI, ME__); }\n')
        args = ["-c", "src/p.cpp", "-o", "p.o"]
        for mode in ("true", "false"):
            self.env["KILN_DIRECT"] = mode
            self.assertEqual(self.compile_counting(args), {"miss": 1, "local_time": 1})

    def test_local_time_in_a_header_is_one_miss_not_also_uncacheable(self):
        # The direct-mode scan does not see a header's __TIME__ before the
        # compile; depend and preprocessor mode learn it only from the trace.
        # The call is a miss whose result is not stored, counted once: not
        # also as an uncacheable call.
        self.write("inc/t.h", "static const char* t() { return __TIME__; }\n")
        self.write("src/u.cpp", '#include "t.h"\nconst char* u() { return t(); }\n')
        plain = ["-c", "src/u.cpp", "-Iinc", "-o", "u.o"]
        for mode, extra in (("depend", ["-MD"]), ("preprocessor", [])):
            with self.subTest(mode=mode):
                self.env["KILN_DIRECT"] = "true" if mode == "depend" else "false"
                before = self.stats_json()
                self.assertEqual(self.compile_counting(plain + extra), {"miss": 1, "local_time": 1})
                after = self.stats_json()
                self.assertEqual(after["cacheable_calls"] - before["cacheable_calls"], 1)
                self.assertEqual(after["counters"]["time_macro"], before["counters"]["time_macro"])

    def test_time_macro_is_not_cached(self):
        self.write("src/t.cpp", 'const char* t() { return __TIME__; }\n')
        args = ["-c", "src/t.cpp", "-o", "t.o"]
        before = self.stats()
        self.ok(self.compile(self.cxx, *args))
        self.ok(self.compile(self.cxx, *args))
        after = self.stats()
        self.assertEqual(after["direct_hit"] + after["preprocessed_hit"], 0)
        self.assertEqual(after["time_macro"] - before["time_macro"], 2)



kilntest.instantiate(globals(), Headers)

if __name__ == "__main__":
    kilntest.main()
