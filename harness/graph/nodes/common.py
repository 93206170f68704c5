"""What the nodes share: the wrapper that times a node, the run's resources and packet from
the state, plain JSON for the checkpointed state, and the parity result as the state keeps it."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Callable

from langgraph.runtime import Runtime

from harness.contracts import ComponentContext
from harness.graph.state import RunState
from harness.run_config.config import RunConfig
from harness.runs.resources import RunResources, resources_for
from harness.sandbox.pytest_runner import ParityRun
from harness.verify.conversion_state import config_key_map
from harness.verify.guards import check_guards

Update = dict[str, Any]


def resources_of(state: RunState, runtime: Runtime | None) -> RunResources:
    ctx = getattr(runtime, "context", None) if runtime is not None else None
    if isinstance(ctx, RunResources):
        return ctx
    # Loaded by LangGraph's own tools (no context given): rebuild from the state.
    return resources_for(RunConfig.from_json(state["config"]), state["run_id"], state.get("run_dir"))


def packet_of(state: RunState) -> ComponentContext:
    return ComponentContext.model_validate(state["packet"])


def jsonable(obj: Any) -> Any:
    """Plain JSON of a pydantic model, dataclass or plain value (for the checkpointed state)."""
    if obj is None:
        return None
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return json.loads(json.dumps(dataclasses.asdict(obj), default=str))
    return json.loads(json.dumps(obj, default=str))


def parity_dict(run: Any, source: str, commit: str | None) -> dict[str, Any]:
    """A ParityRun as JSON, plus where it came from and the commit it tested."""
    data = jsonable(run)
    data["summary_line"] = run.summary_line()
    data["source"] = source
    data["commit"] = commit
    return data


def parity_from_dict(data: dict[str, Any] | None) -> ParityRun | None:
    """Rebuild the ParityRun a dict was made from (the extra keys are dropped)."""
    if not data:
        return None
    names = set(ParityRun.model_fields)
    return ParityRun.model_validate({k: v for k, v in data.items() if k in names})


def timed(name: str) -> Callable:
    """Wrap a node: emit start/end events and add its wall, model and test seconds."""

    def wrap(fn: Callable[[RunState, RunResources], Update]) -> Callable:
        def node(state: RunState, runtime: Runtime) -> Update:
            res = resources_of(state, runtime)
            res.model_s = res.test_s = 0.0
            res.emit("node_start", node=name)
            start = time.monotonic()
            update = fn(state, res) or {}
            total = time.monotonic() - start
            update["timings"] = {name: {"total_s": total, "model_s": res.model_s, "test_s": res.test_s, "calls": 1}}
            res.emit("node_end", node=name, seconds=round(total, 3), update=_summary_of(update))
            return update

        node.__name__ = name
        node.__doc__ = fn.__doc__
        return node

    return wrap


def _summary_of(update: Update) -> dict[str, Any]:
    keep = ("outcome", "blocker", "debug_rounds", "asked_by")
    out = {k: update[k] for k in keep if update.get(k) is not None}
    if update.get("last_parity"):
        out["parity"] = update["last_parity"].get("summary_line")
    return out


def instructions(state: RunState) -> list[str]:
    """The packet's concerns_or_unknowns: what the agents were told, not what they found."""
    return [str(c) for c in (state.get("packet") or {}).get("concerns_or_unknowns") or []]


def accepted(state: RunState) -> list[dict[str, Any]]:
    """Answered hatches as the guards read them: the hatch fields plus "answer"."""
    return list(state.get("accepted_hatches") or [])


def official_ref_dir(packet: Any, repo: Path) -> Path | None:
    """The packet's official reference checkout as a directory, or None."""
    raw = str(getattr(packet, "official_ref_dir", "") or "")
    if not raw or raw in ("unknown", "none"):
        return None
    path = Path(raw) if Path(raw).is_absolute() else Path(repo) / raw
    return path.resolve() if path.is_dir() else None


def config_map(state: RunState, res: RunResources) -> str:
    """The converted config's key map for an agent's task ("" when the harness cannot read it)."""
    try:
        return config_key_map(res.workspace, packet_of(state))
    except Exception as err:  # a map the harness cannot read is left out, never a stopped run
        res.log.warning("config key map: %s", err)
        return ""


def guard_findings(state: RunState, res: RunResources) -> list[dict[str, Any]]:
    """What the guards find in the worktree after an agent's edits, as JSON."""
    packet = packet_of(state)
    findings = check_guards(res.workspace, packet, mode=packet.mode, accepted_hatches=accepted(state))
    if findings:
        res.emit("guards", findings=[f"{f.name}: {f.path}" for f in findings])
    return [jsonable(f) for f in findings]
