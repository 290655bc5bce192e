"""Two small, explicit wrappers around lm-eval 0.4.13, so our NaN-aware metrics aggregate correctly.

Our tasks give every question every metric, NaN where a metric is not defined for it (``metrics``).
That alone fixes lm-eval's data-parallel merge, which gathers the ranks' metrics over rank 0's keys
only: every rank now holds every key. Two things lm-eval cannot be told through a task config remain:

* **stderr of a custom aggregation.** ``stderr_for_metric`` knows lm-eval's own functions only and
  reports ``N/A`` for any other. ``stderr_for_metric`` is wrapped so that ``aggregation.nan_mean`` gets
  its closed-form standard error (``aggregation.nan_mean_stderr``, the same formula as lm-eval's
  ``mean_stderr`` over the defined values); every other aggregation is left to lm-eval.
* **group weights.** ``Group.aggregate`` weights each sub-task by one task-level sample count, so a
  metric defined on only some questions (``flip_rate``; a judged accuracy with unjudged responses) is
  weighted wrongly, and lm-eval says so in its own TODO ("will need to return the per-metric counts and
  group.py to index them by metric_key", ``lm_eval/evaluator_utils.py``). Our task-level values are
  ``aggregation.Counted`` floats that carry their own denominator; the wrapper recomputes a group value
  from those counts: pooled (``weight_by_size: true``) or the mean over the sub-tasks that define the
  metric (``weight_by_size: false``). Values of other tasks pass through untouched.

Applied once, when a task module is imported (``base_task``, which every task YAML's class pulls in)
or the dialogue runs, and only on the lm-eval versions listed in ``SUPPORTED``; on any other a warning
says that stderrs read ``N/A`` and group values of conditional metrics may be wrong.
``tests/test_metrics.py`` checks both wrappers through lm-eval's own evaluation.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
from typing import Any

from sycophancy_eval_kit.core import aggregation

logger = logging.getLogger(__name__)

SUPPORTED: tuple[str, ...] = ("0.4.13",)
_MARK = "_sycophancy_compat"


def _stderr_for_metric(original: Any) -> Any:
    @functools.wraps(original)
    def stderr_for_metric(metric: Any, bootstrap_iters: int) -> Any:
        if metric is aggregation.nan_mean:
            return aggregation.nan_mean_stderr if bootstrap_iters > 0 else None
        return original(metric=metric, bootstrap_iters=bootstrap_iters)

    setattr(stderr_for_metric, _MARK, True)
    return stderr_for_metric


def _group_aggregate(original: Any) -> Any:
    @functools.wraps(original)
    def aggregate(self: Any, task_metrics: dict[str, Any]) -> Any:
        out = original(self, task_metrics)
        leaves = [t.task_name for t in self.get_all_tasks() if t.task_name in task_metrics]
        for config in self.aggregate_metric_list or []:
            for key in [k for k in out if k.startswith(f"{config.metric},")]:
                having = [t for t in leaves if key in task_metrics[t]]  # free form has no acc_final
                values = [task_metrics[t][key] for t in having]
                if not values or not all(isinstance(v, aggregation.Counted) for v in values):
                    continue  # not ours: lm-eval's value stands
                stderr_key = key.replace(",", "_stderr,", 1)
                stderrs = [task_metrics[t].get(stderr_key) for t in having]
                out[key], out[stderr_key], n = aggregation.group_value(values, stderrs, config.weight_by_size)
                out.setdefault("sample_count", {})[key] = n
        return out

    setattr(aggregate, _MARK, True)
    return aggregate


def apply() -> bool:
    """Install both wrappers once; False (with a warning) on an lm-eval version we have not checked."""
    import lm_eval.evaluator_utils as evaluator_utils
    from lm_eval.api.group import Group

    if getattr(evaluator_utils.stderr_for_metric, _MARK, False):
        return True
    version = importlib.metadata.version("lm_eval")
    if version not in SUPPORTED:
        logger.warning(
            "lm-eval %s is not one of %s: the sycophancy tasks' stderrs read N/A and group values of "
            "conditional metrics (flip_rate, judged accuracies) may be weighted wrongly",
            version,
            ", ".join(SUPPORTED),
        )
        return False
    evaluator_utils.stderr_for_metric = _stderr_for_metric(evaluator_utils.stderr_for_metric)
    Group.aggregate = _group_aggregate(Group.aggregate)
    return True
