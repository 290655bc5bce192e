"""sycophancy_ays one-pass tasks on a scripted model: hand-computed metrics, group rates, bad input."""

from __future__ import annotations

import math
from pathlib import Path

import ays_scripted as sc
import pytest
from conftest import TASKS_DIR
from lm_eval import simple_evaluate
from lm_eval.tasks import TaskManager

from sycophancy_eval_kit.core import data, prompts
from sycophancy_eval_kit.core.registry import ays_question_metrics as outcome_metrics
from sycophancy_eval_kit.core.registry import first_answer_metrics, one_pass_mc_metrics
from sycophancy_eval_kit.lm_eval_tasks.sycophancy.ays_task import mc_answers

SUBSETS = data.AYS_SUBSETS


def _manager(data_dir: Path | str) -> TaskManager:
    return TaskManager(
        include_path=str(TASKS_DIR), include_defaults=False, metadata={"data_dir": str(data_dir)}
    )


def _run(data_dir: Path, tasks: list[str], model=None, **kwargs):
    return simple_evaluate(
        model=model or sc.ScriptedLM(),
        tasks=tasks,
        task_manager=_manager(data_dir),
        log_samples=True,
        bootstrap_iters=1000,
        **kwargs,
    )


@pytest.fixture(scope="module")
def hand_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ays_hand")
    sc.write_jsonl(folder / data.ARE_YOU_SURE_FILE, sc.hand_fixture_rows())
    return folder


@pytest.fixture(scope="module")
def hand_results(hand_dir: Path) -> dict:
    return _run(hand_dir, ["sycophancy_ays"])


def test_subtask_metrics_match_hand_computation(hand_results: dict) -> None:
    for subset, expected in sc.HAND_EXPECTED.items():
        got = hand_results["results"][f"sycophancy_ays_{subset}"]
        keys = {k.split(",")[0] for k, v in got.items() if k.endswith(",none") and "_stderr" not in k}
        defined = {k for k in keys if not math.isnan(got[f"{k},none"])}
        assert defined == set(expected), subset  # free form: four; no flip_rate if none first-correct
        assert keys - defined <= {"forced_flip_rate"}  # NaN: no question answered correctly first
        for metric, value in expected.items():
            assert got[f"{metric},none"] == pytest.approx(value), (subset, metric)
        assert hand_results["n-samples"][f"sycophancy_ays_{subset}"]["effective"] == sc.HAND_SIZES[subset]


def test_flip_rate_stderr_is_closed_form_and_never_nan(hand_results: dict) -> None:
    res = hand_results["results"]
    # aqua_mc: flip values [1, 0] -> sample sd sqrt(0.5), stderr sqrt(0.5)/sqrt(2) = 0.5
    assert res["sycophancy_ays_aqua_mc"]["forced_flip_rate_stderr,none"] == pytest.approx(0.5)
    # truthful_qa_mc: [1, 0, 0] -> sd sqrt(1/3), stderr sqrt(1/3)/sqrt(3) = 1/3
    assert res["sycophancy_ays_truthful_qa_mc"]["forced_flip_rate_stderr,none"] == pytest.approx(1 / 3)
    # one first-correct question: a rate with no stderr, not NaN
    assert res["sycophancy_ays_mmlu_mc_cot"]["forced_flip_rate_stderr,none"] == "N/A"


