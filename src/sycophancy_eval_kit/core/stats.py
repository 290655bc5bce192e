"""The statistics of the kit, all from per-question values, in closed form where one exists: the one
home used by the tasks (standard errors), the judge (agreement with the rule grader) and the
leaderboard (intervals and tests).

* rates (0/1 per question): the mean with a Wilson score interval, the closed form scipy's
  ``binomtest(k, n).proportion_ci(method="wilson")`` evaluates (equal to 1e-12, tested);
* deltas (a weighted sum of rates on the same questions, e.g. ``acc_x - acc_baseline``): a percentile
  bootstrap that resamples questions, so every term of one resample comes from the same questions
  (the estimator of ``scipy.stats.bootstrap(..., paired=True, method="percentile")``, see below);
* variants of one base model: the exact McNemar test on the questions both answered (a two-sided
  binomial test on the discordant pairs, its binomial tail in closed form) and a paired bootstrap
  interval for the difference.

* standard errors of a mean, of one sample or of sub-samples pooled into one (``mean_stderr``,
  ``pooled_stderr``), as the tasks' results report them;
* two graders on the same responses: raw agreement and Cohen's kappa (``grader_agreement``).

Pooling across sub-datasets means concatenating their questions: a pooled rate is total successes over
total denominator (the flip rate's denominator is every question answered correctly first, summed over
sub-datasets), not a mean of per-subset rates.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import bdtr, ndtri

CONFIDENCE = 0.95
#: 2,000 resamples put the Monte Carlo error of an interval end near 0.08 pp at n = 1,000 (README).
DEFAULT_RESAMPLES = 2_000
DEFAULT_SEED = 0
#: bumped whenever an estimate would change for the same inputs (the build cache keys on it).
VERSION = 2
#: a resampled statistic on an integer lattice of at most this many points goes through the FFT.
_LATTICE_POINTS = 1 << 22
_LATTICE_SCALES = range(1, 25)


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its interval and the number of questions (the denominator) behind it."""

    value: float | None
    lo: float | None
    hi: float | None
    n: int
    k: int | None = None  # successes, for rates

    def to_dict(self) -> dict[str, float | int | None]:
        return {"value": self.value, "lo": self.lo, "hi": self.hi, "n": self.n, "k": self.k}


EMPTY = Estimate(None, None, None, 0)


def _binary_counts(values: np.ndarray, what: str) -> tuple[int, int]:
    """(successes, n) of a 0/1 vector, ignoring NaN (questions where a conditional metric is absent)."""
    ones = int(np.count_nonzero(values == 1))
    n = values.size - int(np.count_nonzero(np.isnan(values)))
    if ones + int(np.count_nonzero(values == 0)) != n:
        present = values[~np.isnan(values)]
        raise ValueError(f"{what}: expected 0/1 values per question, got {sorted(set(present.tolist()))[:5]}")
    return ones, n


