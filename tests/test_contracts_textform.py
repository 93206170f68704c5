"""The contracts' text form and the secret detector."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.contracts import find_secret, load_packet
from harness.contracts.textform import TextFormError, fenced_blocks, parse_text, render_text

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize(
    "data",
    [
        {"a": "x: y | z <- `code`", "b": ["one", "k: v", "three"], "c": {"d": [{"e": "1", "f": "2"}, "g"]}},
        {"evidence": "Traceback:\n\n  File \"x.py\", line 3\n# not a comment\nValueError: boom", "next": "done"},
        {"empty_list": [], "word": "none"},
    ],
    ids=["punctuation", "multiline", "empty"],
)
def test_render_parse_round_trip(data: dict) -> None:
    expected = json.loads(json.dumps(data).replace("[]", '"none"'))
    assert parse_text(render_text(data)) == expected


def test_yaml_style_lists_comments_and_quotes() -> None:
    text = "# comment\nouter:\n  items:\n  - a\n\n  - 'b: c'\n  flow: [x, y]\n  q: \"quoted\"\n"
    assert parse_text(text) == {"outer": {"items": ["a", "b: c"], "flow": ["x", "y"], "q": "quoted"}}


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("a: 1\n  b: 2\n", 2, "unexpected"),
        ("a:\n  - x\n  y: 1\n", 3, "unexpected"),
        ("a: 1\na: 2\n", 2, "duplicate key 'a'"),
        ("a:\n\tb: 1\n", 2, "tab"),
        ("\n\n# only a comment\n", 1, "empty document"),
        ("just words\n", 1, "expected `key: value`"),
    ],
)
def test_text_form_errors_carry_the_line(text: str, line: int, words: str) -> None:
    with pytest.raises(TextFormError) as info:
        parse_text(text)
    assert info.value.line == line and words in info.value.message


def test_fenced_blocks_report_their_first_line() -> None:
    text = "intro\n\n```text\ncomponent_context:\n  a: b\n```\nmore\n~~~yaml\nx: 1\n~~~\n"
    assert fenced_blocks(text) == [(4, "text", "component_context:\n  a: b"), (9, "yaml", "x: 1")]


def test_search_note_written_as_key_value_stays_a_note(tmp_path: Path) -> None:
    text = (EXAMPLES / "oobleck_vae.md").read_text().replace(
        "  official_weight_source: stabilityai/stable-audio-open-1.0, subfolder vae\n",
        "  official_weight_source: unknown\n",
    ).replace(
        "  concerns_or_unknowns:\n",
        "  concerns_or_unknowns:\n    - official_weight_source: searched the model card and repo tree, not found\n",
    )
    path = tmp_path / "p.md"
    path.write_text(text)
    packet = load_packet(path)
    assert packet.concerns_or_unknowns[0] == "official_weight_source: searched the model card and repo tree, not found"
    again = tmp_path / "again.txt"
    again.write_text(packet.to_text())
    assert load_packet(again) == packet


SECRETS = [
    "hf_" + "AbCdEfGhIjKlMnOpQrStUvWx12",
    "key sk-ant-api03-" + "AbCdEfGhIjKlMnOpQrStUvWx",
    "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
    "AKIA" + "ABCDEFGHIJKLMNOP",
    "export HF_TOKEN=abcdef0123456789",
    "api_key: 'abc123def456ghi789'",
    "Bearer " + "Xy7Kq2Lm9Np4Rs8Tv3Wz6Ab1Cd5Ef0Gh2Jk",
]
NOT_SECRETS = [
    "export HF_TOKEN before running; HUGGINGFACE_HUB_TOKEN and HF_API_KEY also work",
    "HF_TOKEN: HF_API_KEY",
    "official_ref at 0f3c2a9d8e7b6a5f4c3d2e1f0a9b8c7d6e5f4a3b",
    "DreamXWorldARCausalDenoisingStage and Wan2_2Transformer3DModel",
    "tokenizer: google/umt5-xxl tokenizer_2 pad_token: <pad>",
    "test_dreamx_world_ar_transformer_parity_with_a_long_name_2",
    "max_token: 512",
]


@pytest.mark.parametrize("text", SECRETS)
def test_secrets_are_found(text: str) -> None:
    message = find_secret(text)
    assert message and text.split()[-1] not in message  # described, never echoed


@pytest.mark.parametrize("text", NOT_SECRETS)
def test_ordinary_text_is_not_a_secret(text: str) -> None:
    assert find_secret(text) is None


def test_one_line_lists_split_paths_but_not_sentences() -> None:
    from harness.contracts import ComponentSkillHandoff

    text = render_text({
        "component": "vae", "mode": "prototype",
        "files_changed": "fastvideo/models/vaes/oobleck.py, fastvideo/configs/models/vaes/oobleck.py",
        "official_files_used": "src/a.py", "prototype_key_dumps": "none",
        "port_state_file": "tests/local_tests/stable_audio/PORT_STATUS.md",
        "concerns_or_unknowns": "padding side, truncation and mask dtype are unverified",
        "parity_test": "tests/local_tests/vaes/test_stable_audio_vae_parity.py", "parity_status": "scaffold_skip",
        "production_loader_strictness": "strict", "strict_load": "not_run", "pytest_output": "1 skipped",
        "blocker": "none", "conversion_retry_request": "none", "readme_updated": "no", "next_step": "blocked",
        "escape_hatch": "none",
    })
    with pytest.raises(Exception, match="blocker"):
        ComponentSkillHandoff.model_validate(parse_text(text))
    model = ComponentSkillHandoff.model_validate({**parse_text(text), "blocker": "official import fails: no module named einops"})
    assert model.files_changed == ["fastvideo/models/vaes/oobleck.py", "fastvideo/configs/models/vaes/oobleck.py"]
    assert model.concerns_or_unknowns == ["padding side, truncation and mask dtype are unverified"]
