"""The example packets describe real FastVideo components: validate them against the published source tree."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.contracts import check_packet_paths, load_packet

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
pytestmark = pytest.mark.slow


@pytest.fixture()
def checkout(fastvideo_sdist: Path, tmp_path: Path) -> Path:
    """A writable clone of the sdist tree, so official reference clones can be placed inside it."""
    clone = tmp_path / "FastVideo"
    subprocess.run(["git", "clone", "-q", str(fastvideo_sdist), str(clone)], check=True)
    return clone


def _place_official_files(checkout: Path, name: str) -> None:
    packet = json.loads((EXAMPLES / f"{name}.json").read_text())["component_context"]
    ref = checkout / packet["official_ref_dir"]
    for entry in packet["official_definition_files"] + packet["official_instantiation_files"]:
        target = ref / entry["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("# stand-in for the official reference file\n")


def test_sdist_has_the_components_the_examples_name(fastvideo_sdist: Path) -> None:
    for name in ("t5_text_encoder", "oobleck_vae"):
        packet = load_packet(EXAMPLES / f"{name}.json")
        for target in packet.fastvideo_target_files:
            assert (fastvideo_sdist / target.split("::")[0]).is_file(), target
    t5 = (fastvideo_sdist / "fastvideo/models/encoders/t5.py").read_text()
    assert "class T5EncoderModel" in t5 and "EntryClass" in t5
    assert "class OobleckVAE" in (fastvideo_sdist / "fastvideo/models/vaes/oobleck.py").read_text()
    assert (fastvideo_sdist / "tests/local_tests").is_dir()


def test_examples_name_parity_tests_the_sdist_has(fastvideo_sdist: Path) -> None:
    for name in ("t5_text_encoder", "oobleck_vae"):
        parity_test = load_packet(EXAMPLES / f"{name}.json").parity_test
        assert (fastvideo_sdist / parity_test).is_file(), parity_test
    handoff = (EXAMPLES / "handoff_oobleck_vae_ask_user.md").read_text()
    assert load_packet(EXAMPLES / "oobleck_vae.json").parity_test in handoff


@pytest.mark.parametrize("name", ["t5_text_encoder", "oobleck_vae"])
@pytest.mark.parametrize("form", ["json", "yaml", "md"])
def test_examples_validate_against_real_fastvideo(checkout: Path, name: str, form: str) -> None:
    _place_official_files(checkout, name)
    result = CliRunner().invoke(app, ["validate", str(EXAMPLES / f"{name}.{form}"), "--repo", str(checkout)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK family=")


def test_examples_fail_against_real_fastvideo_without_the_official_clone(fastvideo_sdist: Path) -> None:
    result = CliRunner().invoke(app, ["validate", str(EXAMPLES / "oobleck_vae.json"), "--repo", str(fastvideo_sdist)])
    assert result.exit_code == 2
    assert "official_ref_dir: official_refs/diffusers is not a directory" in result.output


def test_wrong_bucket_against_real_fastvideo(checkout: Path, tmp_path: Path) -> None:
    _place_official_files(checkout, "t5_text_encoder")
    data = json.loads((EXAMPLES / "t5_text_encoder.json").read_text())
    data["component_context"]["fastvideo_target_files"][0] = "fastvideo/models/dits/t5.py"
    packet = tmp_path / "wrong.json"
    packet.write_text(json.dumps(data))
    result = CliRunner().invoke(app, ["validate", str(packet), "--repo", str(checkout)])
    assert result.exit_code == 2
    assert "fastvideo_target_files[0]: component_type encoder belongs in bucket `encoders`" in result.output


def test_symlink_in_real_tree_escaping_is_caught(checkout: Path, tmp_path: Path) -> None:
    _place_official_files(checkout, "oobleck_vae")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    family_tests = checkout / "tests/local_tests/stable_audio"
    shutil.rmtree(family_tests, ignore_errors=True)
    family_tests.symlink_to(outside, target_is_directory=True)
    packet = load_packet(EXAMPLES / "oobleck_vae.json")
    problems = check_packet_paths(packet, checkout)
    assert [p.field_path for p in problems] == ["local_tests_readme", "port_state_file", "parity_test"]
