"""Intervals and paired tests for comparisons over seeds and test images.

Every figure that is compared between rows carries an interval (docs/method.md §7):

* over **seeds**, the Student-t interval of the mean (:func:`t_interval`), for a table of
  several seeds;
* over **test images**, a percentile bootstrap (:func:`bootstrap_interval`), for a single seed,
  labelled as such, since it says nothing about training variance; or the t interval of a
  per-image mean from its running sums (:func:`t_interval_of_sums`: shards of a split under
  torchrun add up without gathering the images);
* **paired** differences between two rows, seed by seed (:func:`paired_t`) or image by image
  (:func:`paired_bootstrap`): the rows share seeds and test images, so their difference is far
  less noisy than either row.

All figures are in the units given (percent, dB); intervals are two-sided, 95 % by default.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats

#: How an interval was made: over training seeds, over test images, or from one value only.
IntervalKind = Literal["t over seeds", "t over test images", "bootstrap over test images",
                       "one value"]

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000


@dataclass(frozen=True)
class Interval:
    """A mean with a two-sided confidence interval [low, high].

    ``n``: how many values (seeds or images) it rests on; ``kind``: how it was made; ``low`` and
    ``high`` are NaN when one value gives no interval.
    """

    mean: float
    low: float
    high: float
    n: int
    kind: IntervalKind
    confidence: float = CONFIDENCE

    @property
    def half_width(self) -> float:
        """(high − low) / 2: the "±" of a table cell (NaN without an interval)."""
        return (self.high - self.low) / 2

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def excludes_zero(self) -> bool:
        """Whether the interval lies wholly above or wholly below 0 (False without one)."""
        return bool(self.low > 0 or self.high < 0)

    def text(self, fmt: str = "{:.2f}") -> str:
        """``"87.58 ± 2.31"`` (symmetric t interval), ``"87.58 [85.1, 89.9]"`` (bootstrap), or
        the mean alone when there is no interval."""
        if math.isnan(self.low):
            return fmt.format(self.mean)
        if self.kind == "t over seeds":
            return f"{fmt.format(self.mean)} ± {fmt.replace('+', '').format(self.half_width)}"
        return f"{fmt.format(self.mean)} [{fmt.format(self.low)}, {fmt.format(self.high)}]"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Interval:
        """From :meth:`to_dict`, also after a JSON round trip (which writes NaN as null)."""
        bounds = {key: math.nan if values.get(key) is None else values[key]
                  for key in ("low", "high")}
        return cls(**{**values, **bounds})


@dataclass(frozen=True)
class PairedComparison:
    """Row A minus row B, paired by seed or by test image.

    ``difference``: the mean paired difference and its interval; ``p_value``: two-sided, of a
    paired t-test (seeds) or of the bootstrap (images); ``test``: which one.
    """

    difference: Interval
    p_value: float
    test: str

    @property
    def significant(self) -> bool:
        """Whether the difference's interval excludes 0 (at its confidence level)."""
        return self.difference.excludes_zero()

    def words(self, a: str, b: str, what: str = "Δ", unit: str = "pp") -> str:
        """One sentence a person reads: which row is higher, by how much, and whether it is
        beyond the interval."""
        d = self.difference
        level = f"{100 * d.confidence:g} %"
        span = f"[{d.low:+.2f}, {d.high:+.2f}] {unit}, {level}; p = {self.p_value:.3g}, {self.test}"
        if math.isnan(d.low):
            return f"{what} of {a} − {b} = {d.mean:+.2f} {unit}: one pair, no interval."
        if not self.significant:
            return (f"{what}: {a} and {b} do not differ beyond the interval "
                    f"({d.mean:+.2f} {unit}, {span}).")
        higher, lower = (a, b) if d.mean > 0 else (b, a)
        return (f"{what}: {higher} is higher than {lower} by {abs(d.mean):.2f} {unit}, beyond "
                f"the interval ({span}).")

    def to_dict(self) -> dict[str, Any]:
        return {"difference": self.difference.to_dict(), "p_value": self.p_value,
                "test": self.test, "significant": self.significant}


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """Mean of ``values`` (one per seed) ± the Student-t interval, ``n − 1`` degrees of freedom.

    One value gives its mean with a NaN interval (kind "one value").

    >>> interval = t_interval([1.0, 2.0, 3.0])
    >>> round(interval.low, 3), round(interval.high, 3)
    (-0.484, 4.484)
    """
    data = _finite_array(values, "values")
    mean = float(data.mean())
    if data.size == 1:
        return Interval(mean, math.nan, math.nan, 1, "one value", confidence)
    half = _t_half_width(float(data.std(ddof=1)), int(data.size), confidence)
    return Interval(mean, mean - half, mean + half, int(data.size), "t over seeds", confidence)


