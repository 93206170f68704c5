"""Eval tasks: the `task.yaml` format, and loading a suite of task directories with clear errors.

A task directory holds `task.yaml` and what only the graders see: a hidden stricter test and,
when the gold is not taken from the example repo, a `gold.patch`. See README.md in this package.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

TaskKind = Literal["port", "seeded_bug", "must_ask", "trap"]
SUITES_DIR = Path(__file__).parent / "suites"
TASK_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class TaskError(Exception):
    """A task or suite that cannot be used; the message names the file and the problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Edit(_Strict):
    """An exact search/replace in one file of the example (path relative to the example root)."""

    path: str
    old: str
    new: str


class Setup(_Strict):
    """How the task's starting repo is made from the fixture, in this order."""

    apply_gold: list[str] = Field(default_factory=list, description="components whose gold port is applied")
    seeded_bug: str | None = Field(None, description="id of a SeededBug from the fixture")
    patch: str | None = Field(None, description="patch file in the task dir, applied at the example root")
    files: dict[str, str] = Field(
        default_factory=dict, description="example-root path -> file in the task dir, copied in (new or replaced)"
    )
    edits: list[Edit] = Field(default_factory=list)
    remove: list[str] = Field(default_factory=list, description="paths (from the example root) to delete")


class PacketSpec(_Strict):
    """Which generated packet the agent gets, with field overrides (deep-merged)."""

    component: str
    overrides: dict[str, Any] = Field(default_factory=dict)


class Gold(_Strict):
    """What the oracle does: apply the fixture's gold port of a component, a patch (repo-relative)
    or edits; or, when the right answer is an honest blocked handoff, record these concerns."""

    component: str | None = None
    patch: str | None = None
    edits: list[Edit] = Field(default_factory=list)
    concerns: list[str] = Field(default_factory=list)


class ExpectedHatch(_Strict):
    """The escape hatch a must-ask task expects (and the oracle raises)."""

    decision_type: Literal["scope", "dependency", "auth", "cost", "destructive", "ambiguity", "blocker"]
    question: str
    options: list[str] = Field(min_length=2, max_length=4)
    recommended_option: str
    safe_default: str = "none"
    evidence: str
    raised_by: Literal["planner", "implementer", "debugger"] = Field(
        "planner", description="which role the oracle asks from; an implementer first runs the parity "
        "test itself (a tolerance question needs a red run the harness saw)"
    )

    def tool_args(self) -> dict[str, Any]:
        return self.model_dump(exclude={"raised_by"})

    @model_validator(mode="after")
    def _fits_contract(self) -> "ExpectedHatch":
        # The oracle raises exactly this hatch, so it must pass the contract's own rules.
        from harness.contracts import EscapeHatch, StateSnapshot

        EscapeHatch(
            needs_user_input="yes", decision_type=self.decision_type, question=self.question,
            recommended_option=self.recommended_option, options=self.options, safe_default=self.safe_default,
            blocked_until_answered="yes",
            state_snapshot=StateSnapshot(phase=self.raised_by, files_changed=[], command_or_test="not_run",
                                         evidence=self.evidence),
        )
        return self


class Success(_Strict):
    """What the graders require. Unset fields are not checked."""

    outcome: Literal["handoff", "asked", "handoff_or_asked"] = "handoff"
    parity_status: list[str] | None = None
    next_step: list[str] | None = None
    hatch_decision_type: list[str] | None = None
    parity_rerun: bool = Field(True, description="re-run the parity test in a fresh sandbox; it must pass")
    hidden_test: bool = Field(True, description="run the hidden stricter test; it must pass")
    guards_clean: bool = True
    files_exist: list[str] = Field(default_factory=list, description="paths the final branch must hold")
    mentions: list[str] = Field(
        default_factory=list,
        description="regexes the handoff or hatch text must match (e.g. the diagnosed conversion problem)",
    )

    @model_validator(mode="before")
    @classmethod
    def _one_or_many(cls, data: Any) -> Any:
        # `parity_status: non_skip_pass` reads better than a one-item list.
        if isinstance(data, dict):
            for key in ("parity_status", "next_step", "hatch_decision_type"):
                if isinstance(data.get(key), str):
                    data = {**data, key: [data[key]]}
        return data


class Limits(_Strict):
    max_turns: int = Field(12, ge=1)
    max_debug_rounds: int = Field(2, ge=0)
    max_usd: float | None = Field(None, gt=0)
    max_seconds: float | None = Field(None, gt=0)


