"""Logit asymmetry (exactly 0 for symmetric scores, not for separate Q/K)
and the paired statistics against hand computations."""
import math

import pytest
import torch

from qkv_plugins import QKVNonLocal2d
from qkv_plugins.stats.diagnostics import asymmetry, logit_asymmetry
from qkv_plugins.stats.paired import holm, paired_difference


def _weights(qkv_mode, similarity='dot', mask_self=False):
    torch.manual_seed(0)
    layer = QKVNonLocal2d(16, qkv_mode=qkv_mode, similarity=similarity,
                          mask_self=mask_self).double()
    with torch.no_grad():
        for param in layer.parameters():
            param.normal_(0, 0.5)
    x = torch.randn(2, 16, 4, 5, dtype=torch.float64)
    return layer.forward_with_weights(x)[1]


@pytest.mark.parametrize('qkv_mode', ['shared_qk', 'shared', 'identity_qk',
                                      'identity'])
@pytest.mark.parametrize('similarity', ['dot', 'cosine'])
@pytest.mark.parametrize('mask_self', [False, True])
def test_symmetric_scores_have_zero_logit_asymmetry(qkv_mode, similarity,
                                                    mask_self):
    weights = _weights(qkv_mode, similarity, mask_self)
    assert float(logit_asymmetry(weights)) <= 1e-6
    # softmax's row normalisation makes the weights themselves asymmetric
    assert float(asymmetry(weights.float())) > 1e-3


@pytest.mark.parametrize('mask_self', [False, True])
def test_separate_projections_are_asymmetric(mask_self):
    assert float(logit_asymmetry(_weights('separate', mask_self=mask_self))) \
        > 0.1


def test_query_independent_maps_have_no_logit_asymmetry_to_speak_of():
    assert math.isnan(float(logit_asymmetry(_weights('query_independent'))))


def test_paired_difference_by_hand():
    a = {0: 97.0, 1: 98.0, 2: 96.0, 5: 10.0}
    b = {0: 50.0, 1: 45.0, 2: 49.0, 3: 99.0}
    got = paired_difference(a, b)
    diffs = [47.0, 53.0, 47.0]  # seeds 0, 1, 2 only
    mean = sum(diffs) / 3
    sd = (sum((d - mean)**2 for d in diffs) / 2)**0.5
    t975 = 4.302652729911275  # t quantile, 2 degrees of freedom
    assert got.seeds == 3 and got.mean == pytest.approx(mean)
    assert got.low == pytest.approx(mean - t975 * sd / 3**0.5)
    assert got.high == pytest.approx(mean + t975 * sd / 3**0.5)
    # p of t = mean / (sd / sqrt 3) with 2 degrees of freedom, closed form
    t = mean / (sd / 3**0.5)
    assert got.p == pytest.approx(1 - t / (2 + t * t)**0.5)


def test_paired_difference_needs_common_seeds():
    with pytest.raises(ValueError, match='no seed in common'):
        paired_difference({0: 1.0}, {1: 2.0})
    one = paired_difference({0: 1.0}, {0: 0.5})
    assert one.mean == 0.5 and math.isnan(one.p) and math.isnan(one.low)


def test_holm_by_hand():
    # sorted 0.01, 0.02, 0.04 (NaN skipped): x3, x2, x1, running maximum
    assert holm([0.04, 0.01, math.nan, 0.02]) == pytest.approx(
        [0.04, 0.03, math.nan, 0.04], nan_ok=True)
    assert holm([0.5, 0.6]) == [1.0, 1.0]


def test_underflowed_weights_have_no_logit_asymmetry():
    import math

    # symmetric logits with a spread softmax cannot hold in float32
    logits = torch.tensor([[0., 200., 1.], [200., 0., 2.], [1., 2., 0.]])
    weights = logits.softmax(-1)
    assert (weights == 0).any()
    assert math.isnan(float(logit_asymmetry(weights)))
    assert float(logit_asymmetry(logits.double().softmax(-1))) < 1e-6
