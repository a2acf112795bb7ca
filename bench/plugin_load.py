#!/usr/bin/env python3
"""What loading a remote-storage plugin costs a compilation (docs/remote-storage.md).

    python3 bench/plugin_load.py                 # plugins next to build/bin/kiln
    python3 bench/plugin_load.py --runs 100

Builds a tiny C program that does what kiln does when a compilation first
reaches a remote level: dlopen(RTLD_LAZY | RTLD_LOCAL) the plugin, call its
entry point and open one level (no request is sent), then exit. hyperfine
times it for each plugin against the same program loading nothing. Needs cc
and hyperfine (scripts/install-deps.sh installs both).
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LOADER_C = r"""
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include "plugin_abi.h"

int main(int argc, char** argv) {
  if (argc < 4) {
    return 0; /* the baseline: process start-up only */
  }
  void* lib = dlopen(argv[1], RTLD_LAZY | RTLD_LOCAL);
  if (!lib) {
    fprintf(stderr, "%s\n", dlerror());
    return 1;
  }
  const struct kiln_remote_api* (*entry)(void) =
      (const struct kiln_remote_api* (*)(void))dlsym(lib, "kiln_remote_plugin_api");
  const struct kiln_remote_api* api = entry ? entry() : NULL;
  void* level = api ? api->open(argv[2], argv[3], strlen(argv[3])) : NULL;
  if (!level) {
    fprintf(stderr, "cannot open a %s level with %s\n", argv[2], argv[1]);
    return 1;
  }
  api->close(level);
  return 0;
}
"""

# plugin file, level kind, settings text (settings_text.hpp); nothing listens
# at these addresses and no request is sent.
CASES = [
    ("libkiln-redis.so", "redis", "url=redis://127.0.0.1:1\n"),
    ("libkiln-http.so", "http", "url=http://127.0.0.1:1/cache\n"),
    ("libkiln-remote.so", "http", "url=http://127.0.0.1:1/cache\n"),
    ("libkiln-remote.so", "s3", "bucket=b\nendpoint=127.0.0.1:1\nuse_ssl=0\n"),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plugins", default=str(ROOT / "build" / "bin"),
                    help="directory of the plugins (default build/bin)")
    ap.add_argument("--runs", type=int, default=50)
    args = ap.parse_args()
    for tool in ("cc", "hyperfine"):
        if not shutil.which(tool):
            print(f"{tool} not found", file=sys.stderr)
            return 77
    plugins = Path(args.plugins)
    with tempfile.TemporaryDirectory(prefix="kiln-plugin-load-") as tmp:
        src = Path(tmp) / "loader.c"
        src.write_text(LOADER_C)
        loader = Path(tmp) / "loader"
        subprocess.run(["cc", "-O2", "-I", str(ROOT / "src" / "storage"), str(src),
                        "-o", str(loader), "-ldl"], check=True)
        commands = [("nothing (baseline)", [str(loader)])]
        for name, kind, settings in CASES:
            path = plugins / name
            if not path.exists():
                print(f"skipped: {path} not found", file=sys.stderr)
                continue
            subprocess.run([str(loader), str(path), kind, settings], check=True)
            commands.append((f"{name} ({kind})", [str(loader), str(path), kind, settings]))
        out = Path(tmp) / "hyperfine.json"
        argv = ["hyperfine", "-N", "-w", "5", "-r", str(args.runs), "--export-json", str(out)]
        for label, cmd in commands:
            argv += ["-n", label, shlex.join(cmd)]
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        results = json.loads(out.read_text())["results"]
    print(f"load + open of one level, median of {args.runs} runs (hyperfine -N):")
    for r in results:
        print(f"  {r['command']:<28} {r['median'] * 1000:6.2f} ms  "
              f"(user {r['user'] * 1000:.2f} ms, system {r['system'] * 1000:.2f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
