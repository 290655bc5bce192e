"""``syco-tasks-path`` (``python -m sycophancy_eval_kit.lm_eval_tasks``): print the task folder, for
``lm_eval --include_path "$(...)"``."""

from __future__ import annotations

from sycophancy_eval_kit.lm_eval_tasks import TASKS_DIR


def main() -> None:
    print(TASKS_DIR)


if __name__ == "__main__":
    main()
