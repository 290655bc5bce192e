"""Running the project's tasks through lm-eval's real entry points, the way users do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lm_eval
from lm_eval.tasks import TaskManager

TASKS_DIR = Path(__file__).resolve().parents[1] / "lm_eval_tasks"


def task_manager(**metadata: Any) -> TaskManager:
    """Our tasks only (no 14k built-ins to index), with runtime ``--metadata`` such as ``data_dir``."""
    return TaskManager(include_path=str(TASKS_DIR), include_defaults=False, metadata=metadata)


def evaluate(model: Any, tasks: list[str], metadata: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """``simple_evaluate`` on our tasks; ``model`` is an LM instance or a model directory for ``hf``."""
    if isinstance(model, (str, Path)):
        kwargs.setdefault("model_args", f"pretrained={model},dtype=float32")
        kwargs.setdefault("device", "cpu")
        kwargs.setdefault("batch_size", 16)
        model = "hf"
    kwargs.setdefault("bootstrap_iters", 0)
    return lm_eval.simple_evaluate(
        model=model,
        tasks=tasks,
        task_manager=task_manager(**metadata),
        **kwargs,
    )
