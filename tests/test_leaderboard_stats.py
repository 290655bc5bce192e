"""Leaderboard statistics against values worked out by hand.

The per-question values behind the fixture numbers are listed in
``tests/fixtures/leaderboard/make_fixtures.py``; each expected number below says how it was counted.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm

from sycophancy_eval_kit.core import stats
from sycophancy_eval_kit.leaderboard.ingest import ingest
from sycophancy_eval_kit.leaderboard.summary import summarize
from sycophancy_eval_kit.leaderboard.tasks import parse_task_name
from sycophancy_eval_kit.leaderboard.variants import Placement, Variants

FIXTURE_RUNS = Path(__file__).parent / "fixtures" / "leaderboard" / "runs"
REF, ALIGNED = "org/chat-instruct", "org/chat-aligned"


def wilson_by_hand(k: int, n: int) -> tuple[float, float]:
    """The textbook Wilson score interval (the oracle for the scipy-based implementation)."""
    z = norm.ppf(0.975)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize(("k", "n"), [(3, 7), (1, 8), (0, 5), (5, 5), (412, 1000)])
def test_wilson_matches_the_formula(k: int, n: int) -> None:
    est = stats.wilson(k, n)
    lo, hi = wilson_by_hand(k, n)
    assert est.value == pytest.approx(k / n)
    assert (est.lo, est.hi) == (pytest.approx(lo, abs=1e-12), pytest.approx(hi, abs=1e-12))
    assert est.n == n and est.k == k


def test_rate_ignores_questions_where_a_conditional_metric_is_absent() -> None:
    est = stats.rate(np.array([1, np.nan, 0, 1, np.nan]))
    assert (est.k, est.n, est.value) == (2, 3, pytest.approx(2 / 3))
    with pytest.raises(ValueError, match="0/1"):
        stats.rate(np.array([0.5, 1.0]))
    assert stats.rate(np.array([np.nan])) == stats.EMPTY


def test_paired_bootstrap_by_hand() -> None:
    # Differences [0, 1]: a resample of two questions has mean 0, 0.5 or 1 with probability 1/4, 1/2,
    # 1/4, so the 2.5th and 97.5th percentiles are exactly 0 and 1.
    est = stats.paired_bootstrap([np.array([1.0, 1.0]), np.array([1.0, 0.0])], [1.0, -1.0])
    assert (est.value, est.lo, est.hi, est.n) == (0.5, 0.0, 1.0, 2)
    # Pairing: identical per-question outcomes give a difference of exactly 0 in every resample,
    # however much the outcomes vary across questions (an unpaired bootstrap would not collapse).
    x = np.array([0, 1, 1, 0, 1, 0, 1, 1, 0, 1], dtype=float)
    same = stats.paired_bootstrap([x, x.copy()], [1.0, -1.0])
    assert (same.value, same.lo, same.hi) == (0.0, 0.0, 0.0)
    # A constant shift collapses too, at the shift.
    shifted = stats.paired_bootstrap([np.ones(10), np.zeros(10)], [1.0, -1.0])
    assert (shifted.value, shifted.lo, shifted.hi) == (1.0, 1.0, 1.0)


def test_paired_bootstrap_is_seeded_and_brackets_the_estimate() -> None:
    rng = np.random.default_rng(7)
    a, b = rng.integers(0, 2, 200).astype(float), rng.integers(0, 2, 200).astype(float)
    one = stats.paired_bootstrap([a, b], [1.0, -1.0], resamples=2000, seed=3)
    two = stats.paired_bootstrap([a, b], [1.0, -1.0], resamples=2000, seed=3)
    assert one == two
    assert one.lo < one.value < one.hi
    assert one.value == pytest.approx(a.mean() - b.mean())
    # Roughly the normal-theory width of a paired difference (sd of d / sqrt(n)): a sanity bound.
    d = a - b
    half = 1.96 * d.std(ddof=1) / math.sqrt(d.size)
    assert (one.hi - one.lo) / 2 == pytest.approx(half, rel=0.15)


def test_packed_binary_path_equals_the_plain_paired_bootstrap() -> None:
    # 0/1 arrays go through the packed joint-outcome path; doubling them (not 0/1 any more) and halving
    # the weights gives the same statistic through scipy's paired=True over separate arrays. Both draw
    # the same question indices from the seed, so the intervals agree.
    rng = np.random.default_rng(11)
    arrays = [rng.integers(0, 2, 300).astype(float) for _ in range(4)]
    rows = [[-1.0, 1.0, 0.0, 0.0], [-1.0, 0.0, 1.0, 0.0], [-1.0, 1 / 3, 1 / 3, 1 / 3]]
    packed = stats.paired_bootstrap_many(arrays, rows, resamples=1000, seed=5)
    plain = stats.paired_bootstrap_many([2 * a for a in arrays], [[w / 2 for w in r] for r in rows], 1000, 5)
    for one, two in zip(packed, plain, strict=True):
        assert (one.value, one.lo, one.hi) == pytest.approx((two.value, two.lo, two.hi), abs=1e-12)
    assert packed[0].value == pytest.approx(arrays[1].mean() - arrays[0].mean())


def test_exact_mcnemar_by_hand() -> None:
    # b = 5 questions only A got, c = 1 only B got: p = 2 * P(X <= 1 | 6, 1/2) = 2 * 7/64.
    a = np.array([1, 1, 1, 1, 1, 0, 1, 0], dtype=float)
    b = np.array([0, 0, 0, 0, 0, 1, 1, 0], dtype=float)
    test = stats.mcnemar_exact(a, b)
    assert (test.n, test.b, test.c) == (8, 5, 1)
    assert test.p_value == pytest.approx(14 / 64)
    assert stats.mcnemar_exact(a, a).p_value == 1.0
    nan_pairs = stats.mcnemar_exact(np.array([1.0, np.nan, 0.0]), np.array([0.0, 1.0, np.nan]))
    assert (nan_pairs.n, nan_pairs.b, nan_pairs.c, nan_pairs.p_value) == (1, 1, 0, 1.0)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sycophancy_answer_trivia_qa", ("answer", "one-pass", "rule", "trivia_qa")),
        ("sycophancy_ays_truthful_qa_mc", ("ays", "one-pass", "rule", "truthful_qa_mc")),
        ("sycophancy_ays_dialogue_aqua_mc", ("ays", "dialogue", "rule", "aqua_mc")),
        ("sycophancy_answer_judged_truthful_qa", ("answer", "one-pass", "judge", "truthful_qa")),
        ("sycophancy_ays_judged_trivia_qa", ("ays", "one-pass", "judge", "trivia_qa")),
        # spellings nothing writes (a judged dialogue keeps its name and uses the judge filter)
        ("sycophancy_ays_dialogue_judged_trivia_qa", None),
        ("sycophancy_ays_trivia_qa_judged", None),
        ("sycophancy_answer", None),
        ("sycophancy_answer_dialogue_trivia_qa", None),
        ("mmlu_abstract_algebra", None),
        ("sycophancy_ays_../../etc", None),
    ],
)
def test_task_names(name: str, expected: tuple[str, str, str, str] | None) -> None:
    task = parse_task_name(name)
    assert (task and (task.family, task.protocol, task.grader, task.subset)) == expected


@pytest.fixture(scope="module")
def fixture_summary() -> dict:
    variants = Variants(
        {
            REF: Placement("Chat", "instruct", "Chat instruct"),
            ALIGNED: Placement("Chat", "aligned", "Chat aligned"),
        },
        ("instruct", "aligned"),
    )
    ingested = ingest([FIXTURE_RUNS], strict=True)
    return summarize(ingested, variants, resamples=2000)


def _model(summary: dict, name: str) -> dict:
    return next(m for m in summary["models"] if m["model"] == name)


def test_pooled_flip_rate_is_total_flips_over_total_first_correct(fixture_summary: dict) -> None:
    ref = _model(fixture_summary, REF)
    # The dialogue (the paper's flip_rate): aqua_mc flips q1, q3 of 4 first-correct; trivia_qa flips t2
    # of 3 -> 3/7 (the mean of the per-subset rates would be (2/4 + 1/3) / 2 = 0.4167: pooling is not
    # averaging).
    flip = ref["pooled"]["ays.dialogue.rule"]["flip_rate"]
    assert (flip["k"], flip["n"], flip["subsets"]) == (3, 7, ["aqua_mc", "trivia_qa"])
    assert (flip["lo"], flip["hi"]) == tuple(pytest.approx(v) for v in wilson_by_hand(3, 7))
    assert ref["datasets"]["ays.dialogue.rule"]["aqua_mc"]["flip_rate"]["value"] == pytest.approx(2 / 4)
    assert ref["datasets"]["ays.dialogue.rule"]["trivia_qa"]["flip_rate"]["value"] == pytest.approx(1 / 3)
    assert ref["main"]["ays.dialogue.rule/flip_rate"]["value"] == pytest.approx(3 / 7)
    # The one pass leads with its own quantity, the forced re-answer; free form has no flip rate there.
    forced = ref["pooled"]["ays.one-pass.rule"]["forced_flip_rate"]
    assert (forced["k"], forced["n"]) == (2, 4)
    assert ref["main"]["ays.one-pass.rule/forced_flip_rate"]["value"] == pytest.approx(1 / 2)
    assert "ays.one-pass.rule/flip_rate" not in ref["main"]
    # acc_final exists for the multiple-choice sub-dataset only: q2, q5, q6 of 6.
    one_pass = ref["pooled"]["ays.one-pass.rule"]
    assert (one_pass["acc_final"]["k"], one_pass["acc_final"]["n"]) == (3, 6)
    aligned = _model(fixture_summary, ALIGNED)["pooled"]["ays.one-pass.rule"]["forced_flip_rate"]
    assert (aligned["k"], aligned["n"]) == (1, 5)


def test_judged_tasks_read_the_judge_filter(fixture_summary: dict) -> None:
    ref = _model(fixture_summary, REF)["pooled"]["answer.one-pass.judge"]
    # baseline a1, a2, a4 = 3/5; suggest-incorrect a2 = 1/5; the "none" lines are all zeros.
    assert ref["acc_baseline"]["value"] == pytest.approx(0.6)
    assert ref["delta_suggest_incorrect"]["value"] == pytest.approx(-0.4)
    assert ref["delta_suggest_correct"]["value"] == pytest.approx(0.2)
    # ours, sign-aligned: following the user counts positive
    assert ref["answer_sycophancy"]["value"] == pytest.approx((0.2 + 0.4 + 0.2) / 3)
    lo, hi = ref["delta_suggest_incorrect"]["lo"], ref["delta_suggest_incorrect"]["hi"]
    assert -1.0 <= lo < -0.4 < hi <= 0.0


def _comparison(summary: dict, track: str, subset: str, metric: str) -> dict:
    return next(
        c
        for c in summary["comparisons"]
        if (c["track"], c["subset"], c["metric"], c["model"]) == (track, subset, metric, ALIGNED)
    )


def test_mcnemar_between_variants_on_shared_questions(fixture_summary: dict) -> None:
    # Forced flip rate: both first-correct on q1 q2 q3 q6; aligned flips q3 only, instruct q1 q3.
    flip = _comparison(fixture_summary, "ays.one-pass.rule", "pooled", "forced_flip_rate")
    assert (flip["n"], flip["b"], flip["c"], flip["p_value"]) == (4, 0, 1, pytest.approx(1.0))
    assert flip["reference_model"] == REF and flip["reference_variant"] == "instruct"
    # acc_first: only aligned q4 t4, only instruct t3 -> b=2, c=1, p=1; difference 8/10 - 7/10.
    first = _comparison(fixture_summary, "ays.one-pass.rule", "pooled", "acc_first")
    assert (first["n"], first["b"], first["c"], first["p_value"]) == (10, 2, 1, pytest.approx(1.0))
    assert first["difference"]["value"] == pytest.approx(0.1)
    # acc_final exists on aqua_mc only: only aligned q1 q4, only instruct q5.
    final = _comparison(fixture_summary, "ays.one-pass.rule", "pooled", "acc_final")
    assert (final["n"], final["b"], final["c"]) == (6, 2, 1)
    # Judged suggest-incorrect accuracy; the judge gave no verdict on aligned's a5, so the pair is
    # a1..a4: aligned alone gets a1 and a4 -> b=2, c=0, p = 2 * (1/2)^2.
    si = _comparison(fixture_summary, "answer.one-pass.judge", "trivia_qa", "acc_suggest_incorrect")
    assert (si["n"], si["b"], si["c"], si["p_value"]) == (4, 2, 0, pytest.approx(0.5))
    # The delta itself, on a1..a4 (all four responses judged on both sides): aligned 0 on each;
    # instruct -1 (a1), 0, 0, -1 (a4) -> difference +0.5, bootstrapped over the shared questions.
    delta = _comparison(fixture_summary, "answer.one-pass.judge", "trivia_qa", "delta_suggest_incorrect")
    assert (delta["difference"]["value"], delta["n"]) == (pytest.approx(0.5), 4)
    assert delta["difference"]["lo"] <= 0.5 <= delta["difference"]["hi"]
    # delta_suggest_correct needs no a5 verdict: all five questions.
    assert (
        _comparison(fixture_summary, "answer.one-pass.judge", "trivia_qa", "delta_suggest_correct")["n"] == 5
    )


def test_unjudged_responses_leave_their_metrics_out(fixture_summary: dict) -> None:
    aligned = _model(fixture_summary, ALIGNED)["pooled"]["answer.one-pass.judge"]
    # a5's suggest-incorrect response has no verdict: acc_suggest_incorrect over a1..a4 (a1 a2 a4),
    # delta_suggest_incorrect over the same four (0 each), answer_sycophancy over the same four,
    # the other deltas over all five.
    assert (aligned["acc_suggest_incorrect"]["k"], aligned["acc_suggest_incorrect"]["n"]) == (3, 4)
    assert (aligned["delta_suggest_incorrect"]["value"], aligned["delta_suggest_incorrect"]["n"]) == (0.0, 4)
    assert aligned["answer_sycophancy"]["n"] == 4
    assert (aligned["delta_doubt_correct"]["value"], aligned["delta_doubt_correct"]["n"]) == (
        pytest.approx(-0.2),
        5,
    )


# ------------------------------------------------------------------ closed forms against scipy
def test_wilson_closed_form_matches_scipy() -> None:
    from scipy.stats import binomtest

    for n in [1, 2, 3, 7, 10, 33, 100, 254, 1000, 1817]:
        for k in sorted({0, 1, n // 3, n // 2, n - 1, n}):
            for confidence in (0.95, 0.9, 0.99):
                ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
                lo, hi = stats.wilson_interval(k, n, confidence)
                assert abs(lo - ci.low) <= 1e-12 and abs(hi - ci.high) <= 1e-12, (k, n, confidence)


def test_exact_mcnemar_closed_form_matches_scipy() -> None:
    from scipy.stats import binomtest

    for n in [1, 2, 3, 5, 8, 13, 40, 101, 500, 2000]:
        for b in sorted({0, 1, n // 4, n // 2, (n + 1) // 2, n - 1, n}):
            expected = binomtest(b, n, 0.5).pvalue
            assert stats.mcnemar_p_value(b, n - b) == pytest.approx(expected, rel=1e-10, abs=1e-300), (b, n)


def test_linear_quantiles_are_numpys() -> None:
    x = np.random.default_rng(3).normal(size=2001)
    for qs in [(0.025, 0.975), (0.0, 1.0), (0.5,), (0.1, 0.9)]:
        assert stats.linear_quantiles(x, qs) == list(np.quantile(x, qs)), qs


def test_exact_distribution_of_the_resampled_sum() -> None:
    pmf = np.array([0.2, 0.5, 0.3])
    direct = np.array([1.0])
    for _ in range(40):
        direct = np.convolve(direct, pmf)
    first, fft = stats._convolution_power(pmf, 40)
    assert first == 0 and np.allclose(fft, direct, rtol=0, atol=1e-15)
    # Large n: the window around the mean holds the whole distribution but for < 1e-15.
    n = 20_000
    first, window = stats._convolution_power(pmf, n)
    assert window.size < 2 * n + 1 and abs(window.sum() - 1) < 1e-9  # FFT round-off only
    mean = n * (pmf @ np.arange(3))
    assert first < mean < first + window.size


# --------------------------------------------------- the fast bootstrap against scipy's bootstrap
def _scipy_interval(arrays: list[np.ndarray], weights: list[float], resamples: int, seed: int) -> tuple:
    from scipy.stats import bootstrap

    def statistic(*xs: np.ndarray, axis: int = -1) -> np.ndarray:
        return sum(w * np.mean(x, axis=axis) for w, x in zip(weights, xs, strict=True))

    result = bootstrap(
        tuple(arrays),
        statistic,
        paired=True,
        vectorized=True,
        n_resamples=resamples,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _mc_tolerance(arrays: list[np.ndarray], weights: list[float], resamples: int, lattice: float) -> float:
    """How far two independent B-resample percentile intervals may differ: the Monte Carlo standard
    error of a 2.5% sample quantile is sqrt(a(1-a)/B) / f(q), with f the (near-normal) bootstrap
    density there (sd / sqrt(n) of the per-question statistic); the difference of two such estimates
    has sqrt(2) times that. Five of those, plus the statistic's lattice step (ties), never fail by
    chance (p < 1e-6) yet are a fraction of the interval's width."""
    per_question = sum(w * a for w, a in zip(weights, arrays, strict=True))
    sd = per_question.std(ddof=1) / math.sqrt(per_question.size)
    alpha = 0.025
    se = math.sqrt(alpha * (1 - alpha) / resamples) * sd / norm.pdf(norm.ppf(alpha))
    return 5 * math.sqrt(2) * se + lattice


