"""Checking a person's answer to an escape hatch before the run goes on."""

from __future__ import annotations

from typing import Any


class AnswerError(ValueError):
    """The answer does not fit the question (option out of range, empty text, both or neither)."""


def option_labels(hatch: dict[str, Any]) -> list[str]:
    """The hatch's options as one line each, whatever shape the contract model gives them."""
    labels = []
    for opt in hatch.get("options") or []:
        if isinstance(opt, dict):
            parts = [str(v) for v in opt.values() if v not in (None, "")]
            labels.append(" - ".join(parts))
        else:
            labels.append(str(opt))
    return labels


def validate_answer(hatch: dict[str, Any], option: int | None = None, text: str | None = None) -> dict[str, Any]:
    """Return {"option": n | None, "text": str}; raise AnswerError naming the problem."""
    labels = option_labels(hatch)
    if option is not None and text is not None:
        raise AnswerError("give either an option number or a text answer, not both")
    if option is None and text is None:
        raise AnswerError("an answer is needed: an option number or a text")
    if option is not None:
        if isinstance(option, bool) or not isinstance(option, int):
            raise AnswerError(f"option must be a whole number, not {option!r}")
        if not labels:
            raise AnswerError("this question has no numbered options; answer with text")
        if not 1 <= option <= len(labels):
            raise AnswerError(f"option {option} is out of range: choose 1 to {len(labels)}")
        return {"option": option, "text": labels[option - 1]}
    if not str(text).strip():
        raise AnswerError("the text answer is empty")
    return {"option": None, "text": str(text).strip()}


def coerce_answer(hatch: dict[str, Any], raw: Any) -> dict[str, Any]:
    """Turn what `Command(resume=...)` carried (dict, int or str) into a validated answer."""
    if isinstance(raw, dict):
        # A validated answer carries the option's text too; the option number decides.
        if raw.get("option") is not None:
            return validate_answer(hatch, option=raw["option"])
        return validate_answer(hatch, text=raw.get("text"))
    if isinstance(raw, int) and not isinstance(raw, bool):
        return validate_answer(hatch, option=raw)
    if isinstance(raw, str):
        return validate_answer(hatch, text=raw)
    raise AnswerError(f"unreadable answer: {raw!r}")


def answer_for_agent(answer: dict[str, Any]) -> str:
    """How the answer reads as the result of the agent's raise_escape_hatch call."""
    if answer.get("option"):
        return f"The person chose option {answer['option']}: {answer['text']}"
    return f"The person answered: {answer['text']}"
