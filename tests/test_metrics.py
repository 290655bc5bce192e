"""The metric registry is the one home: the YAMLs, the README tables and lm-eval's aggregation agree
with it, and the two lm-eval wrappers touch only our values."""

from __future__ import annotations

import math

import pytest
import yaml

from sycophancy_eval_kit.core import aggregation, lm_eval_compat, registry, task_names
from sycophancy_eval_kit.lm_eval_tasks import TASKS_DIR
from sycophancy_eval_kit.lm_eval_tasks.readme import README

FOLDER = TASKS_DIR / "sycophancy"
TEMPLATES = {
    "_answer_template": "answer",
    "_answer_judged_template": "answer_judged",
    "_ays_mc_template": "ays_mc",
    "_ays_free_form_template": "ays_free_form",
    "_ays_judged_template": "ays_judged",
    "sycophancy_custom_answer_mc.yaml": "answer",  # its own list: a loglikelihood task
}
GROUPS = {
    "_sycophancy_answer.yaml": ("answer",),
    "_sycophancy_answer_judged.yaml": ("answer_judged",),
    "_sycophancy_ays.yaml": ("ays_mc", "ays_free_form"),
    "_sycophancy_ays_judged.yaml": ("ays_judged",),
}


class _Loader(yaml.SafeLoader):
    """lm-eval's YAML with ``!function`` tags read as their dotted names (nothing imported)."""


_Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))


def _raw_yaml(name: str) -> dict:
    """The file's own keys (``include:`` not followed)."""
    return yaml.load((FOLDER / name).read_text(encoding="utf-8"), Loader=_Loader)


@pytest.mark.parametrize(("template", "report"), sorted(TEMPLATES.items()))
def test_every_metric_list_is_the_registry(template: str, report: str) -> None:
    declared = _raw_yaml(template)["metric_list"]
    assert [m["metric"] for m in declared] == list(registry.REPORTS[report])
    for entry in declared:
        m = registry.METRICS[entry["metric"]]
        assert entry["aggregation"] == f"sycophancy_eval_kit.core.aggregation.{m.aggregation}", m.name
        assert entry["higher_is_better"] is m.higher_is_better, m.name


def test_every_metric_list_is_checked() -> None:
    """A task file with a ``metric_list`` of its own is one of those checked above."""
    names = [p.name for p in FOLDER.iterdir() if p.suffix == ".yaml" or p.name.endswith("_template")]
    own = {n for n in names if "metric_list" in _raw_yaml(n)}
    assert own == set(TEMPLATES)


@pytest.mark.parametrize(("group", "reports"), sorted(GROUPS.items()))
def test_every_group_aggregates_the_means_of_its_tasks(group: str, reports: tuple[str, ...]) -> None:
    declared = [m["metric"] for m in _raw_yaml(group)["aggregate_metric_list"]]
    means = dict.fromkeys(
        n for r in reports for n in registry.REPORTS[r] if registry.METRICS[n].aggregation == "nan_mean"
    )
    assert declared == list(means)


def test_readme_tables_are_current() -> None:
    text = README.read_text(encoding="utf-8")
    assert all(f"<!-- metrics:{t} -->" in text for t in registry.TABLES)
    assert registry.readme_with_tables(text) == text, (
        "run python -m sycophancy_eval_kit.lm_eval_tasks.readme --update_readme"
    )


def test_registry_is_consistent() -> None:
    for m in registry.METRICS.values():
        assert m.aggregation in aggregation.AGGREGATIONS, m.name
        assert not m.given or registry.METRICS[m.given].kind == registry.RATE, m.name
        assert all(t in registry.METRICS and registry.METRICS[t].kind == registry.RATE for t, _ in m.terms)
        assert m.is_delta == bool(m.terms), m.name
    assert set(registry.ANSWER_METRICS) == set(
        registry.answer_question_metrics(dict.fromkeys(registry.CONDITIONS, 1))
    )
    assert list(registry.ays_question_metrics(1, 0)) == list(registry.DIALOGUE_METRICS)
    assert list(registry.one_pass_mc_metrics(1, 0)) == list(registry.AYS_MC_METRICS)
    assert list(registry.first_answer_metrics(1)) == list(registry.AYS_FREE_FORM_METRICS)


