"""Prototype evidence is what the models really hold: key dumps are compared with the native
model's state_dict() as the sandbox instantiates it and with the official model's; stale dumps
from the base commit that do not match are never a prototype success."""

from __future__ import annotations

import json

import pytest

from harness.contracts import ComponentContext
from harness.evals.fixtures.gold import gold_files
from harness.runs.runner import RunConfig, start_run
from harness.sandbox.executors import make_executor
from harness.sandbox.workspace import Workspace
from harness.verify.evidence_prototype import compare_dump, prototype_evidence
from tests.example_repo import copy_example
from tests.test_run_helpers import load_handoff, plan_turns, write_script

MODEL = "fastvideo/models/vaes/tinyvid.py"
# The native model names a layer differently from the converted checkpoint: the dumps in the
# base commit no longer describe it.
RENAME = ("self.quant_proj", "self.quant_head")


def local_sandbox(tree):
    """A new local sandbox for each tree the prototype probes build."""
    return make_executor("local", tree, run_id=tree.run_id)


def _renamed_gold() -> dict[str, str]:
    files = gold_files("vae")
    files[MODEL] = files[MODEL].replace(*RENAME)
    return files


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    return copy_example(tmp_path_factory.mktemp("proto") / "example")


@pytest.fixture
def setup(example, tmp_path):
    packet = ComponentContext.model_validate(json.loads(example.packets["vae:prototype"].read_text()))
    ws = Workspace.create(example.repo, f"proto-{tmp_path.name[-8:]}", official_ref_dir=packet.official_ref_dir,
                          root=tmp_path / "home")
    ex = make_executor("local", ws)
    yield ws, ex, packet
    ex.close()


def _write(ws, files):
    for rel, text in files.items():
        (ws.path / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws.path / rel).write_text(text)


def test_stale_dumps_that_match_the_models_are_reported_as_such(setup):
    ws, ex, packet = setup
    _write(ws, gold_files("vae"))
    ev = prototype_evidence(ws, packet, local_sandbox)
    assert ev.ok, ev.details
    assert any("matches the fastvideo model's state_dict" in d and "unchanged since the base commit" in d for d in ev.details)
    assert any("official model built by tinyvid_official.factory.build_vae()" in d for d in ev.details)


def test_stale_dumps_that_do_not_match_the_native_model_fail(setup):
    ws, ex, packet = setup
    _write(ws, _renamed_gold())
    ev = prototype_evidence(ws, packet, local_sandbox)
    assert ev.instantiates_ok and ev.official_dump and not ev.fastvideo_dump and not ev.ok
    assert "not written in this run" in ev.failure() and "quant_head" in ev.failure()


def test_a_rewritten_dump_that_still_lies_fails(setup):
    # The cheat: touch the dump (fresh bytes, same stale keys) so it looks written in this run.
    ws, ex, packet = setup
    _write(ws, _renamed_gold())
    dump = ws.path / packet.prototype_key_dumps.fastvideo
    dump.write_text(json.dumps(json.loads(dump.read_text())) + "\n")
    ev = prototype_evidence(ws, packet, local_sandbox)
    assert not ev.fastvideo_dump and "does not match the fastvideo model's state_dict" in ev.failure()
    # The honest fix: dump the native model's own state_dict.
    cmd = ("python -c \"import json,torch; from fastvideo.models.vaes.tinyvid import TinyVidVAE; "
           "from fastvideo.configs.models.vaes.tinyvid import TinyVidVAEConfig; "
           "m = TinyVidVAE(TinyVidVAEConfig()); "
           f"json.dump({{k: list(v.shape) for k, v in m.state_dict().items()}}, open('{dump.relative_to(ws.path)}', 'w'))\"")
    res = ex.run(cmd, env={"PYTHONPATH": str(ws.path)})
    assert res.exit_code == 0, res.stderr
    assert prototype_evidence(ws, packet, local_sandbox).ok


def test_compare_dump_names_what_differs():
    assert compare_dump({"a": [1], "b": [2]}, {"a": [1], "b": [2]}) is None
    text = compare_dump({"a": [1], "x": [2], "b": [3]}, {"a": [1], "b": [2], "c": [4]})
    assert "1 model key(s) missing from the dump (c)" in text and "(x)" in text and "b: dump [3] vs model [2]" in text


@pytest.mark.slow
def test_prototype_with_stale_mismatched_dumps_is_not_a_success(example, tmp_path):
    writes = [{"name": "write_file", "args": {"path": rel, "content": text}} for rel, text in sorted(_renamed_gold().items())]
    impl = [{"tool_calls": writes},
            {"tool_calls": [{"name": "finish", "args": {
                "summary": "model written; key dumps are in place",
                "key_dumps": {"official": "converted_weights/tinyvid/_mapping/vae_official_keys.json",
                              "fastvideo": "converted_weights/tinyvid/_mapping/vae_fastvideo_keys.json"}}}]}]
    script = write_script(tmp_path / "s.yaml", planner=plan_turns(), implementer=impl, debugger=[])
    out = start_run(RunConfig(packet=example.packets["vae:prototype"], repo=example.repo, model=f"scripted:{script}",
                              sandbox="local", home=tmp_path / "home", max_debug_rounds=1, on_budget="blocked"))
    assert out.status == "blocked", out.summary
    handoff = load_handoff(out.run_dir)
    assert handoff.next_step != "phase_5_conversion" and handoff.prototype_key_dumps == "none"
    assert "does not match the fastvideo model's state_dict" in handoff.blocker or any(
        "does not match" in c for c in handoff.concerns_or_unknowns), handoff.blocker
    # The implementer's claim of written dumps is shown against the evidence.
    assert any("key dumps" in d for d in out.summary["claim_disagreements"])
