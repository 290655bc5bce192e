"""``python -m lm_eval_tasks.sycophancy.dialogue``: the same as ``syco-dialogue``."""

from .cli import cli

cli()
