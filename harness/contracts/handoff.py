"""What a component skill returns: the handoff, its conversion retry request, parity entries.

`ComponentSkillHandoff` enforces the contract's rules (`contracts/component_skill_handoff.md`):

- `next_step=ask_user` if and only if there is an escape hatch with `needs_user_input=yes`; its
  `state_snapshot.evidence` links the PORT_STATUS.md row (an `E###` ID).
- `next_step=phase_5_conversion_retry` if and only if there is a `conversion_retry_request`.
- `next_step=phase_5_conversion` is prototype success: only in `mode=prototype`, with both key
  dumps given and parity `scaffold_skip`, `blocked` or `non_skip_pass` (never `debug_red`).
- `next_step=phase_6_continue` is parity-debug success: only with `parity_status=non_skip_pass`, in
  `mode=parity-debug`, or in `mode=prototype` when the converted weights already strict-load
  (`strict_load=pass` or `pass_with_documented_exclusions`; conversion has nothing left to do)
  and both key dumps are given.
- `parity_status=non_skip_pass` needs `pytest_output` showing the parity test with at least one
  passed and no failed, error or skipped test; the harness never reports a pass it did not see.
- `next_step=blocked` or `parity_status=blocked` needs a `blocker` other than `none`.
- `strict_load=pass_with_documented_exclusions` needs `non_strict_with_allowed_keys` (and a
  non-strict loader cannot claim a plain `pass`).
- Conversion boundary: `files_changed` holds nothing under `scripts/checkpoint_conversion/` or
  `converted_weights/`, except key dumps under `converted_weights/<family>/_mapping/`.
- No raw secret values anywhere.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from harness.contracts.common import (
    ContractModel,
    CoverageScope,
    HandoffMode,
    JoinedStr,
    LoaderStrictness,
    NextStep,
    ParityStatus,
    Problem,
    StrictLoad,
    StrList,
    TextList,
    SuspectedFix,
    YesNo,
    raise_if,
    walk_strings,
)
from harness.contracts.escape_hatch import EscapeHatch
from harness.contracts.secrets import find_secret
from harness.contracts.textform import render_text

_COUNT_RE = re.compile(r"\b(\d+)\s+(passed|failed|errors?|skipped|xfailed|xpassed)\b")


class ConversionRetryRequest(ContractModel):
    """`conversion_retry_request`: what conversion must fix, with evidence."""

    component: str = Field(min_length=1, description="Component name.")
    parity_test: str = Field(min_length=1, description="Component parity test path.")
    failing_keys: JoinedStr = Field(min_length=1, description="Official and FastVideo keys, if known.")
    expected_actual_shapes: JoinedStr = Field(min_length=1, description="Expected vs actual shapes, if known.")
    source_prefix_or_path: str = Field(min_length=1, description="Prefix/path implicated by the failure.")
    evidence: str = Field(min_length=1, description="Strict-load error, first divergent tensor, parity log excerpt.")
    suspected_fix: SuspectedFix = Field(description="rename, split, fuse, skip, component bucket, config or unknown.")

    def to_text(self) -> str:
        """The contract's text form, starting with `conversion_retry_request:`."""
        return render_text({"conversion_retry_request": self.model_dump()})


class HandoffKeyDumps(ContractModel):
    """The key dump paths a prototype produced."""

    official: str = Field(min_length=1, description="Official key/shape dump path.")
    fastvideo: str = Field(min_length=1, description="FastVideo key/shape dump path.")


