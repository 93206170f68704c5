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
    assert "- .agents/skills/add-model/shared/common_rules.md (60010 chars, over the 60000-char" in skill.text
    assert skill.left_out and "common_rules.md" in skill.describe_source()


def test_skill_file_symlinked_out_of_the_tree_is_not_read(tmp_path: Path) -> None:
    root = make_skills_tree(tmp_path)
    outside = tmp_path / "private.txt"
    outside.write_text("PRIVATE KEY MATERIAL")
    main = root / "add-model-04-port-vae" / "SKILL.md"
    main.unlink()
    main.symlink_to(outside)
    skill = skill_for("vae", tmp_path)
    assert skill.source == "builtin" and "PRIVATE" not in skill.text


TEMPLATE = "def test_component_parity():\n    pytest.skip('TODO: fill in the official and FastVideo calls')\n"


def test_template_repo_root_and_bare_references_are_included(tmp_path: Path) -> None:
    root = make_skills_tree(tmp_path)
    common = root / "add-model" / "shared" / "component_skill_common.md"
    common.write_text(COMMON + "Copy `../../add-model-02-parity/templates/component_parity_test.py`.\n"
                      "See `fastvideo/models/vaes/oobleck.py`.\n")
    _write(root / "add-model-02-parity" / "templates" / "component_parity_test.py",
           TEMPLATE + "# Report with `contracts/parity_status.md`.\n")
    _write(root / "add-model" / "contracts" / "parity_status.md", "# Parity Status Contract\n")
    _write(tmp_path / "fastvideo" / "layers" / "AGENTS.md", "# Layer guidance\nUse ReplicatedLinear.\n")
    _write(tmp_path / "fastvideo" / "models" / "vaes" / "oobleck.py", "class OobleckVAE: ...\n")
    skill = skill_for("vae", tmp_path)
    assert f"```python\n{TEMPLATE}# Report with" in skill.text
    assert "# Layer guidance" in skill.text and "# Parity Status Contract" in skill.text
    assert "fastvideo/layers/AGENTS.md" in skill.source_paths
    assert ".agents/skills/add-model/contracts/parity_status.md" in skill.source_paths
    # Model code is read with the tools, not pasted into the skill text.
    assert "class OobleckVAE" not in skill.text
    assert not skill.left_out, skill.left_out


def test_what_is_left_out_is_named(tmp_path: Path) -> None:
    from harness.skills import loader

    root = make_skills_tree(tmp_path)  # names fastvideo/layers/AGENTS.md, which this checkout lacks
    common = root / "add-model" / "shared" / "component_skill_common.md"
    common.write_text(COMMON + "Copy `../../add-model-02-parity/templates/component_parity_test.py`.\n")
    skill = skill_for("vae", tmp_path)
    assert skill.left_out == ("fastvideo/layers/AGENTS.md (named, not found in the checkout)",
                              "../../add-model-02-parity/templates/component_parity_test.py (named, not found in the checkout)")
    assert "Named by the skill but not included above:\n- fastvideo/layers/AGENTS.md" in skill.text
    root = tmp_path / ".agents" / "skills"
    names = [f"extra_{i}.md" for i in range(loader.MAX_INCLUDED_FILES + 2)]
    (root / "add-model" / "shared" / "common_rules.md").write_text(" ".join(f"`{n}`" for n in names))
    for name in names:
        _write(root / "add-model" / "shared" / name, f"# {name}\n")
    skill = skill_for("vae", tmp_path)
    assert len(skill.source_paths) == loader.MAX_INCLUDED_FILES
    assert sum("file budget" in item for item in skill.left_out) >= 2


def test_repo_root_reference_cannot_read_git_or_leave_the_checkout(tmp_path: Path) -> None:
    root = make_skills_tree(tmp_path)
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "notes.md").write_text("GIT INTERNALS")
    (tmp_path.parent / "beside.md").write_text("OUTSIDE THE CHECKOUT")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "link.md").symlink_to(tmp_path.parent / "beside.md")
    main = root / "add-model-04-port-vae" / "SKILL.md"
    main.write_text(main.read_text() + "See `.git/notes.md` and `docs/link.md`.\n")
    text = skill_for("vae", tmp_path).text
    assert "GIT INTERNALS" not in text and "OUTSIDE THE CHECKOUT" not in text
