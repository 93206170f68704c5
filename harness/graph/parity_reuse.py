"""When the harness's last parity run still stands, and the test is not run again.

A debug round that changed nothing the test can see (the tree at the last run and now differ
at most in PORT_STATUS.md and the local tests README, which the harness itself rewrites)
would get the same verdict again: the last result is reused and the next round is told so.
The verdict code decides nothing here; this only decides whether to call it.
"""

from __future__ import annotations

from typing import Any


def reuse_reason(state: dict[str, Any], workspace: Any, agent_test: str) -> str | None:
    """Why the last harness run stands for the worktree now, or None when the test must run."""
    from harness.verify.evidence import changed_since_parity

    last = state.get("last_parity") or {}
    commit = state.get("parity_commit")
    if not last or not commit or last.get("source") != "harness":
        return None
    if last.get("timed_out") or last.get("agent_test") != agent_test:
        return None  # a timeout may not repeat; another test version is another verdict
    changed = changed_since_parity(workspace, commit)
    if changed is None or changed:
        return None
    before, now = workspace.tree(commit), workspace.tree("HEAD")
    same = "the same tree" if before == now else "a tree that differs only in PORT_STATUS.md or the local tests README"
    rounds = int(state.get("debug_rounds") or 0)
    return (f"debug round {rounds} changed nothing the test can see ({same} as the last run: "
            f"{before[:12]} at {commit[:12]}; now {now[:12]})")
