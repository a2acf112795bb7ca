#!/usr/bin/env python3
"""Calls kiln cannot cache run the compiler unchanged (same exit code, output
and files as without kiln), are counted by reason, and store nothing; options
kiln does not know are passed through and cached."""

import os

import kilntest
from kilntest import read_bytes

MAIN = """\
#include <cstdio>
int helper();
int main() { std::printf("result %d\\n", helper()); return 0; }
"""

HELPER = "int helper() { return 42; }\n"


class Uncacheable:
    cxx: str

    def setUp(self):
        super().setUp()
        self.write("main.cpp", MAIN)
        self.write("helper.cpp", HELPER)

    def check_passthrough(self, args, reason, files=(), input=None, env=None):
        """Runs `args` with the plain compiler and through kiln and checks that
        both behave the same, that `files` are written alike, and that only
        the `reason` counter moved."""
        plain_env = dict(self.env, **(env or {}))
        plain = self.plain(self.cxx, *args, input=input, env=plain_env)
        want = {}
        for f in files:
            self.assertTrue((self.dir / f).exists(), f"compiler did not write {f}")
            want[f] = read_bytes(self.dir / f)
            (self.dir / f).unlink()
        before = self.stats()
        entries = self.entry_files()
        r = self.compile(self.cxx, *args, input=input, env=plain_env)
        self.assertEqual(r.code, plain.code, r.describe())
        self.assertEqual(r.out, plain.out)
        self.assertEqual(r.err, plain.err)
        for f, data in want.items():
            self.assertTrue((self.dir / f).exists(), f"{f} not written through kiln")
            if not f.endswith((".s", ".ii")) and f != "prog":  # temp names may differ
                self.assertEqual(read_bytes(self.dir / f), data, f)
        self.assertStatsDelta(before, {reason: 1})
        self.assertEqual(self.entry_files(), entries, "an uncacheable call stored something")
        return r

    def test_link(self):
        self.check_passthrough(["main.cpp", "helper.cpp", "-o", "prog"], "called_for_link",
                               files=["prog"])
        r = self.run_cmd([self.dir / "prog"])
        self.assertEqual(r.out, b"result 42\n")

    def test_link_objects(self):
        self.ok(self.compile(self.cxx, "-c", "main.cpp"))
        self.ok(self.compile(self.cxx, "-c", "helper.cpp"))
        self.check_passthrough(["main.o", "helper.o", "-o", "prog"], "called_for_link",
                               files=["prog"])
        self.assertEqual(self.run_cmd([self.dir / "prog"]).out, b"result 42\n")

    def test_preprocess_only(self):
        r = self.check_passthrough(["-E", "main.cpp"], "called_for_preprocessing")
        self.assertIn(b"int main()", r.out)

    def test_dependency_only(self):
        r = self.check_passthrough(["-M", "main.cpp"], "called_for_preprocessing")
        self.assertIn(b"main.o:", r.out)

    def test_two_sources(self):
        self.check_passthrough(["-c", "main.cpp", "helper.cpp"], "multiple_source_files",
                               files=["main.o", "helper.o"])

    def test_stdin(self):
        self.check_passthrough(["-x", "c++", "-c", "-", "-o", "stdin.o"], "stdin_input",
                               files=["stdin.o"], input=HELPER.encode())

    def test_save_temps(self):
        self.check_passthrough(["-c", "-save-temps", "helper.cpp"], "unsupported_option",
                               files=["helper.o", "helper.ii", "helper.s"])

    def test_syntax_only(self):
        self.check_passthrough(["-fsyntax-only", "helper.cpp"], "no_output")

    def test_no_input_file(self):
        self.check_passthrough(["-c"], "no_input_file")

    def test_output_to_stdout(self):
        r = self.check_passthrough(["-S", "helper.cpp", "-o", "-"], "output_to_stdout")
        self.assertIn(b"helper", r.out)

    def test_header_compile(self):
        self.write("pch.h", "#pragma once\nint f();\n")
        self.check_passthrough(["-c", "pch.h", "-o", "pch.h.gch"], "precompiled_header")

    def test_assembler_source(self):
        self.write("asm.s", ".text\n.globl asm_fn\nasm_fn:\n  ret\n")
        self.check_passthrough(["-c", "asm.s", "-o", "asm.o"], "unsupported_language",
                               files=["asm.o"])

    def test_missing_response_file(self):
        self.check_passthrough(["@no-such-file.rsp"], "bad_response_file")

    def test_dependencies_output_env(self):
        self.check_passthrough(["-c", "helper.cpp"], "dependency_env", files=["helper.o"],
                               env={"DEPENDENCIES_OUTPUT": "deps.d"})

    def test_response_file_is_cached(self):
        self.write("args.rsp", "-c helper.cpp -O2 -o 'rsp out.o'\n")
        self.ok(self.plain(self.cxx, "@args.rsp"))
        want = read_bytes(self.dir / "rsp out.o")
        before = self.stats()
        self.ok(self.compile(self.cxx, "@args.rsp"))
        self.ok(self.compile(self.cxx, "@args.rsp"))
        self.assertStatsDelta(before, {"miss": 1, "direct_hit": 1})
        self.assertEqual(read_bytes(self.dir / "rsp out.o"), want)

    def test_unknown_options_are_passed_through_and_cached(self):
        # Options kiln has no table entry for, one taking a joined value.
        args = ["-c", "helper.cpp", "-fvisibility=hidden", "-ffunction-sections",
                "-fno-plt", "-fdiagnostics-color=never", "-Wno-unknown-warning-option",
                "-fmacro-prefix-map=/nonexistent=/x", "-o", "h.o"]
        self.ok(self.plain(self.cxx, *args))
        want = read_bytes(self.dir / "h.o")
        (self.dir / "h.o").unlink()
        before = self.stats()
        self.ok(self.compile(self.cxx, *args))
        self.ok(self.compile(self.cxx, *args))
        self.assertStatsDelta(before, {"miss": 1, "direct_hit": 1})
        self.assertEqual(read_bytes(self.dir / "h.o"), want)
        # A differing unknown option is part of the key.
        before = self.stats()
        self.ok(self.compile(self.cxx, *[a for a in args if a != "-ffunction-sections"]))
        self.assertStatsDelta(before, {"miss": 1})

    def test_option_rejected_by_compiler(self):
        args = ["-c", "helper.cpp", "-fkiln-no-such-option", "-o", "h.o"]
        plain = self.plain(self.cxx, *args)
        self.assertNotEqual(plain.code, 0)
        before = self.stats()
        r = self.compile(self.cxx, *args)
        self.assertEqual((r.code, r.out, r.err), (plain.code, plain.out, plain.err))
        after = self.stats()
        self.assertEqual(after["direct_hit"] + after["preprocessed_hit"], 0)
        self.assertEqual(
            sum(after[k] - before[k] for k in ("compile_failed", "preprocessor_failed")), 1)
        self.assertFalse(os.path.exists(self.dir / "h.o"))


kilntest.instantiate(globals(), Uncacheable)

if __name__ == "__main__":
    kilntest.main()
