"""Model-call faults against the real OpenAI and Anthropic SDKs and loopback servers that fail
on command: what is tried again (one retry owner, tenacity), when it gives up (the window, the
model timeout), what a give-up says, and which failures are resumable. Windows are a fraction
of a second here, set the way a user sets them (the environment)."""

from __future__ import annotations

import time

import pytest

from harness.agents.loop import Budget, run_agent
from harness.agents.models import ModelError, RetryPolicy, make_model
from harness.agents.models.base import UserMessage
from harness.agents.prompts import system_for
from harness.agents.tools import tools_for_role
from harness.run_config.config import RunConfig, config_problems
from tests.fakes import anthropic_server as A
from tests.fakes import openai_server as O
from tests.fakes.server import Faults, Reply
from tests.fakes.workspace import make_setup

SPECS = [t.spec for t in tools_for_role("implementer")]
QUICK = dict(base_delay_s=0.01, max_delay_s=0.05)


@pytest.fixture
def setup(tmp_path):
    s = make_setup(tmp_path)
    yield s
    s.executor.close()


def openai(url, **kw):
    return make_model("openai:gpt-4.1", base_url=url + "/v1", api_key="test-key", **kw)


def anthropic(url, **kw):
    return make_model("anthropic:claude-sonnet-4-5", base_url=url, api_key="test-key", **kw)


def one_call(model):
    return model.complete("implementer", "role prompt", [UserMessage(text="task")], SPECS)


def test_the_window_comes_from_the_environment_and_a_bad_value_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_RETRY_WINDOW_S", "0.3")
    monkeypatch.setenv("HARNESS_RETRY_MAX_WAIT_S", "0.05")
    policy = RetryPolicy()
    assert (policy.window_s, policy.max_delay_s) == (0.3, 0.05)
    assert "HARNESS_RETRY_WINDOW_S" in policy.describe() and "0.3s" in policy.describe()
    monkeypatch.setenv("HARNESS_RETRY_WINDOW_S", "soon")
    with pytest.raises(ValueError, match="HARNESS_RETRY_WINDOW_S='soon' is not a number"):
        RetryPolicy()
    problems = config_problems(RunConfig(packet=tmp_path, repo=tmp_path))
    assert any(p.startswith("retry policy: HARNESS_RETRY_WINDOW_S") for p in problems)


@pytest.mark.parametrize("fault", ["503", "empty_choices", "truncated", "not_json"])
def test_openai_faults_are_retried_through_the_window_then_resumable(monkeypatch, fault):
    monkeypatch.setenv("HARNESS_RETRY_WINDOW_S", "0.6")
    monkeypatch.setenv("HARNESS_RETRY_MAX_WAIT_S", "0.1")
    reply = {"503": O.error(503, "upstream overloaded"), "empty_choices": O.empty_choices(),
             "truncated": O.truncated(), "not_json": Reply(200, raw=b"<html>502 Bad Gateway</html>")}[fault]
    faults = Faults().arm(reply)
    with O.server(faults=faults) as srv:
        srv.add(O.completion("back again"))
        model = openai(srv.url)
        t0 = time.monotonic()
        with pytest.raises(ModelError) as err:
            one_call(model)
        waited = time.monotonic() - t0
        assert err.value.resumable and faults.served >= 2  # tried again, not once
        assert 0.4 < waited < 3.0  # the window, give or take one wait and one try
        message = str(err.value)
        assert message.startswith("openai: giving up after") and "retry policy:" in message
        assert "HARNESS_RETRY_WINDOW_S" in message  # the policy is printed when it gives up
        # The same model recovers once the server does: a fault is never remembered.
        faults.clear()
        assert one_call(model).text == "back again"


@pytest.mark.parametrize("fault", ["empty_choices", "truncated"])
def test_a_passing_fault_is_ridden_out(fault):
    reply = O.empty_choices() if fault == "empty_choices" else O.truncated()
    with O.server() as srv:
        srv.add(reply, reply, O.completion("fine"))
        turn = one_call(openai(srv.url, retry=RetryPolicy(**QUICK)))
    assert turn.text == "fine" and len(srv.requests) == 3


def test_anthropic_unreadable_reply_and_overload_are_retried_then_resumable(monkeypatch):
    monkeypatch.setenv("HARNESS_RETRY_WINDOW_S", "0.5")
    monkeypatch.setenv("HARNESS_RETRY_MAX_WAIT_S", "0.1")
    with A.server() as srv:
        srv.add(Reply(200, {"id": "msg_x", "type": "message", "content": None}), A.message("ok"))
        assert one_call(anthropic(srv.url)).text == "ok" and len(srv.requests) == 2
    faults = Faults().arm(A.error(529, "overloaded_error", "Overloaded"))
    with A.server(faults=faults) as srv:
        with pytest.raises(ModelError, match=r"anthropic: giving up after \d+ attempts: HTTP 529: Overloaded") as err:
            one_call(anthropic(srv.url))
    assert err.value.resumable and faults.served >= 2


