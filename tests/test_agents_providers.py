"""The real Anthropic and OpenAI SDKs against local wire-format servers, driven by run_agent."""

from __future__ import annotations

import time

import pytest

from harness.agents.loop import Budget, run_agent
from harness.agents.models import ModelError, RetryPolicy, UnknownPriceError, make_model
from harness.agents.models.base import UserMessage
from harness.agents.models.pricing import cost_usd, parse_price, price_for
from harness.agents.models.retry import retry_after_seconds
from harness.agents.models.scripted import ScriptedModel, ScriptError
from harness.agents.prompts import system_for
from harness.agents.tools import tools_for_role
from harness.agents.trajectory import Trajectory
from tests.fakes import anthropic_server as A
from tests.fakes import openai_server as O
from tests.fakes.workspace import make_setup

FAST = dict(base_delay_s=0.01, max_delay_s=0.05)
SPECS = [t.spec for t in tools_for_role("planner")]


@pytest.fixture
def setup(tmp_path):
    s = make_setup(tmp_path, role="planner")
    yield s
    s.executor.close()


def anthropic(url, **kw):
    kw.setdefault("retry", RetryPolicy(**FAST))
    return make_model("anthropic:claude-sonnet-4-5", base_url=url, api_key="test-key", **kw)


def openai(url, **kw):
    kw.setdefault("retry", RetryPolicy(**FAST))
    return make_model("openai:gpt-4.1", base_url=url + "/v1", api_key="test-key", **kw)


def one_call(model):
    return model.complete("planner", ["role prompt", "skill"], [UserMessage(text="task")], SPECS)


# --- Anthropic ------------------------------------------------------------------------------


