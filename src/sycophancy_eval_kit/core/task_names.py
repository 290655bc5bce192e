"""The task-name grammar: ``sycophancy_<family>[_judged|_dialogue]_<subset>``, and for a user's own
data (``syco-domain``) ``sycophancy_custom_<family>[_judged|_dialogue][_mc]``.

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
    #: a user's own data (``sycophancy_custom_*``): its ``subset`` is its kind, ``mc`` or ``""`` (free
    #: form), and its results are never pooled or ranked with Sharma et al.'s
    custom: bool = False
    #: a dialogue under a pressure schedule other than Sharma's single challenge (``--pressure NAME``):
    #: ``sycophancy_ays_pressure_<NAME>_<subset>``; "" for the plain dialogue
    pressure: str = ""

    @property
    def name(self) -> str:
        return task_name(self.family, self.subset, self.protocol, self.judged, self.custom, self.pressure)


def _middle(family: str, protocol: str, judged: bool, pressure: str = "") -> str:
    if protocol == DIALOGUE:
        if family != AYS or judged:
            raise ValueError(f"no {protocol} task for family {family!r} (judged={judged})")
        if pressure and not PRESSURE_NAME.match(pressure):
            raise ValueError(f"pressure schedule name {pressure!r}: expected {PRESSURE_NAME.pattern}")
        return f"_pressure_{pressure}" if pressure else "_dialogue"
    if pressure:
        raise ValueError("only the dialogue runs a pressure schedule")
    return "_judged" if judged else ""


def group_name(
    family: str, protocol: str = ONE_PASS, judged: bool = False, custom: bool = False, pressure: str = ""
) -> str:
    """``sycophancy_answer``, ``sycophancy_ays_judged``, ``sycophancy_ays_dialogue``,
    ``sycophancy_ays_pressure_escalating``, ...; ``sycophancy_custom_answer``, ... for a user's own data."""
    scope = f"{PREFIX}_{CUSTOM}" if custom else PREFIX
    return f"{scope}_{family}{_middle(family, protocol, judged, pressure)}"


def task_name(
    family: str,
    subset: str,
    protocol: str = ONE_PASS,
    judged: bool = False,
    custom: bool = False,
    pressure: str = "",
) -> str:
    """``sycophancy_<family>[_judged|_dialogue|_pressure_<schedule>]_<subset>``; a custom task's
    ``subset`` may be empty."""
    group = group_name(family, protocol, judged, custom, pressure)
    return f"{group}_{subset}" if subset else group


#: the word that marks a user's own data in task names, and the group of its tasks
CUSTOM = "custom"
CUSTOM_GROUP = f"{PREFIX}_{CUSTOM}"
#: a custom task's kind: its questions asked with their options (``mc``) or without (``""``)
CUSTOM_MC = "mc"
#: a user's data name (``syco-domain build --name``): it becomes ``base.dataset`` and the leaderboard's
#: sub-dataset; never one of Sharma et al.'s sub-dataset names
DATA_NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
SHARMA_SUBSETS: frozenset[str] = frozenset(s for subsets in SUBSETS.values() for s in subsets)
#: a pressure schedule's name (``--pressure``): one word, so task names parse without ambiguity
PRESSURE_NAME = re.compile(r"^[a-z][a-z0-9]{0,31}$")
_MIDDLE = r"(_judged|_dialogue|_pressure_[a-z][a-z0-9]{0,31})?"
_CUSTOM = re.compile(rf"^sycophancy_custom_(answer|ays){_MIDDLE}(?:_(mc))?$")


_TASK = re.compile(rf"^sycophancy_(answer|ays){_MIDDLE}_([a-z0-9][a-z0-9_]*)$")


def _protocol(middle: str | None) -> tuple[str, str]:
    """(protocol, pressure schedule) of a name's middle part."""
    if middle and middle.startswith("_pressure_"):
        return DIALOGUE, middle.removeprefix("_pressure_")
    return (DIALOGUE if middle == "_dialogue" else ONE_PASS), ""


def parse_task_name(name: str) -> TaskName | None:
    """The parts of a sycophancy sub-task name, or None for anything else (groups, other tasks)."""
    custom = _CUSTOM.match(name)
    if custom is not None:
        family, middle, kind = custom.groups()
        protocol, pressure = _protocol(middle)
        if pressure and family != AYS:
            return None
        parsed = TaskName(family, protocol, middle == "_judged", kind or "", custom=True, pressure=pressure)
        return parsed if report_for(parsed) is not None else None
    match = _TASK.match(name)
    if match is None:
        return None
    family, middle, subset = match.groups()
    protocol, pressure = _protocol(middle)
    if (protocol == DIALOGUE and family != AYS) or {"judged", "dialogue", "pressure"} & set(
        subset.split("_")
    ):
        return None  # the grammar has one place for each word: no other spelling is ours
    return TaskName(family, protocol, middle == "_judged", subset, pressure=pressure)


def report_for(task: TaskName) -> str | None:
    """The report (``REPORTS`` key) a sub-task writes, or None for a sub-dataset we do not know."""
    if task.pressure and (task.family != AYS or task.protocol != DIALOGUE):
        return None
    if task.custom:
        report = _CUSTOM_REPORTS.get((task.family, task.protocol, task.judged, task.subset))
        return PRESSURE if report and task.pressure else report
    if task.pressure:
        return PRESSURE
    if task.family == ANSWER:
        return "answer_judged" if task.judged else "answer"
    if task.protocol == DIALOGUE:
        return "dialogue"
    if task.judged:
        return "ays_judged"
    if task.subset in data.AYS_MC_SUBSETS:
        return "ays_mc"
    return "ays_free_form" if task.subset in data.AYS_FREE_FORM_SUBSETS else None


#: what a dialogue under a pressure schedule reports (``registry.pressure_report``: its rounds decide)
PRESSURE = "pressure"
#: the custom tasks there are (family, protocol, judged, kind) and what each reports
_CUSTOM_REPORTS: dict[tuple[str, str, bool, str], str] = {
    (ANSWER, ONE_PASS, False, CUSTOM_MC): "answer",
    (ANSWER, ONE_PASS, False, ""): "answer",
    (ANSWER, ONE_PASS, True, ""): "answer_judged",
    (AYS, ONE_PASS, False, CUSTOM_MC): "ays_mc",
    (AYS, DIALOGUE, False, CUSTOM_MC): "dialogue",
}
