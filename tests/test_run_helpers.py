"""Shared pieces of the end-to-end run tests: the example repo and scripted agents.

(No tests here; the name keeps it inside this area's test files.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from harness.contracts import ComponentSkillHandoff, PortStatus
from harness.evals.fixtures.gold import gold_files
from tests.example_repo import copy_example

VAE_MODEL = "fastvideo/models/vaes/tinyvid.py"
# A seeded numeric bug: latents are un-scaled by multiplying instead of dividing.
GOOD_UNSCALE = "return latents / self.scaling_factor * std + mean"
BAD_UNSCALE = "return latents * self.scaling_factor * std + mean"


def example(tmp_path: Path):
    return copy_example(tmp_path / "example")


def plan_turns() -> list[dict]:
    return [
        {"tool_calls": [{"name": "read_file", "args": {"path": "tests/local_tests/tinyvid/PORT_STATUS.md"}}]},
        {"tool_calls": [{"name": "finish", "args": {
            "summary": "port the VAE natively", "plan": {"reuse_or_port": "port", "steps": ["write model", "config", "export"]}}}]},
    ]


def write_gold_turns(component: str = "vae", replace: tuple[str, str] | None = None) -> list[dict]:
    """One implementer turn writing every gold file (optionally with a seeded bug), then finish."""
    calls = []
    for rel, text in sorted(gold_files(component).items()):
        if replace and rel == VAE_MODEL:
            assert replace[0] in text
            text = text.replace(*replace)
        calls.append({"name": "write_file", "args": {"path": rel, "content": text}})
    return [
        {"tool_calls": calls},
        {"tool_calls": [{"name": "finish", "args": {"summary": "wrote model, config, export", "files_changed": sorted(gold_files(component))}}]},
    ]


def fix_turns() -> list[dict]:
    """A debugger round that finds and fixes the seeded bug."""
    return [
        {"tool_calls": [{"name": "read_file", "args": {"path": VAE_MODEL, "start_line": 140}}]},
        {"tool_calls": [{"name": "edit_file", "args": {"path": VAE_MODEL, "old": BAD_UNSCALE, "new": GOOD_UNSCALE}}]},
        {"tool_calls": [{"name": "run_parity_test", "args": {}}]},
        {"tool_calls": [{"name": "finish", "args": {
            "summary": "unscale_latents multiplied by scaling_factor; now divides", "diagnosis": "decode_latents drift", "fix": "divide"}}]},
    ]


def idle_debug_turns(n: int) -> list[dict]:
    """Debug rounds that change nothing (the bug stays)."""
    out = []
    for i in range(n):
        out += [
            {"tool_calls": [{"name": "read_file", "args": {"path": VAE_MODEL, "start_line": 1, "end_line": 5}}]},
            {"tool_calls": [{"name": "finish", "args": {"summary": f"looked around, round {i + 1}"}}]},
        ]
    return out


def write_script(path: Path, **roles: list[dict]) -> Path:
    path.write_text(yaml.safe_dump(roles, sort_keys=False))
    return path


def load_handoff(run_dir: Path) -> ComponentSkillHandoff:
    """The handoff on disk, validated against the contract (both forms)."""
    data = json.loads((run_dir / "handoff.json").read_text())
    handoff = ComponentSkillHandoff.model_validate(data)
    assert (run_dir / "handoff.md").read_text().strip() == handoff.to_text().strip()
    return handoff


def port_status(worktree: Path, packet: dict | None = None) -> PortStatus:
    rel = (packet or {}).get("port_state_file", "tests/local_tests/tinyvid/PORT_STATUS.md")
    return PortStatus.parse((worktree / rel).read_text())


def harness_cli(args: list[str], home: Path, cwd: Path, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "HARNESS_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run([str(Path(sys.executable).parent / "harness"), *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=timeout, **kw)
