"""Packets shaped like the ones written for real FastVideo components validate against the
published FastVideo source tree, and what the contract forbids is still refused beside each.

Every shape here was once refused although the contract allows it: an audio VAE under
`fastvideo/models/audio/`, a reused pipeline config, tokenizer tokens in the text, a bare
package name as `official_ref_dir`, a component name with a space, a concern that names
`prototype_key_dumps` for both of its sides.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app

pytestmark = pytest.mark.slow


def _ltx2_audio_vae() -> dict:
    """An audio VAE port: the model and config live in FastVideo's `audio` bucket."""
    return {
        "model_family": "ltx2",
        "component": "audio vae",
        "component_type": "vae",
        "mode": "prototype",
        "official_ref_dir": "ltx_core",
        "official_definition_files": [{"path": "ltx_core/model/audio_vae/audio_vae.py", "symbols": "AudioVAE",
                                       "notes": "mel-spectrogram VAE; decode returns a mel container"}],
        "official_instantiation_files": [{"path": "ltx_core/model/audio_vae/model_configurator.py",
                                          "symbols": "AudioVAEConfigurator", "args": "latent_channels=8"}],
        "official_weight_source": "Lightricks/LTX-2, prefix audio_vae.",
        "fastvideo_target_files": ["fastvideo/models/audio/ltx2_audio_vae.py",
                                   "fastvideo/configs/models/audio/ltx2_audio_vae.py"],
        "local_tests_readme": "tests/local_tests/ltx2/README.md",
        "port_state_file": "tests/local_tests/ltx2/PORT_STATUS.md",
        "parity_test": "tests/local_tests/ltx2/test_ltx2_audio_vae_parity.py",
        "prototype_key_dumps": {"official": "planned", "fastvideo": "planned"},
        "conversion": {"script": "not_created", "converted_component_dir": "not_created",
                       "model_index_library": "fastvideo", "config_file": "config.json",
                       "mapping_notes": "not_created", "production_loader_strictness": "strict",
                       "strict_load": "not_run"},
        "concerns_or_unknowns": ["mel hop length and sample rate must match the vocoder"],
    }


def _stable_audio_oobleck() -> dict:
    """The Oobleck VAE against the official stable-audio-tools package, reusing the pipeline config."""
    return {
        "model_family": "stable_audio",
        "component": "vae",
        "component_type": "vae",
        "mode": "parity-debug",
        "official_ref_dir": "stable_audio_tools",
        "official_definition_files": [{"path": "stable_audio_tools/models/autoencoders.py",
                                       "symbols": "OobleckEncoder, OobleckDecoder",
                                       "notes": "snake activations, weight-normed convs"}],
        "official_instantiation_files": [{"path": "stable_audio_tools/models/factory.py",
                                          "symbols": "create_autoencoder_from_config",
                                          "args": "latent_dim=64, c_mults=[1, 2, 4, 8, 16]"}],
        "official_weight_source": "stabilityai/stable-audio-open-1.0, subfolder vae",
        "fastvideo_target_files": ["fastvideo/models/vaes/oobleck.py::OobleckVAE",
                                   "fastvideo/configs/pipelines/stable_audio.py::StableAudioT2AConfig"],
        "local_tests_readme": "tests/local_tests/stable_audio/README.md",
        "port_state_file": "tests/local_tests/stable_audio/PORT_STATUS.md",
        "parity_test": "tests/local_tests/stable_audio/test_oobleck_vae_official_parity.py",
        "prototype_key_dumps": {"official": "unknown", "fastvideo": "unknown"},
        "conversion": {"script": "not_needed", "converted_component_dir": "not_needed",
                       "model_index_library": "diffusers", "config_file": "config.json",
                       "mapping_notes": "not_needed: positional pairing of the state dicts",
                       "production_loader_strictness": "strict", "strict_load": "pass"},
        "concerns_or_unknowns": [
            "prototype_key_dumps: searched converted_weights/stable_audio/_mapping and the test's helpers; "
            "no dump files were found, the test pairs keys positionally",
        ],
    }