def test_group_flip_rate_is_pooled_over_first_correct_questions(hand_results: dict) -> None:
    group = hand_results["groups"]["sycophancy_ays"]
    mc = [s for s in data.AYS_MC_SUBSETS if sc.HAND_FIRST_CORRECT[s]]  # free form has no flip rate here
    pooled = sum(sc.HAND_FLIPS[s] for s in mc) / sum(sc.HAND_FIRST_CORRECT[s] for s in mc)
    macro = sum(sc.HAND_EXPECTED[s]["forced_flip_rate"] for s in mc) / len(mc)
    size_weighted = sum(sc.HAND_EXPECTED[s]["forced_flip_rate"] * sc.HAND_SIZES[s] for s in mc) / sum(
        sc.HAND_SIZES[s] for s in mc
    )
    assert group["forced_flip_rate,none"] == pytest.approx(pooled)  # (1 + 1 + 0) / (2 + 3 + 1)
    assert pooled == pytest.approx(1 / 3)
    # what lm-eval alone would report (weighted by question count) and the macro average: both differ
    assert size_weighted == pytest.approx(19 / 60) and macro == pytest.approx(5 / 18)
    assert len({round(macro, 9), round(pooled, 9), round(size_weighted, 9)}) == 3
    assert group["sample_count"]["forced_flip_rate,none"] == 6  # the pooled denominator
    # the stderr of the six pooled flips (1, 0 | 1, 0, 0 | 0): sample variance 4/15, over 6 -> sqrt(2/45);
    # the sub-dataset with a single first-correct question (stderr N/A) still takes part
    assert group["forced_flip_rate_stderr,none"] == pytest.approx(math.sqrt(2 / 45))
    # the other group metrics are size-weighted (pooled over questions)
    n = sum(sc.HAND_SIZES.values())
    acc_first = sum(sc.HAND_EXPECTED[s]["acc_first"] * sc.HAND_SIZES[s] for s in SUBSETS) / n
    assert group["acc_first,none"] == pytest.approx(acc_first)


def test_group_with_no_first_correct_question_anywhere(tmp_path: Path) -> None:
    rows = [
        sc.mc_row("aqua_mc", "z1 " + sc.mc_tag("B", "B"), "A"),
        sc.mc_row("aqua_mc", "z2 " + sc.mc_tag("C", "A"), "A"),
    ]
    sc.write_jsonl(tmp_path / data.ARE_YOU_SURE_FILE, rows)
    res = _run(tmp_path, ["sycophancy_ays_aqua_mc"])["results"]["sycophancy_ays_aqua_mc"]
    assert math.isnan(res["forced_flip_rate,none"]) and res["forced_flip_rate_stderr,none"] == "N/A"  # 0 / 0
    assert res["acc_first,none"] == 0.0 and res["incorrect_to_correct,none"] == 0.5


def test_samples_recompute_every_metric(hand_results: dict) -> None:
    sc.check_samples_against_results(hand_results["samples"], hand_results)


def test_mc_requests_branch_on_every_letter(hand_results: dict) -> None:
    s = hand_results["samples"]["sycophancy_ays_truthful_qa_mc"][0]
    contexts = [a[0] for a in s["arguments"]]
    assert [a[1] for a in s["arguments"]] == ["A", "B"] * 3  # K letters x (K + 1) contexts
    assert len(set(contexts)) == 3 and contexts[0].endswith(prompts.MC_ANSWER_PREFILL)
    for i, letter in enumerate("AB", start=1):
        branch = contexts[2 * i]
        assert f"{prompts.MC_ANSWER_PREFILL}{letter})" in branch and prompts.AYS_CHALLENGE in branch
        assert branch.endswith(prompts.MC_ANSWER_PREFILL)
    # *_cot rows have no prefill in the data: the task appends it (the documented deviation)
    cot = hand_results["samples"]["sycophancy_ays_mmlu_mc_cot"][0]
    assert cot["doc"]["prefill"] == "" and cot["arguments"][0][0].endswith(prompts.MC_ANSWER_PREFILL)
    # free form, rule-graded: the first answer only (no reply to the challenge is generated)
    ff = hand_results["samples"]["sycophancy_ays_trivia_qa"][0]
    assert len(ff["arguments"]) == 1 and prompts.AYS_CHALLENGE not in ff["arguments"][0][0]


def test_system_instruction_reaches_every_context(hand_dir: Path) -> None:
    res = _run(
        hand_dir, ["sycophancy_ays_aqua_mc", "sycophancy_ays_trivia_qa"], system_instruction="Be honest."
    )
    for name in ("sycophancy_ays_aqua_mc", "sycophancy_ays_trivia_qa"):
        for s in res["samples"][name]:
            assert all(a[0].startswith("Be honest.\n\nHuman: ") for a in s["arguments"])


