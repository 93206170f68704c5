"""Memory across roles, end to end on the TinyVid example with scripted agents: what each role
said in `finish` reaches the next role, the handoff and PORT_STATUS.md, and claims that the
evidence contradicts are shown, never trusted."""

from __future__ import annotations

import json

import pytest

from harness.agents.trajectory import read_events
from harness.runs.runner import RunConfig, start_run
from tests.test_run_helpers import (
    BAD_UNSCALE,
    GOOD_UNSCALE,
    example,
    fix_turns,
    load_handoff,
    port_status,
    write_gold_turns,
    write_script,
)

pytestmark = pytest.mark.slow

PLAN_CONCERN = "odd frame sizes: the official encoder pads the last row before the conv"
IMPL_SUMMARY = "wrote model, config, export; suspect unscale_latents, the decode drift looks like a scale slip"


def test_roles_hand_their_finish_to_the_next_role_and_the_handoff(tmp_path):
    ex = example(tmp_path)
    plan = [{"tool_calls": [{"name": "finish", "args": {
        "summary": "port the VAE natively", "plan": {"reuse_or_port": "port", "concerns": [PLAN_CONCERN]}}}]}]
    impl = write_gold_turns(replace=(GOOD_UNSCALE, BAD_UNSCALE))
    # The implementer's finish claims a file it never wrote: the harness must say so.
    impl[-1]["tool_calls"][0]["args"] = {"summary": IMPL_SUMMARY,
                                         "files_changed": ["fastvideo/models/vaes/tinyvid.py", "fastvideo/models/vaes/ghost.py"]}
    script = write_script(tmp_path / "s.yaml", planner=plan, implementer=impl, debugger=fix_turns())
    out = start_run(RunConfig(packet=ex.packets["vae:parity-debug"], repo=ex.repo, model=f"scripted:{script}",
                              sandbox="local", home=tmp_path / "home"))
    assert out.status == "completed", out.summary

    starts = {ev["role"]: ev["task"] for ev in read_events(out.run_dir / "trajectory.jsonl") if ev["event"] == "agent_start"}
    # The debugger's first task message holds the implementer's own summary and the plan's concern.
    assert IMPL_SUMMARY in starts["debugger"] and PLAN_CONCERN in starts["debugger"]
    # Said once: finish's fields live in its tool schema, the packet in the system prompt.
    assert "finish with these arguments:" not in starts["debugger"] and '"model_family"' not in starts["debugger"]
    assert "Your budget for this step: 30 model turns" in starts["debugger"]
    assert IMPL_SUMMARY not in starts["implementer"]  # nobody sees what was not said yet

    handoff = load_handoff(out.run_dir)
    data = json.loads((out.run_dir / "handoff.json").read_text())
    concerns = data["concerns_or_unknowns"]
    assert PLAN_CONCERN in concerns  # given in finish, not only through record_concern
    assert any("diagnosis: decode_latents drift" in c and "fix: divide" in c and "non_skip_pass" in c for c in concerns)
    claim = [c for c in concerns if c.startswith("claim vs evidence:")]
    assert claim and "ghost.py" in claim[0] and "tinyvid.py" not in claim[0]
    assert handoff.parity_status == "non_skip_pass"
    assert any("ghost.py" in d for d in out.summary["claim_disagreements"])
    notes = port_status(out.worktree).notes()
    assert any("diagnosis: decode_latents drift" in n for n in notes)
    assert any("ghost.py" in n for n in notes)
