#!/usr/bin/env python3
"""Secondary outputs on a hit: dependency files (-MD/-MMD/-MF/-MT/-MQ/-MP,
including a hit with another -o whose target must be the new object), split
DWARF .dwo files, coverage .gcno files, and assembly from -S. Every file a hit
writes is compared with what the compiler itself writes for the same command."""

import shutil

import kilntest
from kilntest import read_bytes

SOURCE = """\
#include "x.h"
#include <cstddef>
int value(int a) { return X_VALUE * a + static_cast<int>(sizeof(std::size_t)); }
"""

HEADER = "#pragma once\n#define X_VALUE 7\n"


class Outputs:
    cxx: str

    def setUp(self):
        super().setUp()
        self.write("src/a.cpp", SOURCE)
        self.write("inc/x.h", HEADER)

    def reset_dirs(self, *names):
        for n in names:
            p = self.dir / n
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
        for n in names:
            if "." not in n.split("/")[-1]:
                (self.dir / n).mkdir(parents=True, exist_ok=True)

    def plain_outputs(self, args, files, dirs=()):
        """Runs the plain compiler; returns {file: bytes} for `files`, then
        deletes them."""
        self.reset_dirs(*dirs)
        self.ok(self.plain(self.cxx, *args))
        out = {}
        for f in files:
            p = self.dir / f
            self.assertTrue(p.exists(), f"the compiler did not write {f}")
            out[f] = read_bytes(p)
        self.reset_dirs(*dirs)
        for f in files:
            (self.dir / f).unlink(missing_ok=True)
        return out

    def check_hit_outputs(self, miss_args, hit_args, files, dirs=(), hit_kind="direct_hit",
                          miss_files=()):
        """Compiles miss_args (a miss) and hit_args (a hit of the same key)
        through kiln and compares the hit's `files` with the compiler's."""
        want = self.plain_outputs(hit_args, files, dirs)
        self.reset_dirs(*dirs)
        before = self.stats()
        self.ok(self.compile(self.cxx, *miss_args))
        for f in miss_files:
            self.assertTrue((self.dir / f).exists(), f"a miss did not write {f}")
        s = self.assertStatsDelta(before, {"miss": 1})
        self.reset_dirs(*dirs)
        for f in list(files) + list(miss_files):
            (self.dir / f).unlink(missing_ok=True)
        self.ok(self.compile(self.cxx, *hit_args))
        self.assertStatsDelta(s, {hit_kind: 1})
        for f, data in want.items():
            p = self.dir / f
            self.assertTrue(p.exists(), f"a hit did not write {f}")
            self.assertEqual(read_bytes(p).decode(errors="replace"), data.decode(errors="replace"),
                             f"{f} written by a hit differs from the compiler's")
            self.assertEqual(read_bytes(p), data)

    # --- dependency files ----------------------------------------------------

    def test_md_derived_depfile(self):
        args = ["-c", "src/a.cpp", "-Iinc", "-MD", "-o", "obj/a.o"]
        self.check_hit_outputs(args, args, ["obj/a.d", "obj/a.o"], dirs=["obj"])

    def test_md_without_output_option(self):
        args = ["-c", "src/a.cpp", "-Iinc", "-MMD"]
        self.check_hit_outputs(args, args, ["a.d", "a.o"])

    def test_mmd_mp_mf(self):
        args = ["-c", "src/a.cpp", "-Iinc", "-MMD", "-MP", "-MF", "deps/a.d", "-o", "a.o"]
        self.check_hit_outputs(args, args, ["deps/a.d", "a.o"], dirs=["deps"])

    def test_mt_and_mq(self):
        args = ["-c", "src/a.cpp", "-Iinc", "-MD", "-MF", "a.d", "-MT", "custom_target",
                "-MQ", "quoted$target file", "-o", "a.o"]
        self.check_hit_outputs(args, args, ["a.d", "a.o"])

    def test_hit_with_other_output_rewrites_target(self):
        miss = ["-c", "src/a.cpp", "-Iinc", "-MD", "-o", "out1/a.o"]
        hit = ["-c", "src/a.cpp", "-Iinc", "-MD", "-o", "out2/sub/b.o"]
        self.check_hit_outputs(miss, hit, ["out2/sub/b.d", "out2/sub/b.o"],
                               dirs=["out1", "out2/sub"], miss_files=["out1/a.d"])
        self.assertIn(b"out2/sub/b.o:", read_bytes(self.dir / "out2/sub/b.d"))

    def test_hit_with_other_output_and_same_mf(self):
        miss = ["-c", "src/a.cpp", "-Iinc", "-MMD", "-MP", "-MF", "dep.d", "-o", "first.o"]
        hit = ["-c", "src/a.cpp", "-Iinc", "-MMD", "-MP", "-MF", "dep.d", "-o", "second.o"]
        self.check_hit_outputs(miss, hit, ["dep.d", "second.o"])

    def test_hit_with_output_path_needing_escapes(self):
        miss = ["-c", "src/a.cpp", "-Iinc", "-MD", "-MF", "a.d", "-o", "plain dir/a.o"]
        hit = ["-c", "src/a.cpp", "-Iinc", "-MD", "-MF", "a.d", "-o", "odd dir/a#1$.o"]
        self.check_hit_outputs(miss, hit, ["a.d", "odd dir/a#1$.o"],
                               dirs=["plain dir", "odd dir"])

    def test_absolute_paths_in_depfile(self):
        miss = ["-c", str(self.dir / "src/a.cpp"), f"-I{self.dir}/inc", "-MD", "-o",
                str(self.dir / "o1/a.o")]
        hit = ["-c", str(self.dir / "src/a.cpp"), f"-I{self.dir}/inc", "-MD", "-o",
               str(self.dir / "o2/a.o")]
        self.check_hit_outputs(miss, hit, ["o2/a.d", "o2/a.o"], dirs=["o1", "o2"])

    def test_depfile_on_preprocessed_hit(self):
        self.env["KILN_DIRECT"] = "false"
        miss = ["-c", "src/a.cpp", "-Iinc", "-MD", "-MP", "-o", "o1/a.o"]
        hit = ["-c", "src/a.cpp", "-Iinc", "-MD", "-MP", "-o", "o2/c.o"]
        self.check_hit_outputs(miss, hit, ["o2/c.d", "o2/c.o"], dirs=["o1", "o2"],
                               hit_kind="preprocessed_hit")

    def test_depfile_with_depend_mode_off(self):
        self.env["KILN_DEPEND"] = "false"
        miss = ["-c", "src/a.cpp", "-Iinc", "-MMD", "-o", "o1/a.o"]
        hit = ["-c", "src/a.cpp", "-Iinc", "-MMD", "-o", "o2/a.o"]
        self.check_hit_outputs(miss, hit, ["o2/a.d", "o2/a.o"], dirs=["o1", "o2"])

    def test_no_depfile_without_md(self):
        # A result stored with -MD is not used to write a depfile for a call
        # without it, and vice versa the object is still right.
        args = ["-c", "src/a.cpp", "-Iinc", "-o", "a.o"]
        self.ok(self.compile(self.cxx, *args, "-MD"))
        (self.dir / "a.d").unlink()
        self.ok(self.compile(self.cxx, *args))
        self.assertFalse((self.dir / "a.d").exists())
        self.ok(self.compile(self.cxx, *args))
        self.assertFalse((self.dir / "a.d").exists())

    # --- other outputs -------------------------------------------------------

    def test_assembly(self):
        args = ["-S", "src/a.cpp", "-Iinc", "-O1", "-o", "a.s"]
        self.check_hit_outputs(args, args, ["a.s"])
        self.assertIn(b"value", read_bytes(self.dir / "a.s"))

    def test_assembly_default_name(self):
        args = ["-S", "src/a.cpp", "-Iinc"]
        self.check_hit_outputs(args, args, ["a.s"])
        self.assertFalse((self.dir / "a.o").exists())

    def test_split_dwarf(self):
        args = ["-c", "src/a.cpp", "-Iinc", "-g", "-gsplit-dwarf", "-o", "obj/a.o"]
        self.check_hit_outputs(args, args, ["obj/a.o", "obj/a.dwo"], dirs=["obj"])

    def test_split_dwarf_other_output_is_a_miss(self):
        # The .dwo's name is inside the object: another -o must not hit.
        self.ok(self.compile(self.cxx, "-c", "src/a.cpp", "-Iinc", "-g", "-gsplit-dwarf", "-o",
                             "a.o"))
        before = self.stats()
        self.ok(self.compile(self.cxx, "-c", "src/a.cpp", "-Iinc", "-g", "-gsplit-dwarf", "-o",
                             "b.o"))
        self.assertStatsDelta(before, {"miss": 1})
        self.assertTrue((self.dir / "b.dwo").exists())

    def test_coverage_gcno(self):
        args = ["-c", "src/a.cpp", "-Iinc", "--coverage", "-o", "obj/a.o"]
        self.reset_dirs("obj")
        self.ok(self.compile(self.cxx, *args))
        miss_obj = read_bytes(self.dir / "obj/a.o")
        miss_gcno = read_bytes(self.dir / "obj/a.gcno")
        self.reset_dirs("obj")
        before = self.stats()
        self.ok(self.compile(self.cxx, *args))
        self.assertStatsDelta(before, {"direct_hit": 1})
        self.assertTrue((self.dir / "obj/a.gcno").exists(), "a hit did not write the .gcno")
        # gcc stamps each compile differently: the hit must give the pair
        # stored together.
        self.assertEqual(read_bytes(self.dir / "obj/a.gcno"), miss_gcno)
        self.assertEqual(read_bytes(self.dir / "obj/a.o"), miss_obj)

    def test_large_object_streams_byte_identical(self):
        # Several MB: a hit decodes it in many pieces straight into the file.
        self.write("src/big.cpp",
                   "int big_table[3 << 20 >> 2] = {1, 2, 3};\n"
                   "int big_value(int i) { return big_table[i]; }\n")
        args = ["-c", "src/big.cpp", "-g", "-o", "obj/big.o"]
        self.check_hit_outputs(args, args, ["obj/big.o"], dirs=["obj"])
        self.assertGreater((self.dir / "obj/big.o").stat().st_size, 3 << 20)

    def test_hit_that_cannot_write_falls_back(self):
        # The hit cannot write its object ("obj" is a file, not a directory:
        # this fails for root too): kiln lets the compiler run, so the user
        # sees the compiler's own error, and nothing is counted as a hit.
        args = ["-c", "src/a.cpp", "-Iinc", "-o", "obj/a.o"]
        self.reset_dirs("obj")
        self.ok(self.compile(self.cxx, *args))
        self.reset_dirs("obj")
        (self.dir / "obj").rmdir()
        self.write("obj", "a file in the way\n")
        plain = self.plain(self.cxx, *args)
        self.assertNotEqual(plain.code, 0)
        before = self.stats()
        r = self.compile(self.cxx, *args)
        self.assertEqual(r.code, plain.code)
        self.assertEqual(r.err_text, plain.err_text)
        after = self.stats()
        self.assertEqual(after["direct_hit"], before["direct_hit"])
        self.assertEqual(sorted(p.name for p in self.dir.iterdir() if p.name.startswith("obj")),
                         ["obj"])

kilntest.instantiate(globals(), Outputs)

if __name__ == "__main__":
    kilntest.main()
