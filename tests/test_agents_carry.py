"""What an agent learns or does is never lost, and what it is told is true, once: `harness run`
with the real OpenAI SDK against a loopback server speaking the Chat Completions wire format.

One run covers a cut planner, a debug round that changes nothing, a fix, the scratch folder and
a PORT_STATUS.md cell the agent wrote; every request the model got is checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.contracts import PortStatus
from harness.evals.fixtures import write_example_repo
from harness.evals.fixtures.gold import gold_files
from tests.fakes import openai_server
from tests.test_run_helpers import BAD_UNSCALE, GOOD_UNSCALE, VAE_MODEL, load_handoff

pytestmark = pytest.mark.slow

# A real-looking key the harness holds; it must never reach the model or the record.
KEY = "sk-proj-" + "Q3vX9kLm2PzR7tYw4NbC8dFg1HjK5sAe"
# A task named like `ask-...`/`sk-...`: ordinary text, never a secret.
TASK_DIR = "ask-vae-two-definitions"
RUN_ID = "sk-vaetwodefinitions-crop"
PLANNER_WORDS = "the decoder crops top-left; unscale divides by scaling_factor"
STATUS = "tests/local_tests/tinyvid/PORT_STATUS.md"


def _turns(official: Path) -> list[tuple[str, list[tuple[str, dict]]]]:
    writes = []
    for rel, text in sorted(gold_files("vae").items()):
        writes.append(("write_file", {"path": rel, "content": text.replace(GOOD_UNSCALE, BAD_UNSCALE)}))
    return [
        # The planner reads and is cut by --max-turns 3 before it calls finish.
        ("planner", [("read_file", {"path": "tinyvid_official/vae.py"})]),
        ("planner", [("read_file", {"path": "configs/vae.json"})]),
        ("planner", [("grep", {"pattern": "scaling_factor", "path": "tinyvid_official"})]),
        # The implementer writes the port with a seeded bug, keeps a note in the scratch folder,
        # writes its own parity cell in PORT_STATUS.md, and shows the key it holds (redacted on the way back).
        ("implementer", writes),
        ("implementer", [("run", {"command": "pwd; echo note > $SCRATCH_DIR/n.txt; echo \"$OPENAI_API_KEY\"; cat key.txt"}),
                         ("edit_file", {"path": STATUS, "old": "vaes/tinyvid.py` | `not_started` | `pass` | `scaffold_skip` |",
                                        "new": "vaes/tinyvid.py` | `not_started` | `pass` | `debug_red` |"})]),
        ("implementer", [("finish", {"summary": "wrote the VAE"})]),
        # Debug round 1 changes nothing the test can see: no new pytest run after it.
        ("debugger", [("read_file", {"path": VAE_MODEL, "start_line": 1, "end_line": 5})]),
        ("debugger", [("finish", {"summary": "looked; parity still red after this round"})]),
        # Round 2 fixes it.
        ("debugger", [("edit_file", {"path": VAE_MODEL, "old": BAD_UNSCALE, "new": GOOD_UNSCALE})]),
        ("debugger", [("finish", {"summary": "unscale divides", "diagnosis": "decode drift", "fix": "divide"})]),
    ]


def _run(tmp_path: Path):
    root = tmp_path / TASK_DIR
    ex = write_example_repo(root)
    (ex.repo / "key.txt").write_text(f"deploy key {KEY}\n")
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@x.invalid", "add", "key.txt"], cwd=ex.repo, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@x.invalid", "commit", "-qm", "key"], cwd=ex.repo, check=True)
    turns = _turns(ex.official_dir)
    replies = [openai_server.completion(text=PLANNER_WORDS if i == 2 else None, tool_calls=calls)
               for i, (_, calls) in enumerate(turns)]
    env = {**os.environ, "OPENAI_API_KEY": KEY, "HARNESS_HOME": str(tmp_path / "home")}
    env.pop("OPENAI_BASE_URL", None)
    with openai_server.server().add(*replies) as srv:
        proc = subprocess.run(
            [sys.executable, "-m", "harness", "run", "--packet", str(ex.packets["vae:parity-debug"]),
             "--repo", str(ex.repo), "--model", "openai:gpt-4.1", "--base-url", srv.url + "/v1",
             "--sandbox", "local", "--non-interactive", "--max-turns", "3", "--run-id", RUN_ID],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        requests = [r.body for r in srv.requests]
    return ex, proc, requests, turns


def _role(body: dict) -> str:
    system = body["messages"][0]["content"]
    return next(r for w, r in (("PLANNER", "planner"), ("IMPLEMENTER", "implementer"), ("PARITY-DEBUGGER", "debugger"))
                if f"Your role: {w}" in system)


def _texts(body: dict) -> str:
    return "\n".join(str(m.get("content") or "") for m in body["messages"])


def test_agents_carry_their_work_and_are_told_things_once(tmp_path):
    ex, proc, requests, turns = _run(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(requests) == len(turns)
    run_dir = tmp_path / "home" / "runs" / RUN_ID
    worktree = tmp_path / "home" / "worktrees" / RUN_ID
    roles = [_role(b) for b in requests]
    assert roles == [r for r, _ in turns]

    # Paths that merely contain `sk-` or `ask-...` stay whole in every message and tool result;
    # the key the harness holds is redacted wherever it shows up.
    everything = json.dumps(requests)
    assert "[REDACTED]" not in everything.replace("[REDACTED:OPENAI_API_KEY]", "")
    assert KEY not in everything and KEY not in (run_dir / "trajectory.jsonl").read_text()
    run_output = next(m["content"] for m in requests[5]["messages"] if m.get("role") == "tool" and "exit code" in m["content"])
    assert str(worktree) in run_output or str(worktree.resolve()) in run_output
    # The sandbox never had the key (an empty line); the file's copy is redacted on the way back.
    assert "\n\ndeploy key [REDACTED:OPENAI_API_KEY]" in run_output
    official = str(ex.official_dir.resolve())
    assert TASK_DIR in official
    for body in requests:  # the system prompt names both paths whole, for every role
        assert official in body["messages"][0]["content"] and f"worktrees/{RUN_ID}" in body["messages"][0]["content"]

    # Each role's first message states its budget; the planner's third call is its last.
    firsts = {}
    for body, role in zip(requests, roles):
        firsts.setdefault(role, body)
    for role, body in firsts.items():
        task = body["messages"][1]["content"]
        assert "Your budget for this step: 3 model turns" in task, role
    assert "this is your last turn (2 of 3 used)" in _texts(requests[2])
    assert "this is your last turn" not in _texts(requests[1])

    # Said once: the packet once per role (system prompt only), finish's fields only in the schema,
    # and the first request well under 20k characters.
    notes = json.loads(Path(ex.packets["vae:parity-debug"]).read_text())["official_definition_files"][0]["notes"]
    for role, body in firsts.items():
        assert _texts(body).count(notes) == 1, role
        assert "finish with these arguments" not in _texts(body)
    first_size = len(json.dumps(requests[0]["messages"])) + len(json.dumps(requests[0]["tools"]))
    assert first_size <= 20_000, first_size

    # The cut planner hands the implementer its last words, its reads (with hashes and content)
    # and its tools' gist; the implementer does not have to read those files again.
    impl_task = firsts["implementer"]["messages"][1]["content"]
    assert "The planner did not finish" in impl_task and "Plan:\n```json\n{}" not in impl_task
    assert "- planner: cut by its budget (budget_turns, 3 turns)" in impl_task
    assert PLANNER_WORDS in impl_task
    assert "it read: tinyvid_official/vae.py (official) sha256:" in impl_task and "configs/vae.json (official)" in impl_task
    assert "grep(pattern=scaling_factor, path=tinyvid_official) -> " in impl_task
    assert "What the planner read, carried over by the harness" in impl_task
    official_vae = (ex.official_dir / "tinyvid_official" / "vae.py").read_text().splitlines()[5]
    assert official_vae in impl_task
    # ... and the converted config's key map, official -> native.
    assert "Converted config key map (official -> native)" in impl_task and "- scaling_factor -> scaling_factor" in impl_task

    # Debug round 1 changed nothing: the harness did not run pytest again and said so.
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["debug_rounds"] == 2
    harness_runs = [p for p in summary_parity_sources(run_dir) if p == "harness"]
    assert len(harness_runs) == 2  # after the implementer, and after the fix: none after round 1
    round2 = next(b for b, r in zip(requests[8:], roles[8:]) if r == "debugger")["messages"][1]["content"]
    assert "The harness did not run the parity test again: debug round 1 changed nothing the test can see" in round2
    attempts = summary["debug_attempts"]
    assert "not re-run" in attempts[0]["parity_after"] and attempts[1]["parity_after"].startswith("non_skip_pass")

    # The scratch folder is never in the diff or on the branch; it still worked between commands.
    assert (worktree / ".harness-scratch" / "n.txt").is_file()
    tracked = subprocess.run(["git", "ls-tree", "-r", "--name-only", f"harness/{RUN_ID}"], cwd=ex.repo,
                             capture_output=True, text=True, check=True).stdout
    assert ".harness-scratch" not in tracked and VAE_MODEL in tracked

    # The agent's PORT_STATUS.md cell is not silently rewritten: the evidence wins the cell and the
    # agent's word is kept in the notes.
    status = PortStatus.parse((worktree / STATUS).read_text())
    row = next(r for r in status.rows("Component Matrix") if r["Component"].strip("`") == "vae")
    assert row["Parity"].strip("`") == "non_skip_pass"
    assert any("harness rewrote PORT_STATUS.md Component Matrix `vae` Parity: the agent wrote 'debug_red'; "
               "the harness's evidence says 'non_skip_pass'" in n for n in status.notes())

    handoff = load_handoff(run_dir)
    assert handoff.parity_status == "non_skip_pass"
    # The packet's own concerns are instructions, not concerns the run found; round 1's
    # "still red" is closed by the pass.
    packet_concerns = json.loads(Path(ex.packets["vae:parity-debug"]).read_text())["concerns_or_unknowns"]
    assert not set(packet_concerns) & set(handoff.concerns_or_unknowns)
    assert not any("still red" in c for c in handoff.concerns_or_unknowns)


def summary_parity_sources(run_dir: Path) -> list[str]:
    """Where each parity run of the run came from (harness or agent), from the checkpointed state."""
    from harness.graph.build import build_graph
    from harness.graph.checkpoint import open_checkpointer, thread_config

    with open_checkpointer(run_dir) as saver:
        values = build_graph(saver).get_state(thread_config(run_dir.name)).values
    return [p.get("source") for p in values.get("parity_runs") or []]


HATCH = {
    "decision_type": "ambiguity",
    "question": "Which official VAE config is the source of truth for the decoder crop?",
    "options": ["Use configs/vae.json: matches the converted weights", "Use the research notes: centre crop"],
    "recommended_option": "Use configs/vae.json",
    "evidence": "configs/vae.json and the packet notes disagree on the decode crop",
}
CROP_CONCERN = "decode crop order unverified for odd heights"
RED_CONCERN = "parity still red after round 1: decode_latents drift"


def test_answers_concerns_and_a_cut_fix_reach_later_roles_and_the_handoff(tmp_path):
    from harness.agents.trajectory import read_events
    from harness.runs.runner import RunConfig, answer_run, start_run
    from tests.test_run_helpers import example, write_gold_turns, write_script

    ex = example(tmp_path)
    planner = [{"tool_calls": [{"name": "raise_escape_hatch", "args": HATCH}]},
               {"tool_calls": [{"name": "record_concern", "args": {"text": CROP_CONCERN}}]},
               {"tool_calls": [{"name": "finish", "args": {"summary": "port vae.py as answered"}}]}]
    impl = write_gold_turns(replace=(GOOD_UNSCALE, BAD_UNSCALE))
    impl.insert(1, {"tool_calls": [{"name": "resolve_concern", "args": {"concern": "C1", "resolution": "crop is top-left in both"}}]})
    debugger = [
        # Round 1 changes nothing and says parity is still red.
        {"tool_calls": [{"name": "record_concern", "args": {"text": RED_CONCERN}}]},
        {"tool_calls": [{"name": "finish", "args": {"summary": "no change yet"}}]},
        # Round 2 fixes it and is cut by its turn budget before finish.
        {"tool_calls": [{"name": "edit_file", "args": {"path": VAE_MODEL, "old": BAD_UNSCALE, "new": GOOD_UNSCALE}}]},
        {"tool_calls": [{"name": "read_file", "args": {"path": VAE_MODEL, "start_line": 140, "end_line": 150}}]},
        {"text": "fixed the unscale; about to check", "tool_calls": [{"name": "read_file", "args": {"path": VAE_MODEL, "start_line": 1, "end_line": 3}}]},
    ]
    script = write_script(tmp_path / "s.yaml", planner=planner, implementer=impl, debugger=debugger)
    cfg = RunConfig(packet=ex.packets["vae:parity-debug"], repo=ex.repo, model=f"scripted:{script}", sandbox="local",
                    home=tmp_path / "home", max_turns=3, non_interactive=True)
    out = start_run(cfg)
    assert out.status == "paused", out.summary
    out = answer_run(out.run_id, option=1, home=tmp_path / "home")
    assert out.status == "completed", out.summary

    starts = [ev for ev in read_events(out.run_dir / "trajectory.jsonl") if ev["event"] == "agent_start"]
    later = [ev["task"] for ev in starts if ev["role"] in ("implementer", "debugger")]
    assert len(later) == 3  # the implementer and two debug rounds
    for task in later:  # every later role gets the person's decision: question, chosen option
        assert "Decisions a person made" in task and HATCH["question"] in task
        assert "answered option 1: Use configs/vae.json: matches the converted weights" in task
    # The implementer saw the open concern with its number; the debugger no longer (it was resolved).
    assert f"C1: {CROP_CONCERN}" in later[0] and CROP_CONCERN not in later[1]
    assert f"C2: {RED_CONCERN}" in later[2]

    handoff = load_handoff(out.run_dir)
    assert handoff.parity_status == "non_skip_pass"
    concerns = handoff.concerns_or_unknowns
    # Resolved by a later role, and "still red" closed by the pass: neither is open in the handoff.
    assert not any(CROP_CONCERN in c or RED_CONCERN in c for c in concerns)
    # The round cut after its fix: the handoff records the fix as the diff shows it.
    cut = [c for c in concerns if c.startswith("debug round 2 (ended without finish: budget_turns)")]
    assert cut and f"{VAE_MODEL}: - {BAD_UNSCALE} | + {GOOD_UNSCALE}" in cut[0] and "non_skip_pass" in cut[0]
    notes = PortStatus.parse((out.worktree / STATUS).read_text()).notes()
    assert any(f"resolved concern (implementer): {CROP_CONCERN}: crop is top-left in both" in n for n in notes)
    assert any(RED_CONCERN in n and "closed by the harness" in n for n in notes)
    # The cut round's own record: its last words and what it edited.
    log = out.summary["debug_attempts"][1]["log"]
    assert log["last_text"] == "fixed the unscale; about to check" and log["edits"] == [VAE_MODEL]
