"""Skill registry: component_type -> skill, text from a checkout's .agents/skills or built in."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.skills import skill_for

COMMON = """# Component Skill Common Instructions
Require the packet from `../contracts/component_context.md`.
Follow `common_rules.md`. Conversion goes to `../../add-model-07-conversion/SKILL.md`.
"""


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def make_skills_tree(checkout: Path) -> Path:
    """A small tree shaped like a FastVideo checkout's .agents/skills folder."""
    root = checkout / ".agents" / "skills"
    _write(
        root / "add-model-04-port-vae" / "SKILL.md",
        "---\nname: add-model-04-port-vae\n---\n# Port VAE (checkout copy)\n"
        "Follow `../add-model/shared/component_skill_common.md` and require the packet from\n"
        "`../add-model/contracts/component_context.md`. Again: "
        "`../add-model/shared/component_skill_common.md`.\nLayer guidance: `fastvideo/layers/AGENTS.md`.\n",
    )
    _write(root / "add-model" / "shared" / "component_skill_common.md", COMMON)
    _write(root / "add-model" / "shared" / "common_rules.md", "# Shared Add-Model Rules\nNo tokens.\n")
    _write(root / "add-model" / "contracts" / "component_context.md", "# Component Context Contract\n")
    _write(root / "add-model-07-conversion" / "SKILL.md", "# Conversion skill: must not be included\n")
    return root


@pytest.mark.parametrize(
    ("component_type", "name", "bucket"),
    [
        ("vae", "add-model-04-port-vae", "vaes"),
        ("encoder", "add-model-05-port-encoder", "encoders"),
        ("conditioner", "add-model-05-port-encoder", "encoders"),
        ("dit", "add-model-03-port-dit", "dits"),
        ("scheduler", "add-model-06-port-generic", None),
        ("vocoder", "add-model-06-port-generic", None),
        ("something_new", "add-model-06-port-generic", None),
    ],
)
def test_component_type_maps_to_skill(component_type: str, name: str, bucket: str | None) -> None:
    skill = skill_for(component_type, None)
    assert skill.name == name
    assert skill.bucket == bucket
    assert skill.source == "builtin"
    assert skill.text.strip(), "built-in card must not be empty"
    assert skill.drift_checklist
    assert set(skill.success_criteria) == {"prototype", "parity-debug"}


def test_vae_skill_facts() -> None:
    skill = skill_for("vae")
    assert skill.target_patterns == ("fastvideo/models/vaes/*.py", "fastvideo/configs/models/vaes/*.py")
    assert "wanvae.py" in skill.reference_examples
    assert any("posterior mode vs sample" in item for item in skill.drift_checklist)
    assert any("non-skip PASS" in c for c in skill.success_criteria["parity-debug"])
    assert any("key/shape dumps" in c for c in skill.success_criteria["prototype"])


def test_encoder_checklist_covers_tokenizer_and_masks() -> None:
    items = " | ".join(skill_for("encoder").drift_checklist)
    for word in ("tokenizer kwargs", "padding side", "attention-mask dtype", "hidden-state layer index"):
        assert word in items


def test_checkout_skill_text_includes_shared_files_once(tmp_path: Path) -> None:
    make_skills_tree(tmp_path)
    skill = skill_for("vae", tmp_path)
    assert skill.source == "checkout"
    assert skill.text.startswith("---\nname: add-model-04-port-vae")
    assert "(checkout copy)" in skill.text
    # Referenced twice, included once; nested references (common -> contracts, rules) followed.
    assert skill.text.count("# Component Skill Common Instructions") == 1
    assert "# Component Context Contract" in skill.text
    assert "# Shared Add-Model Rules" in skill.text
    # Another phase's SKILL.md is not part of this skill.
    assert "must not be included" not in skill.text
    assert skill.source_paths[0] == ".agents/skills/add-model-04-port-vae/SKILL.md"
    assert ".agents/skills/add-model/shared/common_rules.md" in skill.source_paths
    assert len(skill.source_paths) == len(set(skill.source_paths)) == 4
    line = skill.describe_source()
    assert "add-model-04-port-vae" in line and "checkout" in line and "\n" not in line


def test_checkout_without_the_skill_falls_back_to_builtin(tmp_path: Path) -> None:
    make_skills_tree(tmp_path)  # has the VAE skill only
    skill = skill_for("encoder", tmp_path)
    assert skill.source == "builtin"
    assert skill.source_paths == ("harness/skills/cards/add-model-05-port-encoder.md",)
    assert "built-in" in skill.describe_source()


def test_reference_outside_skills_root_is_not_read(tmp_path: Path) -> None:
    make_skills_tree(tmp_path)
    (tmp_path / "secret.md").write_text("TOP SECRET")
    main = tmp_path / ".agents/skills/add-model-04-port-vae/SKILL.md"
    main.write_text(main.read_text() + "See `../../../secret.md`.\n")
    assert "TOP SECRET" not in skill_for("vae", tmp_path).text


def test_size_cap_keeps_text_bounded(tmp_path: Path) -> None:
    from harness.skills import loader

    make_skills_tree(tmp_path)
    big = tmp_path / ".agents/skills/add-model/shared/common_rules.md"
    big.write_text("x" * (loader.MAX_TOTAL_CHARS + 10))
    skill = skill_for("vae", tmp_path)
    assert len(skill.text) < loader.MAX_TOTAL_CHARS + 500
    assert "not included (size cap): add-model/shared/common_rules.md" in skill.text


def test_skill_file_symlinked_out_of_the_tree_is_not_read(tmp_path: Path) -> None:
    root = make_skills_tree(tmp_path)
    outside = tmp_path / "private.txt"
    outside.write_text("PRIVATE KEY MATERIAL")
    main = root / "add-model-04-port-vae" / "SKILL.md"
    main.unlink()
    main.symlink_to(outside)
    skill = skill_for("vae", tmp_path)
    assert skill.source == "builtin" and "PRIVATE" not in skill.text
