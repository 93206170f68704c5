"""Routing rules of the skill loop, as pure functions of the state."""

from __future__ import annotations

import pytest

from harness.graph import routing
from harness.graph.state import merge_dicts
from harness.runs.answers import AnswerError, coerce_answer, validate_answer


def state(**kw):
    base = {
        "config": {"max_debug_rounds": 2, "on_budget": "ask"},
        "packet": {"mode": "parity-debug"},
        "debug_rounds": 0,
    }
    base.update(kw)
    return base


def parity(status):
    return {"status": status, "summary_line": status}


def test_non_skip_pass_goes_to_finalize():
    assert routing.after_parity(state(last_parity=parity("non_skip_pass"))) == "finalize"


def test_pass_with_blocking_guard_is_not_finalized_while_budget_left():
    s = state(last_parity=parity("non_skip_pass"),
              guard_findings=[{"name": "parity_test_weakened", "blocking": True}])
    assert routing.after_parity(s) == "debug"


def test_pass_with_only_warning_findings_finalizes():
    s = state(last_parity=parity("non_skip_pass"), guard_findings=[{"name": "x", "blocking": False}])
    assert routing.after_parity(s) == "finalize"


@pytest.mark.parametrize("status", ["debug_red", "scaffold_skip"])
def test_red_or_skip_with_budget_left_debugs(status):
    assert routing.after_parity(state(last_parity=parity(status), debug_rounds=1)) == "debug"


def test_prototype_with_evidence_finalizes_even_when_skipping():
    s = state(packet={"mode": "prototype"}, last_parity=parity("scaffold_skip"), prototype={"complete": True})
    assert routing.after_parity(s) == "finalize"
    s["prototype"] = {"complete": False}
    assert routing.after_parity(s) == "debug"


def test_conversion_retry_goes_to_finalize_without_debugging():
    s = state(last_parity=parity("debug_red"), retry_request={"failing_keys": ["a"]})
    assert routing.after_parity(s) == "finalize"
    assert not routing.needs_budget_question(s)


def test_budget_spent_blocked_mode_finalizes():
    s = state(last_parity=parity("debug_red"), debug_rounds=2, config={"max_debug_rounds": 2, "on_budget": "blocked"})
    assert not routing.budget_left(s)
    assert not routing.needs_budget_question(s)
    assert routing.after_parity(s) == "finalize"


def test_budget_spent_ask_mode_asks_a_cost_question():
    s = state(last_parity=parity("debug_red"), debug_rounds=2)
    assert routing.needs_budget_question(s)
    s["pending_hatch"] = {"decision_type": "cost"}
    assert routing.after_parity(s) == "ask_human"


def test_money_or_time_spent_counts_as_budget_spent():
    s = state(last_parity=parity("debug_red"), debug_rounds=0, budget_spent="max_usd $1.00 reached")
    assert not routing.budget_left(s)
    assert routing.needs_budget_question(s)


def test_extension_gives_more_rounds_and_stop_ends():
    s = state(last_parity=parity("debug_red"), debug_rounds=2, extra_debug_rounds=2, asked_by="budget")
    assert routing.budget_left(s)
    assert routing.after_ask_human(s) == "debug"
    s.update(budget_decision="stop")
    assert routing.after_ask_human(s) == "finalize"
    assert routing.after_parity(s) == "finalize"


def test_agent_nodes_route_to_ask_human_and_back():
    after_implement = routing.after_agent("run_parity")
    assert after_implement(state(pending_hatch={"q": 1})) == "ask_human"
    assert after_implement(state()) == "run_parity"
    assert after_implement(state(agent_stop="implementer stopped: model_error")) == "finalize"
    for node in ("plan", "implement", "debug"):
        assert routing.after_ask_human(state(asked_by=node, hatch_answer={"text": "x"})) == node


def test_invalid_answer_asks_again():
    assert routing.after_ask_human(state(pending_hatch={"q": 1}, asked_by="plan")) == "ask_human"


def test_validate_packet_routing():
    assert routing.after_validate({"problems": ["packet: bad"]}) == routing.END
    assert routing.after_validate({"problems": []}) == "prepare_workspace"


HATCH = {"options": ["Use A: faster", "Use B: slower"], "recommended_option": "Use A"}


def test_answer_validation():
    assert validate_answer(HATCH, option=2) == {"option": 2, "text": "Use B: slower"}
    assert validate_answer(HATCH, text="  do C  ") == {"option": None, "text": "do C"}
    for kwargs, message in (
        ({"option": 3}, "out of range: choose 1 to 2"),
        ({"option": 0}, "out of range"),
        ({"text": "   "}, "empty"),
        ({}, "an answer is needed"),
        ({"option": 1, "text": "x"}, "not both"),
    ):
        with pytest.raises(AnswerError, match=message):
            validate_answer(HATCH, **kwargs)
    assert coerce_answer(HATCH, {"option": 1, "text": None})["option"] == 1
    with pytest.raises(AnswerError):
        coerce_answer(HATCH, {"option": 9, "text": None})


def test_usage_reducer_adds_per_node():
    merged = merge_dicts({"debug": {"cost_usd": 1.0, "turns": 2}}, {"debug": {"cost_usd": 0.5, "turns": 1}, "plan": {"turns": 3}})
    assert merged == {"debug": {"cost_usd": 1.5, "turns": 3}, "plan": {"turns": 3}}


def test_a_validated_answer_passes_validation_again():
    answer = validate_answer(HATCH, option=1)
    assert coerce_answer(HATCH, answer) == answer
    assert coerce_answer(HATCH, validate_answer(HATCH, text="free")) == {"option": None, "text": "free"}