class TaskSpec(_Strict):
    """The contents of `task.yaml`."""

    id: str
    kind: TaskKind
    description: str
    fixture: Literal["tinyvid"] = "tinyvid"
    setup: Setup = Field(default_factory=Setup)
    packet: PacketSpec
    mode: Literal["prototype", "parity-debug"]
    success: Success
    gold: Gold = Field(default_factory=Gold)
    expected_hatch: ExpectedHatch | None = None
    hidden_test: str | None = Field(
        "hidden_test.py", description="the stricter test, relative to the task dir; null for none"
    )
    limits: Limits = Field(default_factory=Limits)
    tags: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> "TaskSpec":
        if not TASK_ID_RE.match(self.id):
            raise ValueError(f"id {self.id!r}: use lowercase letters, digits, '_' and '-'")
        mode_override = self.packet.overrides.get("mode")
        if mode_override is not None and mode_override != self.mode:
            raise ValueError(f"packet.overrides.mode {mode_override!r} contradicts mode {self.mode!r}")
        if self.kind == "must_ask":
            if self.expected_hatch is None or not self.success.hatch_decision_type:
                raise ValueError("a must_ask task needs expected_hatch and success.hatch_decision_type")
            if self.expected_hatch.decision_type not in self.success.hatch_decision_type:
                raise ValueError("expected_hatch.decision_type is not one success.hatch_decision_type accepts")
        elif not (self.gold.component or self.gold.patch or self.gold.edits or self.gold.concerns):
            raise ValueError(f"a {self.kind} task needs a gold: component, patch, edits or concerns")
        return self


class Task(BaseModel):
    """A loaded task: its spec and the directory its files live in."""

    model_config = ConfigDict(frozen=True)
    spec: TaskSpec
    dir: Path

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def kind(self) -> str:
        return self.spec.kind

    def file(self, rel: str) -> Path:
        """A file the task refers to; must exist and stay inside the suite directory."""
        path = (self.dir / rel).resolve()
        suite_root = self.dir.parent.resolve()
        if not path.is_relative_to(suite_root):
            raise TaskError(f"{self.dir / 'task.yaml'}: {rel!r} points outside the suite")
        if not path.is_file():
            raise TaskError(f"{self.dir / 'task.yaml'}: file {rel!r} not found")
        return path

    def hidden_test_path(self) -> Path | None:
        return self.file(self.spec.hidden_test) if self.spec.hidden_test else None


def load_task(task_dir: Path) -> Task:
    """Read and check one task directory."""
    path = Path(task_dir) / "task.yaml"
    if not path.is_file():
        raise TaskError(f"{task_dir}: no task.yaml")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise TaskError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise TaskError(f"{path}: must be a mapping of fields")
    try:
        spec = TaskSpec.model_validate(data)
    except ValidationError as exc:
        raise TaskError(f"{path}:\n" + _problems(exc)) from exc
    if spec.id != path.parent.name:
        raise TaskError(f"{path}: id {spec.id!r} must match the directory name {path.parent.name!r}")
    task = Task(spec=spec, dir=path.parent.resolve())
    # Every referenced file must be there now, not halfway through a run.
    for rel in (spec.setup.patch, spec.gold.patch, spec.hidden_test, *spec.setup.files.values()):
        if rel:
            task.file(rel)
    for pattern in spec.success.mentions:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise TaskError(f"{path}: success.mentions: {pattern!r} is not a valid regex: {exc}") from exc
    return task


def _problems(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"  {where}: {err['msg']}")
    return "\n".join(lines)


def suite_dir(suite: str) -> Path:
    """A bundled suite name (e.g. `core`) or a path to a directory of task directories."""
    candidate = Path(suite)
    if candidate.is_dir():
        return candidate.resolve()
    bundled = SUITES_DIR / suite
    if bundled.is_dir():
        return bundled
    names = sorted(p.name for p in SUITES_DIR.iterdir() if p.is_dir()) if SUITES_DIR.is_dir() else []
    raise TaskError(f"no suite {suite!r}: not a directory, and bundled suites are {names}")


def load_suite(suite: str, pattern: str | None = None) -> list[Task]:
    """All tasks of a suite (sorted by id), optionally those whose id matches a glob."""
    root = suite_dir(suite)
    dirs = sorted(p for p in root.iterdir() if (p / "task.yaml").is_file())
    tasks, problems = [], []
    for d in dirs:
        if pattern and not fnmatch.fnmatch(d.name, pattern):
            continue
        try:
            tasks.append(load_task(d))
        except TaskError as exc:
            problems.append(str(exc))
    if problems:
        raise TaskError("\n".join(problems))
    if not tasks:
        raise TaskError(f"suite {suite!r} has no task matching {pattern!r}" if pattern else f"suite {suite!r} has no tasks")
    return tasks
