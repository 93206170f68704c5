"""The replay model: serves the model turns of a recorded trajectory, per role, in order.

Replaying a run gives the same tool calls against a fresh workspace, which makes a recorded
run a regression test. A role that runs out of recorded turns ends like an exhausted script.
"""

from __future__ import annotations

from pathlib import Path

from harness.agents.models.base import ModelError
from harness.agents.models.scripted import TurnQueueModel


class ReplayModel(TurnQueueModel):
    provider = "replay"

    @classmethod
    def from_file(cls, path: str | Path) -> "ReplayModel":
        from harness.agents.trajectory import read_turns

        p = Path(path)
        if not p.is_file():
            raise ModelError(f"replay: trajectory file not found: {p}", provider="replay")
        turns = read_turns(p)
        if not turns:
            raise ModelError(f"replay: {p} holds no model turns", provider="replay")
        return cls(turns, name=f"replay:{p}")


def from_spec(arg: str, *, base_url: str | None = None, price: object = None, **kwargs: object) -> ReplayModel:
    """The registry's factory for `replay:<trajectory.jsonl>` (recorded turns cost nothing again)."""
    return ReplayModel.from_file(arg)
