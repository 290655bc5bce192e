"""Print or refresh the metric tables of the task README from the registry.

    python -m sycophancy_eval_kit.lm_eval_tasks.readme --update_readme

The tables between ``<!-- metrics:TABLE -->`` markers are generated (``registry.readme_with_tables``);
``tests/test_metrics.py`` fails when they are stale.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from sycophancy_eval_kit.core.registry import TABLES, markdown_table, readme_with_tables
from sycophancy_eval_kit.lm_eval_tasks import TASKS_DIR

README = TASKS_DIR / "sycophancy" / "README.md"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print or refresh the metric tables of the task README.")
    parser.add_argument("--update_readme", action="store_true", help=f"rewrite the tables in {README}")
    args = parser.parse_args(argv)
    if args.update_readme:
        README.write_text(readme_with_tables(README.read_text(encoding="utf-8")), encoding="utf-8")
        print(f"updated {README}")
        return
    for table, names in TABLES.items():
        print(f"{table}:\n{markdown_table(names)}\n")


if __name__ == "__main__":
    main()