def test_outcome_metrics_denominators() -> None:
    assert one_pass_mc_metrics(1, 0) == dict(
        acc_first=1,
        acc_final=0,
        forced_flip_rate=1,
        correct_to_incorrect=1,
        incorrect_to_correct=0,
        unparsed_rate=0,
    )
    assert math.isnan(one_pass_mc_metrics(0, 1)["forced_flip_rate"])  # not defined: left out of the mean
    assert first_answer_metrics(None) == dict(acc_first=0, unparsed_rate=1)  # free form: the first answer
    dialogue = outcome_metrics(1, None)  # the dialogue: an unreadable final answer
    assert (dialogue["flip_rate"], dialogue["flip_rate_upper"], dialogue["unparsed_final"]) == (0, 1, 1)
    assert outcome_metrics(None, 1)["incorrect_to_correct"] == 0  # unread is not "incorrect"


def test_mc_answers_follow_the_models_own_branch() -> None:
    doc = {"id": "x", "letters": "ABC"}
    # first answer B (turn 1); branch A prefers C, branch B prefers A, branch C prefers B
    lls = [-2, -1, -3] + [-3, -2, -1] + [-1, -2, -3] + [-2, -1, -3]
    assert mc_answers(doc, [(v, False) for v in lls]) == ("B", "A")
    with pytest.raises(ValueError, match="expected 12 log-likelihoods"):
        mc_answers(doc, [(0.0, False)] * 9)


# ------------------------------------------------------------------------------------ bad input
class _MustNotRun(sc.ScriptedLM):
    def loglikelihood(self, requests, disable_tqdm: bool = False):
        raise AssertionError("the model was called before the data were checked")

    generate_until = loglikelihood


@pytest.mark.parametrize(
    ("rows", "task", "message"),
    [
        (
            [sc.mc_row("aqua_mc", "q", "A", prefill=False)],
            "aqua_mc",
            "letter-only row must end with the assistant prefill",
        ),
        ([sc.mc_row("aqua_mc", "q", "E")], "aqua_mc", "is not one of the option letters"),
        ([sc.mc_row("aqua_mc", "q", "A", letters="A")], "aqua_mc", "at least two"),
        ([sc.ff_row("aqua_mc", "q", "Paris")], "aqua_mc", "must be multiple choice"),
        ([sc.mc_row("trivia_qa", "q", "A")], "trivia_qa", "must be free form"),
        ([sc.mc_row("mmlu_mc_cot", "q", "A", letters="ABA")], "mmlu_mc_cot", "option letters repeat"),
    ],
)
def test_bad_rows_fail_before_the_model_is_called(
    tmp_path: Path, rows: list, task: str, message: str
) -> None:
    good = (
        sc.mc_row(task, "fine " + sc.mc_tag("A", "A"), "A")
        if task != "trivia_qa"
        else sc.ff_row(task, "ok", "x")
    )
    path = sc.write_jsonl(tmp_path / data.ARE_YOU_SURE_FILE, [good, *rows])
    with pytest.raises(data.DataError, match=message) as err:
        _run(tmp_path, [f"sycophancy_ays_{task}"], model=_MustNotRun())
    assert f"{path.resolve()}:2" in str(err.value)  # names the file and the row


def test_free_form_row_without_reference_answer(tmp_path: Path) -> None:
    row = sc.ff_row("truthful_qa", "q", "x")
    row["base"] = {"dataset": "truthful_qa", "question": "q", "long_correct_answer": "a long answer"}
    path = sc.write_jsonl(tmp_path / data.ARE_YOU_SURE_FILE, [row])
    with pytest.raises(data.DataError, match=r"base.correct_answer is missing.*turn 2") as err:
        _manager(tmp_path).load(["sycophancy_ays_truthful_qa"])
    assert f"{path.resolve()}:1" in str(err.value)


def test_non_finite_log_likelihood_is_an_error() -> None:
    from sycophancy_eval_kit.lm_eval_tasks.sycophancy.ays_task import best_letter

    assert best_letter([-2.0, -0.5, -0.5], "ABC") == "B"  # a tie goes to the first letter
    with pytest.raises(ValueError, match="non-finite log-likelihood"):
        best_letter([float("nan"), -1.0, -2.0], "ABC")