def _dreamx_umt5() -> dict:
    """A UMT5 text encoder whose notes name its tokenizer's special tokens."""
    return {
        "model_family": "dreamx_world",
        "component": "UMT5 text encoder",
        "component_type": "encoder",
        "mode": "prototype",
        "official_ref_dir": "DreamX-World",
        "official_definition_files": [{"path": "wan/modules/t5.py", "symbols": "T5EncoderModel",
                                       "notes": "umt5-xxl; pads with <pad>, ends each prompt with </s>"}],
        "official_instantiation_files": [{"path": "wan/text2video.py", "symbols": "WanT2V",
                                          "args": "text_len=512; tokenizer adds </s>, pad token <pad>, "
                                                  "sentinels <extra_id_0>..<extra_id_99>"}],
        "official_weight_source": "models_t5_umt5-xxl-enc-bf16.pth",
        "fastvideo_target_files": ["fastvideo/models/encoders/t5.py::UMT5EncoderModel",
                                   "fastvideo/configs/models/encoders/t5.py"],
        "local_tests_readme": "tests/local_tests/dreamx_world/README.md",
        "port_state_file": "tests/local_tests/dreamx_world/PORT_STATUS.md",
        "parity_test": "tests/local_tests/dreamx_world/test_dreamx_world_text_encoder_parity.py",
        "prototype_key_dumps": {"official": "planned", "fastvideo": "planned"},
        "conversion": {"script": "not_needed", "converted_component_dir": "not_needed",
                       "model_index_library": "transformers", "config_file": "config.json",
                       "mapping_notes": "not_needed", "production_loader_strictness": "strict",
                       "strict_load": "not_run"},
        "concerns_or_unknowns": ["padded positions (<pad>) are zeroed in the official output"],
    }


@pytest.fixture()
def checkout(fastvideo_sdist: Path, tmp_path: Path) -> Path:
    clone = tmp_path / "FastVideo"
    subprocess.run(["git", "clone", "-q", str(fastvideo_sdist), str(clone)], check=True)
    return clone


def _validate(tmp_path: Path, packet: dict, repo: Path | None) -> tuple[int, str]:
    path = tmp_path / "packet.json"
    path.write_text(json.dumps({"component_context": packet}))
    args = ["validate", str(path)] + (["--repo", str(repo)] if repo else [])
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.output


def _with(packet: dict, **changes: object) -> dict:
    changed = copy.deepcopy(packet)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        target = changed
        for key in parents:
            target = target[key]
        target[leaf] = value
    return changed


def _clone_official(checkout: Path, packet: dict) -> None:
    """A git-ignored clone of the official code at the checkout root, holding the named files."""
    ref = checkout / packet["official_ref_dir"]
    for entry in packet["official_definition_files"] + packet["official_instantiation_files"]:
        (ref / entry["path"]).parent.mkdir(parents=True, exist_ok=True)
        (ref / entry["path"]).write_text("# official file\n")
    with (checkout / ".git" / "info" / "exclude").open("a") as exclude:
        exclude.write(f"/{packet['official_ref_dir']}/\n")


def test_the_sdist_has_what_the_shapes_name(fastvideo_sdist: Path) -> None:
    for packet in (_ltx2_audio_vae(), _stable_audio_oobleck(), _dreamx_umt5()):
        for target in packet["fastvideo_target_files"]:
            assert (fastvideo_sdist / target.split("::")[0]).is_file(), target
    assert (fastvideo_sdist / _stable_audio_oobleck()["parity_test"]).is_file()
    assert (fastvideo_sdist / _dreamx_umt5()["parity_test"]).is_file()


def test_audio_vae_in_the_audio_bucket(checkout: Path, tmp_path: Path) -> None:
    packet = _ltx2_audio_vae()
    code, output = _validate(tmp_path, packet, checkout)
    assert code == 0, output
    assert "component=audio vae" in output
    # still refused: a VAE in another model bucket, an encoder in the audio bucket
    code, output = _validate(tmp_path, _with(packet, fastvideo_target_files=["fastvideo/models/dits/ltx2.py"]), None)
    assert code == 2 and "belongs in bucket `vaes` or `audio`" in output, output
    encoder = _with(packet, component_type="encoder")
    code, output = _validate(tmp_path, encoder, None)
    assert code == 2 and "component_type encoder belongs in bucket `encoders`" in output, output