def test_per_question_metrics_by_hand() -> None:
    got = registry.answer_question_metrics(
        {"baseline": 1, "suggest_correct": 1, "suggest_incorrect": 0, "doubt_correct": None}
    )
    assert (got["delta_suggest_correct"], got["delta_suggest_incorrect"]) == (0.0, -1.0)
    assert math.isnan(got["acc_doubt_correct"]) and math.isnan(got["delta_doubt_correct"])
    assert math.isnan(got["answer_sycophancy"])  # needs all four
    assert registry.admits_mistake(1, replied=False, verdict=None) == 0.0
    assert math.isnan(registry.admits_mistake(1, replied=True, verdict=None))
    assert math.isnan(registry.admits_mistake(0, replied=True, verdict=1))


def test_nan_mean_and_its_stderr_by_hand() -> None:
    values = [1.0, math.nan, 0.0, 0.0, math.nan]
    mean = aggregation.nan_mean(values)
    assert mean == pytest.approx(1 / 3) and mean.n == 3
    # sample sd of (1, 0, 0) = sqrt(1/3); stderr = sqrt(1/3) / sqrt(3) = 1/3
    assert aggregation.nan_mean_stderr(values) == pytest.approx(1 / 3)
    assert aggregation.nan_mean_stderr([1.0, math.nan]) == "N/A"
    assert math.isnan(aggregation.nan_mean([math.nan])) and aggregation.nan_mean([math.nan]).n == 0


def test_group_value_pools_by_the_defining_questions() -> None:
    a, b, empty = aggregation.Counted(0.5, 2), aggregation.Counted(0.0, 2), aggregation.Counted(math.nan, 0)
    value, _, n = aggregation.group_value([a, b, empty], [0.5, 0.0, "N/A"], weight_by_size=True)
    assert (value, n) == (pytest.approx(0.25), 4)
    value, _, n = aggregation.group_value(
        [a, aggregation.Counted(0.0, 8), empty], [0.5, 0.0, "N/A"], weight_by_size=False
    )
    assert (value, n) == (pytest.approx(0.25), 10)  # the macro average ignores the empty sub-task


def test_group_stderr_is_that_of_the_pooled_questions() -> None:
    # (0, 0) and (1, 1) pooled: the questions (0, 0, 1, 1) have sample variance 1/3, so the stderr is
    # sqrt(1/3 / 4); lm-eval's pooled_sample_stderr, which drops the spread between sub-tasks, says 0.
    zeros, ones = aggregation.nan_mean([0.0, 0.0]), aggregation.nan_mean([1.0, 1.0])
    _, stderr, n = aggregation.group_value([zeros, ones], [0.0, 0.0], weight_by_size=True)
    assert n == 4 and stderr == pytest.approx(math.sqrt(1 / 12))
    # a sub-task with a single question (stderr N/A) still counts: (1) with (0, 0) is (1, 0, 0) -> 1/3
    single, pair = aggregation.nan_mean([1.0]), aggregation.nan_mean([0.0, 0.0])
    _, stderr, _ = aggregation.group_value([single, pair], ["N/A", 0.0], weight_by_size=True)
    assert stderr == pytest.approx(1 / 3)
    # an unknown stderr of a larger sub-task (lm-eval run with bootstrap_iters=0) stays unknown
    assert aggregation.group_value([pair, ones], ["N/A", 0.0], weight_by_size=True)[1] == "N/A"


def test_wrappers_leave_other_tasks_alone() -> None:
    import lm_eval.evaluator_utils as evaluator_utils
    from lm_eval.api.metrics import mean, mean_stderr

    assert lm_eval_compat.apply()
    assert evaluator_utils.stderr_for_metric(metric=mean, bootstrap_iters=10) is mean_stderr
    assert (
        evaluator_utils.stderr_for_metric(metric=aggregation.nan_mean, bootstrap_iters=10)
        is aggregation.nan_mean_stderr
    )
    assert evaluator_utils.stderr_for_metric(metric=aggregation.nan_mean, bootstrap_iters=0) is None


@pytest.mark.parametrize(
    "args",
    [("answer", "trivia_qa"), ("answer", "truthful_qa", "one-pass", True), ("ays", "aqua_mc", "dialogue")],
)
def test_task_names_round_trip(args: tuple) -> None:
    name = task_names.task_name(*args)
    parsed = task_names.parse_task_name(name)
    assert parsed is not None and parsed.name == name
    assert task_names.group_name(parsed.family, parsed.protocol, parsed.judged) in name
    with pytest.raises(ValueError):
        task_names.task_name("answer", "trivia_qa", "dialogue")
