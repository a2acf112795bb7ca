#!/usr/bin/env python3
"""Many kiln processes at once on an empty cache: 40 on one key, and 40 on 10
keys. All must succeed with correct objects (compared with the plain
compiler's), and the cache must be consistent afterwards: a second round is
all hits."""

import subprocess

import kilntest
from kilntest import read_bytes

N_PROCESSES = 40


def source(i: int) -> str:
    return f"""\
#include "shared.h"
#include <vector>
int compute{i}(int x) {{
  std::vector<int> v(x + {i});
  for (int& e : v) e = shared_value() * {i + 1};
  int s = 0;
  for (int e : v) s += e;
  return s;
}}
"""


class Concurrency:
    cxx: str

    def setUp(self):
        super().setUp()
        self.write("inc/shared.h", "#pragma once\ninline int shared_value() { return 5; }\n")
        for i in range(10):
            self.write(f"src/s{i}.cpp", source(i))
        (self.dir / "out").mkdir()

    def start_all(self, commands):
        """Starts every command at once; returns their (code, stdout, stderr)."""
        self.settle()
        procs = [subprocess.Popen([kilntest.KILN, self.cxx, *args], cwd=self.dir, env=self.env,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE) for args in commands]
        results = []
        for p in procs:
            out, err = p.communicate(timeout=600)
            results.append((p.returncode, out, err))
        return results

    def plain_objects(self, commands):
        """{source: object bytes} from the plain compiler."""
        want = {}
        for args in commands:
            src = args[args.index("-c") + 1]
            if src not in want:
                extra = [a for a in args if a.startswith("-D") or a.startswith("-O")]
                self.ok(self.plain(self.cxx, "-c", src, "-Iinc", *extra, "-o", "plain.o"))
                want[src] = read_bytes(self.dir / "plain.o")
        return want

    def check_round(self, commands, want, expect_all_hits):
        before = self.stats()
        results = self.start_all(commands)
        for (code, out, err), args in zip(results, commands):
            self.assertEqual(code, 0, f"{args}: exit {code}\n{err.decode(errors='replace')}")
            self.assertEqual(err, b"", args)
            obj = self.dir / args[args.index("-o") + 1]
            src = args[args.index("-c") + 1]
            self.assertEqual(read_bytes(obj), want[src], f"wrong object for {args}")
            obj.unlink()
        after = self.stats()
        delta = {k: after[k] - before[k] for k in after}
        hits = delta["direct_hit"] + delta["preprocessed_hit"]
        self.assertEqual(hits + delta["miss"], len(commands), delta)
        for k in ("corrupt_entry", "error_internal", "error_storage_read", "error_storage_write",
                  "missing_output", "modified_during_compile"):
            self.assertEqual(delta[k], 0, f"{k}: {delta}")
        if expect_all_hits:
            self.assertEqual(delta["direct_hit"], len(commands), delta)
        else:
            self.assertGreaterEqual(delta["miss"], len(want), delta)
        for p in self.cache_files():
            err = kilntest.check_entry_framing(read_bytes(p)) if len(p.name) == 65 else None
            self.assertIsNone(err, f"{p.name}: {err}")
        return delta

    def run_rounds(self, commands):
        want = self.plain_objects(commands)
        self.check_round(commands, want, expect_all_hits=False)
        self.check_round(commands, want, expect_all_hits=True)
        # The counters are approximate under concurrent stores of one key
        # (docs/statistics.md) ...
        size, files = self.disk_usage()
        s = self.stats()
        self.assertLessEqual(abs(s["files"] - files), N_PROCESSES, (s["files"], files))
        # ... and exact after a cleanup, which recounts.
        self.ok(self.kiln("-c"))
        s = self.stats()
        self.assertEqual((s["size"], s["files"]), (size, files),
                         "size/files counters do not match the disk after kiln -c")

    def test_40_processes_one_key(self):
        self.run_rounds([["-c", "src/s3.cpp", "-Iinc", "-O1", "-o", f"out/o{i}.o"]
                         for i in range(N_PROCESSES)])

    def test_40_processes_one_key_depend_mode(self):
        self.run_rounds([["-c", "src/s3.cpp", "-Iinc", "-MD", "-o", f"out/o{i}.o"]
                         for i in range(N_PROCESSES)])

    def test_40_processes_ten_keys(self):
        self.run_rounds([["-c", f"src/s{i % 10}.cpp", "-Iinc", "-o", f"out/o{i}.o"]
                         for i in range(N_PROCESSES)])

    def test_40_processes_ten_keys_one_source(self):
        # Ten keys sharing one manifest: only a -D differs.
        self.run_rounds([["-c", "src/s0.cpp", "-Iinc", f"-DVARIANT={i % 10}", "-o",
                          f"out/o{i}.o"] for i in range(N_PROCESSES)])


kilntest.instantiate(globals(), Concurrency)

if __name__ == "__main__":
    kilntest.main()
