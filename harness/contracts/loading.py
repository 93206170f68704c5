"""Load contract documents (the packet above all) from JSON, YAML or the contract's text form.

Accepted inputs for `load_packet(path)`:

- `.json`: an object, bare or under a top-level `component_context` key;
- `.yaml` / `.yml`: the same, in YAML;
- anything else starting with `{`: JSON;
- anything else (`.md`, `.txt`, an issue body): a fenced block (```text, ```yaml or plain) whose
  first line is `component_context:`, or the bare text form itself.

Every failure raises `PacketError` with located problems: unreadable file, malformed JSON/YAML
(with the line), a document that is not an object, and each validation error as
`field.path: message`. A document over MAX_DOCUMENT_BYTES is refused before it is read, and
one nested deeper than MAX_DEPTH before it is validated: a packet is a few kilobytes a few
levels deep, and it is carried in every checkpoint of a run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from harness.contracts.common import PacketError, Problem, RuleViolation, placeholder_in, walk_strings
from harness.contracts.packet import ComponentContext
from harness.contracts.secrets import find_secret
from harness.contracts.textform import TextFormError, fenced_blocks, parse_text

M = TypeVar("M", bound=BaseModel)

MAX_DOCUMENT_BYTES = 1024 * 1024
MAX_DEPTH = 32


def load_packet(path: str | Path) -> ComponentContext:
    """Read and validate a component packet; raises PacketError listing every problem."""
    return load_document(path, ComponentContext, "component_context")


def load_document(path: str | Path, model: type[M], key: str) -> M:
    """Read `path` and validate it as `model`; `key` is the contract's top-level wrapper key."""
    path = Path(path)
    # A bare text block (the handoff has no wrapper key) starts with the model's first field.
    first_field = next(iter(model.model_fields))
    data = read_data(path, key, first_field)
    return validate_data(data, model, key)


def validate_data(data: Any, model: type[M], key: str) -> M:
    """Validate already-parsed data (bare or under `key`) as `model`, or raise PacketError."""
    data = unwrap(data, key)
    problems = [
        Problem(field, f"still holds the template placeholder {found}; fill in the real value")
        for field, value in walk_strings(data)
        if (found := placeholder_in(value))
    ]
    try:
        model_value = model.model_validate(data)
    except ValidationError as exc:
        # A placeholder already explains its field (`<dit|vae>` is also a bad literal).
        marked = {p.field_path for p in problems}
        raise PacketError(problems + [p for p in problems_from_validation(exc) if p.field_path not in marked]) from None
    if problems:
        raise PacketError(problems)
    return model_value


