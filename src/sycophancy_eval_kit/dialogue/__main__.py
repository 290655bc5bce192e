"""``python -m sycophancy_eval_kit.dialogue``: the same as ``syco-dialogue``."""

from sycophancy_eval_kit.dialogue.cli import cli

cli()
