"""Guards on a real git worktree: each guard has a case it must catch and one it must let pass."""

from __future__ import annotations

from pathlib import Path
import git
import pytest

from harness.contracts import ComponentContext, EscapeHatch
from harness.verify.guards import (
    CLAIM_WITHOUT_RUN,
    CONVERSION_EDIT,
    OUTSIDE_ALLOWED,
    PARITY_TEST_WEAKENED,
    PRODUCTION_IMPORT_BOUNDARY,
    PROVENANCE_COMMENT,
    PYTEST_TAMPERING,
    check_guards,
    format_findings,
)
from harness.sandbox.workspace import Workspace
from tests.test_evidence_fixture_repo import packet_dict

PARITY = "tests/local_tests/vaes/test_demo_vae_parity.py"
MODEL = "fastvideo/models/vaes/demo.py"

PARITY_SRC = '''"""Parity test. Coverage scope: production_loader."""
import os
import pytest
import torch

ATOL = 1e-5
RTOL = 1e-5


def test_demo_vae_parity():
    weights = os.environ.get("DEMO_WEIGHTS")
    if not weights:
        pytest.skip("DEMO_WEIGHTS not set")
    official = torch.ones(2, 3)
    ours = torch.ones(2, 3)
    assert ours.shape == official.shape
    torch.testing.assert_close(ours, official, atol=ATOL, rtol=RTOL)
    diff = (ours - official).abs().max().item()
    assert diff < 1e-4
'''

MODEL_SRC = '''import torch
from torch import nn

from transformers import AutoTokenizer


class DemoVAE(nn.Module):
    pass


EntryClass = DemoVAE
'''


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _workspace(tmp_path: Path, files: dict[str, str], official_ref_dir: Path | None = None) -> Workspace:
    repo_dir = tmp_path / "checkout"
    repo = git.Repo.init(repo_dir)
    for rel, text in files.items():
        _write(repo_dir, rel, text)
    repo.git.add(A=True)
    repo.git.commit(m="base", author="t <t@example.com>", env={"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"})
    return Workspace.create(repo_dir, "guards", root=tmp_path / "home", official_ref_dir=official_ref_dir)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return _workspace(tmp_path, {
        PARITY: PARITY_SRC,
        MODEL: MODEL_SRC,
        "scripts/checkpoint_conversion/convert_demo.py": "MAPPING = {}\n",
        "pyproject.toml": '[project]\nname = "x"\n\n[tool.pytest.ini_options]\naddopts = "-q"\n',
        "setup.cfg": "[metadata]\nname = x\n",
    })


@pytest.fixture
def packet() -> ComponentContext:
    data = packet_dict()
    data["prototype_key_dumps"] = {
        "official": "converted_weights/demo/_mapping/official_keys.json",
        "fastvideo": "converted_weights/demo/_mapping/fastvideo_keys.json",
    }
    return ComponentContext.model_validate(data)


def _edit(ws: Workspace, rel: str, old: str, new: str) -> None:
    path = ws.path / rel
    text = path.read_text()
    assert old in text, f"test setup: {old!r} not in {rel}"
    path.write_text(text.replace(old, new, 1))


def _names(findings) -> list[tuple[str, bool]]:
    return [(f.name, f.blocking) for f in findings]


def _run(ws, packet, **kw):
    return check_guards(ws, packet, mode="parity-debug", **kw)


def test_clean_worktree_has_no_findings(ws, packet) -> None:
    assert _run(ws, packet) == []


# ---- parity_test_weakened ------------------------------------------------------------

def test_tolerance_loosened_is_caught(ws, packet) -> None:
    _edit(ws, PARITY, "ATOL = 1e-5", "ATOL = 1e-2")
    findings = _run(ws, packet)
    assert _names(findings) == [(PARITY_TEST_WEAKENED, True)]
    assert "atol 1e-05 -> 0.01" in findings[0].detail


