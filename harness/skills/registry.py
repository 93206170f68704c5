"""The skill registry: which add-model component skill handles a component type."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Mapping

from harness.skills import catalog
from harness.skills.loader import read_builtin_skill, read_checkout_skill, text_for_agents

Bucket = Literal["vaes", "encoders", "dits"] | None


@dataclass(frozen=True)
class Skill:
    name: str
    bucket: Bucket
    target_patterns: tuple[str, ...]
    reference_examples: tuple[str, ...]
    drift_checklist: tuple[str, ...]
    success_criteria: Mapping[str, tuple[str, ...]]
    text: str
    source: Literal["checkout", "builtin"]
    source_paths: tuple[str, ...] = field(default=())
    left_out: tuple[str, ...] = field(default=())  # files the skill names that are not in `text`

    def describe_source(self) -> str:
        """One line for the run log: which skill text the agents were given."""
        where = ", ".join(self.source_paths) if self.source_paths else "-"
        origin = "from the checkout" if self.source == "checkout" else "built-in card"
        missing = f"; left out: {', '.join(self.left_out)}" if self.left_out else ""
        return f"skill {self.name} ({origin}: {where}; {len(self.text)} chars{missing})"

    def text_for_agents(self, *, parity_test_exists: bool) -> str:
        """The text as the agents get it (see loader.text_for_agents)."""
        return text_for_agents(self.text, parity_test_exists=parity_test_exists)

    def checklist_markdown(self) -> str:
        return "\n".join(f"- [ ] {item}" for item in self.drift_checklist)


def skill_name_for(component_type: str) -> str:
    return catalog.SKILL_BY_TYPE.get(component_type.strip().lower(), catalog.GENERIC_SKILL)


def skill_for(component_type: str, checkout: Path | None = None) -> Skill:
    """The skill for a component type; its text comes from the checkout when it has the
    skill under `.agents/skills/`, otherwise from the built-in card."""
    name = skill_name_for(component_type)
    loaded = read_checkout_skill(Path(checkout), name) if checkout is not None else None
    if loaded is None:
        loaded = read_builtin_skill(name)
    bucket = catalog.BUCKET_BY_SKILL[name]
    return Skill(
        name=name,
        bucket=bucket,
        target_patterns=catalog.target_patterns(bucket),
        reference_examples=catalog.REFERENCE_EXAMPLES[name],
        drift_checklist=catalog.DRIFT_CHECKLISTS[name],
        success_criteria=dict(catalog.SUCCESS_CRITERIA),
        text=loaded.text,
        source=loaded.source,  # type: ignore[arg-type]
        source_paths=loaded.paths,
        left_out=loaded.left_out,
    )
