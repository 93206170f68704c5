"""The one retry policy of the harness: which failures of a model call are tried again, for
how long, how long to wait between tries, and what is said when it gives up.

Nothing else retries: the SDK clients are built with `max_retries=0`, and the graph's nodes
have no retry policy (a fault that outlasts this policy stops the run resumable instead; see
`harness.graph.faults`). Tries are driven by tenacity:

- tried again: HTTP 408/409/429/5xx/529, connection errors and timeouts, and a reply that is
  empty (`choices: []`), cut short or does not parse;
- waits: exponential backoff with full jitter (parallel runs spread out), never shorter than
  the server's `retry-after`;
- until the retry window closes (no try starts after it). One try takes at most the model
  timeout, so a server that hangs is cut there, and with the default window not tried again;
- anything else (400, 404, 422 ...) raises `ModelError` at once, as the server worded it.

A `ModelError` is `resumable` when the cause lies outside the port and may go away: retries
ran out, the server asked to wait longer than `max_retry_after_s`, or the key was refused
(401/403). The run then stops resumable and `harness resume` tries again.

Defaults live here; the environment may change them (tests use a window of a second or two):
`HARNESS_RETRY_WINDOW_S`, `HARNESS_RETRY_MAX_WAIT_S`, `HARNESS_RETRY_MAX_AFTER_S`.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from harness.agents.models.base import ModelError
from harness.sandbox.executors.limits import DEFAULT_MODEL_TIMEOUT_S

T = TypeVar("T")
__all__ = ["DEFAULT_MODEL_TIMEOUT_S", "RetryPolicy", "BadReply", "Transient", "call_with_retries", "read_reply",
           "retry_after_seconds", "server_message"]

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
AUTH_STATUS = frozenset({401, 403})  # a refused key: fixed outside the run, then resumed

DEFAULT_WINDOW_S = 300.0         # keep trying this long after the first try began
DEFAULT_MAX_WAIT_S = 60.0        # the longest wait between two tries
DEFAULT_MAX_RETRY_AFTER_S = 300.0  # a longer `retry-after` (a daily cap) stops at once

ENV = {"window_s": "HARNESS_RETRY_WINDOW_S", "max_delay_s": "HARNESS_RETRY_MAX_WAIT_S",
       "max_retry_after_s": "HARNESS_RETRY_MAX_AFTER_S"}

log = logging.getLogger(__name__)


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number of seconds") from None
    if value <= 0:
        raise ValueError(f"{name}={raw!r} must be positive")
    return value


@dataclass
class RetryPolicy:
    """How long and how often a model call is tried; see the module docstring."""

    window_s: float = field(default_factory=lambda: _env_seconds(ENV["window_s"], DEFAULT_WINDOW_S))
    base_delay_s: float = 1.0
    max_delay_s: float = field(default_factory=lambda: _env_seconds(ENV["max_delay_s"], DEFAULT_MAX_WAIT_S))
    max_retry_after_s: float = field(
        default_factory=lambda: _env_seconds(ENV["max_retry_after_s"], DEFAULT_MAX_RETRY_AFTER_S))
    max_attempts: int | None = None  # None: as many as the window allows
    sleep: Callable[[float], None] = field(default=time.sleep)

    def describe(self) -> str:
        """One line for the give-up message: what was retried, how long, and where to change it."""
        tries = f", at most {self.max_attempts} tries" if self.max_attempts else ""
        return (f"retry policy: transient failures tried again for {self.window_s:g}s{tries}, waits up to "
                f"{self.max_delay_s:g}s with full jitter and at least the server's retry-after; "
                f"{ENV['window_s']} sets the window")

    def _wait(self, state: RetryCallState) -> float:
        jitter = wait_random_exponential(multiplier=self.base_delay_s, max=self.max_delay_s)(state)
        exc = state.outcome.exception() if state.outcome else None
        asked = getattr(exc, "retry_after", None) or 0.0
        return max(float(asked), jitter)

    def retrying(self) -> Retrying:
        stop = stop_before_delay(self.window_s)
        if self.max_attempts:
            stop = stop | stop_after_attempt(self.max_attempts)
        return Retrying(retry=retry_if_exception_type(Transient), stop=stop, wait=self._wait, sleep=self.sleep,
                        before_sleep=_log_retry, reraise=False)


class Transient(Exception):
    """One try failed in a way worth another; `retry_after` is what the server asked for."""

    def __init__(self, what: str, retry_after: float | None = None) -> None:
        super().__init__(what)
        self.retry_after = retry_after


class BadReply(Exception):
    """The server answered 200, but with nothing usable (no choices, a body that does not parse)."""


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0.0
    log.info("model call failed (%s); try %d again in %.1fs", exc, state.attempt_number + 1, wait)


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds asked for by `retry-after-ms` or `retry-after` (seconds or an HTTP date)."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
        return max(0.0, parsed.timestamp() - time.time())


def server_message(err: Any) -> str:
    """The error message the server put in its JSON body, else the SDK's message."""
    body = getattr(err, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return str(getattr(err, "message", "") or err)


def read_reply(parse: Callable[[Any], T], response: Any) -> T:
    """`parse(response)`, with a reply of the wrong shape turned into a `BadReply` (retried)."""
    try:
        return parse(response)
    except BadReply:
        raise
    except (AttributeError, TypeError, KeyError, ValueError, IndexError) as err:
        raise BadReply(f"unexpected response shape: {err}") from err


def call_with_retries(
    fn: Callable[[], T],
    *,
    provider: str,
    status_error: type[BaseException],
    connection_error: type[BaseException],
    policy: RetryPolicy,
    api_error: type[BaseException] | None = None,
) -> T:
    """Call `fn` (one request and the reading of its reply) under `policy`; raise `ModelError`
    for a failure that is not worth another try, or when the tries run out."""

    def one_try() -> T:
        try:
            return fn()
        except status_error as err:  # type: ignore[misc]
            status = int(getattr(err, "status_code", 0))
            msg = server_message(err)
            if status not in RETRYABLE_STATUS:
                raise ModelError(f"{provider}: HTTP {status}: {msg}", provider=provider, status=status,
                                 resumable=status in AUTH_STATUS) from err
            asked = retry_after_seconds(getattr(getattr(err, "response", None), "headers", None))
            if asked is not None and asked > policy.max_retry_after_s:
                raise ModelError(f"{provider}: server asked to retry after {asked:.0f}s (HTTP {status}: {msg}); "
                                 f"longer than the {policy.max_retry_after_s:g}s the harness waits",
                                 provider=provider, status=status, resumable=True) from err
            raise Transient(f"HTTP {status}: {msg}", asked) from err
        except connection_error as err:  # type: ignore[misc]
            # Timeouts and connections cut mid-body are subclasses of the connection error in both SDKs.
            raise Transient(f"{type(err).__name__}: {err}") from err
        except BadReply as err:
            raise Transient(f"unusable reply: {err}") from err
        except json.JSONDecodeError as err:  # the SDK could not read a 200's body
            raise Transient(f"unusable reply: the body is not JSON ({err})") from err
        except Exception as err:
            if api_error is not None and isinstance(err, api_error):  # e.g. a reply that fails validation
                raise Transient(f"unusable reply: {type(err).__name__}: {err}") from err
            raise

    started = time.monotonic()
    try:
        return policy.retrying()(one_try)
    except RetryError as err:
        last = err.last_attempt.exception()
        tries = err.last_attempt.attempt_number
        raise ModelError(f"{provider}: giving up after {tries} attempts: {last} "
                         f"(over {time.monotonic() - started:.1f}s; {policy.describe()})",
                         provider=provider, resumable=True) from last