def test_anthropic_tool_use_loop_with_caching(setup):
    with A.server() as srv:
        srv.add(
            A.message("Reading the readme.", [("read_file", {"path": "README.md"})], input_tokens=1200,
                      output_tokens=30, cache_write=3000),
            A.message(None, [("grep", {"pattern": "scale", "path": "fastvideo"}),
                             ("record_concern", {"text": "check scaling factor"})],
                      input_tokens=200, output_tokens=40, cache_read=3000),
            A.message(None, [("finish", {"summary": "reuse base.py", "plan": {"reuse_or_port": "reuse"}})],
                      input_tokens=300, output_tokens=50, cache_read=3200),
        )
        model = anthropic(srv.url)
        result = run_agent("planner", model, setup.ctx, system=system_for("planner", "SKILL", "PACKET"),
                           task="Plan the demo VAE.", budget=Budget(max_turns=10),
                           trajectory=Trajectory(setup.run_dir / "trajectory.jsonl"))
    assert result.reason == "finished", result.detail
    assert result.finish_args == {"summary": "reuse base.py", "plan": {"reuse_or_port": "reuse"}}
    assert result.concerns == ["check scaling factor"]
    assert len(srv.requests) == 3 and srv.requests[0].path == "/v1/messages"
    # usage and cache counts parsed and summed
    u = result.usage
    assert (u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens) == (1700, 120, 6200, 3000)
    assert model.usage_by_role["planner"] == u
    assert result.cost_usd == pytest.approx((1700 * 3 + 120 * 15 + 6200 * 0.3 + 3000 * 3.75) / 1e6)
    # cache_control markers on the stable prefix
    body = srv.requests[2].body
    marked = {"type": "ephemeral"}
    assert body["tools"][-1]["cache_control"] == marked
    assert all("cache_control" not in t for t in body["tools"][:-1])
    assert body["system"][-1]["cache_control"] == marked and "PACKET" in body["system"][-1]["text"]
    first = body["messages"][0]["content"][0]
    assert first["cache_control"] == marked and first["text"].startswith("Plan the demo VAE.\n\nYour budget for this step")
    assert body["messages"][-1]["content"][-1]["cache_control"] == marked
    # the conversation went back in the Messages format: tool_use, then tool_result blocks
    second = srv.requests[1].body["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "user"]
    use = second[1]["content"][1]
    assert use["type"] == "tool_use" and use["name"] == "read_file" and use["input"] == {"path": "README.md"}
    result_block = second[2]["content"][0]
    assert result_block["type"] == "tool_result" and result_block["tool_use_id"] == use["id"]
    assert "example checkout" in result_block["content"]
    third = body["messages"][-1]["content"]
    assert [b["type"] for b in third] == ["tool_result", "tool_result"]


def test_anthropic_429_waits_for_retry_after(setup):
    with A.server() as srv:
        srv.add(A.error(429, "rate_limit_error", "slow down", {"retry-after": "1"}), A.message("ok"))
        turn = one_call(anthropic(srv.url))
    assert turn.text == "ok" and len(srv.requests) == 2
    assert srv.requests[1].at - srv.requests[0].at >= 1.0


def test_anthropic_500_then_success_and_overloaded(setup):
    with A.server() as srv:
        srv.add(A.error(500, "api_error", "boom"), A.error(529, "overloaded_error", "busy"), A.message("fine"))
        turn = one_call(anthropic(srv.url))
    assert turn.text == "fine" and len(srv.requests) == 3


def test_anthropic_timeout_then_success(setup):
    with A.server() as srv:
        srv.add(A.error(200, "x", "never seen", delay_s=2.0), A.message("after timeout"))
        t0 = time.monotonic()
        turn = one_call(anthropic(srv.url, timeout_s=0.4))
    assert turn.text == "after timeout" and len(srv.requests) == 2
    assert time.monotonic() - t0 < 2.0


def test_anthropic_401_is_a_clear_error_without_retries(setup):
    with A.server() as srv:
        srv.add(A.error(401, "authentication_error", "invalid x-api-key"))
        with pytest.raises(ModelError) as err:
            one_call(anthropic(srv.url))
    assert str(err.value) == "anthropic: HTTP 401: invalid x-api-key"
    assert err.value.status == 401 and len(srv.requests) == 1


def test_anthropic_400_ends_the_loop_with_model_error(setup):
    with A.server() as srv:
        srv.add(A.error(400, "invalid_request_error", "messages: roles must alternate"))
        result = run_agent("planner", anthropic(srv.url), setup.ctx, system="s", task="t")
    assert result.reason == "model_error"
    assert result.detail == "anthropic: HTTP 400: messages: roles must alternate"
    assert len(srv.requests) == 1


def test_retries_are_bounded(setup):
    with A.server() as srv:  # the server answers 500 to everything
        with pytest.raises(ModelError, match="giving up after 3 attempts: HTTP 500"):
            one_call(anthropic(srv.url, retry=RetryPolicy(max_attempts=3, **FAST)))
    assert len(srv.requests) == 3  # the SDK itself did not retry


# --- OpenAI ---------------------------------------------------------------------------------


def test_openai_tool_calls_malformed_arguments_and_cached_tokens(setup):
    with O.server() as srv:
        srv.add(
            O.completion("Let me read.", [("read_file", '{"path": "README.md"')], prompt_tokens=1000,
                         completion_tokens=20),
            O.completion(None, [("read_file", {"path": "README.md"})], prompt_tokens=1100,
                         completion_tokens=20, cached_tokens=1024),
            O.completion(None, [("finish", {"summary": "done"})], prompt_tokens=1200, completion_tokens=10,
                         cached_tokens=1024),
        )
        model = openai(srv.url)
        result = run_agent("planner", model, setup.ctx, system=["role", "skill"], task="Plan it.")
    assert result.reason == "finished" and len(srv.requests) == 3
    assert srv.requests[0].path == "/v1/chat/completions"
    u = result.usage
    assert (u.input_tokens, u.output_tokens, u.cache_read_tokens) == (1000 + 76 + 176, 50, 2048)
    assert result.cost_usd == pytest.approx(((1000 + 76 + 176) * 2 + 50 * 8 + 2048 * 0.5) / 1e6)
    second = srv.requests[1].body["messages"]
    assert second[0] == {"role": "system", "content": "role\n\nskill"}
    sent_call = second[2]["tool_calls"][0]
    assert sent_call["function"]["arguments"] == '{"path": "README.md"'  # the raw string went back as sent
    assert second[3]["role"] == "tool" and second[3]["tool_call_id"] == sent_call["id"]
    assert "not a JSON object" in second[3]["content"]
    third = srv.requests[2].body["messages"]
    assert "example checkout" in third[-1]["content"]
    assert srv.requests[0].body["tools"][0]["type"] == "function"


def test_openai_429_retry_after_then_500_then_timeout(setup):
    with O.server() as srv:
        srv.add(
            O.error(429, "Rate limit reached", "rate_limit_exceeded", {"retry-after": "1"}),
            O.error(500, "The server had an error"),
            O.error(200, "never seen", delay_s=2.0),
            O.completion("finally"),
        )
        turn = one_call(openai(srv.url, timeout_s=0.4))
    assert turn.text == "finally" and len(srv.requests) == 4
    assert srv.requests[1].at - srv.requests[0].at >= 1.0


def test_openai_401_and_base_url_from_env(setup, monkeypatch):
    with O.server() as srv:
        srv.add(O.error(401, "Incorrect API key provided: test-key.", "invalid_api_key"))
        monkeypatch.setenv("OPENAI_BASE_URL", srv.url + "/v1")
        model = make_model("openai:gpt-4.1", api_key="test-key", retry=RetryPolicy(**FAST))
        with pytest.raises(ModelError) as err:
            one_call(model)
    assert str(err.value) == "openai: HTTP 401: Incorrect API key provided: test-key."
    assert len(srv.requests) == 1


# --- retry-after parsing, pricing, specs ------------------------------------------------------


def test_retry_after_forms():
    assert retry_after_seconds({"retry-after": "3"}) == 3.0
    assert retry_after_seconds({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    from email.utils import formatdate

    in_5s = retry_after_seconds({"retry-after": formatdate(time.time() + 5, usegmt=True)})
    assert 3.0 <= in_5s <= 5.0
    assert retry_after_seconds({}) is None and retry_after_seconds(None) is None


def test_too_long_retry_after_gives_up_instead_of_hanging(setup):
    with A.server() as srv:
        srv.add(A.error(429, "rate_limit_error", "daily cap", {"retry-after": "86400"}))
        with pytest.raises(ModelError, match="retry after 86400s"):
            one_call(anthropic(srv.url))


def test_prices():
    assert price_for("claude-sonnet-4-5-20250929").input == 3.0
    assert price_for("gpt-4.1-mini-2025-04-14").input == 0.4  # longest family prefix wins
    assert price_for("gpt-4.1").input == 2.0
    with pytest.raises(UnknownPriceError, match="--price"):
        price_for("qwen2.5-coder-32b")
    with pytest.raises(UnknownPriceError):
        make_model("openai:qwen2.5-coder-32b", base_url="http://127.0.0.1:9/v1", api_key="x")
    local = make_model("openai:qwen2.5-coder-32b", base_url="http://127.0.0.1:9/v1", api_key="x", price="0,0")
    assert local.cost_usd(A_USAGE) == 0.0
    assert cost_usd("claude-opus-4-1", A_USAGE) == pytest.approx((1e6 * 15 + 1e5 * 75 + 2e6 * 1.5 + 1e5 * 18.75) / 1e6)
    assert parse_price("1,2").cache_read == 1.0
    with pytest.raises(ValueError, match="2 or 4"):
        parse_price("1,2,3")
    with pytest.raises(ValueError, match="expected numbers"):
        parse_price("cheap")


from harness.agents.models.base import Usage  # noqa: E402

A_USAGE = Usage(input_tokens=1_000_000, output_tokens=100_000, cache_read_tokens=2_000_000, cache_write_tokens=100_000)


def test_model_specs(tmp_path):
    with pytest.raises(ValueError, match="unknown model spec 'gemini:x'"):
        make_model("gemini:x")
    script = tmp_path / "s.yaml"
    script.write_text("planner:\n  - tool_calls: [{name: finish, args: {summary: ok}}]\n")
    assert isinstance(make_model(f"scripted:{script}"), ScriptedModel)
    assert make_model(f"scripted:{script}").cost_usd(A_USAGE) == 0
    with pytest.raises(ScriptError, match="not found"):
        make_model(f"scripted:{tmp_path / 'missing.yaml'}")
    with pytest.raises(ModelError, match="not found"):
        make_model(f"replay:{tmp_path / 'missing.jsonl'}")
    assert make_model("human").name == "human"


def test_script_format_errors(tmp_path):
    with pytest.raises(ScriptError, match="unknown role 'planer'"):
        ScriptedModel.from_dict({"planer": []})
    with pytest.raises(ScriptError, match=r"implementer\[1\]: tool_calls.0.name: Field required"):
        ScriptedModel.from_dict({"implementer": [{"text": "a"}, {"tool_calls": [{"args": {}}]}]})
    with pytest.raises(ScriptError, match="expected a list"):
        ScriptedModel.from_dict({"debugger": {"text": "a"}})
    bad = tmp_path / "bad.yaml"
    bad.write_text("planner: [\n")
    with pytest.raises(ScriptError, match="not valid YAML"):
        ScriptedModel.from_file(bad)
    js = tmp_path / "s.json"
    js.write_text('{"debugger": [{"tool_calls": [{"name": "read_file", "args": "{oops"}]}]}')
    model = ScriptedModel.from_file(js)
    turn = model.complete("debugger", "s", [UserMessage(text="t")], [])
    assert turn.tool_calls[0].args == "{oops"


def test_openai_compatible_server_quirks(setup):
    # vLLM/Ollama-style: empty tool-call ids, repeated ids, no usage details.
    reply = O.completion(None, [("list_dir", {"path": "."}), ("list_dir", {"path": "fastvideo"}),
                                ("read_file", {"path": "README.md"})])
    calls = reply.body["choices"][0]["message"]["tool_calls"]
    calls[0]["id"], calls[1]["id"], calls[2]["id"] = "", "dup", "dup"
    with O.server() as srv:
        srv.add(reply)
        turn = one_call(openai(srv.url))
    ids = [c.id for c in turn.tool_calls]
    assert len(set(ids)) == 3 and all(ids) and ids[1] == "dup"
    assert turn.usage.cache_read_tokens == 0 and turn.usage.input_tokens == 100


def test_a_response_that_does_not_parse_is_retried_then_a_resumable_model_error(setup):
    from tests.fakes.server import Reply

    unreadable = Reply(200, {"id": "msg_x", "type": "message", "content": None})
    with A.server() as srv:
        srv.add(unreadable, unreadable)
        with pytest.raises(ModelError, match="anthropic: giving up after 2 attempts: unusable reply: "
                                             "unexpected response shape") as err:
            one_call(anthropic(srv.url, retry=RetryPolicy(max_attempts=2, **FAST)))
    assert err.value.resumable
    empty = Reply(200, {"id": "c", "object": "chat.completion", "choices": []})
    with O.server() as srv:
        srv.add(empty, empty)
        with pytest.raises(ModelError, match="openai: giving up after 2 attempts: unusable reply: response has no choices"):
            one_call(openai(srv.url, retry=RetryPolicy(max_attempts=2, **FAST)))


def test_missing_api_key_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ModelError, match="anthropic: no API key; set ANTHROPIC_API_KEY"):
        make_model("anthropic:claude-sonnet-4-5")
    with pytest.raises(ModelError, match="openai: no API key; set OPENAI_API_KEY"):
        make_model("openai:gpt-4.1")
    # a local OpenAI-compatible server needs no key
    make_model("openai:gpt-4.1", base_url="http://127.0.0.1:9/v1")


def test_connection_refused_is_retried_then_reported():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    model = openai(f"http://127.0.0.1:{port}", retry=RetryPolicy(max_attempts=3, **FAST))
    with pytest.raises(ModelError, match="giving up after 3 attempts: APIConnectionError"):
        one_call(model)
