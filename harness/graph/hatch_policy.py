"""Escape-hatch policy: which questions an agent may put to a person.

The add-model contract allows a pause only for decisions the workflow cannot make (scope,
dependency, auth by env var name, cost, destructive operations, ambiguous sources of truth,
accepting a blocker / loosening a tolerance / shipping without non-skip parity). Normal
failures (missing imports, red or skipped parity, mapping and strict-load errors, lint,
bugs) are the agent's to debug. `review_escape_hatch` returns the refusal reason that is
sent back to the agent, or None when the hatch may go to a person.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from harness.contracts.secrets import ALLOWED_TOKEN_ENV_VARS, find_secret
from harness.verify.environment import environment_problem

DECISION_TYPES = ("scope", "dependency", "auth", "cost", "destructive", "ambiguity", "blocker")
# What a person may decide after the environment stopped the parity test (GPU time, installs).
ENVIRONMENT_DECISIONS = ("cost", "dependency")
MAX_OPTIONS = 4  # one recommendation plus at most three alternatives


@dataclass(frozen=True)
class Rule:
    name: str
    pattern: re.Pattern[str]
    advice: str


def _rx(text: str) -> re.Pattern[str]:
    return re.compile(text, re.IGNORECASE)


# Normal recoverable failures, recognised in the question and evidence text.
RECOVERABLE = (
    Rule("missing_import", _rx(r"ModuleNotFoundError|ImportError|No module named|cannot import name"),
         "fix the import (module path, export in __init__.py, EntryClass)"),
    Rule("conversion_mapping", _rx(r"Missing key\(s\)|Unexpected key\(s\)|size mismatch for|KeyError: ['\"][\w.]+['\"]"),
         "report a conversion_retry_request with the failing keys and shapes"),
    Rule("strict_load", _rx(r"strict[-_ ]load|load_state_dict|Error\(s\) in loading state_dict"),
         "debug the load path, or report a conversion_retry_request"),
    Rule("failing_parity", _rx(r"AssertionError|Mismatched elements|Greatest (absolute|relative) difference|"
                               r"Tensor-likes are not close|not close|debug_red|parity (is )?(red|fail)"),
         "find the first divergent tensor with targeted comparisons and fix the component"),
    Rule("skipped_test", _rx(r"\bSKIPPED\b|\bskipped\b|scaffold_skip|pytest\.skip"),
         "fix the missing piece named in the skip reason"),
    Rule("missing_path", _rx(r"FileNotFoundError|No such file or directory|does not exist|path not found"),
         "find or create the path (search the checkout and the official reference dir)"),
    Rule("lint", _rx(r"\b(ruff|flake8|pyflakes|yapf|mypy|pylint|lint)\b|formatting"),
         "fix the lint or format error"),
    Rule("implementation_bug", _rx(r"Traceback|TypeError|ValueError|RuntimeError|AttributeError|IndexError|NameError|"
                                   r"shape mismatch|mat1 and mat2"),
         "debug the implementation"),
)

# What a legitimate question asks a person to decide, recognised in the question text.
INTENTS = {
    "tolerance": _rx(r"\b(loosen|relax|raise|increase|widen)\w*\b.*\btoleran|\btoleran\w*\b.*\b(loosen|relax|raise|increase|widen)|\b[ar]tol\b"),
    "accept_blocker": _rx(r"accept\w*\b.*\bblocker|known blocker|ship\w*\b.*\bwithout|without (a )?(non-skip )?(parity|pass)|hand ?off as blocked"),
    "shape_only": _rx(r"shape[- ]only"),
    "scope": _rx(r"\b(drop|remove|omit|exclude|skip|leave out|defer)\w*\b.*\b(modality|stream|output|head|variant|component|mode|path|encoder|decoder|encode|decode|audio|video|image|conditioning)|out of scope|in scope|new (loader )?bucket"),
    "dependency": _rx(r"\b(install|pin|upgrade|downgrade|dependenc\w*|version|package|trust_remote_code|remote code|private (code|model|op))"),
    "auth": _rx("|".join(ALLOWED_TOKEN_ENV_VARS) + r"|gated"),
    "cost": _rx(r"download|\bGB\b|\bTB\b|GPU[- ]hours?|GPU-heavy|publish|upload|cost|runtime approval"),
    "destructive": _rx(r"\b(delete|overwrite|remove|wipe|force[- ]push|reset|rm -rf|discard)\b"),
    "ambiguity": _rx(r"which (official|reference|definition|source|checkpoint|tokenizer)|incompatible|conflict\w*|disagree|two (official|definitions|references)"),
}
BLOCKER_INTENTS = ("tolerance", "accept_blocker", "shape_only")


def _field(obj: Any, name: str, default: Any = None) -> Any:
    if obj is None:
        return default
    return obj.get(name, default) if isinstance(obj, dict) else getattr(obj, name, default)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return "\n".join(_text(v) for v in value)
    return str(value)


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def _recommendation_in_options(recommended: str, options: list[str]) -> bool:
    """Options are `option + consequence`; the recommendation may repeat just the option."""
    rec = _norm(recommended)
    return bool(rec) and any(_norm(opt) == rec or _norm(opt).startswith(rec) or rec in _norm(opt) for opt in options)


def _component_import(evidence: str) -> bool:
    """A missing import of FastVideo's own modules is the port's bug, never a dependency question."""
    return any(m.split(".")[0] in ("fastvideo", "tests") for m in re.findall(r"No module named '([\w.]+)'", evidence))


def _structure_problem(hatch: Any) -> str | None:
    decision = _field(hatch, "decision_type")
    if decision not in DECISION_TYPES:
        return f"decision_type {decision!r} is not one of {', '.join(DECISION_TYPES)}"
    if not _text(_field(hatch, "question")).strip():
        return "the question is empty; ask one precise question"
    options = [_text(o) for o in (_field(hatch, "options") or [])]
    if not options:
        return "no options; give one recommended option (and at most three alternatives) with their consequences"
    if len(options) > MAX_OPTIONS:
        return f"{len(options)} options; give one recommendation plus at most three alternatives ({MAX_OPTIONS} in all)"
    if not _recommendation_in_options(_text(_field(hatch, "recommended_option")), options):
        return "recommended_option is not among the options"
    snapshot = _field(hatch, "state_snapshot")
    if _norm(_text(_field(snapshot, "evidence"))) in ("", "none", "n/a"):
        return "state_snapshot.evidence is empty; give the exact command, path, short error or blocker ID"
    return None


def _all_text(hatch: Any) -> str:
    snapshot = _field(hatch, "state_snapshot")
    parts = [_field(hatch, k) for k in ("question", "recommended_option", "options", "safe_default")]
    parts += [_field(snapshot, k) for k in ("command_or_test", "evidence", "phase")]
    return "\n".join(_text(p) for p in parts)


def _recoverable_rule(text: str) -> Rule | None:
    return next((rule for rule in RECOVERABLE if rule.pattern.search(text)), None)


def _intents(question: str) -> set[str]:
    return {name for name, rx in INTENTS.items() if rx.search(question)}


def _refuse(rule: str, why: str) -> str:
    return f"escape hatch refused (rule: {rule}): {why}"


def review_escape_hatch(hatch: Any, *, last_parity: Any | None = None) -> str | None:
    """The refusal reason for `hatch`, or None when it may be put to a person."""
    if (problem := _structure_problem(hatch)) is not None:
        return _refuse("contract_shape", problem)
    if (secret := find_secret(_all_text(hatch))) is not None:
        return _refuse("no_token_values", f"the hatch {secret}")
    decision = _field(hatch, "decision_type")
    question = _text(_field(hatch, "question"))
    snapshot = _field(hatch, "state_snapshot")
    evidence = _text(_field(snapshot, "evidence")) + "\n" + _text(_field(snapshot, "command_or_test"))
    intents = _intents(question)
    failure = _recoverable_rule(question + "\n" + evidence)

    asked_text = question + "\n" + _text(_field(hatch, "options"))
    if decision == "auth" and not any(name in asked_text for name in ALLOWED_TOKEN_ENV_VARS):
        return _refuse("auth_by_env_var", f"auth questions name the env var only ({', '.join(ALLOWED_TOKEN_ENV_VARS)}) "
                       "and never ask for a token value")
    if decision == "dependency" and _component_import(evidence):
        return _refuse("missing_import", "the missing module is FastVideo's own component code; fix the import")
    if decision == "blocker":
        asked = intents & set(BLOCKER_INTENTS)
        if not asked:
            why = f"{failure.name} is a normal recoverable failure: {failure.advice}" if failure else (
                "a blocker hatch must ask to accept a blocker, loosen a tolerance, use a shape-only check "
                "or ship without non-skip parity")
            return _refuse(failure.name if failure else "blocker_needs_a_decision", why)
        if "tolerance" in asked and _field(last_parity, "status") != "debug_red":
            return _refuse("tolerance_needs_red_run", "loosening a tolerance can only be asked after a red parity run "
                           "the harness saw (debug_red with printed drift metrics)")
        return None
    if decision in ENVIRONMENT_DECISIONS and environment_problem(last_parity):
        return None  # the machine, not the code, stopped the test: running it elsewhere is a person's call
    if failure is not None and not intents:
        return _refuse(failure.name, f"this is a normal recoverable failure, not a {decision} decision: {failure.advice}")
    return None
