"""Running launchers from tests without hanging the suite.

``subprocess.run(..., timeout=...)`` kills only the direct child: workers it started (accelerate's
ranks) keep the output pipes open and the test waits forever. torchrun also starts its workers in
sessions of their own, so killing the launcher's process group misses them once the launcher is gone.
Here every process the command starts carries a marker in its environment, and a timeout kills the
launcher's group and every marked process, then reads what output there is, with a bound.
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from pathlib import Path
from typing import Any

MARKER = "SYCOPHANCY_TEST_RUN"


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


def run_group(cmd: list[str], timeout: float, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` capturing text output; on timeout kill everything it started and raise TimeoutExpired."""
    marker = uuid.uuid4().hex
    env = {**(kwargs.pop("env", None) or os.environ), MARKER: marker}
    with subprocess.Popen(
        cmd,
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
            try:
                os.killpg(popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # the launcher is gone; its workers are not
            kill_marked(marker)
            stdout, stderr = popen.communicate(timeout=30)
            raise subprocess.TimeoutExpired(cmd, timeout, output=stdout, stderr=stderr) from None
    return subprocess.CompletedProcess(cmd, popen.returncode, stdout, stderr)
