"""``from_mmcv`` gives the same function as mmcv's blocks (float64)."""
import pytest
import torch
from mmcv.cnn import NonLocal2d
from mmcv.ops import CrissCrossAttention

from qkv_plugins import QKVCrissCrossAttention, QKVNonLocal2d, from_mmcv
from qkv_plugins.layers.convert import rename_keys
from qkv_plugins.layers.criss_cross import CRISS_CROSS_KEYS
from qkv_plugins.layers.non_local import NON_LOCAL_KEYS

SIZES = [(1, 1), (5, 7), (9, 4), (1, 6), (3, 1)]


def randomise_zero_factor(module):
    """mmcv starts its blocks as identity; make the attention visible."""
    with torch.no_grad():
        if isinstance(module, NonLocal2d):
            target = (module.conv_out.norm if module.conv_out.with_norm else
                      module.conv_out.conv)
            torch.nn.init.normal_(target.weight, std=0.5)
            if target.bias is not None:
                torch.nn.init.normal_(target.bias, std=0.5)
            for m in (module.g, getattr(module, 'theta', None),
                      getattr(module, 'phi', None)):
                if m is not None:
                    torch.nn.init.normal_(m.conv.weight, std=0.3)
        else:
            module.gamma.scale.fill_(0.8)


def assert_same_function(reference, ours, x, recurrence=1):
    x_ref = x.clone().requires_grad_()
    x_ours = x.clone().requires_grad_()
    out_ref = x_ref
    for _ in range(recurrence):
        out_ref = reference(out_ref)
    out_ours = ours(x_ours)
    grad = torch.randn_like(out_ref)
    out_ref.backward(grad)
    out_ours.backward(grad)
    assert (out_ref - out_ours).abs().max() < 1e-6
    assert (x_ref.grad - x_ours.grad).abs().max() < 1e-6


def assert_same_parameter_grads(reference, ours, table):
    grads = {name: p.grad for name, p in reference.named_parameters()}
    expected = rename_keys(grads, table)
    got = dict(ours.named_parameters())
    assert sorted(expected) == sorted(got)
    for name, p in got.items():
        assert (p.grad - expected[name]).abs().max() < 1e-6, name


@pytest.mark.parametrize('size', SIZES)
@pytest.mark.parametrize('mode,use_scale', [('embedded_gaussian', True),
                                            ('embedded_gaussian', False),
                                            ('gaussian', True)])
@pytest.mark.parametrize('norm_cfg', [None, dict(type='BN')])
def test_non_local_matches_mmcv(size, mode, use_scale, norm_cfg):
    torch.manual_seed(1)
    reference = NonLocal2d(8, mode=mode, use_scale=use_scale,
                           norm_cfg=norm_cfg).double().eval()
    randomise_zero_factor(reference)
    ours = from_mmcv(reference)
    assert isinstance(ours, QKVNonLocal2d) and not ours.training
    assert ours.proj.qkv_mode == ('separate' if mode == 'embedded_gaussian'
                                  else 'identity_qk')
    x = torch.randn(2, 8, *size, dtype=torch.float64)
    assert_same_function(reference, ours, x)
    assert_same_parameter_grads(reference, ours, NON_LOCAL_KEYS)


@pytest.mark.parametrize('size', SIZES)
@pytest.mark.parametrize('recurrence', [1, 2])
def test_criss_cross_matches_mmcv(size, recurrence):
    torch.manual_seed(2)
    reference = CrissCrossAttention(16).double()
    randomise_zero_factor(reference)
    ours = from_mmcv(reference)
    ours.recurrence = recurrence
    assert isinstance(ours, QKVCrissCrossAttention)
    x = torch.randn(2, 16, *size, dtype=torch.float64)
    assert_same_function(reference, ours, x, recurrence=recurrence)
    assert_same_parameter_grads(reference, ours, CRISS_CROSS_KEYS)


def test_from_mmcv_rejects_what_it_cannot_convert():
    with pytest.raises(ValueError, match="mode='dot_product'"):
        from_mmcv(NonLocal2d(8, mode='dot_product'))
    with pytest.raises(TypeError, match='no converter for Conv2d; convertible'):
        from_mmcv(torch.nn.Conv2d(3, 3, 1))
