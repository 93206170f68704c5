"""The TinyVid example: its git repo, determinism, packets, and honest parity tests.

The parity tests run for real (pytest in a subprocess, cwd = the generated repo). The gold
and seeded-bug variants run through `harness.evals.fixtures.verify`, one subprocess that
runs the real parity test file once per variant.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import git
import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.evals.fixtures import (
    COMPONENTS,
    SEEDED_BUGS,
    gold_files,
    parity_test_path,
    write_example_repo,
)

PARITY_TESTS = [parity_test_path(c) for c in COMPONENTS]


# A module fixture's time counts against the first test that asks for it, and `variants` runs
# every variant's pytest (up to 900 s on a busy machine): above the suite's default limit.
pytestmark = pytest.mark.timeout(1200)


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    return write_example_repo(tmp_path_factory.mktemp("example"))


def _pytest(repo: Path, tests: list[str], env_official: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "OFFICIAL_REF_DIR"}
    if env_official is not None:
        env["OFFICIAL_REF_DIR"] = env_official
    return subprocess.run([sys.executable, "-m", "pytest", *tests, "-v", "-s", "-rs", "-p", "no:cacheprovider"],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=300)


def test_repo_is_a_clean_git_repo_with_one_commit(example):
    repo = git.Repo(example.repo)
    assert repo.active_branch.name == "main"
    assert int(repo.git.rev_list("--count", "HEAD")) == 1
    assert repo.git.status("--porcelain") == ""
    tracked = set(repo.git.ls_files().splitlines())
    for path in [
        "fastvideo/models/registry.py", "fastvideo/models/loader.py",
        "fastvideo/models/encoders/base.py", "fastvideo/models/vaes/common.py",
        "fastvideo/configs/models/vaes/__init__.py", "fastvideo/configs/models/encoders/__init__.py",
        "converted_weights/tinyvid/vae/config.json", "converted_weights/tinyvid/vae/model.safetensors",
        "converted_weights/tinyvid/text_encoder/model.safetensors",
        "scripts/checkpoint_conversion/tinyvid_to_fastvideo.py",
        "tests/local_tests/README.md", "tests/local_tests/tinyvid/PORT_STATUS.md",
        ".agents/skills/add-model-04-port-vae/SKILL.md", ".agents/skills/add-model-05-port-encoder/SKILL.md",
        ".agents/skills/add-model/shared/common_rules.md", ".agents/skills/add-model/shared/component_skill_common.md",
        ".agents/skills/add-model-02-parity/templates/component_parity_test.py", *PARITY_TESTS,
    ]:
        assert path in tracked, path
    # The gold port is not in the repo, and no template suffix leaked through.
    assert not any(p.endswith(".tmpl") for p in tracked)
    assert not (example.repo / "fastvideo/models/vaes/tinyvid.py").exists()
    assert (example.official_dir / "weights" / "vae.safetensors").is_file()
    assert json.loads((example.repo / "converted_weights/tinyvid/vae/config.json").read_text())["_class_name"] == "TinyVidVAE"


def test_generator_is_deterministic(example, tmp_path):
    again = write_example_repo(tmp_path / "again")
    for rel in ["weights/vae.safetensors", "weights/text_encoder.safetensors"]:
        assert (again.official_dir / rel).read_bytes() == (example.official_dir / rel).read_bytes(), rel
    for comp in COMPONENTS:
        rel = f"converted_weights/tinyvid/{comp}/model.safetensors"
        assert (again.repo / rel).read_bytes() == (example.repo / rel).read_bytes(), rel
    # Fixed author and dates: the same tree gives the same commit.
    assert git.Repo(again.repo).head.commit.hexsha == git.Repo(example.repo).head.commit.hexsha


def test_generator_refuses_to_overwrite_and_leaves_nothing_behind(example):
    before = sorted(p.name for p in example.root.iterdir())
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        write_example_repo(example.root)
    assert sorted(p.name for p in example.root.iterdir()) == before


def test_packets_validate_with_the_cli(example):
    assert set(example.packets) == {f"{c}:{m}" for c in COMPONENTS for m in ("prototype", "parity-debug")}
    runner = CliRunner()
    for key, packet in example.packets.items():
        data = json.loads(packet.read_text())
        assert data["official_ref_dir"] == str(example.official_dir)
        result = runner.invoke(app, ["validate", str(packet), "--repo", str(example.repo)])
        assert result.exit_code == 0, f"{key}: {result.output}"


def test_gold_files_and_seeded_bugs_are_well_formed():
    for comp in COMPONENTS:
        files = gold_files(comp)
        model = next(text for path, text in files.items() if path.startswith("fastvideo/models/"))
        assert "\nEntryClass = " in model
        init = next(text for path, text in files.items() if path.endswith("__init__.py"))
        assert "TinyVid" in init
    assert len(SEEDED_BUGS) >= 10
    assert len({b.id for b in SEEDED_BUGS}) == len(SEEDED_BUGS)
    assert {b.component for b in SEEDED_BUGS} == set(COMPONENTS)
    for bug in SEEDED_BUGS:
        text = gold_files(bug.component)[bug.path]
        assert text.count(bug.old) == 1, bug.id
        assert "\n" not in bug.old and "\n" not in bug.new and bug.old != bug.new, bug.id
        assert bug.apply(text).count("\n") == text.count("\n"), bug.id


@pytest.mark.slow
def test_parity_tests_skip_before_the_port_when_run_from_the_cli(example):
    # The committed repo as is, run the way a person would; no OFFICIAL_REF_DIR, so the tests
    # find the reference at <repo>/../official and skip on the missing native class.
    proc = _pytest(example.repo, PARITY_TESTS, env_official=None)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 skipped" in proc.stdout.splitlines()[-1]
    assert proc.stdout.count("FastVideo class not ported yet") == 2


@pytest.fixture(scope="module")
def variants(example, tmp_path_factory):
    """Every honesty variant, run by the verify driver in one subprocess."""
    work = tmp_path_factory.mktemp("variants")
    out = work / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "harness.evals.fixtures.verify", str(example.root), "--out", str(out),
         "--work", str(work / "copies")],
        capture_output=True, text=True, timeout=900,
    )
    assert out.is_file(), proc.stderr[-3000:]
    return proc, {r["name"]: r for r in json.loads(out.read_text())}


@pytest.mark.slow
def test_every_variant_ends_as_expected(variants):
    proc, results = variants
    assert set(results) >= {b.id for b in SEEDED_BUGS}
    bad = {name: (r["expect"], r["outcomes"], r["longrepr"][-300:]) for name, r in results.items() if not r["ok"]}
    assert not bad, bad
    assert proc.returncode == 0


@pytest.mark.slow
def test_without_port_or_reference_the_tests_skip_with_the_reason(variants):
    _, results = variants
    for comp in COMPONENTS:
        assert results[f"no_port_{comp}"]["outcomes"] == {"skipped": 1}
        assert "FastVideo class not ported yet" in results[f"no_port_{comp}"]["longrepr"]
        assert results[f"no_official_{comp}"]["outcomes"] == {"skipped": 1}
        assert "official reference missing" in results[f"no_official_{comp}"]["longrepr"]


@pytest.mark.slow
def test_gold_ports_pass_with_zero_drift(variants):
    proc, results = variants
    for comp in COMPONENTS:
        assert results[f"gold_{comp}"]["outcomes"] == {"passed": 1}
    assert proc.stdout.count("max_abs=0.000e+00 mean_abs=0.000e+00") >= 2


@pytest.mark.slow
def test_a_wrong_converted_key_fails_as_a_strict_load_error(variants):
    _, results = variants
    r = results["converted_key_renamed_vae"]
    assert r["outcomes"] == {"failed": 1}
    assert "Missing key(s) in state_dict" in r["longrepr"] and "quant_proj.weight" in r["longrepr"]
    assert "Unexpected key(s) in state_dict" in r["longrepr"] and "quant_conv.weight" in r["longrepr"]


@pytest.mark.slow
def test_every_seeded_bug_fails_on_numbers(variants):
    _, results = variants
    for bug in SEEDED_BUGS:
        r = results[bug.id]
        assert r["outcomes"] == {"failed": 1}, (bug.id, r["outcomes"])
        # A numeric mismatch from assert_close, not an import or load error.
        assert "Tensor-likes are not close" in r["longrepr"], (bug.id, r["longrepr"][-500:])
