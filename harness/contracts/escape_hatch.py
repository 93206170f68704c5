"""The escape hatch: a pause-and-ask block for a decision only a person can make.

Rules enforced by `EscapeHatch` (from `contracts/escape_hatch.md` and `shared/common_rules.md`):

- `question` is one precise question: it ends with `?` and asks only one (a single `?`).
- `options` hold one recommended option plus at most three alternatives (1 to 4 entries), each
  with its consequence; `recommended_option` must be one of them: equal to an option, or equal to
  an option's leading text before its consequence (`Use X` matches `Use X: consequence ...`),
  case-insensitively.
- `needs_user_input=no` cannot be `blocked_until_answered=yes`.
- No raw secret values anywhere; an `auth` question names the env var to set (HF_TOKEN,
  HUGGINGFACE_HUB_TOKEN or HF_API_KEY), never asks anyone to paste or share a token, and names
  no other secret variable.
"""

from __future__ import annotations

import re

from pydantic import Field, model_validator

from harness.contracts.common import ContractModel, DecisionType, Problem, StrList, TextList, YesNo, raise_if
from harness.contracts.secrets import ALLOWED_TOKEN_ENV_VARS, find_secret
from harness.contracts.textform import render_text

# "paste your token", "send me a key", "provide the value of HF_TOKEN": asking for the secret itself.
_ASK_FOR_VALUE = re.compile(
    r"\b(paste|enter|type|provide|share|send|give|post)\s+(me\s+|us\s+)?(your|a|the value of)\b[^.?!]{0,40}?"
    r"(token|key|secret|password|credential)s?\b",
    re.IGNORECASE,
)
_SECRET_VAR = re.compile(r"\b[A-Z][A-Z0-9_]*(TOKEN|API_KEY|SECRET|PASSWORD)[A-Z0-9_]*\b")


class StateSnapshot(ContractModel):
    """Where the work stood when the question was raised."""

    phase: str = Field(min_length=1, description="Phase or skill mode.")
    files_changed: StrList = Field(description="Paths changed so far.")
    command_or_test: str = Field(min_length=1, description="Last relevant command, or not_run.")
    evidence: str = Field(min_length=1, description="Short logs, paths, error text, or blocker ID (E###).")


class EscapeHatch(ContractModel):
    """The `escape_hatch` block."""

    needs_user_input: YesNo = Field(description="yes when a person must decide before work continues.")
    decision_type: DecisionType = Field(description="What kind of decision is needed.")
    question: str = Field(min_length=1, description="One precise question.")
    recommended_option: str = Field(min_length=1, description="The safe recommended choice; one of options.")
    options: TextList = Field(min_length=1, max_length=4, description="Each option with its consequence: one recommendation plus at most three alternatives.")
    safe_default: str = Field(min_length=1, description="What the agent will do after approval, or none.")
    blocked_until_answered: YesNo = Field(description="yes when no further work can happen before the answer.")
    state_snapshot: StateSnapshot = Field(description="Where the work stood.")

    @model_validator(mode="after")
    def _rules(self) -> EscapeHatch:
        problems: list[Problem] = []
        if not self.question.endswith("?") or self.question.count("?") != 1:
            problems.append(Problem("question", "must be exactly one question ending with `?`"))
        if self.recommended_index() is None:
            problems.append(Problem("recommended_option", "must be one of options (the option itself or its text before the consequence)"))
        if self.needs_user_input == "no" and self.blocked_until_answered == "yes":
            problems.append(Problem("blocked_until_answered", "cannot be yes when needs_user_input is no"))
        problems += self._secret_problems()
        if self.decision_type == "auth":
            problems += self._auth_problems()
        raise_if(problems)
        return self

    def recommended_index(self) -> int | None:
        """Index in `options` of the recommended option, or None when it matches none."""
        wanted = self.recommended_option.strip().lower()
        for index, option in enumerate(self.options):
            text = option.strip().lower()
            if text == wanted or (text.startswith(wanted) and not text[len(wanted)].isalnum()):
                return index
        return None

    def _texts(self) -> list[tuple[str, str]]:
        pairs = [("question", self.question), ("recommended_option", self.recommended_option), ("safe_default", self.safe_default)]
        pairs += [(f"options[{i}]", o) for i, o in enumerate(self.options)]
        snap = self.state_snapshot
        pairs += [("state_snapshot.phase", snap.phase), ("state_snapshot.command_or_test", snap.command_or_test), ("state_snapshot.evidence", snap.evidence)]
        pairs += [(f"state_snapshot.files_changed[{i}]", f) for i, f in enumerate(snap.files_changed)]
        return pairs

    def _secret_problems(self) -> list[Problem]:
        return [Problem(field, message) for field, value in self._texts() if (message := find_secret(value))]

    def _auth_problems(self) -> list[Problem]:
        problems = []
        asked = " ".join([self.question, *self.options])
        if not any(name in asked for name in ALLOWED_TOKEN_ENV_VARS):
            problems.append(Problem("question", f"an auth question names the env var to set: {', '.join(ALLOWED_TOKEN_ENV_VARS)}"))
        for field, value in self._texts():
            if _ASK_FOR_VALUE.search(value):
                problems.append(Problem(field, "must not ask for a token value; ask for the env var to be set"))
            others = {m.group(0) for m in _SECRET_VAR.finditer(value)} - set(ALLOWED_TOKEN_ENV_VARS)
            if others:
                problems.append(Problem(field, f"names {', '.join(sorted(others))}; auth uses only {', '.join(ALLOWED_TOKEN_ENV_VARS)}"))
        return problems

    def to_text(self) -> str:
        """The contract's text form, starting with `escape_hatch:`."""
        return render_text({"escape_hatch": self.model_dump()})