class ComponentParity(ContractModel):
    """One `component_parity` entry of the parity status block."""

    component: str = Field(min_length=1, description="Component name.")
    test: str = Field(min_length=1, description="tests/local_tests/<bucket>/test_<family>_<component>_parity.py")
    status: ParityStatus = Field(description="Parity status of the component test.")
    missing: str = Field(min_length=1, description="none, or what is missing: fastvideo_class, converted_weights, official_import, ...")
    coverage_scope: CoverageScope = Field(description="What the FastVideo side of the test exercises.")
    official_definition_files: StrList = Field(description="Official definition file paths.")
    official_instantiation_files: StrList = Field(description="Official instantiation file paths.")
    concerns_or_unknowns: TextList = Field(description="Short list of concerns.")

    @model_validator(mode="after")
    def _rules(self) -> ComponentParity:
        problems = []
        if self.status == "non_skip_pass" and self.missing != "none":
            problems.append(Problem("missing", "must be none when status is non_skip_pass"))
        if self.status in ("scaffold_skip", "blocked") and self.missing == "none":
            problems.append(Problem("missing", f"status {self.status} must name what is missing"))
        raise_if(problems)
        return self


class ComponentSkillHandoff(ContractModel):
    """The component skill handoff, as returned by the port skills."""

    component: str = Field(min_length=1, description="Component name.")
    mode: HandoffMode = Field(description="prototype or parity-debug.")
    files_changed: StrList = Field(description="Model/config/export/test/readme paths changed.")
    official_files_used: StrList = Field(description="Official definition and instantiation files used.")
    prototype_key_dumps: HandoffKeyDumps | Literal["none"] = Field(description="Official and FastVideo key dump paths, or none.")
    port_state_file: str = Field(pattern=r"^tests/local_tests/[a-z][a-z0-9_]*/PORT_STATUS\.md$", description="tests/local_tests/<model_family>/PORT_STATUS.md")
    concerns_or_unknowns: TextList = Field(description="Remaining or newly discovered concerns.")
    parity_test: str = Field(min_length=1, description="Parity test path.")
    parity_status: ParityStatus = Field(description="Result of the parity test as the harness saw it.")
    production_loader_strictness: LoaderStrictness = Field(description="How the production loader loads weights.")
    strict_load: StrictLoad = Field(description="Strict-load result.")
    pytest_output: str = Field(min_length=1, description="Command + short result.")
    blocker: str = Field(min_length=1, description="none, or the exact missing dependency/weights/numeric mismatch.")
    conversion_retry_request: ConversionRetryRequest | Literal["none"] = Field(description="none, or the request for the conversion skill.")
    readme_updated: YesNo = Field(description="Whether the local tests README was updated.")
    next_step: NextStep = Field(description="What the orchestrator does next.")
    escape_hatch: EscapeHatch | Literal["none"] = Field(description="none, or an escape-hatch block.")

    @model_validator(mode="after")
    def _rules(self) -> ComponentSkillHandoff:
        raise_if(self._routing_rules() + self._evidence_rules() + self._boundary_rules())
        return self

    def _routing_rules(self) -> list[Problem]:
        problems: list[Problem] = []
        hatch = self.escape_hatch if isinstance(self.escape_hatch, EscapeHatch) else None
        asking = hatch is not None and hatch.needs_user_input == "yes"
        if self.next_step == "ask_user" and not asking:
            problems.append(Problem("escape_hatch", "next_step=ask_user needs an escape_hatch block with needs_user_input=yes"))
        if asking and self.next_step != "ask_user":
            problems.append(Problem("next_step", "an escape_hatch with needs_user_input=yes needs next_step=ask_user"))
        if self.next_step == "ask_user" and hatch is not None and not re.search(r"\bE\d{3,}\b", hatch.state_snapshot.evidence):
            problems.append(Problem("escape_hatch.state_snapshot.evidence", "must link the PORT_STATUS.md escape-hatch row (E###)"))
        retry = self.conversion_retry_request != "none"
        if self.next_step == "phase_5_conversion_retry" and not retry:
            problems.append(Problem("conversion_retry_request", "next_step=phase_5_conversion_retry needs a conversion_retry_request"))
        if retry and self.next_step != "phase_5_conversion_retry":
            problems.append(Problem("next_step", "a conversion_retry_request needs next_step=phase_5_conversion_retry"))
        if self.next_step == "phase_5_conversion":
            if self.mode != "prototype":
                problems.append(Problem("next_step", "phase_5_conversion is prototype success; in mode=parity-debug use phase_5_conversion_retry"))
            if self.parity_status == "debug_red":
                problems.append(Problem("parity_status", "a prototype handoff to conversion may be scaffold_skip, blocked or non_skip_pass, not debug_red"))
            if self.prototype_key_dumps == "none":
                problems.append(Problem("prototype_key_dumps", "key dumps are the required artifact of a successful prototype"))
        if self.next_step == "phase_6_continue":
            converted = self.strict_load in ("pass", "pass_with_documented_exclusions")
            if self.mode != "parity-debug" and not (converted and self.parity_status == "non_skip_pass"):
                problems.append(Problem("next_step", "phase_6_continue is parity-debug success; a prototype continues with "
                                                     "phase_5_conversion unless its converted weights already strict-load "
                                                     "in a non_skip_pass"))
            if self.parity_status != "non_skip_pass":
                problems.append(Problem("parity_status", "parity-debug success needs parity_status=non_skip_pass"))
            if self.mode == "prototype" and self.prototype_key_dumps == "none":
                problems.append(Problem("prototype_key_dumps", "key dumps are the required artifact of a successful prototype"))
        if self.next_step == "blocked" and self.blocker.lower() == "none":
            problems.append(Problem("blocker", "next_step=blocked needs the exact blocker"))
        if self.parity_status == "blocked" and self.blocker.lower() == "none":
            problems.append(Problem("blocker", "parity_status=blocked needs the exact blocker"))
        return problems

    def _evidence_rules(self) -> list[Problem]:
        problems: list[Problem] = []
        if self.parity_status == "non_skip_pass":
            counts = pytest_counts(self.pytest_output)
            if self.parity_test not in self.pytest_output:
                problems.append(Problem("pytest_output", "a non_skip_pass must show the command that ran the parity test"))
            if counts.get("passed", 0) < 1:
                problems.append(Problem("pytest_output", "a non_skip_pass must show at least one passed test"))
            bad = {k: v for k, v in counts.items() if k != "passed" and v > 0}
            if bad:
                shown = ", ".join(f"{v} {k}" for k, v in bad.items())
                problems.append(Problem("parity_status", f"cannot be non_skip_pass: pytest_output shows {shown}"))
        if self.strict_load == "pass_with_documented_exclusions" and self.production_loader_strictness != "non_strict_with_allowed_keys":
            problems.append(Problem("strict_load", "pass_with_documented_exclusions needs production_loader_strictness=non_strict_with_allowed_keys"))
        if self.production_loader_strictness == "non_strict_with_allowed_keys" and self.strict_load == "pass":
            problems.append(Problem("strict_load", "a non-strict loader passes with documented exclusions: use pass_with_documented_exclusions and list the allowed keys"))
        return problems

    def _boundary_rules(self) -> list[Problem]:
        problems = []
        for index, path in enumerate(self.files_changed):
            normal = path.removeprefix("./")
            if normal.startswith("scripts/checkpoint_conversion/") or (
                normal.startswith("converted_weights/") and "/_mapping/" not in normal
            ):
                problems.append(Problem(f"files_changed[{index}]", f"{path} is conversion-owned; return a conversion_retry_request instead"))
        for field, value in walk_strings(self.model_dump()):
            message = find_secret(value)
            if message:
                problems.append(Problem(field, message))
        return problems

    def to_text(self) -> str:
        """The contract's `key: value` text form (used for handoff.md)."""
        return render_text(self.model_dump())


def pytest_counts(output: str) -> dict[str, int]:
    """Counts from a pytest summary such as `1 passed, 2 skipped in 0.3s` (`error`/`errors` merged)."""
    counts: dict[str, int] = {}
    for number, word in _COUNT_RE.findall(output):
        key = "errors" if word.startswith("error") else word
        counts[key] = counts.get(key, 0) + int(number)
    return counts

