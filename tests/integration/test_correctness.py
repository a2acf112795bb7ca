"""The families of wrong results of issue 7 (shared/wrong-results), each with
more than its first example: after a change, what kiln gives must be what
the compiler gives (object, side outputs, stderr, exit status). Every test
compiles through kiln, changes something, compiles through kiln again and
then runs the plain compiler with the same command in the same place."""

from __future__ import annotations

import os
import shutil

import kilntest
from kilntest import read_bytes


def value(n: int) -> str:
    return f"static const int v __attribute__((used)) = {n};\n"


class Correctness:
    cxx: str

    @property
    def cc(self) -> str:
        return "gcc" if self.cxx == "g++" else "clang"

    def kiln_then_plain(self, compiler, args, outputs=("x.o",), cwd=None, env=None):
        """Compiles through kiln, keeps its outputs, then compiles plainly with
        the same command; asserts that both did the same."""
        where = self.dir / (cwd or "")
        k = self.compile(compiler, *args, cwd=where, env=env)
        kept = {o: read_bytes(where / o) if (where / o).exists() else None for o in outputs}
        for o in outputs:
            if (where / o).exists():
                (where / o).unlink()
        p = self.plain(compiler, *args, cwd=where, env=env)
        self.assertEqual(k.code, p.code, f"exit status\n{k.describe()}\n{p.describe()}")
        self.assertEqual(k.err, p.err, "stderr")
        for o in outputs:
            got = read_bytes(where / o) if (where / o).exists() else None
            self.assertEqual(kept[o], got, f"{o} differs from the compiler's")
        return k

    def twice_with_change(self, compiler, args, change, outputs=("x.o",), cwd=None, env=None):
        where = self.dir / (cwd or "")
        self.ok(self.compile(compiler, *args, cwd=where, env=env))
        self.ok(self.compile(compiler, *args, cwd=where, env=env))  # a hit, or not cacheable
        change()
        self.touched()
        return self.kiln_then_plain(compiler, args, outputs, cwd=cwd, env=env)

    # --- 1. every place a header could come from ---------------------------

    def test_environment_include_paths_are_watched(self):
        for var in ("CPATH", "CPLUS_INCLUDE_PATH"):
            with self.subTest(var=var):
                d = f"env_{var}"
                self.write(f"{d}/cp/foo.h", value(1))
                self.write(f"{d}/src/x.cpp", '#include "foo.h"\n')
                env = dict(self.env, **{var: str(self.dir / d / "cp")})
                self.twice_with_change(self.cxx, ["-c", f"{d}/src/x.cpp", "-o", "x.o"],
                                       lambda: self.write(f"{d}/src/foo.h", value(2)), env=env)

    def test_every_search_option_form_is_watched(self):
        forms = [["--include-directory=late", "-Iearly"], ["-iquote", "early", "-Ilate"],
                 ["-iprefix", str(self.dir) + "/", "-iwithprefixbefore", "early", "-Ilate"],
                 ["-Ibuild/include", "-I.", "-Ilate"]]
        for i, flags in enumerate(forms):
            with self.subTest(flags=flags):
                shutil.rmtree(self.dir / "early", ignore_errors=True)
                shutil.rmtree(self.dir / "lib", ignore_errors=True)
                self.write("late/lib/h.h", value(i))
                self.write("src/x.cpp", '#include "lib/h.h"\n')
                (self.dir / "early").mkdir(exist_ok=True)
                target = "early/lib/h.h" if "early" in flags else "lib/h.h"
                self.twice_with_change(self.cxx, ["-c", "src/x.cpp", *flags, "-o", "x.o"],
                                       lambda: self.write(target, value(100 + i)))

    def test_forced_include_is_looked_up_in_the_working_directory(self):
        self.write("inc/f.h", value(1))
        self.write("src/x.cpp", "int x;\n")
        self.twice_with_change(self.cxx, ["-c", "src/x.cpp", "-Iinc", "-include", "f.h", "-o",
                                          "x.o"], lambda: self.write("f.h", value(2)))

    def test_second_checkout_checks_its_own_directories(self):
        for c in ("A", "B"):
            self.write(f"{c}/inc/foo.h", value(1))
            self.write(f"{c}/src/x.cpp", '#include "foo.h"\n')
        args = ["-c", "src/x.cpp", "-Iinc", "-o", "x.o"]
        self.ok(self.compile(self.cxx, *args, cwd=self.dir / "A"))
        self.write("B/src/foo.h", value(2))
        self.kiln_then_plain(self.cxx, args, cwd="B")

    def test_has_include_targets_appear_and_disappear(self):
        self.write("x.cpp", '#if __has_include("opt.h")\n#include "opt.h"\n#endif\nint g;\n')
        for deps in ([], ["-MD"]):
            with self.subTest(deps=deps):
                args = ["-c", "x.cpp", *deps, "-o", "x.o"]
                self.twice_with_change(self.cxx, args, lambda: self.write("opt.h", value(7)),
                                       outputs=("x.o",))
                self.twice_with_change(self.cxx, args, lambda: (self.dir / "opt.h").unlink())

    def test_precompiled_header_appearing_is_noticed(self):
        # gcc uses NAME.gch for NAME when it is valid; -E never looks at it.
        if self.cxx != "g++":
            self.skipTest("gcc looks for a .gch beside every header")
        self.write("inc/h.h", "inline int h() { return 1; }\n")
        self.write("x.cpp", '#include "h.h"\nint use() { return h(); }\n')
        args = ["-c", "x.cpp", "-Iinc", "-O2", "-o", "x.o"]

        def make_pch():
            self.write("other/h.h", "inline int h() { return 2; }\n")
            self.ok(self.plain("g++", "-x", "c++-header", "-O2", "other/h.h", "-o",
                               "inc/h.h.gch"))
        for direct in ("true", "false"):
            with self.subTest(direct=direct):
                (self.dir / "inc" / "h.h.gch").unlink(missing_ok=True)
                self.twice_with_change(self.cxx, args, make_pch,
                                       env=dict(self.env, KILN_DIRECT=direct))

    def test_header_created_during_the_compile(self):
        # A wrapper creates a shadowing header right after the compiler ran.
        self.write("inc/foo.h", value(1))
        self.write("new.h", value(2))
        self.write("src/x.cpp", '#include "foo.h"\n')
        self.write("ccw", f'#!/bin/sh\n{self.cxx} "$@"; r=$?\n'
                          '[ -f go ] && cp new.h src/foo.h\nexit $r\n')
        os.chmod(self.dir / "ccw", 0o755)
        self.write("go", "")
        args = ["-c", "src/x.cpp", "-Iinc", "-MD", "-o", "x.o"]
        self.ok(self.compile(str(self.dir / "ccw"), *args))
        (self.dir / "go").unlink()
        self.touched()
        self.kiln_then_plain(str(self.dir / "ccw"), args)

    # --- 2. every input an option names ------------------------------------

    def test_tools_of_a_b_directory_are_in_the_key(self):
        if self.cxx != "g++":
            self.skipTest("gcc's driver runs cc1 from -B")
        cc1 = "/usr/lib/gcc/x86_64-linux-gnu/12/cc1plus"
        self.assertTrue(os.path.exists(cc1), "gcc 12's cc1plus is not where Debian puts it")
        self.write("x.cpp", "static const int v __attribute__((used)) = V;\n")
        self.write("b/cc1plus", f'#!/bin/sh\nexec {cc1} -DV=1 "$@"\n')
        os.chmod(self.dir / "b" / "cc1plus", 0o755)
        args = ["-B", str(self.dir / "b") + "/", "-c", "x.cpp", "-o", "x.o"]
        self.twice_with_change(self.cxx, args, lambda: (
            self.write("b/cc1plus", f'#!/bin/sh\nexec {cc1} -DV=2 "$@"\n'),
            os.chmod(self.dir / "b" / "cc1plus", 0o755)))

    def test_files_named_by_options_are_in_the_key(self):
        self.write("x.cpp", "int f(int a) { return a * 3; }\n")
        self.write("my.specs", "")
        args = ["-c", "x.cpp", "-specs=my.specs", "-o", "x.o"] if self.cxx == "g++" else \
            ["-c", "x.cpp", "-fsanitize=address", "-fsanitize-ignorelist=ign.txt", "-o", "x.o"]
        if self.cxx != "g++":
            self.write("ign.txt", "fun:nothing\n")
        self.ok(self.compile(self.cxx, *args))
        before = self.stats()
        self.ok(self.compile(self.cxx, *args))
        self.assertStatsDelta(before, {"direct_hit": 1})
        change = (lambda: self.write("my.specs", "*cc1plus:\n+ -DSPECS_CHANGED\n\n")) \
            if self.cxx == "g++" else (lambda: self.write("ign.txt", "fun:_Z1fi\n"))
        change()
        self.kiln_then_plain(self.cxx, args)

    def test_unknown_options_are_not_cached(self):
        self.write("x.cpp", "int x;\n")
        before = self.stats()
        self.kiln_then_plain(self.cxx, ["-c", "x.cpp", "-fsome-new-option=/etc/passwd", "-o",
                                        "x.o"])
        self.assertEqual(self.stats()["unknown_option"] - before["unknown_option"], 1)

    # --- 3. everything that changes the output bytes -----------------------

    def test_prefix_map_that_leaves_the_directory(self):
        for flag in ("-fdebug-prefix-map=/nonexistent=/x", "-ffile-prefix-map=/elsewhere=."):
            with self.subTest(flag=flag):
                for c in ("a", "b"):
                    self.write(f"{c}/x.cpp", "int f() { return 0; }\n")
                args = ["-g", flag, "-c", "x.cpp", "-o", "x.o"]
                self.ok(self.compile(self.cxx, *args, cwd=self.dir / "a"))
                self.kiln_then_plain(self.cxx, args, cwd="b")

    def test_prefix_map_that_covers_the_directory(self):
        # What the map leaves of the directory ("/a", "/b") is in the key.
        for c in ("a", "b"):
            self.write(f"{c}/x.cpp", "int f() { return 0; }\n")
        for c in ("a", "b", "a"):
            args = ["-g", f"-fdebug-prefix-map={self.dir}=/src", "-c", "x.cpp", "-o", "x.o"]
            self.kiln_then_plain(self.cxx, args, cwd=c)
        self.assertEqual(self.stats()["direct_hit"], 1)

    def test_coverage_notes_record_the_directory(self):
        for c in ("a", "b"):
            self.write(f"{c}/x.cpp", "int f() { return 0; }\n")
        args = ["-ftest-coverage", "-c", "x.cpp", "-o", "x.o"]
        self.ok(self.compile(self.cxx, *args, cwd=self.dir / "a"))
        self.ok(self.compile(self.cxx, *args, cwd=self.dir / "b"))
        self.assertEqual(self.stats()["direct_hit"], 0)
        if self.cxx == "g++":  # gcc's notes name the directory
            notes = read_bytes(self.dir / "b" / "x.gcno")
            self.assertIn(str(self.dir / "b").encode(), notes)

    def test_recorded_command_line(self):
        if self.cxx != "clang++":
            self.skipTest("clang's -frecord-command-line records -o")
        self.write("x.cpp", "int x;\n")
        self.ok(self.compile(self.cxx, "-frecord-command-line", "-c", "x.cpp", "-o", "a.o"))
        self.kiln_then_plain(self.cxx, ["-frecord-command-line", "-c", "x.cpp", "-o", "b.o"],
                             outputs=("b.o",))

    def test_diagnostic_environment_is_in_the_key(self):
        self.write("x.cpp", "int f() { int y; return 0; }\n")
        args = ["-fdiagnostics-color=always", "-Wall", "-c", "x.cpp", "-o", "x.o"] \
            if self.cxx == "g++" else ["-fcolor-diagnostics", "-Wall", "-c", "x.cpp", "-o", "x.o"]
        for name, a, b in (("GCC_COLORS", "warning=01;35", "warning=01;32"),
                           ("COLUMNS", "40", "200")):
            with self.subTest(var=name):
                self.ok(self.compile(self.cxx, *args, env=dict(self.env, **{name: a})))
                self.kiln_then_plain(self.cxx, args, env=dict(self.env, **{name: b}))

    def test_pragma_dependency_is_not_cached(self):
        if self.cxx != "g++":
            self.skipTest("#pragma GCC dependency is gcc's")
        self.write("parse.y", "grammar\n", age=1200)
        self.write("x.cpp", '#pragma GCC dependency "parse.y"\nint x;\n', age=600)
        self.twice_with_change(self.cxx, ["-c", "x.cpp", "-o", "x.o"],
                               lambda: kilntest.age_file(self.dir / "parse.y", 300))

    def test_incbin_reads_a_file_outside_the_key(self):
        self.write("blob.bin", "one")
        self.write("x.cpp", 'asm(".section .rodata\\n.incbin \\"blob.bin\\"\\n.previous");\n')
        self.twice_with_change(self.cxx, ["-c", "x.cpp", "-o", "x.o"],
                               lambda: self.write("blob.bin", "two"))
        self.assertGreaterEqual(self.stats()["unlisted_input"], 2)

    # --- 5. every output, on a miss and on a hit ---------------------------

    def test_long_output_option(self):
        self.write("x.cpp", value(1))
        self.ok(self.plain(self.cxx, "-c", "x.cpp", "-DV=0"))  # an old x.o lying around
        (self.dir / "o").mkdir()
        for form in (["--output=o/y.o"], ["--output", "o/y.o"]):
            self.ok(self.compile(self.cxx, "-c", "x.cpp", *form))
            (self.dir / "o" / "y.o").unlink()
            self.kiln_then_plain(self.cxx, ["-c", "x.cpp", *form], outputs=("o/y.o",))

    def test_side_outputs_are_restored_on_a_hit(self):
        self.write("x.cpp", "int f(int a) { return a * 3; }\n")
        flags = ["-fstack-usage", "--write-dependencies"]
        if self.cxx == "g++":
            flags.append("-fcallgraph-info")
        (self.dir / "o1").mkdir()
        (self.dir / "o2").mkdir()
        self.ok(self.compile(self.cxx, *flags, "-c", "x.cpp", "-o", "o1/x.o"))
        outputs = ["o2/x.o", "o2/x.su", "o2/x.d"] + (["o2/x.ci"] if self.cxx == "g++" else [])
        k = self.kiln_then_plain(self.cxx, [*flags, "-c", "x.cpp", "-o", "o2/x.o"],
                                 outputs=tuple(outputs))
        self.assertEqual(self.stats()["direct_hit"], 1, k.describe())

    def test_side_outputs_kiln_does_not_store_are_not_cached(self):
        self.write("x.cpp", "int x;\n")
        flag = "-fdump-tree-original" if self.cxx == "g++" else "-ftime-trace"
        self.kiln_then_plain(self.cxx, [flag, "-c", "x.cpp", "-o", "x.o"])
        self.kiln_then_plain(self.cxx, [flag, "-c", "x.cpp", "-o", "x.o"])
        self.assertEqual(self.stats()["direct_hit"], 0)

    # --- 6. base_dir never changes which file is compiled ------------------

    def test_base_dir_rewrite_through_a_symlink(self):
        self.write("real/d1/inc/h.h", value(1))
        self.write("inc/h.h", value(2))
        (self.dir / "real" / "d1" / "d2").mkdir(parents=True)
        os.symlink(self.dir / "real" / "d1" / "d2", self.dir / "L")
        self.write("w/x.cpp", '#include "h.h"\n')
        env = dict(self.env, KILN_BASEDIR=str(self.dir))
        self.kiln_then_plain(self.cxx, ["-c", "x.cpp", f"-I{self.dir}/L/../inc", "-o", "x.o"],
                             cwd="w", env=env)

    # --- 9. cached now, with their inputs in the key -----------------------

    def test_profile_use_is_cached_with_its_profile(self):
        if self.cxx != "g++":
            self.skipTest("gcc's .gcda profiles")
        self.write("p.cpp", "int main(int argc, char**) { int s = 0;\n"
                            "  for (int i = 0; i < argc * 1000; ++i) s += i % 7;\n"
                            "  return s == 3 ? 1 : 0; }\n")
        self.ok(self.plain("g++", "-O2", "-fprofile-generate", "p.cpp", "-o", "p"))
        self.run_cmd([self.dir / "p"])
        args = ["-O2", "-fprofile-use", "-Wno-missing-profile", "-c", "p.cpp", "-o", "p.o"]
        self.ok(self.compile(self.cxx, *args))
        before = self.stats()
        self.kiln_then_plain(self.cxx, args, outputs=("p.o",))
        self.assertStatsDelta(before, {"direct_hit": 1})
        # Another training run changes the profile: a miss, the new object.
        self.run_cmd([self.dir / "p", "a", "b", "c"])
        self.touched()
        self.kiln_then_plain(self.cxx, args, outputs=("p.o",))

    def test_dependency_file_through_wp(self):
        self.write("inc/h.h", value(1))
        self.write("x.cpp", '#include "h.h"\n')
        args = ["-Iinc", "-Wp,-MD,deps/x.d", "-c", "x.cpp", "-o", "o/x.o"]
        (self.dir / "deps").mkdir()
        (self.dir / "o").mkdir()
        self.ok(self.compile(self.cxx, *args))
        (self.dir / "deps" / "x.d").unlink()
        before = self.stats()
        self.kiln_then_plain(self.cxx, args, outputs=("o/x.o", "deps/x.d"))
        self.assertStatsDelta(before, {"direct_hit": 1})


kilntest.instantiate(globals(), Correctness)

if __name__ == "__main__":
    kilntest.main()
