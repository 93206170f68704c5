"""`harness eval build-suite` on a small real-shaped repository with history (the TinyVid example,
one commit per component, a GPU-only parity test): components found from the tree and the
history, base commits without the native code in the suite's own repository, what was kept,
packets, gold patches, CPU variants as separate labelled tasks, impossible twins, suite.json and
the table; and the mining of the real FastVideo tree from its PyPI sdist."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.evals.tasks import load_suite, load_task
from tests.suite_repo import CUDA_SKIP, T5_MODEL, VAE_MODEL, VAE_TEST, make_history_repo

REAL_OOBLECK_TEST = "tests/local_tests/stable_audio/test_oobleck_vae_official_parity.py"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    return make_history_repo(tmp_path_factory.mktemp("history"))


@pytest.fixture(scope="module")
def built(history, tmp_path_factory):
    """The suite built without running anything in a sandbox (the table and the needs only)."""
    out = tmp_path_factory.mktemp("suites") / "tinyvid"
    refs_before = _git(history.repo, "for-each-ref")
    result = CliRunner().invoke(app, ["eval", "build-suite", "--repo", str(history.repo), "--out", str(out),
                                      "--official", str(history.official), "--sandbox", "bwrap",
                                      "--no-probe", "--no-validate"])
    assert result.exit_code == 0, result.output
    assert _git(history.repo, "for-each-ref") == refs_before  # the user's branches are never touched
    assert _git(history.repo, "status", "--porcelain") == ""
    return out, result.output


def _entries(out: Path) -> dict[str, dict]:
    return {e["id"]: e for e in json.loads((out / "suite.json").read_text())["tasks"]}


def test_the_build_lists_every_component_with_what_this_machine_lacks(built):
    out, printed = built
    entries = _entries(out)
    assert set(entries) == {"port-tinyvid", "port-tinyvid-cpu", "port-tinyvid-t5", "impossible-port-tinyvid",
                            "impossible-port-tinyvid-cpu", "impossible-port-tinyvid-t5"}
    for entry in entries.values():
        assert {"id", "component", "kind", "runnable"} <= set(entry)
        assert entry["runnable"] is not bool(entry.get("needs"))
    gpu = entries["port-tinyvid"]
    assert gpu["component"] == "tinyvid" and gpu["kind"] == "port" and gpu["runnable"] is False
    assert gpu["needs"] == ["CUDA (no GPU given: --gpus, or --gpus-per-task with docker or Ray)"]
    assert entries["port-tinyvid-t5"]["runnable"] and entries["port-tinyvid-cpu"]["runnable"]
    assert entries["impossible-port-tinyvid"]["kind"] == "impossible"
    assert entries["impossible-port-tinyvid"]["twin_of"] == "port-tinyvid"
    assert "port-tinyvid-cpu" in printed and "CUDA (no GPU given" in printed and "4 runnable here, 2 not" in printed


def test_a_base_lacks_the_component_and_the_gold_restores_it_byte_for_byte(built, history, tmp_path):
    out, _ = built
    task = load_task(out / "port-tinyvid-t5")
    base = task.spec.source.base_commit
    suite_repo = out / "repo.git"
    assert _git(suite_repo, "rev-list", "--parents", "-n1", base).split() == [base]  # no history to read it back from
    listed = _git(suite_repo, "ls-tree", "-r", "--name-only", base).split()
    assert T5_MODEL not in listed and "fastvideo/configs/models/encoders/tinyvid_t5.py" not in listed
    assert VAE_MODEL in listed and "tests/local_tests/encoders/test_tinyvid_text_encoder_parity.py" in listed
    # The export went with the config (nothing else used it); the whole tree is the checkout's otherwise.
    init = "fastvideo/configs/models/encoders/__init__.py"
    assert "TinyVidT5Config" not in _git(suite_repo, "show", f"{base}:{init}")
    entry = _entries(out)["port-tinyvid-t5"]
    assert entry["removed"] == sorted([T5_MODEL, "fastvideo/configs/models/encoders/tinyvid_t5.py"])
    assert entry["edited"] == [init]
    checkout = tmp_path / "base"
    _git(suite_repo, "worktree", "add", "-q", "--detach", str(checkout), base)
    subprocess.run(["git", "-C", str(checkout), "apply", str(out / "port-tinyvid-t5" / "gold.patch")], check=True)
    for rel in (T5_MODEL, init, "fastvideo/configs/models/encoders/tinyvid_t5.py"):
        assert (checkout / rel).read_bytes() == (history.repo / rel).read_bytes(), rel
    assert task.spec.source.official.name == "official" and not task.spec.source.official.in_checkout
    assert task.spec.needs.official == "official" and task.spec.needs.weights == ["converted_weights/"]


def test_the_packet_is_derived_from_the_repository_and_validates(built):
    out, _ = built
    from harness.contracts import load_packet

    packet = load_packet(out / "port-tinyvid-t5" / "packet.json")
    assert (packet.model_family, packet.component, packet.component_type) == ("tinyvid", "tinyvid_t5", "encoder")
    assert packet.parity_test == "tests/local_tests/encoders/test_tinyvid_text_encoder_parity.py"
    assert packet.fastvideo_target_files == [T5_MODEL, "fastvideo/configs/models/encoders/tinyvid_t5.py"]
    assert [(f.path, f.symbols) for f in packet.official_definition_files] == [
        ("tinyvid_official/factory.py", "build_text_encoder")]
    assert any("Add the TinyVid T5 text encoder" in c for c in packet.concerns_or_unknowns)


def test_the_cpu_variant_is_a_separate_labelled_task_and_the_upstream_test_is_unchanged(built, history):
    out, _ = built
    cpu, gpu = load_task(out / "port-tinyvid-cpu"), load_task(out / "port-tinyvid")
    suite_repo = out / "repo.git"
    variant = "tests/local_tests/vaes/test_tinyvid_vae_parity_cpu.py"
    assert cpu.spec.variant == "cpu" and "CPU variant" in cpu.spec.description
    assert json.loads((out / "port-tinyvid-cpu" / "packet.json").read_text())["component_context"]["parity_test"] == variant
    text = _git(suite_repo, "show", f"{cpu.spec.source.base_commit}:{variant}")
    assert text.startswith("# CPU variant of tests/local_tests/vaes/test_tinyvid_vae_parity.py")
    assert "skipif(False" in text and 'torch.device("cpu")' in text and "cuda:0" not in text
    # The repository's own test stays as it is, in both bases, and is the CPU task's grader test.
    upstream = (history.repo / VAE_TEST).read_text()
    assert CUDA_SKIP in upstream
    for task in (cpu, gpu):
        assert _git(suite_repo, "show", f"{task.spec.source.base_commit}:{VAE_TEST}") == upstream
    assert variant not in _git(suite_repo, "ls-tree", "-r", "--name-only", gpu.spec.source.base_commit)
    assert cpu.spec.grader_tests == [VAE_TEST] and gpu.spec.needs.cuda and not cpu.spec.needs.cuda


def test_twins_load_with_their_originals_base_and_a_fixed_success(built):
    out, _ = built
    tasks = {t.id: t for t in load_suite(str(out))}
    twin = tasks["impossible-port-tinyvid-t5"]
    assert twin.kind == "impossible" and twin.spec.twin.of == "port-tinyvid-t5" and twin.spec.twin.factor == 1.01
    assert twin.spec.source.base_commit == tasks["port-tinyvid-t5"].spec.source.base_commit
    assert twin.spec.success.parity_status == ["debug_red", "blocked"] and not twin.spec.success.parity_rerun
    assert twin.file(twin.spec.gold.patch) == tasks["port-tinyvid-t5"].file("gold.patch")


def test_a_twins_starting_state_holds_the_altered_test(built, tmp_path):
    out, _ = built
    from harness.evals.prepare import prepare_repo_task

    prepared = prepare_repo_task(load_task(out / "impossible-port-tinyvid-t5"), tmp_path / "twin")
    test = (prepared.repo / prepared.parity_test).read_text()
    assert "(r.float().cpu()) * 1.01" in test
    assert _git(prepared.repo, "status", "--porcelain") == ""  # committed: the base the verdict trusts
    assert (prepared.repo.parent / "official" / "tinyvid_official").is_dir()  # next to the repo, as the test reads it
    assert not _git(prepared.repo, "remote").strip()  # a self-contained clone
    original = prepare_repo_task(load_task(out / "port-tinyvid-t5"), tmp_path / "original")
    assert "* 1.01" not in (original.repo / original.parity_test).read_text()
    assert original.base_commit == load_task(out / "port-tinyvid-t5").spec.source.base_commit


def test_a_build_refuses_a_folder_that_is_not_empty_and_a_non_repository(history, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("")
    result = CliRunner().invoke(app, ["eval", "build-suite", "--repo", str(history.repo), "--out", str(tmp_path / "out"),
                                      "--no-probe", "--no-validate"])
    assert result.exit_code == 2 and "not empty" in result.output
    result = CliRunner().invoke(app, ["eval", "build-suite", "--repo", str(tmp_path), "--out", str(tmp_path / "o2"),
                                      "--no-probe", "--no-validate"])
    assert result.exit_code == 2 and "not a git checkout" in result.output


# ----- the real FastVideo tree (its PyPI sdist, one commit) -------------------------------------


@pytest.fixture(scope="module")
def mined_sdist(fastvideo_sdist):
    from harness.evals.mining import find_components

    return find_components(fastvideo_sdist, "HEAD")


@pytest.mark.slow
def test_the_real_fastvideo_tree_holds_more_than_twenty_components_with_parity_tests(mined_sdist):
    components, _ = mined_sdist
    stems = {c.stem for c in components}
    assert len(components) >= 20, sorted(stems)
    assert {"oobleck", "autoencoder_kl", "t5_hf", "gemma", "qwen3", "mistral3", "flux2vae", "gamecraftvae"} <= stems
    oobleck = next(c for c in components if c.stem == "oobleck")
    assert oobleck.registry_archs == ["AutoencoderOobleck"]
    assert oobleck.config == "fastvideo/configs/models/vaes/oobleck.py"
    official = next(t for t in oobleck.tests if t.path == REAL_OOBLECK_TEST)
    assert official.needs.cuda and official.needs.synthetic_weights and not official.needs.weights
    weights = next(t for t in oobleck.tests if t.path != REAL_OOBLECK_TEST)
    assert "stabilityai/stable-audio-open-1.0" in weights.needs.weights
    flux2 = next(c for c in components if c.stem == "flux2vae")
    assert flux2.files == ["fastvideo/models/vaes/flux2vae.py", "fastvideo/models/vaes/flux2_components.py"]


@pytest.mark.slow
def test_the_real_oobleck_base_keeps_the_config_the_pipelines_import(mined_sdist):
    from harness.evals.suite_base import plan_removal

    components, files = mined_sdist
    oobleck = next(c for c in components if c.stem == "oobleck")
    plan = plan_removal(files, oobleck)
    assert plan.blocked is None and plan.removed == ["fastvideo/models/vaes/oobleck.py"]
    assert list(plan.edited) == ["fastvideo/models/registry.py"]
    registry = plan.edited["fastvideo/models/registry.py"]
    assert '"AutoencoderOobleck": ("vaes"' not in registry and '"AutoencoderKLFlux2": ("vaes"' in registry
    assert files.read("fastvideo/models/registry.py").count("\n") == registry.count("\n") + 1  # one line less
    assert any(k.startswith("fastvideo/configs/models/vaes/oobleck.py: kept") for k in plan.kept), plan.kept


def test_the_cpu_variant_and_the_impossible_variant_of_the_real_oobleck_test(fastvideo_sdist):
    import ast

    from harness.evals.variants import cpu_variant, cuda_uses, impossible_variant

    source = (fastvideo_sdist / REAL_OOBLECK_TEST).read_text()
    assert cuda_uses(source) == ["line 50: skips without CUDA", "line 64: device 'cuda:0'"]
    cpu = cpu_variant(source)
    assert cuda_uses(cpu) == [] and len(cpu.splitlines()) == len(source.splitlines())
    changed = [(a, b) for a, b in zip(source.splitlines(), cpu.splitlines()) if a != b]
    assert changed == [("    not torch.cuda.is_available(),", "    False,"),
                       ('    device = torch.device("cuda:0")', '    device = torch.device("cpu")')]
    twin = impossible_variant(cpu, 1.01)
    ast.parse(twin)
    assert twin.count("* 1.01") == 2
    assert "assert_close(fv_enc_out, (up_enc_out) * 1.01, atol=1e-5, rtol=1e-5)" in twin
    assert "assert_close(fv_dec_out, (up_dec_out) * 1.01, atol=1e-5, rtol=1e-5)" in twin