def test_a_hanging_server_is_cut_at_the_model_timeout_not_retried_past_the_window(monkeypatch):
    monkeypatch.setenv("HARNESS_RETRY_WINDOW_S", "0.3")
    faults = Faults().arm(Reply(200, O.completion("too late").body, delay_s=5.0))
    with O.server(faults=faults) as srv:
        t0 = time.monotonic()
        with pytest.raises(ModelError, match="APITimeoutError") as err:
            one_call(openai(srv.url, timeout_s=0.8))
        waited = time.monotonic() - t0
    assert err.value.resumable
    assert faults.served == 1 and 0.7 < waited < 2.5  # one try, cut at the timeout


def test_refused_keys_and_long_retry_after_are_resumable_bad_requests_are_not():
    with O.server() as srv:
        srv.add(O.error(401, "Incorrect API key provided", "invalid_api_key"),
                O.error(400, "messages: bad shape"),
                O.error(429, "daily limit", "rate_limit_exceeded", {"retry-after": "86400"}))
        model = openai(srv.url, retry=RetryPolicy(**QUICK))
        with pytest.raises(ModelError) as auth:
            one_call(model)
        with pytest.raises(ModelError) as bad:
            one_call(model)
        with pytest.raises(ModelError, match="retry after 86400s") as capped:
            one_call(model)
    assert len(srv.requests) == 3  # none of the three was tried again
    assert auth.value.resumable and auth.value.status == 401
    assert not bad.value.resumable and str(bad.value) == "openai: HTTP 400: messages: bad shape"
    assert capped.value.resumable


def test_an_outage_ends_the_agent_as_model_unavailable_keeping_its_conversation(setup, monkeypatch):
    monkeypatch.setenv("HARNESS_RETRY_WINDOW_S", "0.3")
    faults = Faults()
    with O.server(faults=faults) as srv:
        srv.add(O.completion(None, [("write_file", {"path": "notes.txt", "content": "step one\n"})]))
        faults.arm(O.error(502, "Bad gateway"), after=1)
        result = run_agent("implementer", openai(srv.url), setup.ctx, system=system_for("implementer", "s", "p"),
                           task="Write notes.", budget=Budget(max_turns=5))
    assert result.reason == "model_unavailable" and "HTTP 502: Bad gateway" in result.detail
    assert (setup.ws.path / "notes.txt").read_text() == "step one\n"  # the step before the fault stands
    assert [m.kind for m in result.messages] == ["user", "assistant", "tool_result"]


def test_an_oversized_reply_is_refused_back_to_the_model_not_a_stop(setup):
    big = "x = 1\n" * 40_000  # ~240 KB: far more than one reply may take in a 16k window
    with O.server() as srv:
        srv.add(O.completion("Writing it all at once.", [("write_file", {"path": "big.py", "content": big})]),
                O.completion(None, [("write_file", {"path": "big.py", "content": "x = 1\n"})]),
                O.completion(None, [("finish", {"summary": "wrote big.py in a small piece"})]))
        model = openai(srv.url, context_window=16_000, retry=RetryPolicy(**QUICK))
        result = run_agent("implementer", model, setup.ctx, system=system_for("implementer", "s", "p"),
                           task="Write big.py.", budget=Budget(max_turns=5))
        second = srv.requests[1].body["messages"]
    assert result.reason == "finished", result.detail
    assert (setup.ws.path / "big.py").read_text() == "x = 1\n"  # the oversized call never ran
    refusal = next(m for m in second if m.get("role") == "tool")
    assert refusal["content"].startswith("not run: your reply was about")
    assert "write a long file in parts" in refusal["content"]
    sent_back = next(m for m in second if m.get("role") == "assistant")["tool_calls"][0]["function"]["arguments"]
    assert len(sent_back) < 1000  # the reply went back in short form, so the next call fits


def test_a_model_that_keeps_replying_oversized_is_unavailable(setup):
    big = {"path": "big.py", "content": "y" * 200_000}
    with O.server() as srv:
        srv.add(*[O.completion(None, [("write_file", big)]) for _ in range(3)])
        model = openai(srv.url, context_window=16_000, retry=RetryPolicy(**QUICK))
        result = run_agent("implementer", model, setup.ctx, system=system_for("implementer", "s", "p"),
                           task="Write big.py.", budget=Budget(max_turns=10))
    assert result.reason == "model_unavailable" and "3 replies in a row too large" in result.detail
    assert not (setup.ws.path / "big.py").exists()
