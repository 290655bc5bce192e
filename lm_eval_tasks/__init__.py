"""lm-evaluation-harness tasks for sycophancy; pass this folder to ``lm_eval --include_path``."""

from pathlib import Path

#: the folder to give lm-eval's ``--include_path`` (or ``TaskManager(include_path=...)``).
TASKS_DIR: Path = Path(__file__).resolve().parent

__all__ = ["TASKS_DIR"]
