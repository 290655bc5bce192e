"""A chat-completions server on loopback, for the judge's tests and benchmark.

It speaks the part of the OpenAI protocol the judge uses (``POST /v1/chat/completions``), so the real
``openai`` client, its retries and its timeouts are exercised end to end. Verdicts are a function of
the request (``decide``), so results are deterministic under any concurrency. Faults are queued per
request text: the next request whose user message contains ``match`` gets the next fault.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Decide = Callable[[list[dict[str, str]]], str]


def always(reply: str) -> Decide:
    """A ``decide`` that gives every request the same reply."""
    return lambda messages: reply


def by_substring(table: dict[str, str], default: str | None = None) -> Decide:
    """The reply of the first ``table`` key found in the last user message (``default`` otherwise)."""

    def decide(messages: list[dict[str, str]]) -> str:
        text = messages[-1]["content"]
        for needle, reply in table.items():
            if needle in text:
                return reply
        if default is None:
            raise AssertionError(f"judge server: no scripted verdict for {text[-200:]!r}")
        return default

    return decide


class _Server(ThreadingHTTPServer):
    # socketserver's default backlog of 5 makes concurrent clients see connection resets (which the
    # openai client silently retries after a backoff); a real server accepts them all.
    request_queue_size = 1024


@dataclass
class Fault:
    """What the server does instead of answering: an HTTP error, a delay, or a reply of its choice."""

    status: int = 200
    retry_after: str | None = None
    delay: float = 0.0
    reply: str | None = None  # with status 200: this content instead of the verdict (malformed)


@dataclass
class Seen:
    """One request as the server received it."""

    at: float
    body: dict[str, Any]
    headers: dict[str, str]  # lower-case names
    status: int

    @property
    def user(self) -> str:
        return self.body["messages"][-1]["content"]


@dataclass
class JudgeServer:
    """``with JudgeServer(decide) as server:`` serves on ``server.base_url`` until the block ends."""

    decide: Decide = field(default_factory=lambda: always("CORRECT"))
    latency: float = 0.0
    requests: list[Seen] = field(default_factory=list)
    max_in_flight: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[tuple[str, list[Fault]]] = []
        self._in_flight = 0
        self._httpd: ThreadingHTTPServer | None = None

    # -- control ------------------------------------------------------------------------------
    def inject(self, match: str, *faults: Fault) -> None:
        """The next ``len(faults)`` requests whose user message contains ``match`` get these faults."""
        with self._lock:
            self._faults.append((match, list(faults)))

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.max_in_flight = 0

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> JudgeServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the client expects
            disable_nagle_algorithm = True  # else delayed ACKs add ~40 ms to every small reply

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib's name)
                pass

            def do_GET(self) -> None:  # noqa: N802 (stdlib's name)
                # Counters for a server in another process (the benchmark's).
                if self.path.rstrip("/") != "/stats":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                with server._lock:
                    stats = {"requests": len(server.requests), "max_in_flight": server.max_in_flight}
                self._send(200, stats)

            def do_POST(self) -> None:  # noqa: N802 (stdlib's name)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                server._serve(self, body)

            def _send(
                self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout)
                    pass

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._httpd is not None
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- serving ------------------------------------------------------------------------------
    def _next_fault(self, user: str) -> Fault | None:
        with self._lock:
            for match, queue in self._faults:
                if queue and match in user:
                    return queue.pop(0)
        return None

    def _serve(self, handler: Any, body: dict[str, Any]) -> None:
        messages = body["messages"]
        fault = self._next_fault(messages[-1]["content"]) or Fault()
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            headers = {k.lower(): v for k, v in handler.headers.items()}  # case-insensitive, like HTTP
            self.requests.append(Seen(time.monotonic(), body, headers, fault.status))
        try:
            time.sleep(self.latency + fault.delay)
        finally:
            with self._lock:
                self._in_flight -= 1
        if fault.status != 200:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            handler._send(fault.status, {"error": {"message": "injected", "code": fault.status}}, headers)
            return
        reply = fault.reply if fault.reply is not None else self.decide(messages)
        prompt_tokens = sum(len(m["content"].split()) for m in messages)
        handler._send(
            200,
            {
                "id": f"chatcmpl-{len(self.requests)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": 1,
                    "total_tokens": prompt_tokens + 1,
                },
            },
        )


def main(argv: list[str] | None = None) -> None:
    """Serve in a process of its own (the benchmark: server threads must not share the client's GIL).

    Prints ``READY <base_url>`` once listening; stops when stdin closes.
    """
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    parser.add_argument("--reply", default="CORRECT", help="the verdict every request gets")
    args = parser.parse_args(argv)
    with JudgeServer(always(args.reply), latency=args.latency) as server:
        print(f"READY {server.base_url}", flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