def test_tolerance_tightened_is_not_caught(ws, packet) -> None:
    _edit(ws, PARITY, "RTOL = 1e-5", "RTOL = 1e-6")
    assert _run(ws, packet) == []


def test_inline_kwarg_and_bound_loosening_caught(ws, packet) -> None:
    _edit(ws, PARITY, "atol=ATOL", "atol=0.5")
    _edit(ws, PARITY, "diff < 1e-4", "diff < 1.0")
    details = " ".join(f.detail for f in _run(ws, packet))
    assert "atol" in details and "assert_bound 0.0001 -> 1" in details


def test_tolerance_loosening_covered_by_accepted_hatch_is_recorded_not_blocking(ws, packet) -> None:
    _edit(ws, PARITY, "ATOL = 1e-5", "ATOL = 1e-3")
    hatch = EscapeHatch(
        needs_user_input="yes", decision_type="blocker", question="Accept loosening the decode tolerance to atol=1e-3?",
        recommended_option="Keep 1e-5", options=["Keep 1e-5: keep debugging", "Loosen to 1e-3: record the drift"],
        safe_default="keep debugging", blocked_until_answered="yes",
        state_snapshot={"phase": "parity-debug", "files_changed": [PARITY], "command_or_test": "pytest", "evidence": "E001"},
    )
    # The graph keeps answered hatches as dicts with the person's answer.
    approved = {**hatch.model_dump(), "id": "E001", "answer": {"option": 2, "text": "Loosen to 1e-3: record the drift"}}
    findings = _run(ws, packet, accepted_hatches=[approved])
    assert _names(findings) == [(PARITY_TEST_WEAKENED, False)]
    assert "accepted by an escape hatch" in findings[0].detail
    free_text = {**approved, "answer": {"option": None, "text": "yes, loosen it to 1e-3"}}
    assert _names(_run(ws, packet, accepted_hatches=[free_text])) == [(PARITY_TEST_WEAKENED, False)]
    # The person said no, or the answer is not known, or the hatch was about something else: still blocking.
    declined = {**approved, "answer": {"option": 1, "text": "Keep 1e-5: keep debugging"}}
    assert _names(_run(ws, packet, accepted_hatches=[declined])) == [(PARITY_TEST_WEAKENED, True)]
    assert _names(_run(ws, packet, accepted_hatches=[hatch])) == [(PARITY_TEST_WEAKENED, True)]
    unrelated = {**approved, "decision_type": "dependency", "question": "Install the private tolerance package?"}
    assert _names(_run(ws, packet, accepted_hatches=[unrelated])) == [(PARITY_TEST_WEAKENED, True)]


def test_unconditional_skip_at_top_is_caught(ws, packet) -> None:
    _edit(ws, PARITY, '    weights = os.environ', '    pytest.skip("later")\n    weights = os.environ')
    findings = _run(ws, packet)
    assert (PARITY_TEST_WEAKENED, True) in _names(findings)
    assert any("skip_added" in f.detail for f in findings)


@pytest.mark.parametrize(
    "old,new",
    [
        ("def test_demo_vae_parity", "@pytest.mark.skip(reason='flaky')\ndef test_demo_vae_parity"),
        ("def test_demo_vae_parity", "@pytest.mark.skipif(True, reason='x')\ndef test_demo_vae_parity"),
        ("ATOL = 1e-5", "ATOL = 1e-5\npytestmark = pytest.mark.skip('x')"),
        ("ATOL = 1e-5", "ATOL = 1e-5\npytest.skip('x', allow_module_level=True)"),
        ("def test_demo_vae_parity", "@pytest.mark.xfail\ndef test_demo_vae_parity"),
    ],
)
def test_skip_markers_are_caught(ws, packet, old, new) -> None:
    _edit(ws, PARITY, old, new)
    assert any(f.name == PARITY_TEST_WEAKENED and "skip_added" in f.detail for f in _run(ws, packet))


