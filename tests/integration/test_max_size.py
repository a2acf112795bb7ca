#!/usr/bin/env python3
"""The size limit: with a small KILN_MAXSIZE, a series of compiles makes kiln
start background cleanups that keep the cache under the limit, and the size
and files counters of `kiln -s --json` agree with what is on disk. Also the
explicit `kiln -c` cleanup."""

import time

import kilntest
from kilntest import read_bytes

N_SOURCES = 30
LIMIT = 200 * 1024


def source(i: int) -> str:
    # Each object is some KiB, so 30 of them overflow a 200 KiB cache.
    funcs = "".join(f"long f{i}_{j}(long x) {{ return x * {j + 1} + {i}; }}\n" for j in range(60))
    return f'static const char pad{i}[] = "{"x" * 512}{i}";\n{funcs}'


class MaxSize:
    cxx: str

    def setUp(self):
        super().setUp()
        for i in range(N_SOURCES):
            self.write(f"s{i}.cpp", source(i))

    def wait_for_cleanup(self, limit, seconds=10.0):
        """Waits for background cleanups to bring the disk under `limit`."""
        deadline = time.monotonic() + seconds
        while True:
            size, files = self.disk_usage()
            if size <= limit or time.monotonic() > deadline:
                return size, files
            time.sleep(0.1)

    def test_background_cleanup_keeps_cache_under_limit(self):
        self.env["KILN_MAXSIZE"] = "200K"
        total_stored = 0
        for i in range(N_SOURCES):
            self.ok(self.compile(self.cxx, "-c", f"s{i}.cpp", "-o", f"s{i}.o"))
            total_stored += len(read_bytes(self.dir / f"s{i}.o"))
        self.assertGreater(total_stored, LIMIT, "test sources too small to overflow the cache")
        size, files = self.wait_for_cleanup(LIMIT)
        self.assertLessEqual(size, LIMIT, f"cache is {size} bytes on disk, over the limit")
        self.assertGreater(files, 0, "cleanup removed everything")
        # Let any cleanup still running finish its bookkeeping.
        time.sleep(0.5)
        s = self.stats()
        self.assertGreaterEqual(s["cleanups"], 1)
        self.assertEqual(s["miss"], N_SOURCES)
        size, files = self.disk_usage()
        self.assertLessEqual(abs(s["files"] - files), 2,
                             f"files counter {s['files']}, disk {files}")
        self.assertLessEqual(abs(s["size"] - size), max(16 * 1024, size // 10),
                             f"size counter {s['size']}, disk {size}")
        self.assertLessEqual(s["size"], LIMIT)
        # The most recent result survived (least recently used go first).
        before = s
        self.ok(self.compile(self.cxx, "-c", f"s{N_SOURCES - 1}.cpp", "-o", "last.o"))
        self.assertEqual(self.stats()["direct_hit"], before["direct_hit"] + 1)
        self.assertEqual(read_bytes(self.dir / "last.o"),
                         read_bytes(self.dir / f"s{N_SOURCES - 1}.o"))

    def test_explicit_cleanup(self):
        for i in range(10):
            self.ok(self.compile(self.cxx, "-c", f"s{i}.cpp", "-o", f"s{i}.o"))
        size, files = self.disk_usage()
        s = self.stats()
        self.assertEqual((s["size"], s["files"]), (size, files))
        limit = size // 2
        env = dict(self.env, KILN_MAXSIZE=str(limit))
        r = self.ok(self.kiln("-c", env=env))
        self.assertIn("Cleanup", r.text)
        size2, files2 = self.disk_usage()
        self.assertLessEqual(size2, limit)
        self.assertLess(files2, files)
        s = self.stats()
        self.assertEqual((s["size"], s["files"]), (size2, files2))
        self.assertEqual(s["cleanups"], 1)
        # Whatever was evicted is compiled again correctly.
        for i in range(10):
            self.ok(self.compile(self.cxx, "-c", f"s{i}.cpp", "-o", "again.o"))
            self.assertEqual(read_bytes(self.dir / "again.o"), read_bytes(self.dir / f"s{i}.o"))

    def test_no_limit(self):
        self.env["KILN_MAXSIZE"] = "0"
        for i in range(5):
            self.ok(self.compile(self.cxx, "-c", f"s{i}.cpp", "-o", f"s{i}.o"))
        self.ok(self.kiln("-c"))
        s = self.stats()
        self.assertEqual(s["files"], self.disk_usage()[1])
        self.assertGreaterEqual(s["files"], 10)  # a result and a manifest each


kilntest.instantiate(globals(), MaxSize)

if __name__ == "__main__":
    kilntest.main()
