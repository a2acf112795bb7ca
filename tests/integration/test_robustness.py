#!/usr/bin/env python3
"""kiln in a hostile environment: processes killed with SIGKILL at random
moments while storing, entries corrupted on disk, a cache directory that cannot
be created, a broken configuration file, a bad command line, KILN_DISABLE. The
build must always get a correct object; damage must be detected
(corrupt_entry) and never served."""

import base64
import os
import random
import signal
import subprocess
import time

import kilntest
from kilntest import read_bytes

N_SOURCES = 6
N_KILLS = 30


def source(i: int) -> str:
    # Big enough that a compile takes a moment, so kills land in every phase.
    body = "".join(f"  v.push_back(std::to_string({j} * x + {i}));\n" for j in range(15))
    return f"""\
#include <map>
#include <string>
#include <vector>
std::vector<std::string> make{i}(int x) {{
  std::vector<std::string> v;
{body}  return v;
}}
std::map<int, std::string> index{i}(int x) {{
  std::map<int, std::string> m;
  for (auto& s : make{i}(x)) m[static_cast<int>(s.size())] = s;
  return m;
}}
"""


class Robustness:
    cxx: str

    def setUp(self):
        super().setUp()
        for i in range(N_SOURCES):
            self.write(f"s{i}.cpp", source(i))
        self._plain = {}

    def plain_object(self, src, *flags):
        key = (src, flags)
        if key not in self._plain:
            self.ok(self.plain(self.cxx, "-c", src, *flags, "-o", "plain.o"))
            self._plain[key] = read_bytes(self.dir / "plain.o")
        return self._plain[key]

    def compile_and_check(self, src, *flags, env=None):
        out = self.dir / "check.o"
        out.unlink(missing_ok=True)
        r = self.ok(self.compile(self.cxx, "-c", src, *flags, "-o", out, env=env))
        self.assertEqual(read_bytes(out), self.plain_object(src, *flags),
                         f"wrong object for {src} {flags}")
        return r

    def assert_entries_well_formed(self):
        for p in self.entry_files():
            err = kilntest.check_entry_framing(read_bytes(p))
            self.assertIsNone(err, f"partial entry left on disk: {p.name}: {err}")

    # --- SIGKILL ---------------------------------------------------------------

    def test_kill_9_during_stores(self):
        # Sources whose object embeds 4 MB of random text (a string literal;
        # .incbin would read a file that is not in the key, which kiln rightly
        # does not cache): the compile is quick and storing (compressing,
        # writing, renaming) takes a large part of kiln's time, so many kills
        # land in a store.
        n_blobs = 4
        for i in range(n_blobs):
            text = base64.b64encode(os.urandom(3 * 1024 * 1024)).decode()
            lines = "\n".join(f'"{text[k:k + 4000]}"' for k in range(0, len(text), 4000))
            self.write(f"b{i}.cpp", f"extern const char blob{i}[] =\n{lines};\n"
                                    f"int blob_user{i}() {{ return {i}; }}\n")
        self.touched()
        # How long a compile and store take here, to aim the kills (the
        # first call also probes the compiler: not timed).
        self.compile_and_check("b0.cpp", env=dict(self.env, KILN_RECACHE="1"))
        durations = []
        for _ in range(3):
            start = time.monotonic()
            self.compile_and_check("b0.cpp", env=dict(self.env, KILN_RECACHE="1"))
            durations.append(time.monotonic() - start)
        duration = min(durations)
        rng = random.Random(4321)
        env = dict(self.env, KILN_RECACHE="1")
        self.settle()
        finished = 0
        for n in range(40):
            i = rng.randrange(n_blobs)
            flags = ["-MD"] if n % 2 else []
            p = subprocess.Popen([kilntest.KILN, self.cxx, "-c", f"b{i}.cpp", *flags, "-o",
                                  f"k{n}.o"], cwd=self.dir, env=env, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
            time.sleep(rng.uniform(0.0, 1.2) * duration)
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if p.wait(timeout=120) == 0:
                finished += 1
        self.assertLess(finished, 40, f"no process was killed ({duration:.3f} s each)")
        self.assert_entries_well_formed()
        before = self.stats()
        for rnd in range(2):
            for i in range(n_blobs):
                for flags in ([], ["-MD"]):
                    self.compile_and_check(f"b{i}.cpp", *flags)
        after = self.stats()
        self.assertEqual(after["corrupt_entry"], 0,
                         "a killed store left a damaged entry (writes should be atomic)")
        self.assertGreaterEqual(after["direct_hit"] - before["direct_hit"], 2 * n_blobs)
        self.assert_entries_well_formed()

    def test_kill_9_at_random_moments(self):
        rng = random.Random(1234)
        env = dict(self.env, KILN_RECACHE="1")  # every call compiles and stores
        self.settle()
        finished = 0
        for n in range(N_KILLS):
            i = rng.randrange(N_SOURCES)
            flags = ["-MD"] if n % 3 == 0 else []
            p = subprocess.Popen([kilntest.KILN, self.cxx, "-c", f"s{i}.cpp", *flags, "-o",
                                  f"k{n}.o"], cwd=self.dir, env=env, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
            time.sleep(rng.uniform(0.0, 0.8))
            try:
                os.killpg(p.pid, signal.SIGKILL)  # kiln and the compiler it runs
            except ProcessLookupError:
                pass
            if p.wait(timeout=120) == 0:
                finished += 1
        self.assertLess(finished, N_KILLS, "no process was killed: delays too long")
        self.assert_entries_well_formed()
        json_stats = self.stats()  # the statistics files still parse
        self.assertTrue(all(v >= 0 for k, v in json_stats.items() if k != "size"), json_stats)

        # Every source, with and without -MD, now compiles to the right object,
        # first from whatever the kills left, then certainly from the cache.
        before = self.stats()
        for rnd in range(2):
            for i in range(N_SOURCES):
                for flags in ([], ["-MD"]):
                    self.compile_and_check(f"s{i}.cpp", *flags)
        after = self.stats()
        self.assertEqual(after["corrupt_entry"], 0,
                         "a killed store left a damaged entry (writes should be atomic)")
        self.assertEqual(after["error_internal"], 0)
        hits = after["direct_hit"] - before["direct_hit"]
        self.assertGreaterEqual(hits, 2 * N_SOURCES, "second round was not all hits")
        self.assert_entries_well_formed()

    def test_kill_9_leaves_nothing_partial_with_many_parallel_kills(self):
        # Several stores in flight at once, killed together.
        env = dict(self.env, KILN_RECACHE="1")
        self.settle()
        rng = random.Random(99)
        for rnd in range(6):
            procs = [subprocess.Popen([kilntest.KILN, self.cxx, "-c", f"s{i}.cpp", "-o",
                                       f"p{rnd}_{i}.o"], cwd=self.dir, env=env,
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True)
                     for i in range(N_SOURCES)]
            time.sleep(rng.uniform(0.2, 1.5))
            for p in procs:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            for p in procs:
                p.wait(timeout=120)
        self.assert_entries_well_formed()
        for i in range(N_SOURCES):
            self.compile_and_check(f"s{i}.cpp")
        self.assertEqual(self.stats()["corrupt_entry"], 0)

    # --- corrupted entries -------------------------------------------------------

    def check_corruption(self, kind, damage, env=None):
        """Stores s0.cpp, damages its entries of `kind` with damage(path), and
        checks the damage is detected, not served, and repaired."""
        env = env or self.env
        self.compile_and_check("s0.cpp", env=env)
        entries = self.entry_files(kind)
        self.assertTrue(entries, f"no {kind} entry stored")
        for p in entries:
            damage(p)
        before = self.stats()
        self.compile_and_check("s0.cpp", env=env)
        after = self.stats()
        self.assertEqual(after["corrupt_entry"] - before["corrupt_entry"], 1,
                         "damaged entry not detected")
        self.assertEqual(after["direct_hit"], before["direct_hit"], "damaged entry served")
        # Repaired: the next compile is a hit again.
        before = after
        self.compile_and_check("s0.cpp", env=env)
        after = self.stats()
        self.assertEqual(after["direct_hit"] + after["preprocessed_hit"],
                         before["direct_hit"] + before["preprocessed_hit"] + 1)
        self.assertEqual(after["corrupt_entry"], before["corrupt_entry"])

    @staticmethod
    def flip_byte(p, where=0.5):
        data = bytearray(read_bytes(p))
        k = int(len(data) * where)
        data[k] ^= 0x5A
        p.write_bytes(bytes(data))

    def test_result_with_flipped_byte(self):
        self.check_corruption("R", self.flip_byte)

    def test_result_with_flipped_checksum_byte(self):
        self.check_corruption("R", lambda p: self.flip_byte(p, 0.999))

    def test_result_with_flipped_header_byte(self):
        # The stored payload size: a lie about the length.
        self.check_corruption("R", lambda p: self.flip_byte(p, 17 / os.path.getsize(p)))

    def test_result_truncated(self):
        def truncate(p):
            with open(p, "r+b") as f:
                f.truncate(os.path.getsize(p) // 2)
        self.check_corruption("R", truncate)

    def test_result_empty(self):
        self.check_corruption("R", lambda p: p.write_bytes(b""))

    def test_result_garbage(self):
        self.check_corruption("R", lambda p: p.write_bytes(os.urandom(os.path.getsize(p))))

    def test_manifest_with_flipped_byte(self):
        self.check_corruption("M", self.flip_byte)

    def test_manifest_truncated(self):
        def truncate(p):
            with open(p, "r+b") as f:
                f.truncate(40)
        self.check_corruption("M", truncate)

    def test_result_damaged_in_preprocessor_mode(self):
        self.check_corruption("R", self.flip_byte, env=dict(self.env, KILN_DIRECT="false"))

    def test_result_with_valid_framing_but_other_kind(self):
        # A manifest copied over a result: well-formed, wrong kind.
        self.compile_and_check("s0.cpp")
        (m,) = self.entry_files("M")
        (r,) = self.entry_files("R")
        r.write_bytes(read_bytes(m))
        before = self.stats()
        self.compile_and_check("s0.cpp")
        self.assertEqual(self.stats()["corrupt_entry"] - before["corrupt_entry"], 1)

    # --- environment ---------------------------------------------------------

    def test_cache_dir_cannot_be_created(self):
        self.write("a-file", "not a directory\n")
        env = dict(self.env, KILN_DIR=str(self.dir / "a-file" / "cache"))
        plain = self.plain(self.cxx, "-c", "s1.cpp", "-Wall", "-o", "plain.o")
        r = self.compile_and_check("s1.cpp", "-Wall", env=env)
        self.assertIn(b"kiln: warning", r.err, r.describe())
        self.assertIn(b"cache", r.err)
        self.assertTrue(r.err.endswith(plain.err), "the compiler's own output is lost")
        # Warned once: the next build is quiet.
        r = self.compile_and_check("s1.cpp", "-Wall", env=env)
        self.assertEqual(r.err, plain.err)

    def test_warning_markers_live_in_a_private_directory(self):
        # warn_once's markers go to $TMPDIR/kiln-<uid>, mode 0700: a name
        # another user of a shared /tmp cannot pre-create or redirect.
        self.write("a-file", "not a directory\n")
        env = dict(self.env, KILN_DIR=str(self.dir / "a-file" / "cache"))
        private = self.tmp / f"kiln-{os.getuid()}"
        r = self.compile_and_check("s1.cpp", env=env)
        self.assertIn(b"kiln: warning", r.err, r.describe())
        self.assertTrue(private.is_dir() and not private.is_symlink())
        self.assertEqual(private.stat().st_mode & 0o777, 0o700)
        self.assertEqual(len(list(private.iterdir())), 1)
        self.assertEqual([p for p in self.tmp.iterdir() if p.name.startswith("kiln-warned")], [])

    def test_warning_marker_directory_that_is_a_symlink_is_not_used(self):
        # Another user's link in the way: kiln writes nothing through it and
        # warns every time rather than stay quiet.
        self.write("a-file", "not a directory\n")
        env = dict(self.env, KILN_DIR=str(self.dir / "a-file" / "cache"))
        elsewhere = self.dir / "elsewhere"
        elsewhere.mkdir(mode=0o700)
        (self.tmp / f"kiln-{os.getuid()}").symlink_to(elsewhere)
        for _ in range(2):
            r = self.compile_and_check("s1.cpp", env=env)
            self.assertIn(b"kiln: warning", r.err, r.describe())
        self.assertEqual(list(elsewhere.iterdir()), [])

    def test_cache_dir_read_only_subdirectory(self):
        # A cache whose fan-out directory cannot be written (a file in the
        # way): the store fails, is counted, and the build goes on.
        self.compile_and_check("s2.cpp")
        for p in self.entry_files():
            p.unlink()
            p.parent.rmdir()
            p.parent.write_text("in the way\n")  # a file where a directory goes
        before = self.stats()
        self.compile_and_check("s2.cpp")
        after = self.stats()
        self.assertGreaterEqual(after["error_storage_write"] - before["error_storage_write"], 1)
        self.assertEqual(after["miss"] - before["miss"], 1)

    def test_invalid_config_file(self):
        cfg = self.write("bad.toml", "max_size = [\ncache_dir = 3 4\n")
        env = dict(self.env, KILN_CONFIG=str(cfg))
        r = self.compile_and_check("s3.cpp", env=env)
        self.assertIn(b"kiln: warning", r.err, r.describe())
        self.assertIn(str(cfg).encode(), r.err)
        # Runs with defaults plus the environment: the cache still works.
        self.compile_and_check("s3.cpp", env=env)
        self.assertEqual(self.stats()["direct_hit"], 1)
        r = self.kiln("-p", env=env)
        self.assertIn("error", r.text)

    def test_invalid_config_value_in_environment(self):
        env = dict(self.env, KILN_MAXSIZE="a lot", KILN_DIRECT="perhaps")
        r = self.compile_and_check("s4.cpp", env=env)
        self.assertIn(b"kiln: warning", r.err, r.describe())
        self.assertIn(b"KILN_", r.err)

    def test_unknown_key_in_config_file(self):
        cfg = self.write("k.toml", 'max_size = "1G"\nno_such_key = true\n')
        env = dict(self.env, KILN_CONFIG=str(cfg))
        r = self.compile_and_check("s4.cpp", env=env)
        self.assertIn(b"no_such_key", r.err, r.describe())
        self.assertIn("(config file) max_size", self.kiln("-p", env=env).text)

    def test_bogus_option(self):
        r = self.kiln("--bogus")
        self.assertEqual(r.code, 2, r.describe())
        self.assertIn(b"--bogus", r.err)
        self.assertIn(b"unknown option", r.err)
        self.assertEqual(r.out, b"")

    def test_disable(self):
        self.compile_and_check("s5.cpp")  # creates the cache and its statistics
        before = self.stats()
        files = self.cache_files()
        env = dict(self.env, KILN_DISABLE="1")
        plain = self.plain(self.cxx, "-c", "s5.cpp", "-O1", "-o", "plain.o")
        r = self.compile_and_check("s5.cpp", "-O1", env=env)
        self.assertEqual(r.err, plain.err)
        r = self.compile_and_check("s5.cpp", "-O1", env=env)
        self.assertEqual(self.stats(), before, "KILN_DISABLE changed statistics")
        self.assertEqual(self.cache_files(), files, "KILN_DISABLE stored something")

    def test_disable_does_not_create_cache(self):
        env = dict(self.env, KILN_DISABLE="true")
        self.compile_and_check("s5.cpp", env=env)
        self.assertFalse(self.cache.exists(), "KILN_DISABLE created the cache directory")

    def test_compiler_not_found(self):
        r = self.compile("no-such-compiler-kiln", "-c", "s0.cpp")
        self.assertEqual(r.code, 127, r.describe())
        self.assertIn(b"no-such-compiler-kiln", r.err)


kilntest.instantiate(globals(), Robustness)

if __name__ == "__main__":
    kilntest.main()
