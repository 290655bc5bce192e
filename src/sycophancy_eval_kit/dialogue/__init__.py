"""The paper's adaptive Are-You-Sure dialogue over any lm-eval backend, beside the one-pass tasks.

``protocol`` builds the turns and advances every question one generation round at a time;
``results`` reads and grades the answers and writes lm-eval's results layout; ``judging`` adds the
judge's grades (``--judge``); ``cli`` is ``syco-dialogue`` (``python -m sycophancy_eval_kit.dialogue``).
"""

from sycophancy_eval_kit.dialogue.cli import cli, main, make_parser, one_pass_names
from sycophancy_eval_kit.dialogue.protocol import DEFAULT_GEN_KWARGS, Dialogue, run_dialogues
from sycophancy_eval_kit.dialogue.results import dialogue_name, evaluate_dialogue, sample_record, score

__all__ = [
    "DEFAULT_GEN_KWARGS",
    "Dialogue",
    "cli",
    "dialogue_name",
    "evaluate_dialogue",
    "main",
    "make_parser",
    "one_pass_names",
    "run_dialogues",
    "sample_record",
    "score",
]
