#!/usr/bin/env python3
"""The three ways kiln finds a result: direct mode (manifests), preprocessor
mode (KILN_DIRECT=false) and depend mode (-MD/-MMD: no preprocessor run).

Which compiler runs kiln starts is observed with a spy: a script that logs its
argv and execs the real compiler."""

import json

import kilntest
from kilntest import read_bytes

SOURCE = """\
#include "lib.h"
int use() { return lib_value() + LIB_CONST; }
"""

HEADER = """\
#pragma once
#define LIB_CONST 3
inline int lib_value() { return 39; }
"""


def is_probe(argv):
    return "--version" in argv or "/dev/null" in argv


def preprocessor_runs(calls):
    return [c for c in calls if not is_probe(c) and "-E" in c]


def compiler_runs(calls):
    return [c for c in calls if not is_probe(c) and "-E" not in c]


class Modes:
    cxx: str

    def setUp(self):
        super().setUp()
        self.write("src/a.cpp", SOURCE)
        self.write("inc/lib.h", HEADER)
        self.spy, self.log = self.spy_compiler(self.cxx)

    def calls_during(self, *args, **kw):
        """Compiles through kiln with the spy; returns (run, spy calls)."""
        start = len(self.spy_calls(self.log))
        r = self.ok(self.compile(self.spy, *args, **kw))
        return r, self.spy_calls(self.log)[start:]

    def test_direct_hit_runs_no_compiler(self):
        args = ["-c", "src/a.cpp", "-Iinc", "-o", "a.o"]
        _, calls = self.calls_during(*args)
        self.assertEqual(len(compiler_runs(calls)), 1, calls)
        self.assertEqual(len(preprocessor_runs(calls)), 1, "preprocessor mode miss: "
                         f"expected one preprocessor run, got {calls}")
        obj = read_bytes(self.dir / "a.o")
        (self.dir / "a.o").unlink()
        before = self.stats()
        _, calls = self.calls_during(*args)
        self.assertStatsDelta(before, {"direct_hit": 1})
        self.assertEqual(calls, [], "a direct hit ran the compiler")
        self.assertEqual(read_bytes(self.dir / "a.o"), obj)

    def test_direct_mode_off_gives_preprocessed_hit(self):
        self.env["KILN_DIRECT"] = "false"
        args = ["-c", "src/a.cpp", "-Iinc", "-o", "a.o"]
        before = self.stats()
        self.calls_during(*args)
        s = self.assertStatsDelta(before, {"miss": 1})
        _, calls = self.calls_during(*args)
        self.assertStatsDelta(s, {"preprocessed_hit": 1})
        self.assertEqual(len(preprocessor_runs(calls)), 1, calls)
        self.assertEqual(compiler_runs(calls), [], "a preprocessed hit compiled")
        self.assertEqual(self.entry_files("M"), [], "manifest written with direct mode off")

    def test_preprocessed_hit_after_direct_miss(self):
        # A result stored without a manifest (direct mode off): with direct
        # mode on, the direct look-up misses and the preprocessed one hits,
        # without compiling.
        args = ["-c", "src/a.cpp", "-Iinc", "-o", "a.o"]
        self.calls_during(*args, env=dict(self.env, KILN_DIRECT="false"))
        obj = read_bytes(self.dir / "a.o")
        (self.dir / "a.o").unlink()
        before = self.stats()
        _, calls = self.calls_during(*args)
        self.assertStatsDelta(before, {"preprocessed_hit": 1})
        self.assertEqual(compiler_runs(calls), [], "a preprocessed hit compiled")
        self.assertEqual(read_bytes(self.dir / "a.o"), obj)
        # The manifest learnt the source: now a direct hit.
        before = self.stats()
        _, calls = self.calls_during(*args)
        self.assertStatsDelta(before, {"direct_hit": 1})
        self.assertEqual(calls, [])

    def test_comment_edit_is_a_miss_in_every_mode(self):
        # A longer comment leaves the preprocessed text as it was, but moves
        # the columns that debug info and diagnostics record: no mode may
        # serve the old result (docs/direct-mode.md, "Preprocessor mode").
        for direct in ("true", "false"):
            src = f"int f(void) {{\n  int x = 5 /* {direct} */ ; int y;\n  return x;\n}}\n"
            env = dict(self.env, KILN_DIRECT=direct)
            self.write("src/c.cpp", src)
            args = ["-c", "src/c.cpp", "-g", "-Wall", "-o", "c.o"]
            self.ok(self.compile(self.cxx, *args, env=env))
            self.write("src/c.cpp", src.replace(direct, f"a longer comment, {direct}"))
            before = self.stats()
            hit = self.ok(self.compile(self.cxx, *args, env=env))
            self.assertStatsDelta(before, {"miss": 1})
            plain = self.plain(self.cxx, "-c", "src/c.cpp", "-g", "-Wall", "-o", "p.o")
            self.assertEqual(read_bytes(self.dir / "c.o"), read_bytes(self.dir / "p.o"))
            self.assertEqual(hit.err, plain.err)

    def test_depend_mode_miss_runs_no_preprocessor(self):
        args = ["-c", "src/a.cpp", "-Iinc", "-MD", "-MF", "a.d", "-o", "a.o"]
        before = self.stats()
        _, calls = self.calls_during(*args)
        s = self.assertStatsDelta(before, {"miss": 1})
        self.assertEqual(preprocessor_runs(calls), [], "depend mode ran the preprocessor")
        self.assertEqual(len(compiler_runs(calls)), 1, calls)
        self.assertTrue(self.entry_files("M"), "depend mode stored no manifest")
        _, calls = self.calls_during(*args)
        self.assertStatsDelta(s, {"direct_hit": 1})
        self.assertEqual(calls, [])

    def test_mmd_uses_preprocessor_mode(self):
        # An -MMD depfile leaves out system headers, which the key must cover:
        # no depend mode, the miss runs the preprocessor.
        args = ["-c", "src/a.cpp", "-Iinc", "-MMD", "-o", "a.o"]
        _, calls = self.calls_during(*args)
        self.assertEqual(len(preprocessor_runs(calls)), 1, calls)
        before = self.stats()
        _, calls = self.calls_during(*args)
        self.assertStatsDelta(before, {"direct_hit": 1})
        self.assertEqual(calls, [])

    def test_depend_mode_off_runs_preprocessor(self):
        self.env["KILN_DEPEND"] = "false"
        args = ["-c", "src/a.cpp", "-Iinc", "-MD", "-o", "a.o"]
        _, calls = self.calls_during(*args)
        self.assertEqual(len(preprocessor_runs(calls)), 1, calls)
        before = self.stats()
        _, calls = self.calls_during(*args)
        self.assertStatsDelta(before, {"direct_hit": 1})
        self.assertEqual(calls, [])

    def test_compiler_replaced_at_same_path_is_a_miss(self):
        args = ["-c", "src/a.cpp", "-Iinc", "-o", "a.o"]
        self.ok(self.compile(self.spy, *args))
        # The "compiler" now optimizes: same path, other program.
        text = self.spy.read_text().replace('"$@"', '-O2 "$@"')
        self.spy.write_text(text)
        kilntest.age_file(self.spy)
        self.touched()
        before = self.stats()
        self.ok(self.compile(self.spy, *args))
        self.assertStatsDelta(before, {"miss": 1})
        self.ok(self.plain(self.cxx, "-O2", *args[:-1], "plain.o"))
        self.assertEqual(read_bytes(self.dir / "a.o"), read_bytes(self.dir / "plain.o"))

    def test_log_file_records_events(self):
        log = self.dir / "kiln.log"
        self.env["KILN_LOGFILE"] = str(log)
        args = ["-c", "src/a.cpp", "-Iinc", "-MD", "-o", "a.o"]
        self.ok(self.compile(self.spy, *args))
        self.ok(self.compile(self.spy, *args))
        events = [json.loads(line) for line in log.read_text().splitlines()]
        names = [e["event"] for e in events]
        self.assertIn("compile", names)
        self.assertIn("stored", names)
        hits = [e for e in events if e["event"] == "hit"]
        self.assertEqual(len(hits), 1, names)
        self.assertEqual(hits[0].get("mode"), "direct")
        self.assertEqual(names.count("compile"), 1, "the hit compiled")

    def test_recache_compiles_again(self):
        args = ["-c", "src/a.cpp", "-Iinc", "-o", "a.o"]
        self.calls_during(*args)
        self.env["KILN_RECACHE"] = "1"
        before = self.stats()
        _, calls = self.calls_during(*args)
        self.assertEqual(len(compiler_runs(calls)), 1, "recache did not compile")
        self.assertStatsDelta(before, {"miss": 1})
        del self.env["KILN_RECACHE"]
        before = self.stats()
        _, calls = self.calls_during(*args)
        self.assertStatsDelta(before, {"direct_hit": 1})

    def test_read_only_stores_nothing(self):
        self.env["KILN_READONLY"] = "true"
        args = ["-c", "src/a.cpp", "-Iinc", "-o", "a.o"]
        self.calls_during(*args)
        self.assertEqual(self.entry_files(), [])
        before = self.stats()
        _, calls = self.calls_during(*args)
        self.assertStatsDelta(before, {"miss": 1})
        self.assertEqual(len(compiler_runs(calls)), 1)


kilntest.instantiate(globals(), Modes)

if __name__ == "__main__":
    kilntest.main()
