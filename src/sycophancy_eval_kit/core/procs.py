"""Child processes that never outlive their purpose: one home for process groups and their cleanup.

Three situations, one rule (a command's whole process tree stops with it):

* ``call_in_group``: a wrapper of ours (the grid runner, the demo, the toy world's seed loop) runs a
  command whose children start ``accelerate launch`` or another wrapper. The command gets a process
  group of its own, and Ctrl-C, SIGTERM or SIGHUP to the wrapper stops that whole group
  (``stop_group``): a launcher that is signalled alone may not pass the signal on (accelerate 1.x's
  simple launcher before 1.16 did not), and its training process would train on as an orphan.
* ``run_group``: tests and benchmarks run launchers with a timeout. ``subprocess.run(timeout=...)``
  kills only the direct child, while workers keep the output pipes open; torchrun even starts its
  workers in sessions of their own. Every process the command starts carries a marker in its
  environment, and a timeout kills the group and every marked process.
* ``stop_when_parent_dies``: the training script under a launcher stops itself when the launcher is
  gone, whatever killed it (SIGKILL cannot be forwarded by any launcher).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

#: the environment variable that marks every process ``run_group`` starts
MARKER = "SYCOPHANCY_TEST_RUN"
#: what a launcher sets for the processes it starts: accelerate's simple launcher (``--cpu``, one GPU)
#: and torchrun (every distributed launch)
LAUNCHER_ENV = ("ACCELERATE_USE_CPU", "TORCHELASTIC_RUN_ID")
_STOPS = (signal.SIGTERM, signal.SIGHUP)


def raise_on_signal(signum: int, _frame: Any) -> None:
    """A signal handler that unwinds the stack as ``SystemExit(128 + signum)`` (the shell's code)."""
    raise SystemExit(128 + signum)


def stop_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM ``proc``'s whole process group, SIGKILL what is left after ``grace`` seconds, reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        proc.poll()  # reap the child, so a finished group reads as gone
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@contextlib.contextmanager
def signals_raise() -> Iterator[dict[int, Any]]:
    """While inside, SIGTERM and SIGHUP raise ``SystemExit`` (as Ctrl-C raises ``KeyboardInterrupt``),
    so a ``try``/``except BaseException`` around a child can stop it; handlers are restored after.
    Only the main thread receives signals: elsewhere nothing is installed."""
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        handlers = {sig: signal.signal(sig, raise_on_signal) for sig in _STOPS}
    try:
        yield handlers
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def call_in_group(cmd: Sequence[str], grace: float = 30.0, **popen_kwargs: Any) -> int:
    """``subprocess.call`` in a process group of its own, stopped whole when this process is told to
    stop (Ctrl-C, SIGTERM, SIGHUP).

    ``grace`` (before SIGKILL) is longer than the grid runner's 10 s per step, so a child grid runner has
    time to stop its own step's group first; a second signal while stopping does not cut the stop short.
    """
    with signals_raise() as handlers:
        proc = subprocess.Popen(list(cmd), start_new_session=True, **popen_kwargs)
        try:
            return proc.wait()
        except BaseException:
            if threading.current_thread() is threading.main_thread():
                for sig in (*_STOPS, signal.SIGINT):
                    handlers.setdefault(sig, signal.getsignal(sig))
                    signal.signal(sig, signal.SIG_IGN)
            stop_group(proc, grace)
            raise


def kill_marked(marker: str) -> int:
    """SIGKILL every process whose environment holds ``MARKER=marker`` (Linux ``/proc``); how many."""
    needle = f"{MARKER}={marker}".encode()
    killed = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
        except (OSError, ProcessLookupError):
            continue  # gone, or not ours to read
    return killed


def run_group(cmd: Sequence[str], timeout: float, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` capturing text output; on timeout kill everything it started and raise TimeoutExpired."""
    marker = uuid.uuid4().hex
    env = {**(kwargs.pop("env", None) or os.environ), MARKER: marker}
    with subprocess.Popen(
        list(cmd),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
        env=env,
        **kwargs,
    ) as popen:
        try:
            stdout, stderr = popen.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):  # the launcher may be gone, its workers not
                os.killpg(popen.pid, signal.SIGKILL)
            kill_marked(marker)
            stdout, stderr = popen.communicate(timeout=30)
            raise subprocess.TimeoutExpired(list(cmd), timeout, output=stdout, stderr=stderr) from None
    return subprocess.CompletedProcess(list(cmd), popen.returncode, stdout, stderr)


def stop_when_parent_dies(what: str, poll_seconds: float = 1.0) -> threading.Thread | None:
    """Under a launcher, watch the parent process and SIGTERM this process once the parent is gone.

    A launcher always outlives the processes it waits for, so a new parent means it died: killed with
    SIGKILL, which no launcher can forward, or signalled alone by a launcher version that does not
    forward SIGTERM. Outside a launcher (a plain ``python training/orpo.py`` under ``nohup``) nothing
    is watched. ``what`` names this process in the message.
    """
    if not any(name in os.environ for name in LAUNCHER_ENV):
        return None
    launcher = os.getppid()

    def watch() -> None:
        while os.getppid() == launcher:
            time.sleep(poll_seconds)
        print(
            f"{what}: its launcher (pid {launcher}) is gone; stopping, nothing more is written. "
            "Stop a run by signalling the launcher's process group: kill -TERM -- -PGID",
            file=sys.stderr,
            flush=True,
        )
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=watch, name="stop-when-parent-dies", daemon=True)
    thread.start()
    return thread