def read_data(path: Path, key: str, first_field: str | None = None) -> Any:
    """Parse a file into plain data according to its suffix; raises PacketError."""
    name = path.name
    try:
        size = path.stat().st_size if path.is_file() else 0
    except OSError:
        size = 0  # read_text says why below
    if size > MAX_DOCUMENT_BYTES:
        raise PacketError([Problem(name, f"is {size} bytes; a document may have at most {MAX_DOCUMENT_BYTES} "
                                         "(a packet names files, it does not hold them)")])
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PacketError([Problem(name, f"file not found: {path}")]) from None
    except IsADirectoryError:
        raise PacketError([Problem(name, f"is a directory, not a file: {path}")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PacketError([Problem(name, f"cannot read {path}: {exc}")]) from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".json" or (suffix not in (".yaml", ".yml") and text.lstrip().startswith("{")):
            data = _parse_json(text, name)
        elif suffix in (".yaml", ".yml"):
            data = _parse_yaml(text, name)
        else:
            data = parse_text_document(text, name, key, first_field)
    except RecursionError:  # the parser itself gave up on the nesting
        raise PacketError([Problem(name, f"nested too deeply; a document nests at most {MAX_DEPTH} levels")]) from None
    check_depth(data, name)
    return data


def check_depth(data: Any, name: str) -> None:
    """Refuse data nested deeper than MAX_DEPTH (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if not isinstance(value, (dict, list)):
            continue
        if depth > MAX_DEPTH:
            raise PacketError([Problem(name, f"nested more than {MAX_DEPTH} levels deep; a packet has a few")])
        stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))


def parse_text_document(text: str, name: str, key: str, first_field: str | None = None) -> Any:
    """The contract text form: from a markdown fenced block starting with `key:` (or with
    `first_field:` for documents without a wrapper key), or the bare text."""
    starts = tuple(f"{word}:" for word in (key, first_field) if word)
    candidates = [(line, body) for line, _info, body in fenced_blocks(text) if body.lstrip().startswith(starts)]
    if candidates:
        first_line, body = candidates[0]
    elif text.lstrip().startswith(starts):
        first_line, body = 1, text
    else:
        raise PacketError([Problem(name, f"no `{key}:` block found (expected JSON, YAML, or the contract text form starting with `{key}:`)")])
    try:
        return parse_text(body, first_line)
    except TextFormError as exc:
        raise PacketError([Problem(f"{name}:{exc.line}", f"malformed text form: {exc.message}")]) from None


def _parse_json(text: str, name: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise PacketError([Problem(f"{name}:{exc.lineno}:{exc.colno}", f"malformed JSON: {exc.msg}")]) from None


def _parse_yaml(text: str, name: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        reason = getattr(exc, "problem", None) or str(exc)
        raise PacketError([Problem(where, f"malformed YAML: {reason}")]) from None


def unwrap(data: Any, key: str) -> dict[str, Any]:
    """Accept a bare object or one under `key`; anything else is a PacketError."""
    if not isinstance(data, dict):
        kind = "empty" if data is None else type(data).__name__
        raise PacketError([Problem("(document)", f"must be an object (mapping of fields), got {kind}")])
    if key in data:
        others = sorted(str(k) for k in data if k != key)
        if others:
            raise PacketError([Problem(k, f"unexpected top-level key next to `{key}`") for k in others])
        inner = data[key]
        if not isinstance(inner, dict):
            raise PacketError([Problem(key, f"must be an object (mapping of fields), got {type(inner).__name__}")])
        return inner
    return data


def _is_model_branch(part: Any) -> bool:
    """pydantic names a union's model branch `EscapeHatch` or `function-after[_rules(), EscapeHatch]`."""
    text = str(part)
    return text[:1].isupper() or text.startswith("function-")


def format_loc(loc: tuple[Any, ...]) -> str:
    """pydantic's ('official_definition_files', 0, 'path') -> `official_definition_files[0].path`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith(("literal[", "function-", "tagged-union[")) or str(part)[:1].isupper() or part in ("str", "list[str]"):
            continue  # union branch names (`EscapeHatch`, `literal['none']`) add nothing for a reader
        else:
            out += f".{part}" if out else str(part)
    return out


def _join(prefix: str, field: str) -> str:
    if not prefix:
        return field
    return f"{prefix}{field}" if field.startswith("[") else f"{prefix}.{field}"


def _message(err: Any) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    given = err.get("input")
    if isinstance(given, str) and find_secret(given):
        given = "<a value that looks like a secret, not shown>"  # never echo a token back
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field (not part of the contract)"
    if kind == "literal_error" and isinstance(given, str) and " | " in given:
        return f"still lists the template's choices ({given}); pick one"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')} (got {given!r})"
    if kind == "string_pattern_mismatch":
        return f"{given!r} does not match the required form {ctx.get('pattern')}"
    if kind == "value_error" and given != err.get("input"):
        return err["msg"].split(" (got ")[0]  # our validators quote the value; this one is a secret
    if kind in ("too_short", "string_too_short"):
        return "must not be empty" if kind == "string_too_short" or ctx.get("min_length") == 1 else err["msg"].lower()
    if kind == "too_long":
        return f"has {ctx.get('actual_length')} entries, at most {ctx.get('max_length')} allowed"
    if kind in ("string_type", "list_type", "model_type", "dict_type", "model_attributes_type"):
        expected = {"string_type": "a string", "list_type": "a list"}.get(kind, "an object")
        return f"must be {expected}, got {type(given).__name__}"
    return err["msg"]


def problems_from_validation(exc: ValidationError) -> list[Problem]:
    """Map pydantic errors to located problems; cross-field RuleViolations expand to their fields."""
    problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    errors = exc.errors()
    # In `Model | Literal["none"]` a bad block fails both branches; the model's errors are the useful ones.
    deep = {tuple(e["loc"][:i]) for e in errors for i, part in enumerate(e["loc"]) if _is_model_branch(part)}
    errors = [e for e in errors if not (e["loc"] and str(e["loc"][-1]).startswith("literal[") and tuple(e["loc"][:-1]) in deep)]
    for err in errors:
        prefix = format_loc(err["loc"])
        original = (err.get("ctx") or {}).get("error")
        if isinstance(original, RuleViolation):
            found = [Problem(_join(prefix, p.field_path), p.message) for p in original.problems]
        else:
            found = [Problem(prefix or "(document)", _message(err))]
        for problem in found:
            if find_secret(problem.message):  # a rule quoted the offending value; never echo a token
                problem = Problem(problem.field_path, "holds a value that looks like a secret (not shown)")
            if (problem.field_path, problem.message) not in seen:
                seen.add((problem.field_path, problem.message))
                problems.append(problem)
    return problems