def test_conditional_skip_is_not_caught(ws, packet) -> None:
    _edit(ws, PARITY, '    official = torch.ones', '    if not os.path.exists("ref.pt"):\n        pytest.skip("no reference dump")\n    official = torch.ones')
    assert _run(ws, packet) == []


def test_shape_only_replacement_is_caught(ws, packet) -> None:
    _edit(ws, PARITY, "torch.testing.assert_close(ours, official, atol=ATOL, rtol=RTOL)", "assert ours.shape == official.shape")
    findings = _run(ws, packet)
    assert any("shape_only" in f.detail for f in findings)
    assert all(f.blocking for f in findings)


def test_assertion_removed_is_caught(ws, packet) -> None:
    _edit(ws, PARITY, "    assert diff < 1e-4\n", "    print(diff)\n")
    assert any("assertions_removed" in f.detail for f in _run(ws, packet))


@pytest.mark.parametrize(
    "old,new",
    [
        ("    torch.testing.assert_close", "    if False:\n        torch.testing.assert_close"),
        ("    official = torch.ones", "    return\n    official = torch.ones"),
    ],
)
def test_dead_code_is_caught(ws, packet, old, new) -> None:
    _edit(ws, PARITY, old, new)
    assert any("dead_code" in f.detail for f in _run(ws, packet))


def test_adding_a_check_is_fine(ws, packet) -> None:
    _edit(ws, PARITY, "    assert diff < 1e-4\n", "    assert diff < 1e-4\n    assert torch.isfinite(ours).all()\n")
    assert _run(ws, packet) == []


def test_deleted_parity_test_is_caught(ws, packet) -> None:
    (ws.path / PARITY).unlink()
    assert _names(_run(ws, packet)) == [(PARITY_TEST_WEAKENED, True)]


def test_new_parity_test_must_compare_tensors(ws, packet) -> None:
    packet.parity_test = "tests/local_tests/vaes/test_demo_new_parity.py"
    _write(ws.path, packet.parity_test, "import torch\n\ndef test_x():\n    a = torch.ones(1)\n    assert a.shape == (1,)\n")
    details = " ".join(f.detail for f in _run(ws, packet))
    assert "new parity test: shape_only" in details and "no_coverage_scope" in details
    _write(ws.path, packet.parity_test, '"""Coverage scope: both."""\nimport torch\n\ndef test_x():\n'
           "    a = torch.ones(1)\n    torch.testing.assert_close(a, torch.ones(1))\n")
    assert _run(ws, packet) == []


# ---- pytest_tampering ----------------------------------------------------------------

def test_conftest_added_is_caught(ws, packet) -> None:
    _write(ws.path, "tests/local_tests/conftest.py", "def pytest_runtest_makereport(item, call):\n    pass\n")
    assert _names(_run(ws, packet)) == [(PYTEST_TAMPERING, True)]


@pytest.mark.parametrize(
    "rel,text",
    [
        ("pytest.ini", "[pytest]\naddopts = -p no:skip\n"),
        ("tests/sitecustomize.py", "import builtins\n"),
        ("tests/local_tests/fake.pth", "import os; os.environ['X'] = '1'\n"),
    ],
)
def test_pytest_config_files_are_caught(ws, packet, rel, text) -> None:
    _write(ws.path, rel, text)
    assert _names(_run(ws, packet)) == [(PYTEST_TAMPERING, True)]


def test_gitignored_conftest_is_still_caught(ws, packet) -> None:
    _write(ws.path, ".gitignore", "hidden/\n")
    _write(ws.path, "hidden/conftest.py", "x = 1\n")
    assert (PYTEST_TAMPERING, True) in _names(_run(ws, packet))


