"""The component packet: `component_context`, the input of every component skill.

Field names are exactly the contract's (`.agents/skills/add-model/contracts/component_context.md`
in a FastVideo checkout). Besides field types, `ComponentContext` enforces these rules:

- `local_tests_readme` / `port_state_file` are `tests/local_tests/<model_family>/README.md` /
  `PORT_STATUS.md`; `parity_test` is a `test_*.py` file under `tests/local_tests/`.
- `fastvideo_target_files` sit under `fastvideo/models/<bucket>/` or
  `fastvideo/configs/models/<bucket>/`; the bucket follows `component_type` (vae -> vaes or
  audio, encoder/conditioner -> encoders, dit -> dits; other types may use any bucket). A reused
  pipeline config may be named directly under `fastvideo/configs/pipelines/`.
  `path.py::Symbol` is accepted for a reused class.
- `official_ref_dir` is a path (relative to the checkout, or absolute) or an import path, which
  may be a bare package name (`stable_audio_tools`).
- `prototype_key_dumps` values are paths under `converted_weights/<model_family>/_mapping/`, or
  `planned` / `unknown`. Conversion paths are under `scripts/checkpoint_conversion/` and
  `converted_weights/<model_family>/`, or `not_created` / `not_needed` / `unknown`.
- Every path is repo-relative, without `..`.
- `strict_load=pass_with_documented_exclusions` needs `non_strict_with_allowed_keys`, and a
  non-strict loader cannot claim a plain `pass`.
- Modes: in `parity-scaffold` nothing has been loaded yet, so `strict_load=not_run`; a strict-load
  `pass` only exists in `parity-debug`; in `parity-debug` the prototype and conversion have happened,
  so key dumps are not `planned` and conversion paths are not `not_created`.
- Any `unknown` value needs the search already done: an entry of `concerns_or_unknowns` that names
  the field (`conversion.script` or `script`) and says what was searched (a word such as searched,
  grep, looked, checked, not found).
- No unfilled template placeholders (`<dit|vae>`, `<model_family>`; tokenizer tokens such as
  `<pad>` are text) and no raw secret values anywhere.
- Checked with `--repo`: in `parity-debug` the parity test exists in the checkout.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from harness.contracts.common import (
    ComponentType,
    ContractModel,
    JoinedStr,
    Mode,
    Problem,
    StrList,
    TextList,
    StrictLoad,
    placeholder_in,
    raise_if,
    walk_strings,
)
from harness.contracts.paths import bucket_for, relative_path_problem, target_file_problem, under_problem
from harness.contracts.secrets import find_secret
from harness.contracts.textform import render_text

_SEARCH_WORDS = re.compile(
    r"\b(search\w*|grep\w*|rg|looked|look(ing)? (in|at|for)|checked|inspected|scanned|not found|no match\w*|found no)\b",
    re.IGNORECASE,
)
_LIBRARY_RE = re.compile(r"^(diffusers|transformers|fastvideo(\.[A-Za-z_][\w.]*)?|unknown|none)$")


_GENERIC_LEAVES = {"path", "symbols", "notes", "args", "official", "fastvideo"}


def _names_for(field: str) -> set[str]:
    """How a concern may name a field: `conversion.script`, `script`, `official_definition_files.path`, ..."""
    plain = re.sub(r"\[\d+\]", "", field)
    parent, _, leaf = plain.rpartition(".")
    names = {field.lower(), plain.lower()}
    if leaf not in _GENERIC_LEAVES:  # `path` alone would match almost any concern
        names.add(leaf.lower())
    elif parent:  # `prototype_key_dumps: searched ...` covers its `.official` and `.fastvideo`
        names.add(parent.lower())
    return names


class OfficialDefinitionFile(ContractModel):
    """One file of the official code that defines the component."""

    path: str = Field(min_length=1, description="Repo-relative (to official_ref_dir) or absolute path in the official repo, or `unknown`.")
    symbols: JoinedStr = Field(min_length=1, description="Class/function names defined there.")
    notes: str = Field(min_length=1, description="Layer graph, output contract, state-dict owner.")


class OfficialInstantiationFile(ContractModel):
    """One file of the official code that builds the component (factory, pipeline, config)."""

    path: str = Field(min_length=1, description="Repo-relative (to official_ref_dir) or absolute path in the official repo, or `unknown`.")
    symbols: JoinedStr = Field(min_length=1, description="Factory/pipeline/config names.")
    args: str = Field(min_length=1, description="Constructor args, config values, runtime flags.")


class PrototypeKeyDumps(ContractModel):
    """Where the official and FastVideo state-dict key/shape dumps are (or will be)."""

    official: str = Field(min_length=1, description="converted_weights/<family>/_mapping/<component>_official_keys.json, `planned` or `unknown`.")
    fastvideo: str = Field(min_length=1, description="converted_weights/<family>/_mapping/<component>_fastvideo_keys.json, `planned` or `unknown`.")


class Conversion(ContractModel):
    """Checkpoint conversion state for the component."""

    script: str = Field(min_length=1, description="scripts/checkpoint_conversion/<family>_to_diffusers.py, `not_created`, `not_needed` or `unknown`.")
    converted_component_dir: str = Field(min_length=1, description="converted_weights/<family>/<component>, `not_created`, `not_needed` or `unknown`.")
    model_index_library: str = Field(description="diffusers, transformers, fastvideo, fastvideo.*, unknown or none.")
    config_file: Literal["config.json", "scheduler_config.json", "none", "unknown"] = Field(description="Config file name the loader expects.")
    mapping_notes: str = Field(min_length=1, description="Key prefixes, split/fuse concerns, skipped keys, not_created, not_needed or unknown.")
    production_loader_strictness: Literal["strict", "non_strict_with_allowed_keys", "stateless", "unknown"] = Field(description="How the production loader loads the weights.")
    strict_load: StrictLoad = Field(description="Result of the strict-load check.")

    @field_validator("model_index_library")
    @classmethod
    def _library(cls, value: str) -> str:
        if not _LIBRARY_RE.match(value):
            raise ValueError(f"must be diffusers, transformers, fastvideo, fastvideo.<module>, unknown or none (got {value!r})")
        return value

    @model_validator(mode="after")
    def _strictness_matches(self) -> Conversion:
        problems = []
        if self.strict_load == "pass_with_documented_exclusions" and self.production_loader_strictness != "non_strict_with_allowed_keys":
            problems.append(Problem("strict_load", "pass_with_documented_exclusions needs production_loader_strictness=non_strict_with_allowed_keys"))
        if self.production_loader_strictness == "non_strict_with_allowed_keys" and self.strict_load == "pass":
            problems.append(Problem("strict_load", "a non-strict loader passes with documented exclusions: use pass_with_documented_exclusions and list the allowed keys"))
        raise_if(problems)
        return self


class ComponentContext(ContractModel):
    """The per-component packet (`component_context`) passed to a component skill."""

    model_family: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="snake_case model family name.")
    component: str = Field(min_length=1, pattern=r"^[^\n]+$", description="Component name, e.g. vae, text_encoder or `UMT5 text encoder`.")
    component_type: ComponentType = Field(description="Kind of component; selects the skill and loader bucket.")
    mode: Mode = Field(description="Which skill mode the packet is for.")
    official_ref_dir: str = Field(min_length=1, description="Path or import path of the official reference code.")
    official_definition_files: list[OfficialDefinitionFile] = Field(min_length=1, description="Official files defining the component.")
    official_instantiation_files: list[OfficialInstantiationFile] = Field(min_length=1, description="Official files instantiating the component.")
    official_weight_source: str = Field(min_length=1, description="Checkpoint file, subfolder, prefix, or passthrough source.")
    fastvideo_target_files: StrList = Field(min_length=1, description="FastVideo model and config files (fastvideo/models/<bucket>/..., fastvideo/configs/models/<bucket>/...).")
    local_tests_readme: str = Field(description="tests/local_tests/<model_family>/README.md")
    port_state_file: str = Field(description="tests/local_tests/<model_family>/PORT_STATUS.md")
    parity_test: str = Field(description="tests/local_tests/<bucket>/test_<family>_<component>_parity.py")
    prototype_key_dumps: PrototypeKeyDumps = Field(description="Official and FastVideo key/shape dump paths.")
    conversion: Conversion = Field(description="Conversion state of the component.")
    concerns_or_unknowns: TextList = Field(description="Prototype mismatches, ambiguous args, missing ops, searches done for unknowns.")

    # Single-field path rules run as field validators, so they are reported together with type
    # errors; they read earlier fields (model_family, component_type) from `info.data`.

    @field_validator("fastvideo_target_files")
    @classmethod
    def _targets(cls, value: list[str], info: ValidationInfo) -> list[str]:
        component_type = info.data.get("component_type", "generic")
        raise_if([Problem(f"[{i}]", m) for i, p in enumerate(value) if (m := target_file_problem(p, component_type))])
        return value

    @field_validator("local_tests_readme", "port_state_file")
    @classmethod
    def _state_files(cls, value: str, info: ValidationInfo) -> str:
        problem = relative_path_problem(value)
        family = info.data.get("model_family")
        name = "README.md" if info.field_name == "local_tests_readme" else "PORT_STATUS.md"
        if not problem and family and value != f"tests/local_tests/{family}/{name}":
            problem = f"must be tests/local_tests/{family}/{name}, got {value}"
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("parity_test")
    @classmethod
    def _parity_test(cls, value: str) -> str:
        problem = under_problem(value, "tests/local_tests/", "the local parity tests")
        name = value.rsplit("/", 1)[-1]
        if not problem and not (name.startswith("test_") and name.endswith(".py")):
            problem = f"must be a pytest file named test_*.py, got {name}"
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("prototype_key_dumps")
    @classmethod
    def _key_dumps(cls, value: PrototypeKeyDumps, info: ValidationInfo) -> PrototypeKeyDumps:
        family = info.data.get("model_family", "<model_family>")
        problems = []
        for side in ("official", "fastvideo"):
            path = getattr(value, side)
            if path not in ("planned", "unknown"):
                message = under_problem(path, f"converted_weights/{family}/_mapping/", "a key dump, or planned/unknown")
                if message:
                    problems.append(Problem(side, message))
        raise_if(problems)
        return value

    @field_validator("conversion")
    @classmethod
    def _conversion_paths(cls, value: Conversion, info: ValidationInfo) -> Conversion:
        family = info.data.get("model_family", "<model_family>")
        words = ("not_created", "not_needed", "unknown")
        problems = []
        if value.script not in words:
            message = under_problem(value.script, "scripts/checkpoint_conversion/", "or not_created/not_needed/unknown")
            if not message and not value.script.endswith(".py"):
                message = "must be a .py script"
            if message:
                problems.append(Problem("script", message))
        if value.converted_component_dir not in words:
            message = under_problem(value.converted_component_dir, f"converted_weights/{family}/", "or not_created/not_needed/unknown")
            if message:
                problems.append(Problem("converted_component_dir", message))
        raise_if(problems)
        return value

    @model_validator(mode="after")
    def _rules(self) -> ComponentContext:
        raise_if(self._mode_rules() + self._unknown_rules() + self._text_rules())
        return self

    def _mode_rules(self) -> list[Problem]:
        problems: list[Problem] = []
        strict_load = self.conversion.strict_load
        if self.mode == "parity-scaffold" and strict_load != "not_run":
            problems.append(Problem("conversion.strict_load", "must be not_run in mode=parity-scaffold (nothing is loaded yet)"))
        elif self.mode == "prototype" and strict_load.startswith("pass"):
            problems.append(Problem("conversion.strict_load", "a strict-load pass needs converted weights; it only exists in mode=parity-debug"))
        if self.mode == "parity-debug":
            for side in ("official", "fastvideo"):
                if getattr(self.prototype_key_dumps, side) == "planned":
                    problems.append(Problem(f"prototype_key_dumps.{side}", "cannot be planned in mode=parity-debug: the prototype made the dumps (give the path, or unknown plus the search)"))
            for field in ("script", "converted_component_dir"):
                if getattr(self.conversion, field) == "not_created":
                    problems.append(Problem(f"conversion.{field}", "cannot be not_created in mode=parity-debug (parity-debug runs after conversion; use not_needed or the path)"))
        return problems

    def _unknown_rules(self) -> list[Problem]:
        problems = []
        for field, value in self.iter_values():
            if value != "unknown":
                continue
            names = _names_for(field)
            documented = any(
                any(name in concern.lower() for name in names) and _SEARCH_WORDS.search(concern)
                for concern in self.concerns_or_unknowns
            )
            if not documented:
                problems.append(Problem(field, f"is unknown: add a concerns_or_unknowns entry naming `{field}` with the search already done (e.g. \"{field}: searched ... , not found\")"))
        return problems

    def _text_rules(self) -> list[Problem]:
        problems = []
        for field, value in self.iter_values():
            placeholder = placeholder_in(value)
            if placeholder:
                problems.append(Problem(field, f"still holds the template placeholder {placeholder}; fill in the real value"))
            secret = find_secret(value)
            if secret:
                problems.append(Problem(field, secret))
        return problems

    def iter_values(self) -> Iterator[tuple[str, str]]:
        """Every string value in the packet with its field path, e.g. `conversion.script`."""
        yield from walk_strings(self.model_dump())

    def skill_start_problems(self) -> list[Problem]:
        """Why a component skill may not start yet: it needs the official definition and
        instantiation files (an `unknown` path is a valid packet, but not enough to port from)."""
        problems = []
        for group in ("official_definition_files", "official_instantiation_files"):
            for index, entry in enumerate(getattr(self, group)):
                if entry.path == "unknown":
                    problems.append(Problem(f"{group}[{index}].path", "is unknown; a component skill cannot start until it is found"))
        return problems

    def to_text(self) -> str:
        """The contract's text form, starting with `component_context:`."""
        return render_text({"component_context": self.model_dump()})

    def summary(self) -> str:
        """One line naming what the packet is about."""
        bucket = bucket_for(self.component_type) or "any"
        return (f"family={self.model_family} component={self.component} type={self.component_type} "
                f"mode={self.mode} bucket={bucket} parity_test={self.parity_test}")

