"""Reporting: a scenario's result as text, and the markdown table."""

from __future__ import annotations

import os

from mutations import MUTATIONS
from peers import MODES, STORAGES, Peer
from projects import available_projects
from runner import Result


def describe(r: Result, with_repro: bool = True) -> str:
    kinds = ", ".join(f"{v} {k}" for k, v in sorted(r.kinds.items()))
    status = "FAIL" if (r.failures or r.error) else "PASS"
    errors = f", {r.compile_errors} compile errors" if r.compile_errors else ""
    head = (f"{status} {r.name} [{r.cfg}] peer {r.peer}: {r.steps} steps, "
            f"{len(r.failed_steps)} failed ({r.seconds:.1f} s; peer after step 0: "
            f"{kinds or '-'}{errors})")
    lines = [head]
    if r.error:
        lines.append("  HARNESS ERROR: " + r.error)
    for f in r.failures:
        lines.append(f"  step {f.step} ({f.label}): TU {f.tu} ({f.compiler}), "
                     f"peer: {f.peer_kind}")
        lines += [f"    {d}" for d in f.diffs]
    if r.repro and with_repro:
        lines += [f"  reproduction ({r.repro_note}):", "----- 8< -----", r.repro.rstrip(),
                  "----- >8 -----"]
    return "\n".join(lines)


def summarize_cell(results: list[Result]) -> str:
    """One table cell: "correct" or what went wrong where."""
    bad = [r for r in results if r.failures or r.error]
    if not results:
        return "not run"
    if not bad:
        return "correct"
    modes = sorted({r.cfg.mode for r in bad}, key=MODES.index)
    storages = sorted({r.cfg.storage for r in bad}, key=STORAGES.index)
    compilers = sorted({f.compiler for r in bad for f in r.failures})
    what = sorted({_what(d) for r in bad for f in r.failures for d in f.diffs}
                  | ({"harness error"} if any(r.error for r in bad) else set()))
    return (f"**WRONG** ({', '.join(modes)}; {', '.join(storages)}; {', '.join(compilers)}: "
            f"{', '.join(what)})")


def _what(diff: str) -> str:
    if diff.startswith("output "):
        ext = os.path.splitext(diff.split()[1])[1] or "file"
        kind = "missing" if diff.endswith("missing") else "differs"
        return f"{ext} {kind}"
    return diff.split()[0] if not diff.startswith("exit") else "exit status"


def markdown_table(results: list[Result], peers: list[Peer]) -> str:
    rows = []
    for project in available_projects():
        for m in MUTATIONS.values():
            if project not in m.projects:
                continue
            cells = [summarize_cell([r for r in results if r.project == project
                                     and r.mutation == m.name and r.peer == p.name])
                     for p in peers]
            doc = m.doc.replace("|", "\\|").replace("\n", " ")
            rows.append(f"| {project}: {m.name} | {doc} | " + " | ".join(cells) + " |")
    head = "| mutation | what changes | " + " | ".join(p.name for p in peers) + " |"
    sep = "| --- | --- | " + " | ".join("---" for _ in peers) + " |"
    return "\n".join([head, sep, *rows])
