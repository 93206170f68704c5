"""What each role hands back when it calls `finish`: one pydantic model per role.

The same model is the tool's JSON schema, the "finish with" text of the role's system prompt
and of its task message (`finish_fields_text`), and the typed record the next role and the
handoff read (harness.agents.memory). Changing a field here changes all of them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Finish(BaseModel):
    # Unknown fields are an error the agent sees and fixes, never silently dropped.
    model_config = ConfigDict(extra="forbid")

    summary: str = Field(min_length=1, description="What you did and what the next step must know.")


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reuse_or_port: Literal["reuse", "port"] | None = Field(None, description="Reuse an existing FastVideo class, or port.")
    reuse_evidence: str | None = Field(None, description="The comparison that decided reuse vs port.")
    target_files: list[str] = Field(default_factory=list, description="Files to create or edit, relative to the worktree.")
    entry_class: str | None = Field(None, description="The model class set as EntryClass.")
    config_export: str | None = Field(None, description="The config classes and the bucket __init__.py exporting them.")
    parity_test: str | None = Field(None, description="`exists` or `scaffold`, with its path.")
    key_dumps: dict[str, str] | None = Field(None, description="Prototype mode: {official, fastvideo} key dump paths.")
    steps: list[str] = Field(default_factory=list, description="Ordered steps for the implementer.")
    concerns: list[str] = Field(default_factory=list, description="Open concerns; they go into the handoff.")


class PlannerFinish(_Finish):
    plan: Plan = Field(default_factory=Plan, description="The plan the implementer follows.")


class KeyDumps(BaseModel):
    model_config = ConfigDict(extra="forbid")

    official: str = Field(description="Path of the official state_dict key/shape dump.")
    fastvideo: str = Field(description="Path of the FastVideo state_dict key/shape dump.")


StrictLoadClaim = Literal["pass", "fail", "not_run"]


class ImplementerFinish(_Finish):
    files_changed: list[str] = Field(default_factory=list, description="Paths you created or edited.")
    key_dumps: KeyDumps | None = Field(None, description="Prototype mode: the key dumps you wrote in this run.")
    strict_load: StrictLoadClaim | None = Field(
        None, description="What your own strict load of the converted weights showed (pass / fail / not_run).")
    blocker: str | None = Field(None, description="The exact missing dependency, weight or mismatch, if you are stuck.")


class DebuggerFinish(_Finish):
    diagnosis: str | None = Field(None, description="The first divergent operation or tensor, and why it diverged.")
    fix: str | None = Field(None, description="What you changed to fix it.")
    blocker: str | None = Field(None, description="The exact missing dependency, weight or numeric mismatch, if blocked.")
    conversion_retry_request: dict[str, Any] | None = Field(
        None, description="When conversion is implicated: {failing_keys, expected_actual_shapes, "
                          "source_prefix_or_path, evidence, suspected_fix}.")


FINISH_MODELS: dict[str, type[_Finish]] = {
    "planner": PlannerFinish,
    "implementer": ImplementerFinish,
    "debugger": DebuggerFinish,
}


def finish_model(role: str) -> type[_Finish]:
    try:
        return FINISH_MODELS[role]
    except KeyError:
        raise ValueError(f"unknown role {role!r}; expected one of {', '.join(FINISH_MODELS)}") from None


def _field_lines(model: type[BaseModel], indent: str) -> list[str]:
    lines = []
    for name, info in model.model_fields.items():
        need = "required" if info.is_required() else "optional"
        lines.append(f"{indent}- {name} ({need}): {info.description or ''}".rstrip())
        inner = info.annotation
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            lines += _field_lines(inner, indent + "  ")
    return lines


def finish_fields_text(role: str) -> str:
    """The `finish` arguments of `role`, one line each (nested fields indented)."""
    return "finish with these arguments:\n" + "\n".join(_field_lines(finish_model(role), ""))
