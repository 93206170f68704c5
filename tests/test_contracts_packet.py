"""The component packet: the three input forms, the CLI, and every kind of bad packet."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from typer.testing import CliRunner

from harness.cli import app
from harness.contracts import ComponentContext, PacketError, bucket_for, check_packet_paths, load_packet

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
runner = CliRunner()


def cli(*args: str):
    return runner.invoke(app, list(args))


def example(name: str = "oobleck_vae") -> dict[str, Any]:
    return json.loads((EXAMPLES / f"{name}.json").read_text())["component_context"]


def write_json(tmp_path: Path, data: Any, name: str = "packet.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data, indent=2))
    return path


def make_repo(root: Path, packet: dict[str, Any]) -> Path:
    """A git checkout holding the packet's official reference files under official_ref_dir."""
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    ref = root / packet["official_ref_dir"]
    for entry in packet["official_definition_files"] + packet["official_instantiation_files"]:
        target = ref / entry["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("# official reference stand-in\n")
    return root


# ---- valid packets ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["oobleck_vae", "t5_text_encoder"])
@pytest.mark.parametrize("form", ["json", "yaml", "md"])
def test_examples_validate_in_every_form(name: str, form: str) -> None:
    result = cli("validate", str(EXAMPLES / f"{name}.{form}"))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK family=")
    packet = load_packet(EXAMPLES / f"{name}.json")
    assert f"parity_test={packet.parity_test}" in result.output
    assert f"bucket={bucket_for(packet.component_type)}" in result.output


@pytest.mark.parametrize("name", ["oobleck_vae", "t5_text_encoder"])
def test_three_forms_hold_the_same_packet(name: str) -> None:
    forms = [load_packet(EXAMPLES / f"{name}.{form}") for form in ("json", "yaml", "md")]
    assert forms[0] == forms[1] == forms[2]


def test_bare_json_and_bare_text_form(tmp_path: Path) -> None:
    data = example()
    bare = load_packet(write_json(tmp_path, data))
    text_file = tmp_path / "packet.txt"
    text_file.write_text(bare.to_text())
    assert load_packet(text_file) == bare


def test_json_without_a_json_suffix(tmp_path: Path) -> None:
    path = tmp_path / "packet"
    path.write_text((EXAMPLES / "oobleck_vae.json").read_text())
    assert load_packet(path) == load_packet(EXAMPLES / "oobleck_vae.json")


def test_text_form_round_trip_and_markdown_issue_body(tmp_path: Path) -> None:
    packet = load_packet(EXAMPLES / "t5_text_encoder.json")
    body = f"Some issue prose.\n\n```yaml\n{packet.to_text()}```\n\nMore prose with `code`.\n"
    issue = tmp_path / "issue.md"
    issue.write_text(body)
    assert load_packet(issue) == packet


def test_text_form_accepts_backticks_colons_and_one_line_lists(tmp_path: Path) -> None:
    text = (EXAMPLES / "oobleck_vae.md").read_text()
    text = text.replace("  component: vae\n", "  component: `vae`\n")
    text = text.replace(
        "  fastvideo_target_files:\n    - fastvideo/models/vaes/oobleck.py\n    - fastvideo/configs/models/vaes/oobleck.py\n",
        "  fastvideo_target_files: fastvideo/models/vaes/oobleck.py, fastvideo/configs/models/vaes/oobleck.py\n",
    )
    path = tmp_path / "p.md"
    path.write_text(text)
    packet = load_packet(path)
    assert packet.component == "vae"
    assert packet.fastvideo_target_files == ["fastvideo/models/vaes/oobleck.py", "fastvideo/configs/models/vaes/oobleck.py"]


def test_unknown_with_the_search_recorded_is_valid(tmp_path: Path) -> None:
    data = example()
    data["official_weight_source"] = "unknown"
    data["concerns_or_unknowns"].append("official_weight_source: searched the HF repo tree and model card, no vae subfolder found")
    assert load_packet(write_json(tmp_path, data)).official_weight_source == "unknown"


def test_unknown_official_file_is_valid_but_noted(tmp_path: Path) -> None:
    data = example()
    data["official_instantiation_files"][0]["path"] = "unknown"
    data["concerns_or_unknowns"].append("official_instantiation_files[0].path: grep for AutoencoderOobleck( found no call site")
    result = cli("validate", str(write_json(tmp_path, data)))
    assert result.exit_code == 0, result.output
    assert "note: official_instantiation_files[0].path: is unknown; a component skill cannot start" in result.output


def test_generic_component_may_use_any_bucket(tmp_path: Path) -> None:
    data = example()
    data.update(component="vocoder", component_type="vocoder",
                fastvideo_target_files=["fastvideo/models/audio/bigvgan.py", "fastvideo/configs/models/audio/bigvgan.py"],
                parity_test="tests/local_tests/stable_audio/test_stable_audio_vocoder_parity.py")
    assert load_packet(write_json(tmp_path, data)).component_type == "vocoder"


def test_validate_with_repo(tmp_path: Path) -> None:
    data = example()
    repo = make_repo(tmp_path / "fv", data)
    result = cli("validate", str(write_json(tmp_path, data)), "--repo", str(repo))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK ")


def test_import_path_official_ref_dir_is_accepted_with_a_note(tmp_path: Path) -> None:
    data = example()
    data["official_ref_dir"] = "diffusers.models.autoencoders"
    repo = tmp_path / "fv"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    result = cli("validate", str(write_json(tmp_path, data)), "--repo", str(repo))
    assert result.exit_code == 0, result.output
    assert "note: official_ref_dir diffusers.models.autoencoders is an import path" in result.output


def test_official_ref_dir_outside_repo_with_absolute_official_paths(tmp_path: Path) -> None:
    data = example()
    official = tmp_path / "diffusers"
    for entry in data["official_definition_files"] + data["official_instantiation_files"]:
        (official / entry["path"]).parent.mkdir(parents=True, exist_ok=True)
        (official / entry["path"]).write_text("x = 1\n")
    data["official_ref_dir"] = str(official)
    data["official_definition_files"][0]["path"] = str(official / data["official_definition_files"][0]["path"])
    repo = tmp_path / "fv"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    assert check_packet_paths(load_packet(write_json(tmp_path, data)), repo) == []


# ---- invalid packets through the real CLI -------------------------------------------------


def _set(path: str, value: Any) -> Callable[[dict], None]:
    def apply(data: dict) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is _DELETE:
            del node[int(last) if last.isdigit() else last]
        else:
            node[int(last) if last.isdigit() else last] = value
    return apply


_DELETE = object()

INVALID: list[tuple[str, Callable[[dict], None], str, str]] = [
    ("missing_field", _set("model_family", _DELETE), "model_family", "required field is missing"),
    ("missing_nested_field", _set("official_definition_files.0.path", _DELETE), "official_definition_files[0].path", "required"),
    ("wrong_component_type", _set("component_type", "transformer"), "component_type", "must be one of"),
    ("wrong_mode", _set("mode", "debug"), "mode", "must be one of"),
    ("wrong_strict_load", _set("conversion.strict_load", "ok"), "conversion.strict_load", "must be one of"),
    ("wrong_type_list", _set("official_definition_files", 5), "official_definition_files", "must be a list"),
    ("wrong_type_string", _set("official_definition_files.0.symbols", {"a": 1}), "official_definition_files[0].symbols", "string"),
    ("wrong_type_concerns", _set("concerns_or_unknowns", 7), "concerns_or_unknowns", "must be a list"),
    ("unknown_field", _set("priority", "high"), "priority", "unknown field"),
    ("unknown_nested_field", _set("conversion.checksum", "abc"), "conversion.checksum", "unknown field"),
    ("empty_definition_list", _set("official_definition_files", []), "official_definition_files", "must not be empty"),
    ("empty_target_list", _set("fastvideo_target_files", []), "fastvideo_target_files", "must not be empty"),
    ("dotdot_escape", _set("parity_test", "tests/local_tests/../../outside/test_vae_parity.py"), "parity_test", "must not contain `..`"),
    ("absolute_target", _set("fastvideo_target_files.0", "/opt/fastvideo/models/vaes/oobleck.py"), "fastvideo_target_files[0]", "not absolute"),
    ("wrong_bucket", _set("fastvideo_target_files.0", "fastvideo/models/encoders/oobleck.py"), "fastvideo_target_files[0]", "bucket `vaes`"),
    ("target_outside_models", _set("fastvideo_target_files.1", "fastvideo/pipelines/oobleck.py"), "fastvideo_target_files[1]", "must be under"),
    ("parity_test_outside_local_tests", _set("parity_test", "tests/vaes/test_stable_audio_vae_parity.py"), "parity_test", "tests/local_tests/"),
    ("parity_test_not_a_test_file", _set("parity_test", "tests/local_tests/vaes/vae_parity.py"), "parity_test", "test_*.py"),
    ("readme_wrong_family", _set("local_tests_readme", "tests/local_tests/other/README.md"), "local_tests_readme", "tests/local_tests/stable_audio/README.md"),
    ("key_dump_outside_mapping", _set("prototype_key_dumps.official", "converted_weights/stable_audio/vae_keys.json"), "prototype_key_dumps.official", "_mapping/"),
    ("conversion_script_elsewhere", _set("conversion.script", "scripts/convert_vae.py"), "conversion.script", "scripts/checkpoint_conversion/"),
    ("bad_model_index_library", _set("conversion.model_index_library", "torch"), "conversion.model_index_library", "must be diffusers"),
    ("exclusions_need_non_strict", lambda d: d.update(mode="parity-debug", prototype_key_dumps={
        "official": "converted_weights/stable_audio/_mapping/vae_official_keys.json",
        "fastvideo": "converted_weights/stable_audio/_mapping/vae_fastvideo_keys.json"},
        conversion={**d["conversion"], "script": "not_needed", "converted_component_dir": "not_needed",
                    "strict_load": "pass_with_documented_exclusions"}),
     "conversion.strict_load", "non_strict_with_allowed_keys"),
    ("parity_debug_with_planned_dumps", _set("mode", "parity-debug"), "prototype_key_dumps.official", "cannot be planned"),
    ("scaffold_with_strict_load_result", lambda d: d.update(mode="parity-scaffold", conversion={**d["conversion"], "strict_load": "blocked"}),
     "conversion.strict_load", "not_run"),
    ("template_placeholder", _set("component_type", "<dit|vae|encoder>"), "component_type", "template placeholder"),
    ("unknown_without_search", _set("official_weight_source", "unknown"), "official_weight_source", "search already done"),
    ("unknown_search_names_another_field", lambda d: (d["official_definition_files"][0].update(path="unknown"),
                                                      d["concerns_or_unknowns"].append("searched the vae path in the HF tree, not found")),
     "official_definition_files[0].path", "search already done"),
    ("family_not_snake_case", _set("model_family", "StableAudio"), "model_family", "does not match"),
    ("raw_token_value", _set("official_weight_source", "stabilityai/stable-audio-open-1.0 with hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345"),
     "official_weight_source", "Hugging Face token"),
]


@pytest.mark.parametrize("case", INVALID, ids=[c[0] for c in INVALID])
def test_invalid_packet_is_rejected_by_the_cli(tmp_path: Path, case) -> None:
    _name, mutate, field, words = case
    data = copy.deepcopy(example())
    mutate(data)
    result = cli("validate", str(write_json(tmp_path, {"component_context": data})))
    assert result.exit_code == 2, result.output
    assert not result.output.startswith("OK")
    lines = [line for line in result.output.splitlines() if line.startswith(f"{field}: ")]
    assert lines, f"no line for {field!r} in:\n{result.output}"
    assert any(words in line for line in lines), result.output


RAW_DOCUMENTS = [
    ("malformed_json", "packet.json", '{\n  "model_family": "x",\n  "component" "vae"\n}\n', "packet.json:3:", "malformed JSON"),
    ("malformed_yaml", "packet.yaml", "component_context:\n  model_family: x\n   component: [vae\n", "packet.yaml:", "malformed YAML"),
    ("json_array", "packet.json", "[1, 2, 3]", "(document)", "must be an object"),
    ("yaml_scalar", "packet.yaml", "just a sentence\n", "(document)", "must be an object"),
    ("empty_yaml", "packet.yml", "", "(document)", "got empty"),
    ("wrapper_not_object", "packet.json", '{"component_context": ["a"]}', "component_context", "must be an object"),
    ("extra_top_level_key", "packet.json", '{"component_context": {}, "notes": "x"}', "notes", "unexpected top-level key"),
    ("markdown_without_block", "issue.md", "# Port request\n\nNo packet here.\n", "issue.md", "no `component_context:` block"),
    ("text_bad_indentation", "packet.txt", "component_context:\n  model_family: x\n      component: vae\n", "packet.txt:3", "malformed text form"),
    ("text_line_without_key", "packet.txt", "component_context:\n  model_family x\n", "packet.txt:2", "expected `key: value`"),
]


@pytest.mark.parametrize("case", RAW_DOCUMENTS, ids=[c[0] for c in RAW_DOCUMENTS])
def test_unreadable_documents_are_rejected(tmp_path: Path, case) -> None:
    _name, filename, content, field, words = case
    path = tmp_path / filename
    path.write_text(content)
    result = cli("validate", str(path))
    assert result.exit_code == 2, result.output
    assert any(line.startswith(field) and words in line for line in result.output.splitlines()), result.output


def test_missing_file_and_directory(tmp_path: Path) -> None:
    missing = cli("validate", str(tmp_path / "nope.json"))
    assert missing.exit_code == 2 and "nope.json: file not found" in missing.output
    directory = cli("validate", str(tmp_path))
    assert directory.exit_code == 2 and "is a directory" in directory.output


def test_a_token_in_a_bad_value_is_never_echoed(tmp_path: Path) -> None:
    token = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz012345"
    data = example()
    data["mode"] = token
    data["conversion"]["model_index_library"] = token
    data["model_family"] = token
    data["parity_test"] = f"tests/{token}/test_x.py"
    result = cli("validate", str(write_json(tmp_path, data)))
    assert result.exit_code == 2
    assert token not in result.output
    for field in ("mode", "conversion.model_index_library", "model_family", "parity_test"):
        assert any(line.startswith(f"{field}: ") for line in result.output.splitlines()), result.output


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    data = example()
    data["mode"] = "fast"
    data["parity_test"] = "/abs/test_x.py"
    data["extra"] = 1
    del data["component"]
    result = cli("validate", str(write_json(tmp_path, data)))
    assert result.exit_code == 2
    assert "4 problem(s)" in result.output
    for field in ("mode", "parity_test", "extra", "component"):
        assert any(line.startswith(f"{field}: ") for line in result.output.splitlines()), field


def test_placeholders_in_the_contract_template_are_errors(tmp_path: Path) -> None:
    template = (
        "```text\ncomponent_context:\n  model_family: <snake_case>\n  component: <name>\n"
        "  component_type: <dit|vae|encoder|scheduler|conditioner|upsampler|vocoder|generic>\n"
        "  mode: parity-scaffold | prototype | parity-debug\n```\n"
    )
    path = tmp_path / "template.md"
    path.write_text(template)
    result = cli("validate", str(path))
    assert result.exit_code == 2
    assert "model_family: still holds the template placeholder <snake_case>" in result.output
    assert "component_type: still holds the template placeholder" in result.output
    assert "mode: still lists the template's choices (parity-scaffold | prototype | parity-debug); pick one" in result.output
    assert sum(line.startswith("component_type:") for line in result.output.splitlines()) == 1


# ---- path rules against a checkout -------------------------------------------------------


def _repo_case(tmp_path: Path, change: Callable[[dict, Path], None]) -> Any:
    data = example()
    repo = make_repo(tmp_path / "fv", data)
    change(data, repo)
    return cli("validate", str(write_json(tmp_path, data)), "--repo", str(repo))


def test_symlink_escape_is_rejected(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()

    def change(data: dict, repo: Path) -> None:
        (repo / "tests").mkdir()
        (repo / "tests" / "local_tests").symlink_to(outside, target_is_directory=True)

    result = _repo_case(tmp_path, change)
    assert result.exit_code == 2
    assert "parity_test: tests/local_tests/stable_audio/test_oobleck_vae_parity.py resolves outside the repository" in result.output
    assert "local_tests_readme:" in result.output


def test_missing_official_file(tmp_path: Path) -> None:
    result = _repo_case(tmp_path, lambda d, r: d["official_instantiation_files"][0].update(path="src/diffusers/pipelines/nope.py"))
    assert result.exit_code == 2
    assert "official_instantiation_files[0].path: src/diffusers/pipelines/nope.py does not exist" in result.output


def test_official_path_outside_official_ref_dir(tmp_path: Path) -> None:
    def change(data: dict, repo: Path) -> None:
        stray = tmp_path / "stray.py"
        stray.write_text("")
        data["official_definition_files"][0]["path"] = str(stray)

    result = _repo_case(tmp_path, change)
    assert result.exit_code == 2
    assert "official_definition_files[0].path:" in result.output and "outside official_ref_dir" in result.output


def test_official_path_with_dotdot(tmp_path: Path) -> None:
    result = _repo_case(tmp_path, lambda d, r: d["official_definition_files"][0].update(path="../diffusers/x.py"))
    assert result.exit_code == 2 and "official_definition_files[0].path: must not contain `..`" in result.output


def test_official_ref_dir_missing(tmp_path: Path) -> None:
    result = _repo_case(tmp_path, lambda d, r: d.update(official_ref_dir="official_refs/nothing_here"))
    assert result.exit_code == 2 and "official_ref_dir: official_refs/nothing_here is not a directory" in result.output


def test_repo_must_be_a_git_repository(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    result = cli("validate", str(write_json(tmp_path, example())), "--repo", str(plain))
    assert result.exit_code == 2 and "--repo:" in result.output and "not a git repository" in result.output


def test_bare_repository_is_rejected(tmp_path: Path) -> None:
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    result = cli("validate", str(write_json(tmp_path, example())), "--repo", str(bare))
    assert result.exit_code == 2 and "is a bare git repository" in result.output


def test_installed_harness_command(tmp_path: Path) -> None:
    # The console script, as a user runs it, in a separate process.
    harness = Path(sys.executable).parent / "harness"
    ok = subprocess.run([str(harness), "validate", str(EXAMPLES / "t5_text_encoder.md")], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("OK family=sd35 component=text_encoder_3 type=encoder mode=parity-debug bucket=encoders")
    bad = tmp_path / "bad.json"
    bad.write_text('{"component_context": {"mode": "fast"}}')
    failed = subprocess.run([str(harness), "validate", str(bad)], capture_output=True, text=True)
    assert failed.returncode == 2 and failed.stdout == ""
    assert "mode: must be one of 'parity-scaffold', 'prototype' or 'parity-debug' (got 'fast')" in failed.stderr.splitlines()


def test_check_packet_paths_reports_problems_for_a_constructed_packet(tmp_path: Path) -> None:
    # model_construct skips validation, as a caller holding a stale packet might; the repo check still catches it.
    packet = ComponentContext.model_construct(**{**load_packet(EXAMPLES / "oobleck_vae.json").__dict__, "parity_test": "../escape/test_x.py"})
    repo = make_repo(tmp_path / "fv", example())
    problems = check_packet_paths(packet, repo)
    assert [p.field_path for p in problems] == ["parity_test"]


def test_load_packet_raises_packet_error_with_problems(tmp_path: Path) -> None:
    data = example()
    data["official_definition_files"][0]["path"] = ""
    with pytest.raises(PacketError) as info:
        load_packet(write_json(tmp_path, data))
    assert [str(p) for p in info.value.problems] == ["official_definition_files[0].path: must not be empty"]


# ---- schema and help --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["packet", "handoff", "escape-hatch", "retry-request", "parity"])
def test_schema_prints_json_schema(name: str) -> None:
    result = cli("schema", name)
    assert result.exit_code == 0, result.output
    schema = json.loads(result.output)
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert all("description" in prop for prop in schema["properties"].values())


def test_schema_unknown_name() -> None:
    result = cli("schema", "pipeline")
    assert result.exit_code == 2
    assert "packet, handoff, escape-hatch, retry-request" in result.output


@pytest.mark.parametrize("command", ["validate", "schema"])
def test_help(command: str) -> None:
    result = cli(command, "--help")
    assert result.exit_code == 0 and "Usage" in result.output


def test_yaml_example_is_plain_yaml() -> None:
    # The YAML example must stay loadable by any YAML reader, not only by the harness.
    data = yaml.safe_load((EXAMPLES / "oobleck_vae.yaml").read_text())
    assert data["component_context"]["component_type"] == "vae"