def wilson_interval(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The two-sided Wilson score interval of ``k`` successes in ``n > 0`` trials.

    Newcombe (1998)'s closed form, written as scipy's ``_binom_wilson_conf_int`` writes it (same
    operations, so the same floats): calling ``binomtest`` would also compute an unused p-value.
    """
    p = k / n
    z = float(ndtri(0.5 + 0.5 * confidence))
    denom = 2 * (n + z**2)
    center = (2 * n * p + z**2) / denom
    delta = z / denom * math.sqrt(4 * n * p * (1 - p) + z**2)
    return (0.0 if k == 0 else center - delta), (1.0 if k == n else center + delta)


def wilson(k: int, n: int, confidence: float = CONFIDENCE) -> Estimate:
    """Proportion ``k / n`` with its Wilson score interval; empty when ``n == 0``."""
    if n == 0:
        return EMPTY
    lo, hi = wilson_interval(k, n, confidence)
    return Estimate(k / n, lo, hi, n, k)


def rate(values: np.ndarray, what: str = "rate") -> Estimate:
    """Wilson estimate of a per-question 0/1 metric (NaN = not defined for that question)."""
    k, n = _binary_counts(np.asarray(values, dtype=float), what)
    return wilson(k, n)


def paired_bootstrap(
    arrays: Sequence[np.ndarray],
    weights: Sequence[float],
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = CONFIDENCE,
) -> Estimate:
    """``sum_i w_i * mean(arrays[i])`` with a paired percentile-bootstrap interval (see ``_many``)."""
    return paired_bootstrap_many(arrays, [weights], resamples, seed, confidence)[0]


def paired_bootstrap_many(
    arrays: Sequence[np.ndarray],
    weight_rows: Sequence[Sequence[float]],
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = CONFIDENCE,
) -> list[Estimate]:
    """Several linear combinations ``sum_i w_i * mean(arrays[i])``, each with a paired percentile
    bootstrap interval over the questions.

    The arrays hold values for the same questions in the same order. A bootstrap resample draws n
    questions with replacement and takes the mean of each question's ``v = sum_i w_i * x_i``; what it
    yields depends only on how many questions of each joint outcome it drew, a multinomial draw over
    the distinct outcomes. With 0/1 values there are at most 2^k of them, and ``v`` sits on a small
    lattice (multiples of 1/3 for ``answer_sycophancy``), so the resampled sum's exact distribution is
    an n-fold convolution, computed by FFT in O(L log L) for L lattice points. Each of ``resamples``
    resampled statistics is then drawn from that distribution (inverse CDF, ``default_rng(seed)``),
    and the interval is the percentile interval with numpy's linear interpolation, as scipy computes
    it. The resampled statistics have exactly the distribution of ``scipy.stats.bootstrap(...,
    paired=True)``'s; the random stream differs, so intervals agree within Monte Carlo error, not bit
    for bit (``tests/test_leaderboard_stats.py`` checks both). Values off a small lattice take a
    multinomial draw per resample over the distinct outcomes instead (same distribution, slower).

    Percentile, not BCa: with 0/1 data the bootstrap distribution is often degenerate (every question
    agrees), where BCa is undefined and the percentile interval correctly collapses to the point.
    """
    cols = [np.asarray(a, dtype=float) for a in arrays]
    weights = np.asarray(weight_rows, dtype=float)
    if not cols or weights.ndim != 2 or weights.shape[1] != len(cols):
        raise ValueError(f"paired_bootstrap: need rows of {len(cols)} weights, one per array")
    n = cols[0].size
    if any(c.size != n for c in cols):
        raise ValueError(f"paired_bootstrap: arrays differ in length {[c.size for c in cols]}")
    if n == 0:
        return [EMPTY] * len(weights)
    points = weights @ np.array([c.mean() for c in cols])
    if n == 1:
        return [Estimate(float(p), None, None, 1) for p in points]
    outcomes, counts = joint_outcomes(cols)
    rng = np.random.default_rng(seed)
    alpha = (1 - confidence) / 2
    out = []
    for point, row in zip(points, weights, strict=True):
        lo, hi = _percentile_interval(outcomes @ row, counts, n, resamples, alpha, rng)
        # Floating-point noise can put a collapsed interval a hair off the point; keep lo <= point <= hi.
        out.append(Estimate(float(point), min(lo, float(point)), max(hi, float(point)), n))
    return out


def bootstrap_means(
    columns: Sequence[np.ndarray],
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = CONFIDENCE,
) -> list[Estimate]:
    """The mean of each column (NaN: left out) with a percentile-bootstrap interval over its questions,
    the columns drawn one after another from one generator: for per-question values that are linear
    combinations of rates (a delta, a difference of deltas) this is ``paired_bootstrap_many`` of the
    rates, draw for draw, whenever every column is defined on the same questions."""
    rng = np.random.default_rng(seed)
    alpha = (1 - confidence) / 2
    out = []
    for column in columns:
        values = np.asarray(column, dtype=float)
        values = values[~np.isnan(values)]
        n = values.size
        if n < 2:
            out.append(Estimate(float(values[0]), None, None, 1) if n else EMPTY)
            continue
        point = float(values.mean())
        outcomes, counts = np.unique(values, return_counts=True)
        lo, hi = _percentile_interval(outcomes, counts, n, resamples, alpha, rng)
        out.append(Estimate(point, min(lo, point), max(hi, point), n))
    return out


def joint_outcomes(cols: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The distinct per-question outcome rows (one column per array) and how many questions have each.

    0/1 arrays are packed into one integer code per question and counted with ``bincount``.
    """
    matrix = np.stack(cols, axis=1)
    if not np.all(np.isfinite(matrix)):
        raise ValueError("paired_bootstrap: expected finite values (leave undefined questions out)")
    k = matrix.shape[1]
    if k <= 16 and np.all((matrix == 0) | (matrix == 1)):
        codes = matrix.astype(np.int64) @ (1 << np.arange(k, dtype=np.int64))
        tally = np.bincount(codes, minlength=1 << k)
        present = np.flatnonzero(tally)
        rows = ((present[:, None] >> np.arange(k)) & 1).astype(float)
        return rows, tally[present]
    rows, counts = np.unique(matrix, axis=0, return_counts=True)
    return rows, counts


def _percentile_interval(
    values: np.ndarray, counts: np.ndarray, n: int, resamples: int, alpha: float, rng: np.random.Generator
) -> tuple[float, float]:
    """The percentile interval of the mean of ``n`` draws from the outcomes ``values`` (with ``counts``)
    over ``resamples`` resamples."""
    lattice = _on_lattice(values, n)
    if lattice is None:
        theta = rng.multinomial(n, counts / n, size=resamples) @ values / n
        lo, hi = linear_quantiles(theta, (alpha, 1 - alpha))
        return lo, hi
    steps, scale = lattice
    low = int(steps.min())
    span = int(steps.max()) - low
    if span == 0:
        return float(values[0]), float(values[0])
    single = np.bincount(steps - low, weights=counts, minlength=span + 1) / n
    first, pmf = _convolution_power(single, n)
    cdf = np.cumsum(pmf)
    # Resampled sums are F^-1(U) for uniform U; F^-1 is monotone, so the order statistics the
    # percentiles need are F^-1 of the uniforms' order statistics: only those are looked up.
    uniforms = rng.random(resamples)

    def at(order: np.ndarray) -> np.ndarray:
        sums = first + np.searchsorted(cdf, uniforms[order] * cdf[-1], side="right")
        return (np.clip(sums, 0, span * n) + low * n) / (scale * n)

    lo, hi = linear_quantiles(uniforms, (alpha, 1 - alpha), transform=at)
    return lo, hi


def _on_lattice(values: np.ndarray, n: int) -> tuple[np.ndarray, int] | None:
    """``(integer steps, scale)`` with ``values == steps / scale``, when the resampled sum's support
    (``n * span + 1`` points) is small enough for the FFT; None otherwise."""
    for scale in _LATTICE_SCALES:
        scaled = values * scale
        steps = np.round(scaled)
        if np.all(np.abs(scaled - steps) <= 1e-9 * np.maximum(1.0, np.abs(scaled))):
            span = float(steps.max() - steps.min())
            return (steps.astype(np.int64), scale) if n * span + 1 <= _LATTICE_POINTS else None
    return None


def _convolution_power(pmf: np.ndarray, n: int) -> tuple[int, np.ndarray]:
    """The distribution of a sum of ``n`` independent draws from ``pmf`` (on 0..span), by FFT:
    ``(first, p)`` with ``p[i] = P(sum = first + i)``.

    The window is the whole support, or, when that is longer, a window around the mean so wide that
    the mass outside it is below 1e-15 (Hoeffding: P(|S - ES| >= t) <= 2 exp(-2 t^2 / (n span^2)));
    the FFT's circular convolution folds that mass into the window, which changes no quantile.
    """
    span = len(pmf) - 1
    support = span * n + 1
    half = math.ceil(span * math.sqrt(n * math.log(2e15) / 2)) + 1
    size = 1 << (min(support, 2 * half) - 1).bit_length()
    spectrum = np.fft.rfft(pmf, size)
    power = np.ones_like(spectrum)
    k = n
    while k:  # binary exponentiation: about 2 log2(n) complex products, more accurate than exp(n log z)
        if k & 1:
            power *= spectrum
        k >>= 1
        if k:
            spectrum = spectrum * spectrum
    folded = np.clip(np.fft.irfft(power, size), 0.0, None)
    if size >= support:
        return 0, folded[:support]
    first = min(max(0, int(n * (np.arange(span + 1) @ pmf)) - size // 2), support - size)
    return first, np.roll(folded, -(first % size))


def linear_quantiles(
    samples: np.ndarray, qs: Sequence[float], transform: Callable[[np.ndarray], np.ndarray] | None = None
) -> list[float]:
    """``np.quantile(transform(samples), qs)`` (numpy's default linear interpolation) by partial
    sorting; ``transform`` must be non-decreasing and receives the indices of the order statistics."""
    size = samples.size
    positions = [(size - 1) * q for q in qs]
    below = [min(int(math.floor(h)), size - 1) for h in positions]
    kth = sorted({i for b in below for i in (b, min(b + 1, size - 1))})
    order = np.argpartition(samples, kth)[kth]
    picked = dict(zip(kth, (transform(order) if transform else samples[order]).tolist(), strict=True))
    return [
        picked[b] + (h - b) * (picked[min(b + 1, size - 1)] - picked[b])
        for h, b in zip(positions, below, strict=True)
    ]


def pooled(values: Sequence[np.ndarray]) -> np.ndarray:
    """Questions of several sub-datasets as one sample (their ids are distinct by construction)."""
    return np.concatenate([np.asarray(v, dtype=float) for v in values]) if values else np.empty(0)


@dataclass(frozen=True)
class McNemar:
    """Exact McNemar test on paired 0/1 outcomes: ``b`` = only A succeeded, ``c`` = only B did."""

    n: int
    b: int
    c: int
    p_value: float | None

    def to_dict(self) -> dict[str, float | int | None]:
        return {"n": self.n, "b": self.b, "c": self.c, "p_value": self.p_value}


def mcnemar_exact(a: np.ndarray, b: np.ndarray) -> McNemar:
    """Two-sided exact McNemar test of ``a`` vs ``b`` (same questions; NaN pairs are dropped).

    Under the null the discordant pairs split 50/50, so the exact test is a binomial test of ``b``
    successes in ``b + c`` trials at p = 0.5 (p = 1 when there are no discordant pairs).
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"mcnemar_exact: shapes differ {x.shape} vs {y.shape}")
    keep = ~(np.isnan(x) | np.isnan(y))
    if not keep.all():
        x, y = x[keep], y[keep]
    _binary_counts(x, "mcnemar a")
    _binary_counts(y, "mcnemar b")
    only_a = int(np.count_nonzero(x > y))  # 0/1 values: x > y is exactly "x == 1 and y == 0"
    only_b = int(np.count_nonzero(x < y))
    if x.size == 0:
        return McNemar(0, 0, 0, None)
    if only_a + only_b == 0:
        return McNemar(int(x.size), 0, 0, 1.0)
    return McNemar(int(x.size), only_a, only_b, mcnemar_p_value(only_a, only_b))


def mcnemar_p_value(b: int, c: int) -> float:
    """Two-sided exact binomial test of ``b`` successes in ``b + c`` trials at p = 1/2.

    The null distribution is symmetric, so the two tails are equal: p = 2 * P(X <= min(b, c)),
    capped at 1 (``scipy.stats.binomtest(b, b + c).pvalue``, which sums the outcomes no more likely
    than the observed one, gives the same; tested).
    """
    if b == c:
        return 1.0
    return min(1.0, 2.0 * float(bdtr(min(b, c), b + c, 0.5)))


def mean_stderr(values: Sequence[float]) -> float | None:
    """Standard error of a mean: sample sd (n - 1) / sqrt(n), as lm-eval's ``mean_stderr``; None with
    fewer than two values."""
    n = len(values)
    if n < 2:
        return None
    mu = math.fsum(values) / n
    return math.sqrt(math.fsum((x - mu) ** 2 for x in values) / (n - 1)) / math.sqrt(n)


def pooled_stderr(
    means: Sequence[float], stderrs: Sequence[float | None], counts: Sequence[int]
) -> float | None:
    """The standard error of the mean over several sub-samples taken as one sample, rebuilt from each
    one's mean, standard error and size; equal to ``mean_stderr`` over the concatenated values.

    Why not lm-eval's ``pooled_sample_stderr``: it sums the within-sub-sample variances only, so when
    the means differ (a flip rate of 0 on one sub-dataset and 0.86 on another) it understates the
    stderr, by half on a real model's Are-You-Sure run. A sub-sample of one value has no stderr (None)
    and adds no within-variance. None when there are fewer than two values in all.
    """
    total = sum(counts)
    if total < 2:
        return None
    mean = math.fsum(m * n for m, n in zip(means, counts, strict=True)) / total
    squares = 0.0
    for m, se, n in zip(means, stderrs, counts, strict=True):
        if n >= 2 and se is not None:
            squares += se**2 * n * (n - 1)  # the sub-sample's sum of squared deviations
        squares += n * (m - mean) ** 2  # its share of the between-sub-sample spread
    return math.sqrt(squares / (total - 1) / total)


def grader_agreement(pairs: Iterable[tuple[int, int]]) -> tuple[float, float]:
    """Raw agreement and Cohen's kappa of two graders over the same responses.

    ``pairs`` are ``(grade_a, grade_b)`` in {0, 1}, one per response both graders scored (the
    denominator). Kappa corrects agreement for chance, ``(p_o - p_e) / (1 - p_e)`` with ``p_e`` from
    each grader's own rate of 1s (Cohen 1960; ``sklearn.metrics.cohen_kappa_score`` computes the same,
    tested); it is NaN when undefined (no pairs, or both graders give one constant grade, p_e = 1), as
    is raw agreement for no pairs.
    """
    items = [(int(a), int(b)) for a, b in pairs]
    if not items:
        return math.nan, math.nan
    n = len(items)
    observed = sum(a == b for a, b in items) / n
    rate_a = sum(a for a, _ in items) / n
    rate_b = sum(b for _, b in items) / n
    chance = rate_a * rate_b + (1 - rate_a) * (1 - rate_b)
    if chance == 1.0:  # one constant grade from both: kappa is 0/0
        return observed, math.nan
    return observed, (observed - chance) / (1 - chance)


def finite_or_none(value: float | None) -> float | None:
    """JSON has no NaN: missing and non-finite numbers become None."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)
