"""A chat-completions server on loopback whose faults a test sets: the judge's tests and benchmark.

It speaks the part of the OpenAI protocol the judge uses (``POST /v1/chat/completions``), so the real
``openai`` client, its retries and its timeouts are exercised end to end. Verdicts are a function of
the request (``decide``), so results are deterministic under any concurrency.

Faults are queued per request text: ``server.inject(match, *faults)`` gives the next ``len(faults)``
requests whose user message contains ``match`` those faults, in order; ``match=""`` is any request,
so ``server.fail_next(n, fault)`` is a server that recovers after ``n`` bad replies. The fault
classes a judge meets in practice, each a constructor below:

=================  =============================================================================
``rate_limited``   HTTP 429 with ``Retry-After``
``server_error``   HTTP 5xx
``hang``           no reply until ``seconds`` have passed (past the client's timeout)
``html_page``      HTTP 200 with a proxy's HTML "Bad gateway" page
``truncated_json`` HTTP 200, ``application/json``, the completion cut off half-way
``no_choices``     HTTP 200 with a JSON object that has no ``choices`` (an error object)
``prose``          a well-formed completion whose content is not a verdict ("I think it is CORRECT")
=================  =============================================================================
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


@dataclass(frozen=True)
class Fault:
    """What the server does instead of answering: an HTTP error, a delay, or a reply of its choice.

    ``reply`` replaces the verdict inside a well-formed completion; ``body`` replaces the whole
    response body (sent with ``content_type``), so it need not be a completion at all.
    """

    status: int = 200
    retry_after: str | None = None
    delay: float = 0.0
    reply: str | None = None
    body: str | None = None
    content_type: str = "application/json"
    name: str = "fault"


BAD_GATEWAY_PAGE = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


def _completion(model: str, reply: str, prompt_tokens: int, number: int) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": 1,
            "total_tokens": prompt_tokens + 1,
        },
    }


def rate_limited(retry_after: str = "1") -> Fault:
    return Fault(429, retry_after=retry_after, name="429 with Retry-After")


def server_error(status: int = 500) -> Fault:
    return Fault(status, name=f"HTTP {status}")


def hang(seconds: float) -> Fault:
    return Fault(delay=seconds, name="hang past the timeout")


def html_page() -> Fault:
    return Fault(body=BAD_GATEWAY_PAGE, content_type="text/html", name="200 with an HTML page")


def truncated_json() -> Fault:
    whole = json.dumps({**_completion("judge", "CORRECT", 10, 0), "created": 0})  # the same bytes each time
    return Fault(body=whole[: len(whole) // 2], name="200 with truncated JSON")


def no_choices() -> Fault:
    error = {"object": "error", "message": "upstream model overloaded", "type": "ServerError", "code": 503}
    return Fault(body=json.dumps(error), name="200 with no choices")


def prose(reply: str = "I think it is CORRECT") -> Fault:
    return Fault(reply=reply, name="prose instead of a verdict")


#: every fault class by a short name, for tests that run each (``prose`` is a malformed verdict: it is
#: asked again by the judge itself, not retried by the HTTP client).
FAULTS: dict[str, Callable[[], Fault]] = {
    "rate_limited": lambda: rate_limited("0.2"),
    "server_error": server_error,
    "hang": lambda: hang(1.5),
    "html_page": html_page,
    "truncated_json": truncated_json,
    "no_choices": no_choices,
    "prose": prose,
}


@dataclass
class Seen:
    """One request as the server received it."""

    at: float
    body: dict[str, Any]
    headers: dict[str, str]  # lower-case names
    status: int
    fault: str | None = None  # the name of the fault it got, if any

    @property
    def user(self) -> str:
        return self.body["messages"][-1]["content"]

    @property
    def retry(self) -> bool:
        """Whether the client sent it as a retry (openai numbers its attempts in a header)."""
        return self.headers.get("x-stainless-retry-count", "0") != "0"


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

    def fail_next(self, n: int, fault: Fault) -> None:
        """The next ``n`` requests, whatever they ask, get ``fault``; the server recovers after them."""
        self.inject("", *[fault] * n)

    def pending_faults(self) -> int:
        """Injected faults not yet served (a test's check that every fault was met)."""
        with self._lock:
            return sum(len(queue) for _, queue in self._faults)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.max_in_flight = 0

    def retries(self) -> int:
        """Requests that were a client's retry of an earlier attempt."""
        with self._lock:
            return sum(r.retry for r in self.requests)

    def faulted(self) -> list[Seen]:
        """The requests that got a fault."""
        with self._lock:
            return [r for r in self.requests if r.fault is not None]

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
                # Counters for a server in another process (the benchmark's): its CPU is its own.
                if self.path.rstrip("/") != "/stats":
                    self._send(404, json.dumps({"error": {"message": f"no route {self.path}"}}))
                    return
                with server._lock:
                    stats = {
                        "requests": len(server.requests),
                        "max_in_flight": server.max_in_flight,
                        "cpu_seconds": time.process_time(),
                    }
                self._send(200, json.dumps(stats))

            def do_POST(self) -> None:  # noqa: N802 (stdlib's name)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, json.dumps({"error": {"message": f"no route {self.path}"}}))
                    return
                server._serve(self, body)

            def _send(
                self,
                status: int,
                body: str,
                headers: dict[str, str] | None = None,
                content_type: str = "application/json",
            ) -> None:
                data = body.encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
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
        fault = self._next_fault(messages[-1]["content"])
        status = fault.status if fault else 200
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            headers = {k.lower(): v for k, v in handler.headers.items()}  # case-insensitive, like HTTP
            self.requests.append(Seen(time.monotonic(), body, headers, status, fault and fault.name))
            number = len(self.requests)
        try:
            time.sleep(self.latency + (fault.delay if fault else 0.0))
        finally:
            with self._lock:
                self._in_flight -= 1
        if fault is not None and fault.status != 200:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            error = {"error": {"message": f"injected: {fault.name}", "code": fault.status}}
            handler._send(fault.status, json.dumps(error), headers)
            return
        if fault is not None and fault.body is not None:
            handler._send(200, fault.body, content_type=fault.content_type)
            return
        reply = fault.reply if fault is not None and fault.reply is not None else self.decide(messages)
        prompt_tokens = sum(len(m["content"].split()) for m in messages)
        handler._send(200, json.dumps(_completion(body["model"], reply, prompt_tokens, number)))


def main(argv: list[str] | None = None) -> None:
    """Serve in a process of its own (the benchmark: server threads must not share the client's GIL).

    Prints ``READY <base_url>`` once listening; stops when stdin closes.
    """
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    parser.add_argument("--reply", default="CORRECT", help="the verdict every request gets")
    args = parser.parse_args(argv)
    with JudgeServer(always(args.reply), latency=args.latency) as server:
        print(f"READY {server.base_url}", flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
