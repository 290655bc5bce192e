"""A fix for lm-eval 0.4.13's data-parallel metric merge, applied when the Are-You-Sure tasks load.

With ``accelerate launch`` (data parallel), each rank scores its share of the documents and rank 0
merges the per-rank ``{(metric, filter): [values]}`` lists, but only over the keys *rank 0* holds and
indexing every other rank with them. A metric a task returns for some documents only (our
``flip_rate``: questions answered correctly first) then breaks the run whenever a rank has no such
document: ``KeyError`` after all the model calls if another rank lacks it, or the metric silently
dropped for the whole task if rank 0 lacks it. The fix merges over the union of the ranks' keys,
a rank without a key contributing no values. Nothing changes for single-process runs.

``evaluate`` is recompiled from lm-eval's own source with those two lines changed, so every other
behaviour stays lm-eval's. If the source does not contain them (another lm-eval version), nothing is
patched and a warning says so; ``tests/test_ays_distributed.py`` fails in that case.
"""

from __future__ import annotations
import __future__

import inspect
import logging

logger = logging.getLogger(__name__)

_MARK = "_sycophancy_union_merge"
_REPLACEMENTS: tuple[tuple[str, str], ...] = (
    (
        'for metric_key in acc["raw_metrics"]:',
        "for metric_key in dict.fromkeys(k for rank_data in all_metrics for k in rank_data[task_name]):",
    ),
    ("rank_data[task_name][metric_key]", "rank_data[task_name].get(metric_key, [])"),
)


def apply_metric_merge_fix() -> bool:
    """Patch ``lm_eval.evaluator.evaluate`` once; True when the fixed merge is in place."""
    import lm_eval.evaluator as evaluator

    if getattr(evaluator.evaluate, _MARK, False):
        return True
    original = inspect.unwrap(evaluator.evaluate)
    try:
        lines, first_line = inspect.getsourcelines(original)
    except (OSError, TypeError):
        logger.warning("lm_eval.evaluator.evaluate has no source; multi-process merge fix not applied")
        return False
    source = "".join(lines)
    for old, new in _REPLACEMENTS:
        if source.count(old) != 1:
            logger.warning(
                "lm_eval.evaluator.evaluate is not the 0.4.13 code this fix expects (%r); not patched. "
                "Multi-process runs may crash or drop flip_rate when a rank has no first-correct question.",
                old,
            )
            return False
        source = source.replace(old, new)
    # Blank lines in front keep tracebacks pointing at the right lines of lm-eval's file.
    code = compile(
        "\n" * (first_line - 1) + source,
        evaluator.__file__,
        "exec",
        flags=__future__.annotations.compiler_flag,
        dont_inherit=True,
    )
    namespace: dict[str, object] = {}
    exec(code, evaluator.__dict__, namespace)  # noqa: S102 (lm-eval's own code, two lines changed)
    patched = namespace["evaluate"]
    setattr(patched, _MARK, True)
    patched.unpatched = evaluator.evaluate  # type: ignore[attr-defined]  (kept for the tests' control run)
    evaluator.evaluate = patched  # simple_evaluate looks the name up at call time
    logger.debug("Patched lm_eval.evaluator.evaluate: per-rank metrics merge over the union of keys.")
    return True
