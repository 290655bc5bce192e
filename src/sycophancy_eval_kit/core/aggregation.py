"""How per-question values become a task's number and a group's: lm-eval's side of the registry.

Each metric names its aggregation in the registry (``Metric.aggregation``), and the task YAMLs point
lm-eval at the functions here. ``nan_mean`` returns a ``Counted`` float that remembers its
denominator, which ``lm_eval_compat`` reads to pool sub-tasks into a group over the questions that
define the metric. The standard errors and the agreement statistics are computed in ``stats``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sycophancy_eval_kit.core import stats
from sycophancy_eval_kit.core.registry import METRICS, NAN


class Counted(float):
    """A task-level mean that remembers its denominator ``n`` (the questions that define it).

    It is a float everywhere (JSON, tables); ``lm_eval_compat`` reads ``n`` to weight groups.
    """

    n: int

    def __new__(cls, value: float, n: int) -> Counted:
        obj = super().__new__(cls, value)
        obj.n = n
        return obj

    def __reduce__(self) -> tuple[Any, ...]:  # pickles (lm-eval gathers results across ranks)
        return (Counted, (float(self), self.n))


def _present(values: Iterable[float]) -> list[float]:
    return [float(v) for v in values if not math.isnan(v)]


def nan_mean(values: Sequence[float]) -> Counted:
    """Mean over the questions that define the metric (NaN values left out); NaN when none do."""
    present = _present(values)
    return Counted(math.fsum(present) / len(present) if present else NAN, len(present))


def nan_mean_stderr(values: Sequence[float]) -> float | str:
    """Standard error of ``nan_mean`` (``stats.mean_stderr`` over the defined values); ``N/A`` with
    fewer than two, as lm-eval reports a single value."""
    stderr = stats.mean_stderr(_present(values))
    return "N/A" if stderr is None else stderr


def _pairs(items: Sequence[Sequence[tuple[int, int]]]) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for per_question in items for a, b in per_question]


def agreement(items: Sequence[Sequence[tuple[int, int]]]) -> float:
    """Raw agreement of the rule grader and the judge over every response both graded."""
    return stats.grader_agreement(_pairs(items))[0]


def kappa(items: Sequence[Sequence[tuple[int, int]]]) -> float:
    """Cohen's kappa of the rule grader and the judge over every response both graded (NaN if undefined)."""
    return stats.grader_agreement(_pairs(items))[1]


def total(items: Sequence[float]) -> float:
    """A sum over questions (counts of unjudged judgments, tokens)."""
    return float(math.fsum(items))


AGGREGATIONS: dict[str, Any] = {"nan_mean": nan_mean, "agreement": agreement, "kappa": kappa, "total": total}


def for_metric(name: str) -> Any:
    """The aggregation function of a metric (what its YAML ``metric_list`` names)."""
    return AGGREGATIONS[METRICS[name].aggregation]


def pooled(values: Sequence[float], counts: Sequence[int]) -> Counted:
    """Sub-dataset means pooled over their defining questions: ``sum(v * n) / sum(n)``.

    A sub-dataset with no defining question (n = 0, value NaN) contributes nothing.
    """
    kept = [(float(v), n) for v, n in zip(values, counts, strict=True) if n > 0 and not math.isnan(v)]
    n = sum(c for _, c in kept)
    return Counted(math.fsum(v * c for v, c in kept) / n if n else NAN, n)


def aggregate(raw: Mapping[tuple[str, str], Sequence[Any]], bootstrap_iters: int = 100000) -> dict[str, Any]:
    """A task's row of lm-eval's results (``"<metric>,<filter>"`` and its ``_stderr``) from its
    per-question values, with each metric's registered aggregation, as lm-eval computes it for our
    tasks (``lm_eval_compat``); used where we aggregate ourselves (the dialogue)."""
    row: dict[str, Any] = {}
    for (name, filter_key), values in raw.items():
        function = for_metric(name)
        row[f"{name},{filter_key}"] = function(values)
        stderr: Any = "N/A"
        if function is nan_mean and bootstrap_iters > 0:
            stderr = nan_mean_stderr(values)
        row[f"{name}_stderr,{filter_key}"] = stderr
    return row


def pooled_stderr(values: Sequence[float], stderrs: Sequence[Any], counts: Sequence[int]) -> float | str:
    """``stats.pooled_stderr`` over lm-eval's sub-task rows: a sub-task with one question has stderr
    ``N/A`` and adds no within-variance; any other non-number stderr makes the result ``N/A``."""
    numbers: list[float | None] = []
    for stderr, n in zip(stderrs, counts, strict=True):
        if n >= 2 and not (isinstance(stderr, float) and math.isfinite(stderr)):
            return "N/A"
        numbers.append(stderr if n >= 2 else None)
    pooled_se = stats.pooled_stderr([float(v) for v in values], numbers, list(counts))
    return "N/A" if pooled_se is None else pooled_se


def group_value(
    values: Sequence[Counted], stderrs: Sequence[Any], weight_by_size: bool
) -> tuple[float, Any, int]:
    """A group's value, stderr and count from its sub-tasks' values, which carry their denominators.

    ``weight_by_size``: pooled over the questions that define the metric, with the stderr of that
    pooled sample (``pooled_stderr``); otherwise the plain mean of the sub-tasks that define it, with
    lm-eval's stderr of a mean of independent means.
    """
    from lm_eval.api.metrics import unweighted_mean_stderr

    kept = [(v, s) for v, s in zip(values, stderrs, strict=True) if v.n > 0 and not math.isnan(v)]
    if not kept:
        return NAN, "N/A", 0
    n = sum(v.n for v, _ in kept)
    stderr: Any = "N/A"
    if weight_by_size:
        value: float = pooled([v for v, _ in kept], [v.n for v, _ in kept])
        stderr = pooled_stderr([v for v, _ in kept], [s for _, s in kept], [v.n for v, _ in kept])
    else:
        value = math.fsum(v for v, _ in kept) / len(kept)
        if all(isinstance(s, float) for _, s in kept):
            stderr = unweighted_mean_stderr([s for _, s in kept])
    if isinstance(stderr, float) and not math.isfinite(stderr):
        stderr = "N/A"
    return value, stderr, n


