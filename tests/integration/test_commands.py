#!/usr/bin/env python3
"""kiln's own commands: -s (table and --json), -z, -c, -C, -M, -p, -o, -V, -h,
and their errors."""

import json
import re
import tomllib

import kilntest


class Commands(kilntest.KilnTestCase):
    cxx = kilntest.COMPILERS[0] if kilntest.COMPILERS else "g++"

    def setUp(self):
        super().setUp()
        self.write("a.cpp", "int a() { return 1; }\n")
        self.write("b.cpp", "int b() { return 2; }\n")

    def populate(self):
        """One miss, one direct hit, one preprocessed hit, one link call."""
        self.ok(self.compile(self.cxx, "-c", "a.cpp"))
        self.ok(self.compile(self.cxx, "-c", "a.cpp"))
        self.ok(self.compile(self.cxx, "-c", "b.cpp", env=dict(self.env, KILN_DIRECT="0")))
        self.ok(self.compile(self.cxx, "-c", "b.cpp", env=dict(self.env, KILN_DIRECT="0")))
        self.compile(self.cxx, "a.cpp", "-o", "prog")  # link: no main, fails; uncacheable

    def table_value(self, table, label):
        m = re.search(rf"^\s*{re.escape(label)}\s+(\d+)", table, re.M)
        self.assertIsNotNone(m, f"no row {label!r} in:\n{table}")
        return int(m.group(1))

    def test_show_stats_json(self):
        self.populate()
        doc = self.stats_json()
        self.assertEqual(doc["cache_dir"], str(self.cache))
        c = doc["counters"]
        self.assertEqual((c["miss"], c["direct_hit"], c["preprocessed_hit"]), (2, 1, 1))
        self.assertEqual(c["called_for_link"], 1)
        self.assertEqual(doc["hits"], 2)
        self.assertEqual(doc["cacheable_calls"], 4)
        size, files = self.disk_usage()
        self.assertEqual((c["size"], c["files"]), (size, files))
        self.assertIsInstance(doc["max_size"], int)
        for name in ("direct_hit", "preprocessed_hit", "miss", "compile_failed",
                     "corrupt_entry", "files", "size", "cleanups", "modified_during_compile"):
            self.assertIn(name, c)

    def test_show_stats_table(self):
        self.populate()
        r = self.ok(self.kiln("-s"))
        t = r.text
        self.assertIn(str(self.cache), t)
        self.assertEqual(self.table_value(t, "Cacheable calls"), 4)
        self.assertEqual(self.table_value(t, "Hits"), 2)
        self.assertEqual(self.table_value(t, "Direct"), 1)
        self.assertEqual(self.table_value(t, "Preprocessed"), 1)
        self.assertEqual(self.table_value(t, "Misses"), 2)
        self.assertEqual(self.table_value(t, "Called for linking"), 1)
        self.assertEqual(self.table_value(t, "Files"), self.stats()["files"])
        self.assertIn("50.00 %", t)  # hits of cacheable calls
        # --show-stats is the same command.
        self.assertEqual(self.ok(self.kiln("--show-stats")).out, r.out)

    def test_show_stats_empty_cache(self):
        doc = self.stats_json()
        self.assertTrue(all(v == 0 for v in doc["counters"].values()), doc)
        self.ok(self.kiln("-s"))

    def test_zero_stats(self):
        self.populate()
        s = self.stats()
        r = self.ok(self.kiln("-z"))
        self.assertIn("zeroed", r.text.lower())
        z = self.stats()
        for k, v in z.items():
            if k in ("files", "size"):
                self.assertEqual(v, s[k], f"-z changed {k}")
            else:
                self.assertEqual(v, 0, f"-z left {k}")
        self.assertGreater(z["files"], 0)
        # Counting goes on from zero.
        self.ok(self.compile(self.cxx, "-c", "a.cpp"))
        self.assertEqual(self.stats()["direct_hit"], 1)

    def test_clear(self):
        self.populate()
        self.assertTrue(self.entry_files())
        r = self.ok(self.kiln("-C"))
        self.assertIn("Cleared", r.text)
        self.assertEqual(self.entry_files(), [])
        s = self.stats()
        self.assertEqual((s["files"], s["size"]), (0, 0))
        self.assertEqual(s["direct_hit"], 1, "-C must not zero the statistics")
        before = s
        self.ok(self.compile(self.cxx, "-c", "a.cpp"))
        self.assertEqual(self.stats()["miss"], before["miss"] + 1)

    def test_cleanup_command(self):
        self.populate()
        r = self.ok(self.kiln("-c"))
        self.assertTrue(r.text.startswith("Cleanup:"), r.text)
        self.assertEqual(self.stats()["cleanups"], 1)

    def test_show_config_sources(self):
        self.env["KILN_MAXSIZE"] = "3G"
        r = self.ok(self.kiln("-p"))
        t = r.text
        self.assertIn("(environment) max_size = 3.0 GiB", t)
        self.assertIn(f"(environment) cache_dir = {self.cache}", t)
        self.assertRegex(t, r"\(default\) direct_mode = true")
        self.assertIn("not present", t)  # the config file does not exist

    def test_max_size_writes_config_file(self):
        cfg = self.dir / "cfg" / "kiln.toml"
        self.env["KILN_CONFIG"] = str(cfg)
        r = self.ok(self.kiln("-M", "10G"))
        self.assertTrue(cfg.exists(), r.describe())
        self.assertEqual(tomllib.loads(cfg.read_text()), {"max_size": "10G"})
        self.assertIn("(config file) max_size = 10.0 GiB", self.kiln("-p").text)
        self.assertEqual(self.stats_json()["max_size"], 10 * 1024 ** 3)
        # The environment overrides the file.
        env = dict(self.env, KILN_MAXSIZE="1G")
        self.assertIn("(environment) max_size = 1.0 GiB", self.kiln("-p", env=env).text)
        # --max-size=VALUE, and other keys in the file are kept.
        self.ok(self.kiln("-o", "depend_mode=false"))
        self.ok(self.kiln("--max-size=20G"))
        t = self.kiln("-p").text
        self.assertIn("(config file) max_size = 20.0 GiB", t)
        self.assertIn("(config file) depend_mode = false", t)
        self.assertEqual(tomllib.loads(cfg.read_text()),
                         {"max_size": "20G", "depend_mode": False})

    def test_set_config_writes_typed_values(self):
        # Issue 8: -o s3_use_ssl=false wrote the string "false".
        cfg = self.dir / "cfg" / "kiln.toml"
        self.env["KILN_CONFIG"] = str(cfg)
        self.ok(self.kiln("-o", "s3_use_ssl=false"))
        self.ok(self.kiln("-o", "remote_backoff=10"))
        self.ok(self.kiln("-o", "storage=local, s3"))
        self.assertEqual(tomllib.loads(cfg.read_text()),
                         {"s3_use_ssl": False, "remote_backoff": 10, "storage": "local,s3"})
        t = self.kiln("-p").text
        self.assertIn("(config file) s3_use_ssl = false", t)
        self.assertIn("(config file) storage = local,s3", t)
        r = self.kiln("-o", "s3_use_ssl=maybe")
        self.assertEqual(r.code, 1, r.describe())
        self.assertIn(b"s3_use_ssl", r.err)

    def test_config_file_is_used(self):
        cfg = self.write("c.toml", f'cache_dir = "{self.dir / "other-cache"}"\n'
                                   "direct_mode = false\n")
        env = dict(self.env, KILN_CONFIG=str(cfg))
        del env["KILN_DIR"]
        self.ok(self.compile(self.cxx, "-c", "a.cpp", env=env))
        self.ok(self.compile(self.cxx, "-c", "a.cpp", env=env))
        self.assertTrue(self.entry_files(cache=self.dir / "other-cache"))
        self.assertFalse(self.cache.exists())
        self.assertEqual(self.stats(env=env)["preprocessed_hit"], 1)

    def test_set_config_errors(self):
        r = self.kiln("-o", "no_such_key=1")
        self.assertEqual(r.code, 1, r.describe())
        self.assertIn(b"no_such_key", r.err)
        r = self.kiln("-o", "max_size=huge")
        self.assertEqual(r.code, 1, r.describe())
        r = self.kiln("-o", "novalue")
        self.assertEqual(r.code, 2, r.describe())
        r = self.kiln("-M")
        self.assertEqual(r.code, 2, r.describe())
        self.assertFalse((self.dir / "no-such-config" / "kiln.toml").exists())

    def test_version_and_help(self):
        r = self.ok(self.kiln("-V"))
        self.assertRegex(r.text, r"^kiln \d+\.\d+\.\d+")
        r = self.ok(self.kiln("--help"))
        for opt in ("-s", "-z", "-C", "-M", "-p"):
            self.assertIn(opt, r.text)

    def test_no_arguments(self):
        r = self.kiln()
        self.assertEqual(r.code, 2)
        self.assertIn(b"Usage", r.err)

    def test_json_output_is_stable_json(self):
        # No trailing garbage, one object, integers only.
        r = self.ok(self.kiln("-s", "--json"))
        doc = json.loads(r.out)
        self.assertTrue(all(isinstance(v, int) for v in doc["counters"].values()))
        self.assertEqual(r.err, b"")


if __name__ == "__main__":
    kilntest.main()