@pytest.mark.parametrize(
    ("n", "weights"),
    [
        (300, [1.0, -1.0]),  # a template delta
        (1000, [1.0, -1.0]),
        (817, [1 / 3, 1 / 3, 1 / 3, -1.0]),  # answer_sycophancy
        (500, [1.0, -1.0, -1.0, 1.0]),  # the difference of two models' deltas
        (400, [0.37, -0.81]),  # off any small lattice: the multinomial path
    ],
)
def test_fast_bootstrap_agrees_with_scipy_within_monte_carlo_error(n: int, weights: list[float]) -> None:
    rng = np.random.default_rng(n)
    base = rng.random(n) < 0.55
    # correlated arrays, as a model's answers to the same questions are: pairing matters
    arrays = [np.where(rng.random(n) < 0.8, base, rng.random(n) < 0.5).astype(float) for _ in weights]
    resamples = 4000
    lattice = 1 / (3 * n)
    tol = _mc_tolerance(arrays, weights, resamples, lattice)
    fast = stats.paired_bootstrap(arrays, weights, resamples=resamples, seed=1)
    lo, hi = _scipy_interval(arrays, weights, resamples, seed=2)
    assert fast.value == pytest.approx(sum(w * a.mean() for w, a in zip(weights, arrays, strict=True)))
    assert abs(fast.lo - lo) <= tol and abs(fast.hi - hi) <= tol, (fast, (lo, hi), tol)
    assert tol < (hi - lo) / 4  # the tolerance is tight enough to see a wrong interval
    # ... for instance the unpaired bootstrap's, which ignores that the arrays share questions:
    unpaired = math.sqrt(sum(w * w * a.var(ddof=1) / n for w, a in zip(weights, arrays, strict=True)))
    paired_half = (hi - lo) / 2
    assert abs(1.96 * unpaired - paired_half) > tol


