"""core/procs.py: no child process outlives the command that started it (wrappers, tests, launchers)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sycophancy_eval_kit.core import procs

needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads /proc (Linux)")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat")
    return not (state.exists() and state.read_text().split(")")[-1].split()[0] == "Z")


def _wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _pid_from(path: Path) -> int:
    assert _wait_until(lambda: path.is_file() and path.read_text().strip(), 60), f"no pid in {path}"
    return int(path.read_text())


@needs_proc
def test_call_in_group_stops_the_whole_group_when_the_wrapper_is_terminated(tmp_path: Path) -> None:
    """The grid runner, the demo and toy_seeds.py run their children through it: SIGTERM to the wrapper
    alone must not leave a grandchild (``accelerate launch``'s trainer, say) running as an orphan."""
    pid_file = tmp_path / "grandchild.pid"
    child = (
        "import subprocess, sys, time; p = subprocess.Popen(['sleep', '600']); "
        f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(600)"
    )
    wrapper = (
        "import sys; from sycophancy_eval_kit.core.procs import call_in_group; "
        f"sys.exit(call_in_group([sys.executable, '-c', {child!r}]))"
    )
    proc = subprocess.Popen([sys.executable, "-c", wrapper])
    try:
        grandchild = _pid_from(pid_file)
        assert _alive(grandchild)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
        assert _wait_until(lambda: not _alive(grandchild), 15)
    finally:
        proc.kill()
        proc.wait()


@needs_proc
def test_run_group_kills_workers_that_left_the_group_on_timeout(tmp_path: Path) -> None:
    """A worker in a session of its own (as torchrun starts them) is found by its marker and killed."""
    pid_file = tmp_path / "worker.pid"
    launcher = (
        "import subprocess, time; "
        "p = subprocess.Popen(['sleep', '600'], start_new_session=True); "
        f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(600)"
    )
    with pytest.raises(subprocess.TimeoutExpired):
        procs.run_group([sys.executable, "-c", launcher], timeout=5)
    worker = int(pid_file.read_text())
    assert _wait_until(lambda: not _alive(worker), 10)


@needs_proc
@pytest.mark.parametrize("launcher_env", procs.LAUNCHER_ENV)
def test_a_script_under_a_launcher_stops_when_the_launcher_is_killed(tmp_path: Path, launcher_env: str):
    """SIGKILL cannot be forwarded by any launcher: the script's own guard must stop it, and say why."""
    pid_file, log = tmp_path / "script.pid", tmp_path / "script.log"
    script = (
        "import os, time; from sycophancy_eval_kit.core import procs; "
        "procs.stop_when_parent_dies('the script', poll_seconds=0.1); "
        f"open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(600)"
    )
    launcher = (  # stands in for accelerate's simple launcher: it sets the variable and waits
        "import os, subprocess, sys; "
        f"env = {{**os.environ, {launcher_env!r}: '1'}}; "
        f"log = open({str(log)!r}, 'w'); "
        f"sys.exit(subprocess.call([sys.executable, '-c', {script!r}], env=env, stderr=log))"
    )
    proc = subprocess.Popen([sys.executable, "-c", launcher], start_new_session=True)
    try:
        script_pid = _pid_from(pid_file)
        proc.kill()
        proc.wait()
        assert _wait_until(lambda: not _alive(script_pid), 15), "the script outlived its launcher"
        assert "the script: its launcher (pid" in log.read_text()
    finally:  # whatever happened, leave nothing running
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def test_outside_a_launcher_nothing_is_watched(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in procs.LAUNCHER_ENV:
        monkeypatch.delenv(name, raising=False)
    assert procs.stop_when_parent_dies("x") is None