def test_pyproject_and_setup_cfg_only_their_pytest_sections(ws, packet) -> None:
    _edit(ws, "pyproject.toml", 'name = "x"', 'name = "y"')
    _edit(ws, "setup.cfg", "name = x", "name = y")
    # Outside the component's paths, so recorded; not blocking: no pytest section changed.
    assert _names(_run(ws, packet)) == [(OUTSIDE_ALLOWED, False), (OUTSIDE_ALLOWED, False)]
    _edit(ws, "pyproject.toml", 'addopts = "-q"', 'addopts = "-q -p no:cacheprovider --deselect x"')
    _edit(ws, "setup.cfg", "name = y", "name = y\n\n[tool:pytest]\naddopts = -x\n")
    assert sorted(f.path for f in _run(ws, packet)) == ["pyproject.toml", "setup.cfg"]


def test_binary_pth_checkpoint_is_not_tampering(ws, packet) -> None:
    path = ws.path / "tests/local_tests/weights.pth"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"PK\x03\x04" + bytes(range(256)))
    assert _names(_run(ws, packet)) == [(OUTSIDE_ALLOWED, False)]  # recorded, never loaded by Python


def test_the_scratch_folder_is_the_agents_notes_not_the_port(ws, packet) -> None:
    # Helper scripts an agent keeps in $SCRATCH_DIR are never checkpointed, never reach the
    # verdict's clean tree, and so are no finding; the same file elsewhere is one.
    _write(ws.path, ".harness-scratch/probe.py", "import torch\nprint(torch.zeros(1))\n")
    assert _run(ws, packet) == [] and ws.files_changed() == []
    _write(ws.path, "probe.py", "print(1)\n")
    assert _names(_run(ws, packet)) == [(OUTSIDE_ALLOWED, True)]


# ---- conversion_edit -----------------------------------------------------------------

def test_conversion_script_edit_is_caught(ws, packet) -> None:
    _edit(ws, "scripts/checkpoint_conversion/convert_demo.py", "MAPPING = {}", "MAPPING = {'a': 'b'}")
    _write(ws.path, "converted_weights/demo/vae/config.json", "{}")
    findings = _run(ws, packet)
    assert sorted(_names(findings)) == [(CONVERSION_EDIT, True), (CONVERSION_EDIT, True)]


def test_mapping_key_dumps_are_allowed(ws, packet) -> None:
    _write(ws.path, "converted_weights/demo/_mapping/official_keys.json", '{"a.weight": [1]}')
    _write(ws.path, "converted_weights/demo/_mapping/fastvideo_keys.json", '{"a.weight": [1]}')
    assert _run(ws, packet) == []
    _write(ws.path, "converted_weights/demo/_mapping/other.json", "{}")  # not a packet path
    assert _names(_run(ws, packet)) == [(CONVERSION_EDIT, True)]


# ---- production_import_boundary ------------------------------------------------------

def test_transformers_model_class_import_is_caught(ws, packet) -> None:
    _edit(ws, MODEL, "from transformers import AutoTokenizer", "from transformers import AutoTokenizer, T5EncoderModel")
    findings = _run(ws, packet)
    assert _names(findings) == [(PRODUCTION_IMPORT_BOUNDARY, True)]
    assert "T5EncoderModel" in findings[0].detail


def test_tokenizer_import_is_allowed(ws, packet) -> None:
    _write(ws.path, "fastvideo/models/encoders/demo_t5.py",
           "from transformers import AutoTokenizer, T5TokenizerFast, PreTrainedTokenizerBase, AutoConfig\n"
           "from transformers.utils import logging\n")
    assert [f for f in _run(ws, packet) if f.name != OUTSIDE_ALLOWED] == []


def test_plain_module_import_and_diffusers_caught(ws, packet) -> None:
    _write(ws.path, "fastvideo/models/vaes/other.py",
           "import diffusers\n\nclass V:\n    inner = diffusers.AutoencoderKL\n")
    assert _names(_run(ws, packet)) == [(PRODUCTION_IMPORT_BOUNDARY, True)]


