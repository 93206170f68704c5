"""A small loopback HTTP server that answers POSTs from a queue of prepared replies.

Each reply is (status, headers, JSON body, delay before answering); `raw` sends bytes instead
of JSON, `cut_at` sends only that many bytes of the body (the declared length stays whole) and
closes the connection. Every request is kept (path, headers, parsed JSON body, arrival time) so
tests can assert what the client sent. `Faults` makes the server fail on command.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


@dataclass
class Reply:
    status: int = 200
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    raw: bytes | None = None    # sent as the body instead of the JSON of `body`
    cut_at: int | None = None   # send this many bytes of the body, then close the connection


class Faults:
    """Fails on command, as a `refuse` hook: once `after` requests have been answered from the
    queue, every request gets `reply` until `clear()`; the queue waits meanwhile."""

    def __init__(self) -> None:
        self.reply: Reply | None = None
        self.after = 0
        self.seen = 0
        self.served = 0  # requests that got the fault
        self._lock = threading.Lock()

    def arm(self, reply: Reply, after: int = 0) -> "Faults":
        with self._lock:
            self.reply, self.after, self.seen = reply, after, 0
        return self

    def clear(self) -> None:
        with self._lock:
            self.reply = None

    def __call__(self, body: Any) -> Reply | None:
        with self._lock:
            if self.reply is not None and self.seen >= self.after:
                self.served += 1
                return self.reply
            self.seen += 1
            return None


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any
    at: float


class FakeServer:
    """`refuse(body)` may answer a request itself (a Reply) before the queue is read, the way a
    real server rejects a request it cannot serve; the queued reply then waits for the next."""

    def __init__(self, no_more: Reply, refuse: Callable[[Any], Reply | None] | None = None) -> None:
        self.replies: list[Reply] = []
        self.refused: list[Received] = []
        self.requests: list[Received] = []
        self._no_more = no_more
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                length = int(self.headers.get("content-length", 0))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    body = raw.decode("utf-8", "replace")
                received = Received(self.path, dict(self.headers), body, time.monotonic())
                refusal = refuse(body) if refuse is not None else None
                with server._lock:
                    server.requests.append(received)
                    if refusal is not None:
                        server.refused.append(received)
                        reply = refusal
                    else:
                        reply = server.replies.pop(0) if server.replies else server._no_more
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                data = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data if reply.cut_at is None else data[:reply.cut_at])
                    if reply.cut_at is not None:
                        self.wfile.flush()
                        self.close_connection = True
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def add(self, *replies: Reply) -> "FakeServer":
        with self._lock:
            self.replies.extend(replies)
        return self

    def __enter__(self) -> "FakeServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
