"""Retries for provider calls: exponential backoff that honours `retry-after`.

The SDK clients are built with `max_retries=0` and this module does the retrying, so the
waiting rule is ours and testable: on 408/409/429/5xx, timeouts and connection errors wait
`max(retry-after, backoff)` and try again; on any other status (400, 401, 403, 404, 422 ...)
raise a `ModelError` at once naming the provider, the status and the server's message.
Both SDKs share the same error classes' shape (`status_code`, `response.headers`, `body`).
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from harness.agents.models.base import ModelError

T = TypeVar("T")

RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504, 529}


@dataclass
class RetryPolicy:
    max_attempts: int = 6
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0
    # Longest retry-after we accept before giving up instead of sleeping.
    max_retry_after_s: float = 300.0
    sleep: Callable[[float], None] = field(default=time.sleep)

    def backoff(self, attempt: int) -> float:
        delay = min(self.max_delay_s, self.base_delay_s * (2**attempt))
        return delay * (0.5 + random.random() / 2)  # jitter keeps parallel runs apart


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


def call_with_retries(
    fn: Callable[[], T],
    *,
    provider: str,
    status_error: type[BaseException],
    connection_error: type[BaseException],
    policy: RetryPolicy,
    api_error: type[BaseException] | None = None,
    on_retry: Callable[[str, float], None] | None = None,
) -> T:
    """Call `fn`, retrying transient failures; raise `ModelError` for the rest."""
    last = ""
    for attempt in range(policy.max_attempts):
        try:
            return fn()
        except status_error as err:  # type: ignore[misc]
            status = int(getattr(err, "status_code", 0))
            msg = server_message(err)
            if status not in RETRYABLE_STATUS:
                raise ModelError(f"{provider}: HTTP {status}: {msg}", provider=provider, status=status) from err
            last = f"HTTP {status}: {msg}"
            wait_for = retry_after_seconds(getattr(getattr(err, "response", None), "headers", None))
        except connection_error as err:  # type: ignore[misc]
            # Timeouts are a subclass of the connection error in both SDKs.
            last = f"{type(err).__name__}: {err}"
            wait_for = None
        except Exception as err:
            # Any other SDK error (e.g. a response that does not parse) is not worth retrying.
            if api_error is not None and isinstance(err, api_error):
                raise ModelError(f"{provider}: {type(err).__name__}: {err}", provider=provider) from err
            raise
        if attempt == policy.max_attempts - 1:
            break
        if wait_for is not None and wait_for > policy.max_retry_after_s:
            raise ModelError(f"{provider}: server asked to retry after {wait_for:.0f}s ({last})", provider=provider)
        delay = max(wait_for or 0.0, policy.backoff(attempt))
        if on_retry:
            on_retry(last, delay)
        policy.sleep(delay)
    raise ModelError(f"{provider}: giving up after {policy.max_attempts} attempts: {last}", provider=provider)