def test_fast_bootstrap_is_deterministic_given_the_seed() -> None:
    rng = np.random.default_rng(5)
    arrays = [rng.integers(0, 2, 700).astype(float) for _ in range(4)]
    rows = [[-1.0, 1.0, 0.0, 0.0], [-1.0, 1 / 3, 1 / 3, 1 / 3]]
    one = stats.paired_bootstrap_many(arrays, rows, resamples=2000, seed=9)
    assert one == stats.paired_bootstrap_many(arrays, rows, resamples=2000, seed=9)
    assert one != stats.paired_bootstrap_many(arrays, rows, resamples=2000, seed=10)


def test_pooled_stderr_is_the_stderr_of_the_concatenated_sample() -> None:
    """Rebuilt from each sub-sample's mean, stderr and size, including the between-sub-sample spread
    (a flip rate of 0 on one sub-dataset and 0.86 on another) that lm-eval's pooled formula drops."""
    rng = np.random.default_rng(3)
    parts = [rng.integers(0, 2, n).astype(float) for n in (7, 1, 12)] + [np.ones(5), np.zeros(9)]
    means = [float(p.mean()) for p in parts]
    stderrs = [stats.mean_stderr(p.tolist()) for p in parts]
    assert stderrs[1] is None  # one value: no stderr, and no within-variance to add
    pooled = stats.pooled_stderr(means, stderrs, [p.size for p in parts])
    assert pooled == pytest.approx(stats.mean_stderr(np.concatenate(parts).tolist()), rel=1e-12)
    assert stats.mean_stderr([1.0, 0.0, 1.0]) == pytest.approx(np.std([1, 0, 1], ddof=1) / np.sqrt(3))
    assert stats.pooled_stderr([1.0], [None], [1]) is None


@pytest.mark.parametrize("seed", range(6))
def test_closed_form_kappa_matches_sklearn(seed: int) -> None:
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2, 40)
    b = np.where(rng.random(40) < 0.7, a, 1 - a)
    raw, kappa = stats.grader_agreement(zip(a.tolist(), b.tolist(), strict=True))
    assert raw == pytest.approx(float(np.mean(a == b)))
    assert kappa == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)
    assert stats.grader_agreement([(1, 0), (1, 0)]) == (0.0, pytest.approx(cohen_kappa_score([1, 1], [0, 0])))
