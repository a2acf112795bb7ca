"""The peers (kiln, ccache) and the configurations they run in: mode, storage
(local, or Redis)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import remote_servers


MODES = ("direct", "depend", "preprocessor")
STORAGES = ("local", "remote")


# --- peers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    mode: str  # direct | depend | preprocessor
    storage: str  # local | remote

    def __str__(self) -> str:
        return f"{self.mode}, {self.storage}"


# The environment each peer takes for each setting.
PEER_VARS = {
    "kiln": {"cache": "KILN_DIR", "config": ("KILN_CONFIG", "{c}/no-config/kiln.toml"),
             "preprocessor": {"KILN_DIRECT": "false"}, "depend": {"KILN_DEPEND": "true"},
             "base_dir": "KILN_BASEDIR", "remote": "KILN_REDIS_ENDPOINT",
             "disable": {"KILN_DISABLE": "1"}},
    "ccache": {"cache": "CCACHE_DIR", "config": ("CCACHE_CONFIGPATH", "/dev/null"),
               "preprocessor": {"CCACHE_NODIRECT": "1"}, "depend": {"CCACHE_DEPEND": "1"},
               "base_dir": "CCACHE_BASEDIR", "remote": "CCACHE_REMOTE_STORAGE",
               "disable": {"CCACHE_DISABLE": "1"}},
}
HIT_KINDS = {"direct_hit": "direct hit", "direct_cache_hit": "direct hit",
             "preprocessed_hit": "preprocessed hit", "preprocessed_cache_hit": "preprocessed hit",
             "miss": "miss", "cache_miss": "miss"}


@dataclass(frozen=True)
class Peer:
    tool: str  # kiln | ccache
    binary: str  # what runs (for kiln: a snapshot, so that a rebuild cannot interfere)
    origin: str  # what reproductions name
    disable: bool = False  # --self-check: KILN_DISABLE=1

    @property
    def name(self) -> str:
        return self.tool + (" (disabled)" if self.disable else "")

    @property
    def script_var(self) -> str:
        return self.tool.upper()

    def env(self, cfg: Config, cache: Path, cache_root: Path, ws: Path,
            base_dir: bool, remote_url: str | None) -> dict[str, str]:
        v = PEER_VARS[self.tool]
        name, value = v["config"]
        env = {v["cache"]: str(cache), name: value.format(c=cache_root)}
        if cfg.mode in ("preprocessor", "depend"):
            env.update(v[cfg.mode])
        if base_dir:
            env[v["base_dir"]] = str(ws)
        if remote_url:
            env[v["remote"]] = remote_url
        if self.disable:
            env.update(v["disable"])
        return env

    def counters(self, env: dict[str, str]) -> dict[str, int]:
        """The hit/miss counters of the cache in env."""
        if self.tool == "kiln":
            r = subprocess.run([self.binary, "-s", "--json"], env=env, capture_output=True)
            try:
                c = json.loads(r.stdout)["counters"]
            except (ValueError, KeyError):
                return {}
        else:
            r = subprocess.run([self.binary, "--print-stats"], env=env, capture_output=True)
            c = dict(line.split("\t", 1) for line in r.stdout.decode().splitlines()
                     if "\t" in line)
        return {k: int(c[k]) for k in HIT_KINDS if k in c}


def peer_for(args: argparse.Namespace, tool: str, root: Path) -> Peer:
    origin = os.path.realpath(args.kiln if tool == "kiln" else args.ccache)
    if tool == "ccache" and not os.access(origin, os.X_OK):
        sys.exit(f"ccache not found: {origin} (--ccache)")
    binary = snapshot(origin, root / "bin") if tool == "kiln" else origin
    return Peer(tool, binary, origin, disable=args.self_check)


def snapshot(binary: str, dest: Path, wait_s: float = 600) -> str:
    """A copy of kiln and the plugins beside it, taken once it is executable
    (it may be being rebuilt right now)."""
    deadline = time.monotonic() + wait_s
    while not os.access(binary, os.X_OK):
        if time.monotonic() > deadline:
            sys.exit(f"not executable: {binary}")
        time.sleep(1)
    time.sleep(0.5)
    dest.mkdir(parents=True, exist_ok=True)
    src = Path(binary).parent
    for f in [Path(binary), *src.glob("libkiln-*.so")]:
        shutil.copy2(f, dest / f.name)
    return str(dest / Path(binary).name)


def have_redis() -> bool:
    return remote_servers.find_program("redis-server") is not None


def parse_configs(spec: str) -> list[Config]:
    if spec == "all":
        return [Config(m, s) for m in MODES for s in STORAGES]
    cfgs = [Config(*c.split("/")) for c in spec.split(",")]
    for c in cfgs:
        if c.mode not in MODES or c.storage not in STORAGES:
            sys.exit(f"bad configuration {c.mode}/{c.storage}")
    return cfgs


def configs_for(project: str, args: argparse.Namespace) -> list[Config]:
    cfgs = parse_configs(args.gtest_configs if project == "gtest" else args.configs)
    return [c for c in cfgs if c.storage == "local" or have_redis()]


def storages_of(args: argparse.Namespace) -> list[str]:
    """The storages in use (random scenarios pick among them)."""
    if args.random:
        return ["local", "remote"] if have_redis() else ["local"]
    return sorted({c.storage for p in args.projects.split(",") for c in configs_for(p, args)},
                  key=STORAGES.index)
