"""Shared pieces of the contract models: the strict base model, literals, problems, list fields.

Contract words such as `yes`/`no`, `none` and `unknown` stay plain strings so a model renders
back to the contract's own text form unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, BeforeValidator, ConfigDict

ComponentType = Literal["dit", "vae", "encoder", "scheduler", "conditioner", "upsampler", "vocoder", "generic"]
Mode = Literal["parity-scaffold", "prototype", "parity-debug"]
HandoffMode = Literal["prototype", "parity-debug"]
ParityStatus = Literal["scaffold_skip", "debug_red", "non_skip_pass", "blocked"]
DecisionType = Literal["scope", "dependency", "auth", "cost", "destructive", "ambiguity", "blocker"]
NextStep = Literal["phase_5_conversion", "phase_5_conversion_retry", "phase_6_continue", "ask_user", "blocked"]
LoaderStrictness = Literal["strict", "non_strict_with_allowed_keys", "stateless"]
StrictLoad = Literal["not_run", "pass", "pass_with_documented_exclusions", "blocked"]
CoverageScope = Literal["production_loader", "implementation_subcomponent", "both"]
SuspectedFix = Literal["rename", "split", "fuse", "skip", "component bucket", "config", "unknown"]


class ContractModel(BaseModel):
    """Base of every contract model: unknown fields are errors, values are re-validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, str_strip_whitespace=True)


class Problem(NamedTuple):
    """One thing wrong with an input, located by a field path such as `official_definition_files[0].path`."""

    field_path: str
    message: str

    def __str__(self) -> str:
        return f"{self.field_path}: {self.message}" if self.field_path else self.message


class PacketError(Exception):
    """A packet (or other contract document) could not be loaded; `problems` lists every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class RuleViolation(ValueError):
    """Raised by cross-field validators; carries located problems so error messages name the fields.

    pydantic keeps the original exception in the error context, which lets `problems_from_validation`
    turn one violation into several `field.path: message` lines.
    """

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


def raise_if(problems: list[Problem]) -> None:
    """Raise a RuleViolation when a cross-field check found anything."""
    if problems:
        raise RuleViolation(problems)


def _to_str_list(value: Any, split: bool = True) -> Any:
    """Accept the text form's one-line lists: `none` -> [], `a, b` -> [a, b]; `[none]` -> []."""
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in ("", "none", "[]"):
            return []
        if not split:
            return [text]
        return [part.strip() for part in text.split(",") if part.strip()]
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str) and value[0].strip().lower() == "none":
        return []
    if isinstance(value, list):
        return [_note_from_mapping(item) for item in value]
    return value


def _note_from_mapping(item: Any) -> Any:
    """`- field: searched ...` reads as a one-key mapping in YAML and the text form; it is a note."""
    if isinstance(item, dict) and len(item) == 1:
        ((key, text),) = item.items()
        if isinstance(text, str):
            return f"{key}: {text}"
    return item


def _join_str_list(value: Any) -> Any:
    """Accept a list of names where the contract has one line: ["A", "B"] -> "A, B"."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(v.strip() for v in value)
    return value


def _yes_no(value: Any) -> Any:
    """YAML reads a bare `yes`/`no` as a boolean; the contract word is meant."""
    return ("yes" if value else "no") if isinstance(value, bool) else value


YesNo = Annotated[Literal["yes", "no"], BeforeValidator(_yes_no)]
# A list of paths/names that also accepts the contract's one-line forms (`a, b`, `none`).
StrList = Annotated[list[str], BeforeValidator(_to_str_list)]
# A list of sentences (concerns, options): one line is one entry, commas and all.
TextList = Annotated[list[str], BeforeValidator(lambda value: _to_str_list(value, split=False))]
# A one-line string that also accepts a list of strings (joined with ", ").
JoinedStr = Annotated[str, BeforeValidator(_join_str_list)]

PLACEHOLDER_RE = re.compile(r"<[a-z_][^<>\n]{0,80}>")
# One-word slots of the contract templates. Other one-word `<...>` are real text, such as the
# tokenizer tokens `<pad>`, `<s>` or `<extra_id_0>` an encoder packet may name.
TEMPLATE_SLOTS = frozenset({
    "snake_case", "name", "family", "model_family", "component", "bucket", "path", "paths", "file",
    "list", "components", "stage", "parity_test", "arch_or_family", "_class_name",
})
_SLOT_SEPARATORS = re.compile(r"[\s|/,*]")


def placeholder_in(value: str) -> str | None:
    """The first unfilled template placeholder in a value, if any: a contract slot name
    (`<model_family>`) or a described slot (`<dit|vae>`, `<class/function names>`)."""
    for match in PLACEHOLDER_RE.finditer(value):
        inner = match.group(0)[1:-1]
        if inner in TEMPLATE_SLOTS or _SLOT_SEPARATORS.search(inner):
            return match.group(0)
    return None


def walk_strings(data: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Every string inside nested dicts/lists with its field path, e.g. `options[1]`, `conversion.script`."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from walk_strings(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from walk_strings(value, f"{prefix}[{index}]")
    elif isinstance(data, str):
        yield prefix, data
