"""``transformers serve`` as a real OpenAI-compatible server on loopback, started and stopped by the tests.

``transformers serve FOLDER`` pins the server to one local model folder and loads it before it starts
listening, so the first ``/v1/models`` answer means the model is in memory. The server gets its own
process group (its tokenizer and torch threads included) and is always stopped by killing that group;
a server that does not come up within ``startup_timeout`` seconds is killed and reported with the tail
of its log, never waited on forever. A port found busy is replaced by a free one.

Requests are counted from the server's own access log (uvicorn writes one line per request), so a
test can tell how many chat completions really reached the model.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

CHAT_REQUEST_LINE = '"POST /v1/chat/completions HTTP/1.1"'
_BUSY_MARKERS = ("address already in use", "errno 98")


class ServerStartError(RuntimeError):
    """The server exited or did not answer in time; the message ends with its log tail."""


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Nothing listens on it. SO_REUSEADDR as servers bind (uvicorn does): a stopped server's
    lingering TIME_WAIT connections do not make its port busy for its restart."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel just handed out (it may be taken again before use: ``start`` retries)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def serve_command(model: Path | str, port: int, host: str = "127.0.0.1") -> list[str]:
    """``transformers serve`` from this interpreter's environment, pinned to ``model`` on CPU."""
    exe = Path(sys.executable).parent / "transformers"
    return [str(exe), "serve", str(model), "--host", host, "--port", str(port), "--device", "cpu"]


class TransformersServer:
    """``with TransformersServer(folder, log) as server:`` serves ``folder`` at ``server.base_url``.

    ``command`` (a function of the port) replaces ``transformers serve`` (the tests of this class use
    a process that never listens); ``env`` is the server's environment (default: this process's).
    ``stop()`` and ``start()`` may be called again, to restart it.
    """

    def __init__(
        self,
        model: Path | str,
        log_path: Path,
        port: int | None = None,
        startup_timeout: float = 240.0,
        command=None,
        host: str = "127.0.0.1",
        env: dict[str, str] | None = None,
    ) -> None:
        self.model = str(model)
        self.log_path = Path(log_path)
        self.host = host
        self.preferred_port = port
        self.port: int | None = None
        self.startup_timeout = startup_timeout
        self.command = command or (lambda p: serve_command(self.model, p, host))
        self.env = dict(os.environ if env is None else env)
        self._proc: subprocess.Popen | None = None
        self.start_seconds: list[float] = []

    # ------------------------------------------------------------------------------- addresses
    @property
    def base_url(self) -> str:
        """The OpenAI base URL (what ``OPENAI_BASE_URL`` takes)."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def chat_url(self) -> str:
        """What lm-eval's ``local-chat-completions`` takes as ``base_url``."""
        return f"{self.base_url}/chat/completions"

    # ---------------------------------------------------------------------------------- control
    def start(self) -> TransformersServer:
        """Start (if not running) and wait until it lists its model; up to three ports are tried."""
        if self.running:
            return self
        errors: list[str] = []
        port = self.preferred_port or self.port  # a restart keeps its address when it can
        for _ in range(3):
            if port is None or not port_is_free(port, self.host):
                port = free_port(self.host)
            try:
                self._launch(port)
                return self
            except _PortTaken as err:
                errors.append(str(err))
                port = None
        raise ServerStartError("no free port after 3 tries:\n" + "\n".join(errors))

    def _launch(self, port: int) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        env = {**self.env, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
        started = time.perf_counter()
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                self.command(port),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stop() kills everything it started
                env=env,
            )
        self.port = port
        deadline = started + self.startup_timeout
        while time.perf_counter() < deadline:
            code = self._proc.poll()
            if code is not None:
                self._proc = None
                tail = self.log_tail(offset=offset)
                if any(marker in tail.lower() for marker in _BUSY_MARKERS):
                    raise _PortTaken(f"port {port}: {tail.strip().splitlines()[-1]}")
                raise ServerStartError(
                    f"the server exited with code {code} before answering (log {self.log_path}):\n{tail}"
                )
            if self._answers():
                self.start_seconds.append(time.perf_counter() - started)
                return
            time.sleep(0.5)
        self.stop()
        raise ServerStartError(
            f"the server did not answer on port {port} within {self.startup_timeout:.0f}s "
            f"(killed; log {self.log_path}):\n{self.log_tail(offset=offset)}"
        )

    def _answers(self) -> bool:
        """``/v1/models`` lists the pinned model (loaded before the server listens)."""
        try:
            with urllib.request.urlopen(f"{self.base_url}/models", timeout=5) as response:
                listed = json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError):
            return False
        return any(m.get("id") == self.model for m in listed.get("data", []))

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        """Kill the server's process group (TERM, then KILL after 10 s); safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> TransformersServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------- inspection
    def log_tail(self, lines: int = 40, offset: int = 0) -> str:
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(offset)
                text = handle.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def chat_requests(self) -> int:
        """Chat completions the server has answered or refused so far (all its runs, from its log)."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return 0
        return text.count(CHAT_REQUEST_LINE)


class _PortTaken(RuntimeError):
    """The port was taken between choosing it and binding it."""
