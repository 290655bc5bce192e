"""``python -m sycophancy_eval_kit.domain build ...``: the same as ``syco-domain build ...``."""

from sycophancy_eval_kit.domain.cli import cli

if __name__ == "__main__":
    cli()
