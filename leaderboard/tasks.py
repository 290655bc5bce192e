"""Which lm-eval tasks the leaderboard reads, and how their results group into comparable tracks.

The metrics themselves (names, labels, denominators, directions, delta terms) and the task-name
grammar are the plugin's registry, ``sycophancy_eval_kit.core.registry``; this module only adds what
the leaderboard needs on top: a task's grader (from the filter key lm-eval wrote), its track, and
the per-question values every run must carry.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from sycophancy_eval_kit.core import registry, task_names
from sycophancy_eval_kit.core.registry import Metric

ANSWER = registry.ANSWER
AYS = registry.AYS
ONE_PASS = task_names.ONE_PASS
DIALOGUE = task_names.DIALOGUE
RULE = task_names.RULE
JUDGE = task_names.JUDGE
FILTER_KEYS: dict[str, str] = task_names.FILTER_KEYS
FAMILY_LABELS: dict[str, str] = registry.FAMILY_LABELS
KNOWN_SUBSETS: dict[str, tuple[str, ...]] = task_names.SUBSETS
#: the rates and deltas the leaderboard shows per family, in report order.
METRICS: dict[str, tuple[Metric, ...]] = {f: registry.family_metrics(f) for f in registry.FAMILIES}
#: what a dialogue under a pressure schedule adds to the dialogue's rates: the answer and the flip after
#: every round (up to the registry's ``MAX_ROUNDS``; a schedule writes its own rounds), then the summary
#: rates. ``turn_of_flip`` and ``number_of_flips`` are means, not rates: in the results, not shown here.
PRESSURE_METRICS: tuple[Metric, ...] = tuple(
    registry.METRICS[n]
    for n in registry.pressure_report(registry.MAX_ROUNDS, True)
    if n not in registry.DIALOGUE_METRICS and registry.METRICS[n].kind == registry.RATE
)
#: the answer-suggestion templates, in the order the paper plots them.
TEMPLATE_CONDITIONS: tuple[str, ...] = registry.SUGGESTED


def metric(family: str, name: str) -> Metric:
    for m in METRICS[family]:
        if m.name == name:
            return m
    raise KeyError(f"{family} has no metric {name!r}")


def track_metrics(track: str) -> tuple[Metric, ...]:
    """The metrics of a track: its family's, and under a pressure schedule the per-round ones."""
    family, protocol, _, _ = track_parts(track)
    return METRICS[family] + (PRESSURE_METRICS if protocol.startswith(PRESSURE_PREFIX) else ())


def is_pressure(task: TaskId) -> bool:
    return task.protocol.startswith(PRESSURE_PREFIX)


def optional(family: str, m: Metric) -> bool:
    """Reported by some tasks of the family only (free-form Are-You-Sure has no ``acc_final``)."""
    return not registry.reported_everywhere(family, m.name)


def required_metrics(family: str) -> tuple[str, ...]:
    """Per-question rates every question of a rule-graded run defines (the inputs of every statistic)."""
    return tuple(
        m.name
        for m in METRICS[family]
        if m.kind == registry.RATE and not m.conditional and not optional(family, m)
    )


def reported(task: TaskId) -> tuple[str, ...] | None:
    """The metrics a sub-task writes under its filter (None for a sub-dataset the registry does not know)."""
    parsed = task_names.parse_task_name(task.name)
    report = task_names.report_for(parsed) if parsed is not None else None
    if report is None:
        return None
    if report == task_names.PRESSURE:  # the dialogue's own metrics and what any schedule may add
        return registry.REPORTS["dialogue"] + tuple(m.name for m in PRESSURE_METRICS)
    extra = registry.DIALOGUE_JUDGED if task.protocol == DIALOGUE and task.grader == JUDGE else ()
    return registry.REPORTS[report] + extra


def required(task: TaskId) -> tuple[str, ...]:
    """Per-question rates every question of a rule-graded run of ``task`` defines (none for the judge's,
    which leave out what it could not grade)."""
    if task.grader != RULE:
        return ()
    names = registry.REPORTS["dialogue"] if is_pressure(task) else reported(task)  # rounds: per schedule
    if names is None:
        return required_metrics(task.family)
    return tuple(
        n for n in names if registry.METRICS[n].kind == registry.RATE and not registry.METRICS[n].conditional
    )


