"""Recognise raw secret values (tokens, API keys) so no contract document ever carries one.

Auth is only ever discussed by environment variable name; these are the names allowed.
"""

from __future__ import annotations

import re

ALLOWED_TOKEN_ENV_VARS = ("HF_TOKEN", "HUGGINGFACE_HUB_TOKEN", "HF_API_KEY")

# Well-known token shapes.
_KNOWN = [
    ("Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{20,}\b")),
    ("API key", re.compile(r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}")),
    ("GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})")),
    ("AWS access key", re.compile(r"\bAKIA[0-9A-Z]{16}\b")),
    ("Slack token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}")),
]
# `HF_TOKEN=abc...` / `api_key: abc...`: a value assigned to a secret-named variable.
_ASSIGNED = re.compile(
    r"\b[A-Za-z_]*(?:TOKEN|SECRET|API_KEY|APIKEY|PASSWORD)\s*[=:]\s*['\"]?([A-Za-z0-9_\-./+]{12,})",
    re.IGNORECASE,
)
# A long run of mixed-case letters and digits looks like a generated secret; commit hashes
# (lowercase hex) and identifiers (which use underscores) do not match.
_OPAQUE = re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9]{32,}(?![A-Za-z0-9])")


def _looks_opaque(word: str) -> bool:
    digits = sum(c.isdigit() for c in word)
    return any(c.isupper() for c in word) and any(c.islower() for c in word) and digits >= 2


def find_secret(text: str) -> str | None:
    """Describe the first raw secret found in `text` (never echoing it), or None."""
    for kind, pattern in _KNOWN:
        if pattern.search(text):
            return f"contains what looks like a raw {kind}; refer to it by env var name only ({', '.join(ALLOWED_TOKEN_ENV_VARS)})"
    for match in _ASSIGNED.finditer(text):
        value = match.group(1)
        # `HF_TOKEN: HF_API_KEY` names a variable; a value with digits in it is a secret.
        if not value.isupper() and any(c.isdigit() for c in value):
            return "assigns a value to a secret-named variable; give the env var name only"
    for match in _OPAQUE.finditer(text):
        if _looks_opaque(match.group(0)):
            return "contains a long opaque string that looks like a secret; give the env var name only"
    return None