def test_model_import_in_tests_is_allowed(ws, packet) -> None:
    _edit(ws, PARITY, "import torch\n", "import torch\nfrom diffusers import AutoencoderKL\n")
    assert _run(ws, packet) == []


# ---- provenance_comment --------------------------------------------------------------

def test_provenance_comment_is_recorded_for_review(ws, packet) -> None:
    _edit(ws, MODEL, "class DemoVAE(nn.Module):", "# Vendored from the official repo, matches upstream\nclass DemoVAE(nn.Module):")
    findings = _run(ws, packet)
    assert _names(findings) == [(PROVENANCE_COMMENT, False), (PROVENANCE_COMMENT, False)]


def test_upstream_attribution_does_not_block(ws, packet) -> None:
    # FastVideo's own files begin with the Apache attribution of the code they adapt.
    _edit(ws, MODEL, "class DemoVAE(nn.Module):", "# Adapted from transformers: models/t5/modeling_t5.py\n"
                                                   "class DemoVAE(nn.Module):")
    assert not any(f.blocking for f in _run(ws, packet))


def test_a_port_that_looks_at_how_it_runs_is_a_defeat_device(ws, packet) -> None:
    for probe in ("import sys\nRIGHT = 'harness_port_server' in sys.modules\n",
                  "import inspect\nRIGHT = len(inspect.stack()) > 9\n",
                  "RIGHT = 'pytest' in open('/proc/self/cmdline').read()\n",
                  "import os\nRIGHT = os.environ.get('PYTEST_CURRENT_TEST') is not None\n"):
        _edit(ws, MODEL, "class DemoVAE(nn.Module):", probe + "class DemoVAE(nn.Module):")
        assert {f.name for f in _run(ws, packet) if f.blocking} == {"defeat_device"}, probe
        _edit(ws, MODEL, probe + "class DemoVAE(nn.Module):", "class DemoVAE(nn.Module):")


def test_why_comment_is_allowed(ws, packet) -> None:
    _edit(ws, MODEL, "class DemoVAE(nn.Module):", "# Keep fp32 here: the decoder's GroupNorm overflows in bf16.\nclass DemoVAE(nn.Module):")
    assert _run(ws, packet) == []


# ---- claim_without_run ---------------------------------------------------------------

def test_claim_without_run(ws, packet) -> None:
    assert _names(_run(ws, packet, parity_claimed=True, parity_ran=False)) == [(CLAIM_WITHOUT_RUN, True)]
    assert _run(ws, packet, parity_claimed=True, parity_ran=True) == []


def test_format_findings_names_each_problem(ws, packet) -> None:
    _edit(ws, PARITY, "ATOL = 1e-5", "ATOL = 1e-2")
    _write(ws.path, "conftest.py", "")
    text = format_findings(_run(ws, packet))
    assert "2 problem(s)" in text and "parity_test_weakened" in text and "pytest_tampering in conftest.py" in text
    assert format_findings([]) == "Guards: no findings."


# ---- less obvious ways to fake a pass --------------------------------------------------

@pytest.mark.parametrize(
    "old,new",
    [
        ("ATOL = 1e-5", "ATOL = 1e-5\n\n\ndef assert_close(*args, **kwargs):\n    return None"),
        ("import torch\n", "import torch\ntorch.testing.assert_close = lambda *a, **k: None\n"),
        ("import torch\n", "import torch\nfrom mylib import noop as allclose\n"),
    ],
)
def test_shadowed_comparison_is_caught(ws, packet, old, new) -> None:
    _edit(ws, PARITY, old, new)
    assert any("comparison_shadowed" in f.detail for f in _run(ws, packet))


def test_own_helper_around_assert_close_is_fine(ws, packet) -> None:
    _edit(ws, PARITY, "ATOL = 1e-5", "ATOL = 1e-5\n\n\ndef assert_parity(a, b):\n    torch.testing.assert_close(a, b, atol=ATOL, rtol=RTOL)")
    assert _run(ws, packet) == []


