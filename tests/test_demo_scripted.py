"""`harness demo`: the bundled script, `--init`, and the whole demo through the real graph."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from harness.agents.models.scripted import ScriptedModel
from harness.cli import app
from harness.evals.demo import choose_sandbox, render_script, write_script
from harness.evals.fixtures import BUGS_BY_ID, gold_files

VAE_MODEL = "fastvideo/models/vaes/tinyvid.py"


def _calls(script: dict, role: str, name: str) -> list[dict]:
    return [c["args"] for turn in script[role] for c in turn.get("tool_calls", []) if c["name"] == name]


def test_script_plants_the_bug_and_the_debugger_edit_restores_the_gold(tmp_path):
    script = render_script(tmp_path / "official")
    writes = {a["path"]: a["content"] for a in _calls(script, "implementer", "write_file")}
    gold = gold_files("vae")
    assert set(writes) == set(gold)
    bug = BUGS_BY_ID["vae_scaling_twice"]
    assert writes[VAE_MODEL] == bug.apply(gold[VAE_MODEL]) != gold[VAE_MODEL]
    for path in set(gold) - {VAE_MODEL}:
        assert writes[path] == gold[path]
    (edit,) = _calls(script, "debugger", "edit_file")
    assert edit["path"] == VAE_MODEL
    assert writes[VAE_MODEL].count(edit["old"]) == 1
    assert writes[VAE_MODEL].replace(edit["old"], edit["new"]) == gold[VAE_MODEL]
    # Paths into the official reference are absolute, as the workspace requires.
    reads = [a["path"] for a in _calls(script, "planner", "read_file")]
    assert str((tmp_path / "official").resolve() / "tinyvid_official" / "vae.py") in reads


def test_rendered_scripts_load_as_scripted_models(tmp_path):
    for ask in (False, True):
        path = write_script(tmp_path / "official", tmp_path / f"script_{ask}.yaml", ask=ask)
        model = ScriptedModel.from_file(path)
        assert set(model.turns) == {"planner", "implementer", "debugger"}
    ask_script = yaml.safe_load((tmp_path / "script_True.yaml").read_text())
    (hatch,) = _calls(ask_script, "planner", "raise_escape_hatch")
    assert hatch["decision_type"] == "ambiguity"
    assert hatch["recommended_option"] in hatch["options"]


def test_explicit_sandbox_is_kept_and_a_bad_one_is_refused():
    assert choose_sandbox("local") == ("local", None)
    kind, notice = choose_sandbox(None)
    assert kind in ("bwrap", "local") and (kind == "bwrap") == (notice is None)
    with pytest.raises(Exception, match="--sandbox must be"):
        choose_sandbox("vm")


def test_demo_init_writes_the_example_and_says_how_to_run(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["demo", "--init", str(tmp_path / "ex")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ex" / "fastvideo" / ".git").is_dir()
    assert (tmp_path / "ex" / "packets" / "vae.parity-debug.json").is_file()
    assert "harness run --packet" in result.output
    again = runner.invoke(app, ["demo", "--init", str(tmp_path / "ex")])
    assert again.exit_code == 2
    assert "refusing to overwrite" in again.output


def _kept_dir(output: str) -> Path:
    match = re.search(r"Files kept in (\S+)", output)
    assert match, output
    return Path(match.group(1))


@pytest.mark.slow
@pytest.mark.bwrap
def test_demo_ports_the_vae_end_to_end_in_bwrap(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(app, ["demo", "--sandbox", "bwrap", "--keep"])
    kept = _kept_dir(result.output)
    try:
        assert result.exit_code == 0, result.output
        assert "SCRIPTED" in result.output
        assert "parity debug_red" in result.output and "parity non_skip_pass" in result.output
        handoffs = list((tmp_path / "home" / "runs").glob("*/handoff.json"))
        assert len(handoffs) == 1
        handoff = json.loads(handoffs[0].read_text())
        assert handoff["parity_status"] == "non_skip_pass"
        assert handoff["mode"] == "parity-debug" and handoff["strict_load"] == "pass"
        assert "fastvideo/models/vaes/tinyvid.py" in handoff["files_changed"]
    finally:
        shutil.rmtree(kept, ignore_errors=True)


@pytest.mark.slow
def test_demo_ask_pauses_on_the_hatch_then_finishes(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(app, ["demo", "--ask", "--sandbox", "local"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "SCRIPTED" in out
    assert "raised an escape hatch" in out and "decision_type: ambiguity" in out
    assert "answers as a person would" in out
    assert out.index("answers as a person would") < out.index("parity non_skip_pass")
    assert "parity_status   non_skip_pass" in out
    assert "Demo finished" in out
