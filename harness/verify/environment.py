"""Parity results caused by the environment rather than by the component.

A run that cannot start the interpreter, lacks a third-party module, has no CUDA device, or
cannot read the weights or the official reference says nothing about the port: debugging
the component cannot fix it, so it spends no debug round and is not recorded as a component
issue; the handoff names it once, and an agent may ask a person about it (cost, dependency).
"""

from __future__ import annotations

import re
from typing import Any

ENVIRONMENT_PREFIX = "environment: "

# Skip reasons that name the machine, not the code: a GPU, a module, weights, a reference, a token.
_ENV_SKIP = (
    re.compile(r"\bCUDA\b|\bGPUs?\b|nvidia", re.IGNORECASE),
    re.compile(r"not importable|not installed|No module named|could not import|ImportError", re.IGNORECASE),
    re.compile(r"(?=.*\b(official|reference|weights?|checkpoints?|model[ _]?dir|dir|snapshot|HF_TOKEN|"
               r"HUGGINGFACE_HUB_TOKEN|HF_API_KEY|token|gated)\b)"
               r"(?=.*\b(missing|not found|not set|does not exist|unavailable|not available|requires?|needs?)\b)",
               re.IGNORECASE | re.DOTALL),
)


def _get(parity: Any, name: str, default: Any = None) -> Any:
    if parity is None:
        return default
    return parity.get(name, default) if isinstance(parity, dict) else getattr(parity, name, default)


def is_environment_skip(reason: str) -> bool:
    return any(rx.search(reason) for rx in _ENV_SKIP)


def environment_problem(parity: Any) -> str | None:
    """Why the environment, not the component, decided this parity run; None when it did not.

    `blocked` runs are environment problems by construction (the runner only blocks on a
    missing interpreter, pytest, module, asset or GPU); a skip counts when every reason names
    the environment (a skip still to be filled in by the port is not one)."""
    status = _get(parity, "status")
    if status == "blocked":
        return str(_get(parity, "blocker") or _get(parity, "first_failure") or "the sandbox could not run the test")
    reasons = [str(r) for r in _get(parity, "skip_reasons", None) or []]
    if status == "scaffold_skip" and reasons and all(is_environment_skip(r) for r in reasons):
        return "parity skipped: " + "; ".join(dict.fromkeys(reasons))
    return None


def is_environment_blocker(text: str) -> bool:
    return str(text).startswith(ENVIRONMENT_PREFIX)