def test_production_code_patching_torch_testing_is_caught(ws, packet) -> None:
    _edit(ws, MODEL, "EntryClass = DemoVAE", "EntryClass = DemoVAE\ntorch.testing.assert_close = lambda *a, **k: None")
    findings = _run(ws, packet)
    assert _names(findings) == [(PYTEST_TAMPERING, True)] and "torch.testing.assert_close" in findings[0].detail


def test_production_code_setting_torch_backends_is_fine(ws, packet) -> None:
    _edit(ws, MODEL, "EntryClass = DemoVAE", "EntryClass = DemoVAE\ntorch.backends.cudnn.deterministic = True")
    assert _run(ws, packet) == []


def test_reference_data_edit_is_caught(ws, packet) -> None:
    _write(ws.path, "tests/local_tests/vaes/helpers.py", "REF = [1.0]\n")
    ws.checkpoint("agent adds a helper")  # a new file is not the test's input yet, but code outside the port
    assert _names(_run(ws, packet)) == [(OUTSIDE_ALLOWED, True)]


def test_existing_test_data_edit_is_caught(ws, packet, tmp_path) -> None:
    # ... but an existing one at the base commit is the test's input.
    repo = git.Repo(ws.repo)
    _write(ws.repo, "tests/local_tests/vaes/demo_reference.json", '{"decoded": [2.0]}')
    repo.git.add(A=True)
    repo.git.commit(m="reference", author="t <t@example.com>",
                    env={"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"})
    ws2 = Workspace.create(ws.repo, "guards2", root=tmp_path / "home")
    _write(ws2.path, "tests/local_tests/vaes/demo_reference.json", '{"decoded": [2.5, 9.0]}')
    findings = check_guards(ws2, packet, mode="parity-debug")
    assert _names(findings) == [(PARITY_TEST_WEAKENED, True)] and "test_support_changed" in findings[0].detail
    _write(ws2.path, "tests/local_tests/demo/PORT_STATUS.md", "# state\n")  # state files are not inputs
    assert len(check_guards(ws2, packet, mode="parity-debug")) == 1


# ---- official_reference_at_runtime -------------------------------------------------

def _ws_with_official(tmp_path: Path) -> Workspace:
    official = tmp_path / "official"
    (official / "demo_official").mkdir(parents=True)
    (official / "demo_official" / "__init__.py").write_text("")
    (official / "demo_official" / "vae.py").write_text("class OfficialVAE: pass\n")
    return _workspace(tmp_path, {MODEL: MODEL_SRC}, official_ref_dir=official)


@pytest.mark.parametrize("line", [
    "from demo_official.vae import OfficialVAE\n",
    "import demo_official.vae as ref\n",
    "import importlib\nref = importlib.import_module('demo_official.vae')\n",
    "import os\nROOT = os.environ['OFFICIAL_REF_DIR']\n",
])
def test_production_code_calling_the_official_reference_is_caught(tmp_path, packet, line) -> None:
    ws = _ws_with_official(tmp_path)
    _edit(ws, MODEL, "class DemoVAE(nn.Module):", line + "\n\nclass DemoVAE(nn.Module):")
    findings = _run(ws, packet)
    assert ("official_reference_at_runtime", True) in _names(findings)


def test_production_code_with_its_own_numerics_is_not_caught(tmp_path, packet) -> None:
    ws = _ws_with_official(tmp_path)
    _edit(ws, MODEL, "class DemoVAE(nn.Module):", "import math\n\n\nclass DemoVAE(nn.Module):")
    assert _run(ws, packet) == []


def test_a_registry_entry_is_allowed_and_recorded_for_review(ws, packet) -> None:
    _write(ws.path, "fastvideo/models/registry.py", "_VAE = {'DemoVAE': ('vaes', 'demo', 'DemoVAE')}\n")
    findings = _run(ws, packet)
    assert _names(findings) == [("registry_change", False)]
