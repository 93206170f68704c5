"""The escape-hatch pause in LangGraph's human-interrupt shape, and the responses it accepts."""

from __future__ import annotations

import pytest

from harness.runs.answers import AnswerError, coerce_answer, human_interrupt

HATCH = {
    "needs_user_input": "yes", "decision_type": "scope", "blocked_until_answered": "yes",
    "question": "Drop the unused tiled decode variant from this port?",
    "options": ["Keep the variant out: port only the tested path", "Port the variant too"],
    "recommended_option": "Keep the variant out", "safe_default": "port only the tested path",
    "state_snapshot": {"phase": "implement", "files_changed": [], "command_or_test": "not_run",
                       "evidence": "tinyvid_official/vae.py defines two decode paths"},
}


def test_payload_has_the_human_interrupt_keys_and_the_harness_keys():
    payload = human_interrupt("run1", "E001", "implement", HATCH)
    assert payload["action_request"]["action"] == "escape_hatch:scope"
    assert payload["action_request"]["args"]["options"] == HATCH["options"]
    assert payload["config"] == {"allow_respond": True, "allow_accept": True, "allow_edit": False, "allow_ignore": False}
    assert "two decode paths" in payload["description"] and "1. Keep the variant out" in payload["description"]
    assert (payload["hatch_id"], payload["asked_by"], payload["hatch"]) == ("E001", "implement", HATCH)


@pytest.mark.parametrize("raw, expected", [
    ({"type": "accept", "args": None}, {"option": 1, "text": HATCH["options"][0]}),
    ([{"type": "accept", "args": None}], {"option": 1, "text": HATCH["options"][0]}),
    ({"type": "response", "args": "2"}, {"option": 2, "text": HATCH["options"][1]}),
    ({"type": "response", "args": "port it, but behind a flag"}, {"option": None, "text": "port it, but behind a flag"}),
    ({"option": 2, "text": "ignored"}, {"option": 2, "text": HATCH["options"][1]}),  # what `harness answer` sends
])
def test_responses_become_validated_answers(raw, expected):
    assert coerce_answer(HATCH, raw) == expected


@pytest.mark.parametrize("raw, message", [
    ({"type": "ignore", "args": None}, "not allowed"),  # a person must decide: no skipping
    ({"type": "edit", "args": {"action": "escape_hatch:scope", "args": {}}}, "not allowed"),
    ({"type": "response", "args": "7"}, "out of range"),
    ({"type": "response", "args": "  "}, "empty"),
])
def test_responses_the_question_does_not_allow_are_refused(raw, message):
    with pytest.raises(AnswerError, match=message):
        coerce_answer(HATCH, raw)
