"""Skill registry: component_type -> the add-model component skill the agents follow."""

from harness.skills.registry import Skill, skill_for, skill_name_for

__all__ = ["Skill", "skill_for", "skill_name_for"]