def t_interval_of_sums(count: int, total: float, total_of_squares: float,
                       confidence: float = CONFIDENCE) -> Interval:
    """The t interval of a mean over test images from ``count`` values' sum and sum of squares
    (per-image figures summed shard by shard; the images are the samples, so it says nothing
    about training variance). One value gives its mean with a NaN interval.

    >>> values = [1.0, 2.0, 3.0]
    >>> interval = t_interval_of_sums(3, sum(values), sum(v * v for v in values))
    >>> round(interval.low, 3), round(interval.high, 3), interval.kind
    (-0.484, 4.484, 't over test images')
    """
    if count < 1 or not math.isfinite(total) or not math.isfinite(total_of_squares):
        raise ValueError(f"need at least one finite value, got count {count}, sum {total}, "
                         f"sum of squares {total_of_squares}")
    mean = total / count
    if count == 1:
        return Interval(mean, math.nan, math.nan, 1, "one value", confidence)
    variance = max(total_of_squares - count * mean * mean, 0.0) / (count - 1)
    half = _t_half_width(math.sqrt(variance), count, confidence)
    return Interval(mean, mean - half, mean + half, count, "t over test images", confidence)


def _t_half_width(sd: float, n: int, confidence: float) -> float:
    """Half-width of the Student-t interval of a mean of ``n`` values of SD ``sd``."""
    return float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)


def bootstrap_interval(samples: Sequence[float] | np.ndarray,
                       statistic: Callable[[np.ndarray], np.ndarray] | None = None, *,
                       confidence: float = CONFIDENCE, resamples: int = BOOTSTRAP_RESAMPLES,
                       seed: int = 0) -> Interval:
    """Percentile bootstrap interval of ``statistic`` (default: the mean) over the rows of
    ``samples`` (one per test image; a 2-D array keeps each image's columns together).

    ``statistic`` maps an array of resampled rows with a leading resample axis,
    ``[resamples, n, ...]``, to ``[resamples]``. Seeded: the same call gives the same interval.
    """
    data = _finite_array(samples, "samples", ndim=(1, 2))
    if statistic is None:
        if data.ndim != 1:
            raise ValueError("samples: a 2-D array needs a statistic that says how its columns "
                             "combine")
        statistic = _mean_over_rows
    n = data.shape[0]
    point = float(statistic(data[None])[0])
    if n == 1:
        return Interval(point, math.nan, math.nan, 1, "one value", confidence)
    indices = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    values = np.asarray(statistic(data[indices]), dtype=float)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return Interval(point, float(low), float(high), n, "bootstrap over test images", confidence)


