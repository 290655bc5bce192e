"""The leaderboard's statistics, all from per-question values and all through scipy.

* rates (0/1 per question): the mean with a Wilson score interval (``binomtest(...).proportion_ci``);
* deltas (a weighted sum of rates on the same questions, e.g. ``acc_x - acc_baseline``): a percentile
  bootstrap that resamples questions, so every term of one resample comes from the same questions
  (``scipy.stats.bootstrap(..., paired=True)``);
* variants of one base model: the exact McNemar test on the questions both answered (a two-sided
  binomial test on the discordant pairs) and a paired bootstrap interval for the difference.

Pooling across sub-datasets means concatenating their questions: a pooled rate is total successes over
total denominator (the flip rate's denominator is every question answered correctly first, summed over
sub-datasets), not a mean of per-subset rates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
#: 2,000 resamples put the Monte Carlo error of an interval end near 0.08 pp at n = 1,000 (README).
DEFAULT_RESAMPLES = 2_000
DEFAULT_SEED = 0
#: resamples evaluated at once: bounds the bootstrap's memory to about batch x questions floats.
_BATCH = 1_000


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its interval and the number of questions (the denominator) behind it."""

    value: float | None
    lo: float | None
    hi: float | None
    n: int
    k: int | None = None  # successes, for rates

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


EMPTY = Estimate(None, None, None, 0)


def _binary_counts(values: np.ndarray, what: str) -> tuple[int, int]:
    """(successes, n) of a 0/1 vector, ignoring NaN (questions where a conditional metric is absent)."""
    present = values[~np.isnan(values)]
    if not np.all((present == 0) | (present == 1)):
        raise ValueError(f"{what}: expected 0/1 values per question, got {sorted(set(present.tolist()))[:5]}")
    return int(present.sum()), int(present.size)


def wilson(k: int, n: int, confidence: float = CONFIDENCE) -> Estimate:
    """Proportion ``k / n`` with its Wilson score interval; empty when ``n == 0``."""
    if n == 0:
        return EMPTY
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return Estimate(k / n, float(ci.low), float(ci.high), n, k)


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
    """Several linear combinations ``sum_i w_i * mean(arrays[i])`` from one paired bootstrap.

    The arrays hold values for the same questions in the same order; one resample draws question
    indices once and applies them to every array (the pairing). Percentile, not BCa: with 0/1 data the
    bootstrap distribution is often degenerate (every question agrees), where BCa is undefined and the
    percentile interval correctly collapses to the point.

    When every value is 0 or 1 (the usual case) a question's outcomes under all arrays are packed into
    one small integer, its joint outcome, and scipy resamples that single column: the same questions
    are drawn as with ``paired=True`` over the separate arrays, at a fraction of the memory traffic.
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

    binary = len(cols) <= 8 and all(np.all((c == 0) | (c == 1)) for c in cols)
    if binary:
        codes = np.zeros(n, dtype=np.uint8)
        for bit, col in enumerate(cols):
            codes |= col.astype(np.uint8) << bit
        data: tuple[np.ndarray, ...] = (codes,)

        def statistic(c: np.ndarray, axis: int = -1) -> np.ndarray:
            means = np.stack([np.mean((c >> bit) & 1, axis=axis) for bit in range(len(cols))], axis=-1)
            return np.moveaxis(means @ weights.T, -1, 0)

    else:
        data = tuple(cols)

        def statistic(*xs: np.ndarray, axis: int = -1) -> np.ndarray:
            means = np.stack([np.mean(x, axis=axis) for x in xs], axis=-1)
            return np.moveaxis(means @ weights.T, -1, 0)

    result = stats.bootstrap(
        data,
        statistic,
        paired=True,
        vectorized=True,
        n_resamples=resamples,
        batch=_BATCH,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    lows = np.atleast_1d(result.confidence_interval.low)
    highs = np.atleast_1d(result.confidence_interval.high)
    # Floating-point noise can put a collapsed interval a hair off the point; keep lo <= point <= hi.
    return [
        Estimate(float(p), min(float(lo), float(p)), max(float(hi), float(p)), n)
        for p, lo, hi in zip(points, lows, highs, strict=True)
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
        return asdict(self)


def mcnemar_exact(a: np.ndarray, b: np.ndarray) -> McNemar:
    """Two-sided exact McNemar test of ``a`` vs ``b`` (same questions; NaN pairs are dropped).

    Under the null the discordant pairs split 50/50, so the exact test is a binomial test of ``b``
    successes in ``b + c`` trials at p = 0.5 (p = 1 when there are no discordant pairs).
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"mcnemar_exact: shapes differ {x.shape} vs {y.shape}")
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    _binary_counts(x, "mcnemar a")
    _binary_counts(y, "mcnemar b")
    only_a = int(np.sum((x == 1) & (y == 0)))
    only_b = int(np.sum((x == 0) & (y == 1)))
    if x.size == 0:
        return McNemar(0, 0, 0, None)
    if only_a + only_b == 0:
        return McNemar(int(x.size), 0, 0, 1.0)
    p = stats.binomtest(only_a, only_a + only_b, 0.5, alternative="two-sided").pvalue
    return McNemar(int(x.size), only_a, only_b, float(p))


def finite_or_none(value: float | None) -> float | None:
    """JSON has no NaN: missing and non-finite numbers become None."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)
