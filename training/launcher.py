"""A training process stops when the launcher that started it is gone.

Without a distributed backend (``--cpu``, one GPU) ``accelerate launch`` runs the script with
``subprocess.Popen(...).wait()`` and no signal handler (accelerate 1.x ``simple_launcher``): a SIGTERM
to the launcher ends the launcher alone, and the training process, adopted by init, trains on and
writes its adapter as an orphan. The way to stop a run is to signal the launcher's whole process group
(``kill -TERM -- -PGID``; Ctrl-C does that); this guard covers the launcher being killed alone.

It is on only under a launcher (accelerate's simple launcher sets ``ACCELERATE_USE_CPU`` for the script,
torchrun ``TORCHELASTIC_RUN_ID`` for its workers): a launcher always outlives the processes it waits
for, so a new parent means it died. A plain ``python training/orpo.py`` under ``nohup`` is left alone.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

LAUNCHER_ENV = ("ACCELERATE_USE_CPU", "TORCHELASTIC_RUN_ID")


def stop_with_launcher(poll_seconds: float = 1.0) -> threading.Thread | None:
    """Under a launcher, watch the parent process and SIGTERM this process once the parent is gone."""
    if not any(name in os.environ for name in LAUNCHER_ENV):
        return None
    launcher = os.getppid()

    def watch() -> None:
        while os.getppid() == launcher:
            time.sleep(poll_seconds)
        print(
            f"training/orpo.py: its launcher (pid {launcher}) is gone; stopping, nothing more is written. "
            "Stop a run by signalling the launcher's process group: kill -TERM -- -PGID",
            file=sys.stderr,
            flush=True,
        )
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=watch, name="stop-with-launcher", daemon=True)
    thread.start()
    return thread
