"""The paper's grid from a clone: the same as the ``syco-reproduce`` console script.

    python scripts/reproduce.py --config scripts/configs/paper.yaml --dry_run
"""

from sycophancy_eval_kit.reproduce import cli, main  # noqa: F401  (main(argv): for callers in Python)

if __name__ == "__main__":
    cli()
