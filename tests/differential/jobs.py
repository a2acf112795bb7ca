"""Scenarios as jobs: creating them (table and random) and running them in a
pool of worker processes."""

from __future__ import annotations

import argparse
import itertools
import random
import re
import time
from pathlib import Path
from typing import Callable, Iterator

import remote_servers
from mutations import MUTATIONS, Mutation
from peers import MODES, Config, Peer, configs_for, storages_of
from projects import PROJECTS
from random_scenarios import random_project, random_stages
from repro import reproduce
from runner import WORKER, Job, Result, Runner
from workspace import TRUST_S, Scenario, Workspace


# --- scenarios: creating and running -----------------------------------------------------


def new_scenario(work: Path, name: str, project: str) -> Scenario:
    ws = Workspace(work / "ws", work / "cache")
    return Scenario(name=name, project=project, ws=ws, tus=[], anchors=None)


def prepare_table_job(work: Path, project: str, m: Mutation, cfg: Config, peer: Peer,
                      verify: bool) -> Job:
    s = new_scenario(work, f"{project}/{m.name}", project)
    s.base_dir = m.base_dir
    PROJECTS[project](s, **dict(m.options))
    return Job(s, m.name, cfg, peer, work, verify)


def prepare_random_job(work: Path, seed: int, index: int, peer: Peer, storages: list[str],
                       verify: bool, deadline: float) -> Job:
    name = f"random/seed{seed}-{index}"
    rng = random.Random(f"{name}/project")
    s = new_scenario(work, name, "random")
    random_project(s, rng)
    storage = "remote" if "remote" in storages and rng.random() < 0.25 else storages[0]
    cfg = Config(rng.choice(MODES), storage)
    return Job(s, "random", cfg, peer, work, verify, deadline)


def init_worker(counter, budget, redis_port: int | None) -> None:
    with counter.get_lock():
        counter.value += 1
        WORKER["db"] = counter.value % 16
    WORKER["redis_port"] = redis_port
    WORKER["verify_budget"] = budget


def run_job(job: Job) -> Result:
    if job.deadline and time.time() > job.deadline:
        return Result(job.scenario.name, job.scenario.project, job.mutation, job.cfg,
                      job.peer.name, error="skipped: out of time")
    redis_url = None
    port = WORKER.get("redis_port")
    if port and job.cfg.storage == "remote":
        db = WORKER.get("db", 0)
        client = remote_servers.RedisClient(port)
        client.command("SELECT", db)
        client.command("FLUSHDB")
        client.close()
        redis_url = f"redis://127.0.0.1:{port}/{db}"
    stages = (random_stages(job.scenario) if job.mutation == "random"
              else MUTATIONS[job.mutation].fn(job.scenario))
    result = Runner(job, redis_url).run(stages)
    if result.failures:
        reproduce(job, result, redis_url is not None)
    return result


# --- scheduling -----------------------------------------------------------------------------


def wait_until_trusted(jobs: list[Job]) -> None:
    if jobs:
        wait = max(j.scenario.ws.created for j in jobs) + TRUST_S - time.monotonic()
        if wait > 0:
            time.sleep(wait)


def run_jobs(jobs: list[Job], pool, report: Callable[[Result], None]) -> list[Result]:
    wait_until_trusted(jobs)
    results = []
    for r in pool.imap_unordered(run_job, jobs):
        report(r)
        results.append(r)
    return results


def table_jobs(args: argparse.Namespace, peers: list[Peer], root: Path) -> list[Job]:
    jobs = []
    pattern = re.compile(args.mutations)
    for peer in peers:
        for project in args.projects.split(","):
            for m in MUTATIONS.values():
                if project not in m.projects or not pattern.search(m.name):
                    continue
                for cfg in configs_for(project, args):
                    work = root / f"{len(jobs):04d}"
                    verify = not (args.no_verify or args.table)
                    jobs.append(prepare_table_job(work, project, m, cfg, peer, verify))
    return jobs


def random_batches(args: argparse.Namespace, peer: Peer, root: Path, deadline: float
                   ) -> Iterator[list[Job]]:
    indices = ([args.index] if args.index is not None else
               range(args.count) if args.count else itertools.count())
    batch: list[Job] = []
    for i in indices:
        if deadline and time.time() > deadline:
            break
        work = root / f"r{i:05d}"
        batch.append(prepare_random_job(work, args.seed, i, peer, storages_of(args),
                                        not args.no_verify, deadline))
        if len(batch) >= 8 * args.jobs:
            yield batch
            batch = []
    if batch:
        yield batch
