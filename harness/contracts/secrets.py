"""The project's one secret detector: raw secret values (tokens, API keys) are recognised here,
both to refuse them in contract documents (`find_secret`) and to redact them from what is
recorded or sent to a model (`Redactor`).

Auth is only ever discussed by environment variable name; these are the names allowed.

Secrets are matched as whole tokens only: a token is a run of letters, digits, `_` and `-`,
so `ask-vae-two-definitions` or `task-sk-...` (a name that merely contains `sk-`) is ordinary
text. A key shape (`sk-...`, `hf_...`, `ghp_...`) counts only when its body looks generated:
mixed case with digits, or one very long segment mixing letters and digits, never a run of
lowercase words and numbers such as a task id.
The values of the keys the harness holds (environment variables named like secrets) are
redacted as whole tokens, and anywhere at all when they look generated (long, mixed case and
digits), since such a value never occurs inside ordinary text.
"""

from __future__ import annotations

import os
import re
from typing import Any, Callable, Iterable

ALLOWED_TOKEN_ENV_VARS = ("HF_TOKEN", "HUGGINGFACE_HUB_TOKEN", "HF_API_KEY")

# Variables whose values are secrets: an API key, a token, a password.
SECRET_NAME_SUFFIXES = ("KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIALS")
MIN_SECRET_VALUE_LEN = 8  # shorter values ("1", "yes", "local") would redact ordinary words

_TOKEN = r"A-Za-z0-9_\-"  # the characters a token is made of
_START, _END = rf"(?<![{_TOKEN}])", rf"(?![{_TOKEN}])"


def _segment_mixes(body: str, length: int) -> bool:
    """Some `-`/`_`-separated segment of at least `length` characters mixes letters and digits."""
    return any(len(seg) >= length and re.search(r"[A-Za-z]", seg) and re.search(r"\d", seg)
               for seg in re.split(r"[-_]", body))


def _mixed_case_digits(body: str) -> bool:
    return bool(re.search(r"[a-z]", body) and re.search(r"[A-Z]", body) and re.search(r"\d", body))


def _generic_key(body: str) -> bool:
    # Real `sk-` keys mix upper and lower case with digits; a name (`sk-vae-crop-0123456789ab`)
    # does not, unless one segment is as long as a generated key.
    return (len(body) >= 20 and _mixed_case_digits(body)) or _segment_mixes(body, 32)


def _hf_token(body: str) -> bool:
    return bool(re.search(r"[A-Z\d]", body))


# (kind, whole-token pattern, test of the body (group 1)): the shapes of real keys.
KEY_SHAPES: list[tuple[str, re.Pattern[str], Callable[[str], bool]]] = [
    ("API key", re.compile(_START + r"sk-ant-([A-Za-z0-9_\-]{8,})" + _END), lambda body: True),
    ("API key", re.compile(_START + r"sk-(?:proj|svcacct|admin)-([A-Za-z0-9_\-]{16,})" + _END), lambda body: True),
    ("API key", re.compile(_START + r"sk-([A-Za-z0-9_\-]{16,})" + _END), _generic_key),
    ("Hugging Face token", re.compile(_START + r"hf_([A-Za-z0-9]{16,})" + _END), _hf_token),
    ("GitHub token", re.compile(_START + r"(?:gh[pousr]_|github_pat_)([A-Za-z0-9_]{30,})" + _END), lambda body: True),
    ("AWS access key", re.compile(_START + r"AKIA([0-9A-Z]{16})" + _END), lambda body: True),
    ("Slack token", re.compile(_START + r"xox[abprs]-([A-Za-z0-9\-]{10,})" + _END), lambda body: True),
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


def key_shaped(text: str) -> Iterable[tuple[str, re.Match[str]]]:
    """(kind, match) for every whole token of `text` shaped like a real key."""
    for kind, pattern, real in KEY_SHAPES:
        for match in pattern.finditer(text):
            if real(match.group(1)):
                yield kind, match


def find_secret(text: str) -> str | None:
    """Describe the first raw secret found in `text` (never echoing it), or None."""
    for kind, _match in key_shaped(text):
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


def _generated(value: str) -> bool:
    """A held value random enough that it never occurs inside ordinary text: it is redacted even
    glued to other characters. Anything else only as a whole token."""
    return len(value) >= 20 and (_mixed_case_digits(value) or _segment_mixes(value, 16))


def is_secret_name(name: str) -> bool:
    """An environment variable whose value is a secret, by its name."""
    return name.upper().endswith(SECRET_NAME_SUFFIXES)


def held_secrets(env: dict[str, str] | None = None) -> dict[str, str]:
    """name -> value of the secrets in `env` (default: this process's environment)."""
    env = dict(os.environ) if env is None else env
    return {name: value for name, value in env.items()
            if is_secret_name(name) and len(value) >= MIN_SECRET_VALUE_LEN}


class Redactor:
    """Replaces secrets in strings (recursively in dicts and lists): the values of the keys the
    harness holds (`[REDACTED:NAME]`) and key-shaped tokens (`[REDACTED]`), whole tokens only.

    `keep` names strings the harness made (the worktree, the run directory, the official
    reference path): they are never altered, whatever they contain.
    """

    def __init__(self, env: dict[str, str] | None = None, extra: dict[str, str] | None = None,
                 keep: Iterable[str] = ()) -> None:
        named = held_secrets(env)
        named.update(extra or {})
        # Longest first so a secret containing another is replaced whole.
        self.values = sorted(named.items(), key=lambda kv: -len(kv[1]))
        self._value_patterns = [(name, re.compile(re.escape(value) if _generated(value) else _START + re.escape(value) + _END))
                                for name, value in self.values]
        self.keep = sorted({k for k in keep if k}, key=len, reverse=True)
        self._keep_pattern = re.compile("|".join(re.escape(k) for k in self.keep)) if self.keep else None

    def _gap(self, s: str) -> str:
        for name, pattern in self._value_patterns:
            if pattern.search(s):
                s = pattern.sub(f"[REDACTED:{name}]", s)
        spans = sorted({m.span() for _kind, m in key_shaped(s)}, reverse=True)
        for start, end in spans:
            s = s[:start] + "[REDACTED]" + s[end:]
        return s

    def text(self, s: str) -> str:
        if self._keep_pattern is None:
            return self._gap(s)
        out, last = [], 0
        for match in self._keep_pattern.finditer(s):
            out += [self._gap(s[last:match.start()]), match.group(0)]
            last = match.end()
        out.append(self._gap(s[last:]))
        return "".join(out)

    def __call__(self, obj: Any) -> Any:
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {self(k) if isinstance(k, str) else k: self(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [self(v) for v in obj]
        return obj