def paired_t(a: Sequence[float], b: Sequence[float],
             confidence: float = CONFIDENCE) -> PairedComparison:
    """``a − b`` paired by position (seed ``i`` of both rows): t interval and paired t-test.

    >>> comparison = paired_t([80.0, 82.0, 81.0], [70.0, 71.5, 70.5])
    >>> round(comparison.difference.mean, 2), comparison.significant
    (10.33, True)
    """
    differences = _finite_array(a, "a") - _paired(b, a)
    interval = t_interval(differences, confidence)
    if differences.size < 2:
        return PairedComparison(interval, math.nan, "paired t-test over seeds")
    if float(differences.std(ddof=1)) == 0.0:
        p_value = 1.0 if differences[0] == 0 else 0.0  # every seed agrees exactly
    else:
        p_value = float(stats.ttest_1samp(differences, 0.0).pvalue)
    return PairedComparison(interval, p_value, "paired t-test over seeds")


def paired_bootstrap(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, *,
                     confidence: float = CONFIDENCE, resamples: int = BOOTSTRAP_RESAMPLES,
                     seed: int = 0) -> PairedComparison:
    """``mean(a) − mean(b)`` with both rows resampled by the same test images (one value per
    image in each); the p-value is twice the smaller share of resampled differences on either
    side of 0 (at least 1 / resamples)."""
    differences = _finite_array(a, "a") - _paired(b, a)
    interval = bootstrap_interval(differences, confidence=confidence, resamples=resamples,
                                  seed=seed)
    if differences.size < 2:
        return PairedComparison(interval, math.nan, "paired bootstrap over test images")
    indices = np.random.default_rng(seed).integers(0, differences.size,
                                                   size=(resamples, differences.size))
    means = differences[indices].mean(axis=1)
    share = min(float((means <= 0).mean()), float((means >= 0).mean()))
    p_value = min(1.0, max(2 * share, 1 / resamples))
    return PairedComparison(interval, p_value, "paired bootstrap over test images")


def holm_adjusted(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (Holm 1979, *Scand. J. Statist.* 6(2)), in the order
    given: reject every hypothesis whose adjusted p is below α and the family-wise error rate
    of the whole family of m tests stays at most α (any dependence between the tests).

    The i-th smallest p becomes max over j ≤ i of (m − j + 1)·p_(j), capped at 1. A NaN p
    (one pair, no test) stays NaN and does not count in m.

    >>> holm_adjusted([0.01, 0.04, 0.03, 0.005])
    [0.03, 0.06, 0.06, 0.02]
    """
    values = [float(p) for p in p_values]
    tested = sorted((p, index) for index, p in enumerate(values) if not math.isnan(p))
    if any(not 0.0 <= p <= 1.0 for p, _ in tested):
        raise ValueError(f"p-values must lie in [0, 1], got {values}")
    adjusted = list(values)
    running = 0.0
    for rank, (p, index) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * p))
        adjusted[index] = round(running, 15)  # 3 · 0.01 reads 0.03, not 0.030000000000000002
    return adjusted


def _mean_over_rows(resampled: np.ndarray) -> np.ndarray:
    return resampled.mean(axis=1)


def _paired(b: Sequence[float] | np.ndarray, a: Sequence[float] | np.ndarray) -> np.ndarray:
    other = _finite_array(b, "b")
    if other.shape != np.shape(a):
        raise ValueError(f"paired values need equal lengths, got {np.shape(a)} and {other.shape}")
    return other


def _finite_array(values: Sequence[float] | np.ndarray, name: str,
                  ndim: tuple[int, ...] = (1,)) -> np.ndarray:
    data = np.asarray(values, dtype=float)
    if data.ndim not in ndim or data.shape[0] == 0:
        raise ValueError(f"{name}: need a non-empty {' or '.join(f'{d}-D' for d in ndim)} "
                         f"sequence, got shape {data.shape}")
    if not np.isfinite(data).all():
        raise ValueError(f"{name}: every value must be finite")
    return data


__all__ = ["BOOTSTRAP_RESAMPLES", "CONFIDENCE", "Interval", "IntervalKind", "PairedComparison",
           "bootstrap_interval", "holm_adjusted", "paired_bootstrap", "paired_t", "t_interval",
           "t_interval_of_sums"]
