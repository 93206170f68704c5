"""prepare_workspace: the run's worktree, its sandbox kept warm for the whole run, the sandbox's
preflight before any model call, and the skill the agents follow."""

from __future__ import annotations

from typing import Any

from harness.graph.nodes.common import Update, official_ref_dir, packet_of, timed
from harness.graph.state import RunState
from harness.runs.resources import RunResources
from harness.sandbox.preflight import blocker_text, failures, run_preflight
from harness.sandbox.preflight_cache import PreflightCache
from harness.skills import skill_for


@timed("prepare_workspace")
def prepare_workspace(state: RunState, res: RunResources) -> Update:
    """Make (or reopen) the run's worktree and start the executor for the whole run."""
    packet = packet_of(state)
    ws = res.create_workspace(official_ref_dir(packet, res.cfg.repo))
    for notice in getattr(ws, "notices", []):
        res.log.warning(notice)
    executor = res.executor  # start it now: one sandbox, kept warm for every test of the run
    workspace = {"path": str(ws.path), "branch": ws.branch, "base_commit": ws.base_commit}
    blocked = _preflight(res, executor, packet)
    if blocked:
        return {"workspace": workspace, **blocked}
    # The skill text comes from the user's checkout, which agents cannot write, never from the worktree.
    skill = skill_for(packet.component_type, res.cfg.repo)
    res.log.info(skill.describe_source())
    return {
        "workspace": workspace,
        "skill": {"name": skill.name, "bucket": str(skill.bucket), "source": skill.describe_source()},
        "debug_rounds": 0,
        "debug_attempts": [],
        # The packet's concerns_or_unknowns are instructions the agents get with the packet;
        # the run's concerns are what its roles find.
        "concerns": [],
        "resolved_concerns": {},
    }


def _preflight(res: RunResources, executor: Any, packet: Any) -> Update:
    """Check the sandbox before any model call; an update ending the run blocked, or {}."""
    for line in (getattr(getattr(executor, "python", None), "notice", ""), getattr(executor, "notice", "")):
        if line:
            res.log.info(line)
    if res.cfg.network:
        res.log.warning("network: on (--network); tests may download weights")
    checks = run_preflight(executor, packet, gpus=res.cfg.gpus, repo=res.cfg.repo, cache=PreflightCache())
    for check in checks:
        res.log.info("preflight %s %s: %s", "ok" if check.ok else "FAILED", check.name, check.detail)
    res.emit("preflight", failed=len(failures(checks)), checks=len(checks))
    if not failures(checks):
        return {"preflight": [c.to_json() for c in checks]}
    return {"preflight": [c.to_json() for c in checks], "outcome": "blocked", "blocker": blocker_text(checks)}
