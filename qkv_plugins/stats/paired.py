"""Paired comparisons over seeds: the difference of two variants trained
with the same seeds (same data order, same initialisation of the shared
parts), its t interval and p-value, and Holm's adjustment over a family of
comparisons."""
import math
import statistics
from dataclasses import dataclass
from typing import List, Mapping, Sequence


@dataclass(frozen=True)
class PairedDifference:
    """``a − b`` over the seeds both have."""
    mean: float
    low: float  # confidence interval
    high: float
    p: float  # two-sided paired t-test
    seeds: int


def paired_difference(a: Mapping[int, float], b: Mapping[int, float],
                      confidence: float = 0.95) -> PairedDifference:
    """Mean difference over common seeds with a t interval and the paired
    t-test's two-sided p-value (NaN interval and p below two seeds; p = 0
    or 1 for differences with no spread)."""
    from scipy import stats
    seeds = sorted(set(a) & set(b))
    diffs = [a[s] - b[s] for s in seeds]
    n = len(diffs)
    if n == 0:
        raise ValueError('no seed in common: the variants are not paired')
    mean = statistics.fmean(diffs)
    if n < 2:
        return PairedDifference(mean, math.nan, math.nan, math.nan, n)
    sd = statistics.stdev(diffs)
    if sd == 0:
        return PairedDifference(mean, mean, mean, 0.0 if mean else 1.0, n)
    half = stats.t.ppf((1 + confidence) / 2, n - 1) * sd / math.sqrt(n)
    p = 2 * stats.t.sf(abs(mean) / (sd / math.sqrt(n)), n - 1)
    return PairedDifference(mean, mean - half, mean + half, float(p), n)


def holm(pvalues: Sequence[float]) -> List[float]:
    """Holm–Bonferroni adjusted p-values, in the input order (NaN stays NaN
    and does not count as a comparison)."""
    known = sorted((p, i) for i, p in enumerate(pvalues) if not math.isnan(p))
    adjusted = [math.nan] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(known):
        running = max(running, min(1.0, (len(known) - rank) * p))
        adjusted[i] = running
    return adjusted
