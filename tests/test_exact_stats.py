"""Exact tests and survival statistics against hand computations and
scipy's own implementations."""
import math

import pytest

from qkv_plugins.stats.exact import (MIN_PAIRS_FOR_TEST, clopper_pearson,
                                     detectable_effect, fisher_exact,
                                     mcnemar_exact, sign_flip_p,
                                     smallest_sign_flip_p)
from qkv_plugins.stats.survival import kaplan_meier, logrank_p, median_time


def test_clopper_pearson_matches_known_values():
    # 7/8: the textbook exact interval (0.4735, 0.9968)
    low, high = clopper_pearson(7, 8)
    assert (low, high) == pytest.approx((0.47349, 0.99684), abs=1e-4)
    assert clopper_pearson(0, 12)[0] == 0.0
    assert clopper_pearson(0, 12)[1] == pytest.approx(1 - 0.025**(1 / 12))
    assert clopper_pearson(12, 12) == pytest.approx((0.025**(1 / 12), 1.0))
    assert all(math.isnan(v) for v in clopper_pearson(0, 0))


def test_mcnemar_counts_discordant_pairs_and_is_exact():
    a = {s: s < 2 for s in range(12)}  # solved seeds 0, 1
    b = {s: s != 5 for s in range(12)}  # all but seed 5
    result = mcnemar_exact(a, b)
    # only b: seeds 2-4, 6-11 (9); only a: none; seed 5 concordant? no:
    # a unsolved, b unsolved at 5 -> concordant
    assert (result.only_a, result.only_b, result.pairs) == (0, 9, 12)
    assert result.p == pytest.approx(2 * 0.5**9)
    assert mcnemar_exact({0: True}, {0: True}).p == 1.0
    # seven discordant pairs all one way: 2 / 2**7 = 0.016, as the issue says
    seven = mcnemar_exact({s: False for s in range(8)},
                          {s: s < 7 for s in range(8)})
    assert seven.p == pytest.approx(0.015625)


def test_fisher_matches_scipy():
    from scipy import stats
    assert fisher_exact(7, 8, 1, 8) == pytest.approx(
        stats.fisher_exact([[7, 1], [1, 7]])[1])


@pytest.mark.parametrize('n', [3, 5, 6, 8, 12])
def test_sign_flip_of_differences_of_one_sign_is_its_floor(n):
    diffs = [-(i + 1.0) for i in range(n)]
    assert sign_flip_p(diffs) == pytest.approx(smallest_sign_flip_p(n))
    assert (smallest_sign_flip_p(n) < 0.05) == (n >= MIN_PAIRS_FOR_TEST)


def test_sign_flip_by_enumeration_and_against_scipy():
    from scipy import stats
    diffs = [-30.0, -45.5, 2.0, -48.0, -1.0, -40.0, -35.0, -50.0]
    expected = stats.permutation_test(
        (diffs, ), lambda d: sum(d) / len(d), permutation_type='samples',
        n_resamples=math.inf, alternative='two-sided').pvalue
    assert sign_flip_p(diffs) == pytest.approx(expected)
    assert math.isnan(sign_flip_p([]))
    assert sign_flip_p([0.0, 0.0, 0.0]) == 1.0


def test_detectable_effect_is_the_normal_theory_bound():
    from scipy import stats
    diffs = [-10.0, -40.0, -5.0]
    sd = stats.tstd(diffs)
    expected = (stats.t.ppf(0.975, 2) + stats.t.ppf(0.8, 2)) * sd / 3**0.5
    assert detectable_effect(diffs) == pytest.approx(expected)
    assert detectable_effect([1.0]) is None


def test_kaplan_meier_by_hand_with_ties_and_censoring():
    # 300: 2 events of 6; 600: 1 of 4; 900: 2 censored; 1200: the last one
    times = [300, 300, 600, 900, 900, 1200]
    events = [True, True, True, False, False, True]
    steps = kaplan_meier(times, events)
    assert [s.time for s in steps] == [300, 600, 1200]
    assert [s.survival for s in steps] == pytest.approx(
        [4 / 6, 4 / 6 * 3 / 4, 0.0])
    assert [s.at_risk for s in steps] == [6, 4, 1]
    median, low, high = median_time(steps)
    assert median == 600  # survival 0.5 reached at 600
    assert low is not None and low <= median
    # never half solved: the median is not reached
    assert median_time(kaplan_meier([4500] * 7 + [900],
                                    [False] * 7 + [True]))[0] is None


def test_logrank_matches_scipy():
    from scipy import stats
    if not hasattr(stats, 'logrank'):
        pytest.skip('scipy < 1.11 has no logrank')
    a_times, a_events = [300, 600, 600, 900, 1500, 4500], [True] * 5 + [False]
    b_times, b_events = [1200, 4500, 4500, 4500, 2400, 4500], [
        True, False, False, False, True, False]
    expected = stats.logrank(
        stats.CensoredData.right_censored(a_times, [not e for e in a_events]),
        stats.CensoredData.right_censored(b_times, [not e for e in b_events]))
    assert logrank_p(a_times, a_events, b_times, b_events) == pytest.approx(
        expected.pvalue)
    assert logrank_p([4500], [False], [4500], [False]) == 1.0