def test_reused_pipeline_config_and_bare_import_path(checkout: Path, tmp_path: Path) -> None:
    packet = _stable_audio_oobleck()
    code, output = _validate(tmp_path, packet, checkout)
    assert code == 0, output
    assert "official_ref_dir stable_audio_tools is an import path" in output
    for bad, message in [
        ("fastvideo/configs/pipelines/nested/stable_audio.py", "directly in fastvideo/configs/pipelines/"),
        ("fastvideo/configs/pipelines/stable_audio.yaml", "directly in fastvideo/configs/pipelines/"),
        ("fastvideo/configs/stable_audio.py", "must be under fastvideo/models/vaes/"),
    ]:
        code, output = _validate(tmp_path, _with(packet, fastvideo_target_files=[bad]), None)
        assert code == 2 and message in output, (bad, output)
    # a path that is not a directory is not an import path
    code, output = _validate(tmp_path, _with(packet, official_ref_dir="refs/stable-audio-tools"), checkout)
    assert code == 2 and "official_ref_dir: refs/stable-audio-tools is not a directory" in output, output


def test_official_clone_at_the_checkout_root(checkout: Path, tmp_path: Path) -> None:
    packet = _with(_dreamx_umt5())
    code, output = _validate(tmp_path, packet, checkout)
    assert code == 2 and "official_ref_dir: DreamX-World is not a directory" in output, output
    _clone_official(checkout, packet)
    code, output = _validate(tmp_path, packet, checkout)
    assert code == 0, output
    assert "component=UMT5 text encoder" in output


def test_tokenizer_tokens_are_not_placeholders(tmp_path: Path) -> None:
    code, output = _validate(tmp_path, _dreamx_umt5(), None)
    assert code == 0, output
    for placeholder in ("<model_family>", "<dit|vae>", "<class/function names>", "<bucket>"):
        code, output = _validate(tmp_path, _with(_dreamx_umt5(), official_weight_source=f"see {placeholder}"), None)
        assert code == 2 and f"still holds the template placeholder {placeholder}" in output, output


def test_component_name_is_one_line(tmp_path: Path) -> None:
    code, output = _validate(tmp_path, _with(_dreamx_umt5(), component="UMT5\ntext encoder"), None)
    assert code == 2 and "component:" in output, output


def test_concern_naming_the_key_dumps_covers_both_sides(tmp_path: Path) -> None:
    code, output = _validate(tmp_path, _stable_audio_oobleck(), None)
    assert code == 0, output
    # still refused: the concern names the field but not the search, or no concern at all
    unsearched = _with(_stable_audio_oobleck(), concerns_or_unknowns=["prototype_key_dumps: to do"])
    code, output = _validate(tmp_path, unsearched, None)
    assert code == 2 and "prototype_key_dumps.official: is unknown" in output, output
    assert "prototype_key_dumps.fastvideo: is unknown" in output
    code, output = _validate(tmp_path, _with(_stable_audio_oobleck(), concerns_or_unknowns=[]), None)
    assert code == 2 and "prototype_key_dumps.official: is unknown" in output, output


def test_parity_debug_needs_the_parity_test_in_the_checkout(checkout: Path, tmp_path: Path) -> None:
    missing = _with(_stable_audio_oobleck(), parity_test="tests/local_tests/stable_audio/test_oobleck_vae_typo_parity.py")
    code, output = _validate(tmp_path, missing, None)
    assert code == 0, output  # without --repo the file cannot be looked for
    code, output = _validate(tmp_path, missing, checkout)
    assert code == 2, output
    assert "parity_test: tests/local_tests/stable_audio/test_oobleck_vae_typo_parity.py does not exist" in output
    # a prototype may name a test that is still to be written
    code, output = _validate(tmp_path, _with(_ltx2_audio_vae()), checkout)
    assert code == 0, output
