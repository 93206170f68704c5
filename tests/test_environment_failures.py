"""Environment failures are not component bugs: no debug round, no component issue in
PORT_STATUS.md, the handoff names the problem once, and a person may be asked about it."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.contracts import PortStatus
from harness.graph import routing
from harness.graph.hatch_policy import review_escape_hatch
from harness.verify.environment import environment_problem
from harness.verify.evidence import build_handoff, update_port_status
from tests.test_evidence_fixture_repo import MODEL, PARITY, make_packet, make_workspace, run_parity, write
from tests.test_guards_hatch_policy import hatch


def skip(*reasons: str) -> dict:
    return {"status": "scaffold_skip", "skip_reasons": list(reasons), "summary_line": "scaffold_skip"}


ENVIRONMENT_SKIPS = [
    "Oobleck VAE parity test requires CUDA.",
    "Official `stable-audio-tools` not importable. Install with: pip install alias_free_torch",
    "Official reference missing: /workspace/DreamX-World",
    "Missing text_encoder_3 dir: official_weights/sd35/text_encoder_3",
    "HF_TOKEN not set; the gated weights cannot be downloaded",
]
# What a port still has to do: a skip that the code, not the machine, explains.
COMPONENT_SKIPS = [
    "TODO: fill in the FastVideo forward call",
    "parity scaffold: implement the comparison",
]


@pytest.mark.parametrize("reason", ENVIRONMENT_SKIPS)
def test_environment_skips_are_recognised(reason: str) -> None:
    assert environment_problem(skip(reason)) == f"parity skipped: {reason}"


@pytest.mark.parametrize("reason", COMPONENT_SKIPS)
def test_scaffold_skips_are_not_environment(reason: str) -> None:
    assert environment_problem(skip(reason)) is None
    # one environment reason does not excuse a skip the port still owes
    assert environment_problem(skip(ENVIRONMENT_SKIPS[0], reason)) is None


def test_blocked_runs_are_environment_and_red_runs_are_not() -> None:
    blocked = SimpleNamespace(status="blocked", blocker="missing dependency: python module 'omegaconf' is not installed")
    assert environment_problem(blocked) == blocked.blocker
    red = {"status": "debug_red", "first_failure": "AssertionError: CUDA output differs; Mismatched elements"}
    assert environment_problem(red) is None
    assert environment_problem({"status": "non_skip_pass"}) is None


def _state(parity: dict, mode: str = "parity-debug", **kw) -> dict:
    return {"config": {"max_debug_rounds": 4, "on_budget": "ask"}, "packet": {"mode": mode},
            "debug_rounds": 0, "last_parity": parity, **kw}


def test_environment_stop_spends_no_debug_round_and_asks_no_budget_question() -> None:
    blocked = {"status": "blocked", "blocker": "needs a GPU: no CUDA GPUs are available"}
    for parity in (blocked, skip(ENVIRONMENT_SKIPS[0])):
        assert routing.after_parity(_state(parity)) == "finalize"
        assert not routing.needs_budget_question(_state(parity, debug_rounds=4))
    # the honest baselines: a scaffold skip and a red run are debugged
    assert routing.after_parity(_state(skip(COMPONENT_SKIPS[0]))) == "debug"
    assert routing.after_parity(_state({"status": "debug_red"})) == "debug"
    # a prototype's skip is judged by the prototype evidence, as before
    assert routing.after_parity(_state(skip(ENVIRONMENT_SKIPS[0]), mode="prototype", prototype={"complete": False})) == "debug"
    assert routing.after_parity(_state(blocked, mode="prototype", prototype={"complete": False})) == "finalize"


GPU_QUESTION = ("The parity test skips on this machine; should the parity run move to a machine with a "
                "CUDA device before the port continues?")


def test_cost_or_dependency_question_after_an_environment_skip_is_accepted() -> None:
    cuda_skip = SimpleNamespace(status="scaffold_skip", skip_reasons=[ENVIRONMENT_SKIPS[0]])
    evidence = "pytest ... SKIPPED: Oobleck VAE parity test requires CUDA."
    assert review_escape_hatch(hatch("cost", GPU_QUESTION, evidence), last_parity=cuda_skip) is None
    missing = SimpleNamespace(status="blocked", blocker="missing dependency: python module 'omegaconf'")
    question = "The official reference imports omegaconf, which this environment lacks; add it to the image?"
    assert review_escape_hatch(hatch("dependency", question, "No module named 'omegaconf'"), last_parity=missing) is None


def test_same_question_after_a_scaffold_skip_is_still_refused() -> None:
    todo_skip = SimpleNamespace(status="scaffold_skip", skip_reasons=[COMPONENT_SKIPS[0]])
    reason = review_escape_hatch(hatch("cost", GPU_QUESTION, "pytest ... SKIPPED: TODO"), last_parity=todo_skip)
    assert reason and "skipped_test" in reason
    # a missing FastVideo module is the port's import bug whatever the environment did
    missing = SimpleNamespace(status="blocked", blocker="missing dependency")
    fv = hatch("dependency", "Install the fastvideo vae package?", "No module named 'fastvideo.models.vaes.demo2'")
    assert "missing_import" in (review_escape_hatch(fv, last_parity=missing) or "")


def _missing_module_port(ws) -> None:
    """The model imports a third-party module this environment lacks."""
    path = ws.path / MODEL
    path.write_text("import omegaconf_not_installed_here  # noqa: F401\n" + path.read_text())


def test_environment_blocker_named_once_and_not_a_component_issue(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    _missing_module_port(ws)
    run, _ = run_parity(ws, tmp_path)
    assert run.status == "blocked" and "omegaconf_not_installed_here" in run.blocker
    packet = make_packet()
    h = build_handoff(packet=packet, workspace=ws, mode="parity-debug", last_parity=run, parity_current=True,
                      concerns=[], findings=[], escape_hatch=None, retry_request=None, prototype=None, budget_blocker=None)
    assert h.next_step == "blocked"
    assert h.blocker.startswith("environment: missing dependency")
    assert h.blocker.count("omegaconf_not_installed_here") == 1
    update_port_status(ws, packet, h)
    doc = PortStatus.read(ws.path / packet.port_state_file)
    assert doc.rows("Issues And Blockers") == []
    (row,) = doc.rows("Component Matrix")
    assert row["Open Issues"] == "none"
    assert "omegaconf_not_installed_here" in (ws.path / packet.port_state_file).read_text()  # said, once, as state


def test_component_failure_is_still_a_component_issue(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    write(ws.path, PARITY, (ws.path / PARITY).read_text().replace("ATOL = 1e-6", "ATOL = -1.0"))
    run, _ = run_parity(ws, tmp_path)
    assert run.status == "debug_red"
    packet = make_packet()
    h = build_handoff(packet=packet, workspace=ws, mode="parity-debug", last_parity=run, parity_current=True,
                      concerns=[], findings=[], escape_hatch=None, retry_request=None, prototype=None, budget_blocker=None)
    update_port_status(ws, packet, h)
    doc = PortStatus.read(ws.path / packet.port_state_file)
    assert [r["Issue"] for r in doc.rows("Issues And Blockers")] == [f"vae: {h.blocker}"]


@pytest.mark.slow
def test_run_stopped_by_the_environment_ends_blocked_without_debugging(tmp_path: Path) -> None:
    import json
    import subprocess

    from harness.run_config.config import RunConfig
    from harness.runs.runner import start_run
    from tests.test_run_helpers import example, load_handoff, plan_turns, port_status, write_gold_turns, write_script

    ex = example(tmp_path)
    packet = Path(ex.packets["vae:parity-debug"])
    test_file = ex.repo / json.loads(packet.read_text())["parity_test"]
    test_file.write_text(test_file.read_text()
                         + "\nimport pytest\npytestmark = pytest.mark.skip(reason='TinyVid VAE parity requires CUDA')\n")
    subprocess.run(["git", "-C", str(ex.repo), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam",
                    "parity test needs CUDA"], check=True)
    # no debugger turns: a debug round would fail the run on an exhausted script
    script = write_script(tmp_path / "s.yaml", planner=plan_turns(), implementer=write_gold_turns())
    out = start_run(RunConfig(packet=packet, repo=ex.repo, model=f"scripted:{script}", sandbox="local",
                              home=tmp_path / "home"))
    assert (out.status, out.exit_code) == ("blocked", 4), out.summary
    assert out.summary["debug_rounds"] == 0
    handoff = load_handoff(out.run_dir)
    assert handoff.blocker == "environment: parity skipped: TinyVid VAE parity requires CUDA"
    assert port_status(out.worktree).rows("Issues And Blockers") == []
    assert not any(r.get("ID") for r in port_status(out.worktree).rows("Escape Hatches"))  # no budget question
