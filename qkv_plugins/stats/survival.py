"""Time to solve: Kaplan–Meier curves, their median with an interval, and
the log-rank test.

A run's time is the first validation at or above the solve threshold (an
event), or its last validation when it never got there (censored). Times
are discrete (validations every few hundred iterations), so ties are the
rule: the estimator and the test handle them as the standard
(Greenwood / hypergeometric) formulas do.
"""
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple


@dataclass(frozen=True)
class Step:
    """The Kaplan–Meier estimate just after ``time``: ``survival`` (share
    not yet solved), with a pointwise 95 % interval (log transform,
    Greenwood variance), ``at_risk`` runs before it and ``events`` at it."""
    time: float
    survival: float
    low: float
    high: float
    at_risk: int
    events: int


def kaplan_meier(times: Sequence[float], events: Sequence[bool],
                 confidence: float = 0.95) -> List[Step]:
    """One :class:`Step` per distinct event time (censorings only lower the
    number at risk)."""
    from scipy import stats
    if len(times) != len(events):
        raise ValueError(f'{len(times)} times but {len(events)} event flags')
    z = float(stats.norm.ppf((1 + confidence) / 2))
    steps, survival, greenwood = [], 1.0, 0.0
    for time in sorted({t for t, e in zip(times, events) if e}):
        at_risk = sum(t >= time for t in times)
        died = sum(t == time and e for t, e in zip(times, events))
        survival *= 1 - died / at_risk
        if at_risk > died:
            greenwood += died / (at_risk * (at_risk - died))
        else:
            greenwood = math.inf
        if survival > 0 and math.isfinite(greenwood):
            spread = math.exp(z * math.sqrt(greenwood))
            low, high = survival / spread, min(1.0, survival * spread)
        else:
            low, high = 0.0, (0.0 if survival == 0 else 1.0)
        steps.append(Step(time, survival, low, high, at_risk, died))
    return steps


def _first_at_or_below(steps: Sequence[Step], attr: str,
                       level: float) -> Optional[float]:
    for step in steps:
        if getattr(step, attr) <= level:
            return step.time
    return None


def median_time(steps: Sequence[Step]
                ) -> Tuple[Optional[float], Optional[float], Optional[float]]:
    """(median, low, high): the first time the curve (its lower / upper
    pointwise bound) reaches 0.5, as R's ``survfit`` reads them; None where
    it never does ("not reached")."""
    return (_first_at_or_below(steps, 'survival', 0.5),
            _first_at_or_below(steps, 'low', 0.5),
            _first_at_or_below(steps, 'high', 0.5))


def logrank_p(times_a: Sequence[float], events_a: Sequence[bool],
              times_b: Sequence[float], events_b: Sequence[bool]) -> float:
    """Two-sided p of the log-rank test of two groups (χ² with 1 degree of
    freedom; 1.0 where no event happened)."""
    from scipy import stats
    observed_minus_expected, variance = 0.0, 0.0
    all_times = list(times_a) + list(times_b)
    all_events = list(events_a) + list(events_b)
    for time in sorted({t for t, e in zip(all_times, all_events) if e}):
        n_a = sum(t >= time for t in times_a)
        n = n_a + sum(t >= time for t in times_b)
        d_a = sum(t == time and e for t, e in zip(times_a, events_a))
        d = d_a + sum(t == time and e for t, e in zip(times_b, events_b))
        observed_minus_expected += d_a - d * n_a / n
        if n > 1:
            variance += d * (n_a / n) * (1 - n_a / n) * (n - d) / (n - 1)
    if variance == 0:
        return 1.0
    chi2 = observed_minus_expected**2 / variance
    return float(stats.chi2.sf(chi2, 1))
