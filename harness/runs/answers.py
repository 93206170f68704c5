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


def human_interrupt(run_id: str, hatch_id: str, asked_by: str | None, hatch: dict[str, Any]) -> dict[str, Any]:
    """The pause payload: LangGraph's human-interrupt shape (action_request, config,
    description), which inbox-style UIs show and answer, plus the harness's own keys."""
    labels = option_labels(hatch)
    evidence = (hatch.get("state_snapshot") or {}).get("evidence", "")
    lines = [f"**{hatch.get('question', '')}**", ""]
    lines += [f"{i}. {label}" for i, label in enumerate(labels, start=1)]
    lines += ["", f"Recommended: {hatch.get('recommended_option')}", f"Safe default: {hatch.get('safe_default')}",
              f"Evidence: {evidence}", "",
              "Accept takes the recommended option; respond with an option number or a text answer."]
    return {
        "action_request": {"action": f"escape_hatch:{hatch.get('decision_type')}", "args": {
            "run_id": run_id, "hatch_id": hatch_id, "question": hatch.get("question"), "options": labels,
            "recommended_option": hatch.get("recommended_option"), "safe_default": hatch.get("safe_default"),
            "evidence": evidence}},
        # A person must decide: nothing to ignore, and the question itself is not editable.
        "config": {"allow_respond": True, "allow_accept": True, "allow_edit": False, "allow_ignore": False},
        "description": "\n".join(lines),
        "run_id": run_id, "hatch_id": hatch_id, "asked_by": asked_by, "hatch": hatch,
    }


def _from_human_response(hatch: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    """A LangGraph human response: `accept` takes the recommended option, `response` carries
    an option number or a text answer."""
    kind, args = response.get("type"), response.get("args")
    if kind == "accept":
        labels = option_labels(hatch)
        recommended = str(hatch.get("recommended_option") or "").strip().lower()
        index = next((i for i, label in enumerate(labels) if recommended and label.lower().startswith(recommended)), None)
        if index is None:
            raise AnswerError("accept needs a question with a recommended option; respond instead")
        return validate_answer(hatch, option=index + 1)
    if kind == "response":
        text = str(args if args is not None else "").strip()
        if text.isdigit() and option_labels(hatch):
            return validate_answer(hatch, option=int(text))
        return validate_answer(hatch, text=text)
    raise AnswerError(f"a {kind!r} response is not allowed here: accept, or respond with an option or text")


def coerce_answer(hatch: dict[str, Any], raw: Any) -> dict[str, Any]:
    """Turn what `Command(resume=...)` carried (dict, int, str, or a LangGraph human response,
    alone or in a one-item list) into a validated answer."""
    if isinstance(raw, list) and len(raw) == 1:
        raw = raw[0]
    if isinstance(raw, dict) and "type" in raw:
        return _from_human_response(hatch, raw)
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
