"""Test-time interventions on the logits: (S + Sᵀ)/2 and Sᵀ, on every path,
against the weights computed by hand in float64."""
import pytest
import torch

from qkv_plugins.layers import QKVNonLocal2d
from qkv_plugins.layers.similarity import set_logit_transform

from .conftest import build_layer


def _layer(qkv_mode='separate', similarity='dot', mask_self=False):
    layer = build_layer('nonlocal', 8, qkv_mode=qkv_mode,
                        similarity=similarity, mask_self=mask_self).double()
    with torch.no_grad():
        for param in layer.proj.parameters():
            param.normal_(0, 0.5)
    return layer


def _logits(layer, x):
    """S [B, N, N] as trained, by hand (one head)."""
    q, k, _ = layer.proj(x)
    q, k = (t.flatten(2).transpose(1, 2) for t in (q, k))  # [B, N, C]
    q, k, scale = layer.similarity(q, k, dim=-1)
    return scale * q @ k.transpose(1, 2)


@pytest.mark.parametrize('similarity', ['dot', 'cosine'])
@pytest.mark.parametrize('mask_self', [False, True])
@pytest.mark.parametrize('how,expected', [
    ('symmetric', lambda s: (s + s.transpose(1, 2)) / 2),
    ('transpose', lambda s: s.transpose(1, 2)),
])
def test_transformed_weights_are_the_transformed_logits(similarity, mask_self,
                                                        how, expected):
    layer = _layer(similarity=similarity, mask_self=mask_self)
    x = torch.randn(2, 8, 3, 5, dtype=torch.float64)
    logits = expected(_logits(layer, x))
    if mask_self:
        eye = torch.eye(logits.shape[-1], dtype=torch.bool)
        logits = logits.masked_fill(eye, float('-inf'))
    assert set_logit_transform(layer, how) == 1
    _, weights = layer.forward_with_weights(x)
    torch.testing.assert_close(weights[:, 0], logits.softmax(-1))
    # the fast path takes the same intervention
    fast, _ = layer.forward_with_weights(x, need_weights=False)
    explicit, _ = layer.forward_with_weights(x)
    torch.testing.assert_close(fast, explicit)


@pytest.mark.parametrize('qkv_mode', ['shared_qk', 'shared', 'identity'])
def test_symmetric_scores_are_their_own_symmetric_part(qkv_mode):
    layer = _layer(qkv_mode)
    x = torch.randn(2, 8, 4, 4, dtype=torch.float64)
    before = layer(x)
    set_logit_transform(layer, 'symmetric')
    torch.testing.assert_close(layer(x), before)
    set_logit_transform(layer, 'transpose')
    torch.testing.assert_close(layer(x), before)


def test_separate_changes_and_comes_back():
    layer = _layer()
    x = torch.randn(1, 8, 4, 4, dtype=torch.float64)
    before = layer(x)
    set_logit_transform(layer, 'transpose')
    assert not torch.allclose(layer(x), before)
    set_logit_transform(layer, None)
    torch.testing.assert_close(layer(x), before)


def test_unknown_transform_is_refused_naming_the_allowed():
    with pytest.raises(ValueError, match="logit_transform must be one of "
                       "None, 'symmetric', 'transpose', but got 'flip'"):
        set_logit_transform(QKVNonLocal2d(8), 'flip')
