"""What a clean-room verdict judged, as a record both a run and the eval graders compute, so a
grader can reuse the run's verdict instead of running the same test on the same tree again.

The record names: the base commit; every path that differs from it at the judged commit with
its blob (hardened host git, `diff --raw`), less the two state documents the harness itself
rewrites after the verdict (the packet's PORT_STATUS.md and local tests README, which no code
imports); the test (its path, whether the base's or the agent's version ran, and that
version's blob); and the environment (sandbox kind, the docker image or the interpreter, the
harness version). Equal records mean the verdict would be given the same files, the same test
and the same sandbox, which is all a clean room lets in.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any


def judged_record(repo: Path, packet: Any, *, base: str, commit: str, test: str, agent_test: bool | str,
                  environment: dict[str, Any]) -> dict[str, Any]:
    """The record of a verdict on `commit` of the repository (or worktree) at `repo`;
    `agent_test` as run_verdict takes it (False/"base", "approved", True/"own")."""
    from harness.sandbox.host_git import run_git

    state_docs = {_field(packet, "port_state_file"), _field(packet, "local_tests_readme")}
    raw = run_git(repo, "diff", "--raw", "--no-renames", "--abbrev=40", "-z", base, commit)
    fields = raw.split("\0")
    changes = []
    for meta, path in zip(fields[0::2], fields[1::2]):  # ":old new oldsha newsha status", path
        if path and path not in state_docs:
            changes.append(f"{meta.split()[3]} {path}")
    version = "own" if agent_test is True else "base" if agent_test is False else str(agent_test)
    source = base if version == "base" else commit
    try:
        blob = run_git(repo, "rev-parse", f"{source}:{test}").strip()
    except Exception:  # no such test at that commit: the verdict could not run it either
        blob = None
    return {
        "base": base,
        "changes": hashlib.sha256("\n".join(sorted(changes)).encode()).hexdigest(),
        "test": {"path": test, "version": version, "blob": blob},
        "environment": environment,
    }


def environment_record(sandbox: str, *, image: str | None, python: str | None) -> dict[str, Any]:
    """The sandbox a verdict runs in, as far as it decides the result."""
    from harness import __version__

    if sandbox == "docker":
        from harness.sandbox.executors.docker import DEFAULT_IMAGE

        return {"sandbox": sandbox, "image": image or DEFAULT_IMAGE, "harness": __version__}
    return {"sandbox": sandbox, "python": python, "harness": __version__}


def _field(packet: Any, name: str) -> str | None:
    return packet.get(name) if isinstance(packet, dict) else getattr(packet, name, None)