@dataclass(frozen=True, order=True)
class TaskId:
    """A task name taken apart: family, protocol, grader and sub-dataset."""

    family: str
    protocol: str
    grader: str
    subset: str
    name: str

    @property
    def filter_key(self) -> str:
        return FILTER_KEYS[self.grader]

    @property
    def scope(self) -> str:
        """``""`` for Sharma et al.'s data; ``custom_mc`` / ``custom`` for a user's own (``syco-domain``),
        options shown or not. A custom run's ``subset`` is its data's name."""
        return _scope(self.name)

    @property
    def track(self) -> str:
        """Results are only comparable within a track: same family, protocol, grader and kind of data
        (a user's own questions are never pooled or ranked with Sharma et al.'s)."""
        return track_id(self.family, self.protocol, self.grader, self.scope)


@functools.cache
def _scope(name: str) -> str:
    parsed = task_names.parse_task_name(name)
    if parsed is None or not parsed.custom:
        return SHARMA
    return CUSTOM_MC if parsed.subset == task_names.CUSTOM_MC else CUSTOM


#: the kinds of data a track holds: Sharma et al.'s, or a user's own with or without the options shown
SHARMA, CUSTOM_MC, CUSTOM = "", "custom_mc", "custom"
SCOPES = (SHARMA, CUSTOM_MC, CUSTOM)
_SCOPE_LABELS = {CUSTOM_MC: "your data, options shown", CUSTOM: "your data, asked without options"}


def track_id(family: str, protocol: str, grader: str, scope: str = SHARMA) -> str:
    return ".".join([family, protocol, grader, *([scope] if scope else [])])


def track_parts(track: str) -> tuple[str, str, str, str]:
    """(family, protocol, grader, scope) of a track id."""
    family, protocol, grader, *scope = track.split(".")
    return family, protocol, grader, scope[0] if scope else SHARMA


#: a dialogue under a pressure schedule is a protocol of its own: ``pressure-<schedule>``
PRESSURE_PREFIX = "pressure-"


def protocol_of(parsed: task_names.TaskName) -> str:
    """The leaderboard's protocol of a task: one pass, the dialogue, or the dialogue under a schedule
    (never pooled with the single challenge: its final answer comes after other rounds)."""
    return f"{PRESSURE_PREFIX}{parsed.pressure}" if parsed.pressure else parsed.protocol


def protocol_order(protocol: str) -> tuple[int, str]:
    if protocol.startswith(PRESSURE_PREFIX):
        return 2, protocol
    return [ONE_PASS, DIALOGUE].index(protocol), ""


def headline_flip(track: str) -> str:
    """The flip rate an Are-You-Sure track leads with: its protocol's own (``metrics.HEADLINE_FLIP``)."""
    _, protocol, grader, _ = track_parts(track)
    if protocol.startswith(PRESSURE_PREFIX):
        protocol = DIALOGUE
    return registry.HEADLINE_FLIP[(protocol, protocol == ONE_PASS and grader == JUDGE)]


def track_label(track: str) -> str:
    family, protocol, grader, scope = track_parts(track)
    parts = [FAMILY_LABELS[family]]
    if protocol.startswith(PRESSURE_PREFIX):
        parts.append(f"dialogue under pressure ({protocol.removeprefix(PRESSURE_PREFIX)})")
    elif family == AYS:
        parts.append(protocol)
    if scope:
        parts.append(_SCOPE_LABELS[scope])
    parts.append("judge-graded" if grader == JUDGE else "rule-graded")
    return ", ".join(parts)


def parse_task_name(name: str) -> TaskId | None:
    """The ``TaskId`` of a sycophancy sub-task (grader from its name), or None for anything else.

    A dialogue graded by the judge keeps its name; its grader comes from the filter keys (see ingest).
    """
    parsed = task_names.parse_task_name(name)
    if parsed is None:
        return None
    grader = JUDGE if parsed.judged else RULE
    return TaskId(parsed.family, protocol_of(parsed), grader, parsed.subset, name)


def subset_order(family: str, subset: str) -> tuple[int, str]:
    """Sort key: the data's own sub-dataset order first, unknown sub-datasets after, by name."""
    known = KNOWN_SUBSETS[family]
    return (known.index(subset), subset) if subset in known else (len(known), subset)
