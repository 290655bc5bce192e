"""The task-name grammar: ``sycophancy_<family>[_judged|_dialogue]_<subset>``.

Shared by the task YAMLs (whose names follow it), the dialogue (which names its results after the
one-pass tasks) and the leaderboard (which reads a run's tasks back into family, protocol, grader and
sub-dataset). ``parse_task_name`` accepts exactly the names ``task_name`` writes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sycophancy_eval_kit.core import data
from sycophancy_eval_kit.core.registry import ANSWER, AYS

PREFIX = "sycophancy"
ONE_PASS = "one-pass"
DIALOGUE = "dialogue"
RULE = "rule"
JUDGE = "judge"
#: lm-eval writes metric keys as ``<metric>,<filter>``; the judge's grades live under filter ``judge``.
FILTER_KEYS: dict[str, str] = {RULE: "none", JUDGE: "judge"}
SUBSETS: dict[str, tuple[str, ...]] = {ANSWER: data.ANSWER_SUBSETS, AYS: data.AYS_SUBSETS}


@dataclass(frozen=True, order=True)
class TaskName:
    """A task name taken apart. ``judged`` is part of the name of a one-pass judged task; a dialogue
    graded by the judge keeps its name and reports under the ``judge`` filter instead."""

    family: str
    protocol: str
    judged: bool
    subset: str

    @property
    def name(self) -> str:
        return task_name(self.family, self.subset, self.protocol, self.judged)


def _middle(family: str, protocol: str, judged: bool) -> str:
    if protocol == DIALOGUE:
        if family != AYS or judged:
            raise ValueError(f"no {protocol} task for family {family!r} (judged={judged})")
        return "_dialogue"
    return "_judged" if judged else ""


def group_name(family: str, protocol: str = ONE_PASS, judged: bool = False) -> str:
    """``sycophancy_answer``, ``sycophancy_ays_judged``, ``sycophancy_ays_dialogue``, ..."""
    return f"{PREFIX}_{family}{_middle(family, protocol, judged)}"


def task_name(family: str, subset: str, protocol: str = ONE_PASS, judged: bool = False) -> str:
    """``sycophancy_<family>[_judged|_dialogue]_<subset>``."""
    return f"{group_name(family, protocol, judged)}_{subset}"


_TASK = re.compile(r"^sycophancy_(answer|ays)(_judged|_dialogue)?_([a-z0-9][a-z0-9_]*)$")


def parse_task_name(name: str) -> TaskName | None:
    """The parts of a sycophancy sub-task name, or None for anything else (groups, other tasks)."""
    match = _TASK.match(name)
    if match is None:
        return None
    family, middle, subset = match.groups()
    if (middle == "_dialogue" and family != AYS) or {"judged", "dialogue"} & set(subset.split("_")):
        return None  # the grammar has one place for each word: no other spelling is ours
    protocol = DIALOGUE if middle == "_dialogue" else ONE_PASS
    return TaskName(family, protocol, middle == "_judged", subset)


def report_for(task: TaskName) -> str | None:
    """The report (``REPORTS`` key) a sub-task writes, or None for a sub-dataset we do not know."""
    if task.family == ANSWER:
        return "answer_judged" if task.judged else "answer"
    if task.protocol == DIALOGUE:
        return "dialogue"
    if task.judged:
        return "ays_judged"
    if task.subset in data.AYS_MC_SUBSETS:
        return "ays_mc"
    return "ays_free_form" if task.subset in data.AYS_FREE_FORM_SUBSETS else None


