"""Exact tests for few seeds and bimodal outcomes.

A study run either learns the task or stays stuck, so the outcomes over
seeds are far from normal: solve rates with exact (Clopper–Pearson)
intervals, McNemar's exact test on seed-paired solved/unsolved outcomes
(Fisher's exact test, unpaired, as a check), and the exact sign-flip
(permutation) test of a paired difference, whose smallest possible p is
2 / 2ⁿ (no test at the 5 % level below 6 pairs).
"""
import itertools
import math
import statistics
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, Tuple

# Below this many pairs an exact two-sided sign-flip p cannot reach 0.05.
MIN_PAIRS_FOR_TEST = 6


def clopper_pearson(solved: int, n: int,
                    confidence: float = 0.95) -> Tuple[float, float]:
    """Exact interval of a rate of ``solved`` out of ``n`` (NaN for n = 0)."""
    from scipy import stats
    if n == 0:
        return math.nan, math.nan
    tail = (1 - confidence) / 2
    low = 0.0 if solved == 0 else float(
        stats.beta.ppf(tail, solved, n - solved + 1))
    high = 1.0 if solved == n else float(
        stats.beta.ppf(1 - tail, solved + 1, n - solved))
    return low, high


@dataclass(frozen=True)
class McNemar:
    """Seed-paired solved/unsolved outcomes of a variant (a) and its
    reference (b): ``only_a`` seeds solved by a alone, ``only_b`` by b alone;
    ``p`` two-sided exact (binomial over the discordant pairs)."""
    only_a: int
    only_b: int
    pairs: int
    p: float


def mcnemar_exact(a: Mapping[int, bool], b: Mapping[int, bool]) -> McNemar:
    """McNemar's exact test over the seeds both have (p = 1 without
    discordant pairs)."""
    from scipy import stats
    seeds = sorted(set(a) & set(b))
    only_a = sum(bool(a[s]) and not b[s] for s in seeds)
    only_b = sum(bool(b[s]) and not a[s] for s in seeds)
    discordant = only_a + only_b
    p = 1.0 if discordant == 0 else min(
        1.0, 2 * float(stats.binom.cdf(min(only_a, only_b), discordant, 0.5)))
    return McNemar(only_a, only_b, len(seeds), p)


def fisher_exact(solved_a: int, n_a: int, solved_b: int, n_b: int) -> float:
    """Two-sided p of Fisher's exact test on two solve rates (unpaired)."""
    from scipy import stats
    table = [[solved_a, n_a - solved_a], [solved_b, n_b - solved_b]]
    return float(stats.fisher_exact(table)[1])


def sign_flip_p(differences: Sequence[float]) -> float:
    """Exact two-sided p of the paired sign-flip (permutation) test of a
    mean difference of 0: the share of the 2ⁿ sign assignments whose |mean|
    is at least the observed one (NaN without differences)."""
    n = len(differences)
    if n == 0:
        return math.nan
    observed = abs(math.fsum(differences))
    # a relative tolerance, so that the observed assignment counts itself
    tolerance = 1e-9 * max(1.0, math.fsum(abs(d) for d in differences))
    hits = 0
    for signs in itertools.product((1, -1), repeat=n):
        total = math.fsum(s * d for s, d in zip(signs, differences))
        hits += abs(total) >= observed - tolerance
    return hits / 2**n


def smallest_sign_flip_p(pairs: int) -> float:
    """The smallest two-sided p an exact sign-flip test of ``pairs``
    differences can give (all of one sign): 2 / 2ⁿ."""
    return min(1.0, 2.0 / 2**pairs) if pairs else math.nan


def detectable_effect(differences: Sequence[float], alpha: float = 0.05,
                      power: float = 0.8) -> Optional[float]:
    """The smallest mean difference a paired test of these pairs would
    detect with ``power`` at two-sided ``alpha``, at their own SD (normal
    theory: (t₁₋α/₂ + t_power) · sd / √n); None below two pairs."""
    from scipy import stats
    n = len(differences)
    if n < 2:
        return None
    sd = statistics.stdev(differences)
    quantiles = (stats.t.ppf(1 - alpha / 2, n - 1)
                 + stats.t.ppf(power, n - 1))
    return float(quantiles * sd / math.sqrt(n))
