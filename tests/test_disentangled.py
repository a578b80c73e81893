"""QKVDisentangledNonLocal2d: mmseg equivalence, paths, gradients, errors,
DNLHead checkpoint conversion."""
import math

import pytest
import torch
from mmengine.config import Config
from mmseg.models.decode_heads.dnl_head import DisentangledNonLocal2d

from qkv_plugins import record_attention
from qkv_plugins.layers.convert import rename_keys
from qkv_plugins.layers.disentangled_non_local import \
    QKVDisentangledNonLocal2d
from qkv_plugins.layers.options import (CONSTANT_QUERY_MODES, QKV_MODES,
                                        SIMILARITIES)
from qkv_plugins.mmseg import convert_head_state_dict
from qkv_plugins.mmseg.convert_dnl import DNL_KEYS, from_mmseg_dnl

from .helpers import CONFIGS, build_segmentor, run_tool, seg_logits
from .test_convert_checkpoint import HEAD, TINY, _randomise

SIZES = [(1, 1), (5, 7), (9, 4), (1, 6), (3, 1)]
DEGENERATE = [(1, 1), (1, 6), (6, 1)]
# every mode but the constant-query ones, which the layer refuses (tested)
SUPPORTED_MODES = sorted(set(QKV_MODES) - set(CONSTANT_QUERY_MODES))
modes = pytest.mark.parametrize('qkv_mode', SUPPORTED_MODES)
similarities = pytest.mark.parametrize('similarity', SIMILARITIES)
mask_selfs = pytest.mark.parametrize('mask_self', [False, True])


@pytest.fixture
def float64_default():
    """mmseg builds its temperature with ``torch.tensor(t)``, in the default
    dtype: float64 makes that constant exact (float32 0.05 is off by 1.5e-8,
    which its logits of ~1/0.05 turn into ~1e-6 gradient differences)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def randomise_mmseg(module):
    """mmseg starts the block as identity; make the attention visible."""
    with torch.no_grad():
        target = (module.conv_out.norm if module.conv_out.with_norm else
                  module.conv_out.conv)
        torch.nn.init.normal_(target.weight, std=0.5)
        torch.nn.init.normal_(target.bias, std=0.5)
        for m in (module.g, module.theta, module.phi):
            torch.nn.init.normal_(m.conv.weight, std=0.3)


def build(in_channels=8, **options):
    """Our layer, float64, with its zero factor set non-zero."""
    layer = QKVDisentangledNonLocal2d(in_channels, **options).double()
    with torch.no_grad():
        torch.nn.init.normal_(layer.out.conv.weight, std=0.3)
    return layer


def output_and_grads(layer, x, explicit):
    """Output and the gradients of the input and every parameter."""
    layer.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_()
    out = (layer.forward_with_weights(x)[0] if explicit else layer(x))
    out.backward(torch.linspace(-1, 1, out.numel(),
                                dtype=out.dtype).view_as(out))
    return out, [x.grad] + [p.grad for p in layer.parameters()]


@pytest.mark.parametrize('size', SIZES)
@pytest.mark.parametrize('use_scale', [True, False])
@pytest.mark.parametrize('norm_cfg', [None, dict(type='BN')])
def test_matches_mmseg(float64_default, size, use_scale, norm_cfg):
    torch.manual_seed(1)
    reference = DisentangledNonLocal2d(
        8, temperature=0.05, use_scale=use_scale,
        norm_cfg=norm_cfg).double().eval()
    randomise_mmseg(reference)
    ours = from_mmseg_dnl(reference)
    assert isinstance(ours, QKVDisentangledNonLocal2d) and not ours.training
    assert ours.proj.qkv_mode == 'separate'
    assert ours.temperature == 0.05

    x = torch.randn(2, 8, *size, dtype=torch.float64)
    x_ref, x_ours = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_ref, out_ours = reference(x_ref), ours(x_ours)
    grad = torch.randn_like(out_ref)
    out_ref.backward(grad)
    out_ours.backward(grad)
    assert (out_ref - out_ours).abs().max() < 1e-6
    assert (x_ref.grad - x_ours.grad).abs().max() < 1e-6
    assert not torch.allclose(out_ours, x), 'the block did nothing'

    expected = rename_keys(
        {name: p.grad for name, p in reference.named_parameters()}, DNL_KEYS)
    got = dict(ours.named_parameters())
    assert sorted(expected) == sorted(got)
    for name, p in got.items():
        assert (p.grad - expected[name]).abs().max() < 1e-6, name


@modes
@similarities
@mask_selfs
def test_fast_path_equals_explicit_path(qkv_mode, similarity, mask_self):
    """Outputs and every gradient, float64; the weights are a softmax."""
    torch.manual_seed(0)
    layer = build(qkv_mode=qkv_mode, similarity=similarity,
                  mask_self=mask_self)
    x = torch.randn(2, 8, 4, 5, dtype=torch.float64)
    fast, fast_grads = output_and_grads(layer, x, explicit=False)
    ref, ref_grads = output_and_grads(layer, x, explicit=True)
    torch.testing.assert_close(fast, ref)
    for a, b in zip(fast_grads, ref_grads):
        torch.testing.assert_close(a, b)
    assert not torch.allclose(fast, x)

    with record_attention(layer) as maps:
        recorded = layer(x)
    torch.testing.assert_close(recorded, fast)
    (weights, ) = maps['']
    assert weights.shape == (2, 1, 20, 20)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 1, 20,
                                                           dtype=x.dtype))
    if mask_self:
        assert weights.diagonal(dim1=-2, dim2=-1).abs().max() == 0


@modes
@similarities
@mask_selfs
@pytest.mark.parametrize('size', DEGENERATE)
def test_degenerate_maps_have_finite_gradients(qkv_mode, similarity,
                                               mask_self, size):
    torch.manual_seed(0)
    layer = build(4, qkv_mode=qkv_mode, similarity=similarity,
                  mask_self=mask_self)
    x = torch.randn(2, 4, *size, dtype=torch.float64, requires_grad=True)
    fast, grads = output_and_grads(layer, x, explicit=False)
    ref, ref_grads = output_and_grads(layer, x, explicit=True)
    torch.testing.assert_close(fast, ref)
    assert fast.isfinite().all()
    for a, b in zip(grads, ref_grads):
        assert a.isfinite().all()
        torch.testing.assert_close(a, b)
    assert torch.autograd.gradcheck(layer, (x, ), fast_mode=True)


@modes
@mask_selfs
def test_empty_batch(qkv_mode, mask_self):
    layer = build(qkv_mode=qkv_mode, mask_self=mask_self)
    x = torch.randn(0, 8, 3, 4, dtype=torch.float64, requires_grad=True)
    out = layer(x)
    out.sum().backward()
    assert out.shape == x.shape and x.grad.shape == x.shape
    _, weights = layer.forward_with_weights(x)
    assert weights.shape == (0, 1, 12, 12)


@modes
def test_whitening_and_sharing(monkeypatch, qkv_mode):
    """Q and K are whitened (mean zero over positions), V is not, and a
    mode that shares Q and K hands the kernel one tensor."""
    from qkv_plugins.layers import disentangled_non_local as module
    original, seen = module.dense_attention, {}

    def spy(q, k, v, *args):
        seen.update(q=q, k=k, v=v)
        return original(q, k, v, *args)

    monkeypatch.setattr(module, 'dense_attention', spy)
    build(qkv_mode=qkv_mode)(torch.randn(2, 8, 3, 4, dtype=torch.float64) + 5)
    q, k, v = seen['q'], seen['k'], seen['v']
    assert q.mean(-2).abs().max() < 1e-12 and k.mean(-2).abs().max() < 1e-12
    assert (q is k) == (qkv_mode != 'separate')
    if qkv_mode == 'identity':  # V is the raw input, mean ~5
        assert v.mean(-2).min() > 3


def test_starts_as_identity():
    layer = QKVDisentangledNonLocal2d(8)
    x = torch.randn(1, 8, 4, 5)
    torch.testing.assert_close(layer(x), x)


@pytest.mark.parametrize('temperature,expected', [(0.05, 20.0), (0.5, 2.0),
                                                  (0.001, 1000.0)])
def test_cosine_scale_starts_at_inverse_temperature(temperature, expected):
    """The clamp (100) rises to 1/temperature rather than cut the start."""
    layer = QKVDisentangledNonLocal2d(8, similarity='cosine',
                                      temperature=temperature)
    assert math.isclose(layer.similarity.logit_scale.exp().item(), expected,
                        rel_tol=1e-6)
    x = torch.randn(1, 8, 2, 2)
    q, k, scale = layer.similarity(x, x, dim=1)
    torch.testing.assert_close((q * k).sum(1) * scale,
                               torch.full((1, 2, 2), expected))
    assert layer.logit_factor == 1.0


@pytest.mark.parametrize('use_scale', [True, False])
def test_dot_logits_divide_by_temperature(use_scale):
    layer = build(qkv_mode='identity', use_scale=use_scale, temperature=0.25)
    x = torch.randn(1, 8, 2, 3, dtype=torch.float64)
    _, weights = layer.forward_with_weights(x)
    t = x.flatten(2).transpose(1, 2)
    t = t - t.mean(1, keepdim=True)
    logits = t @ t.transpose(1, 2) / (8**0.5 if use_scale else 1) / 0.25
    torch.testing.assert_close(weights[:, 0], logits.softmax(-1))


@pytest.mark.parametrize('options,message', [
    (dict(qkv_mode='qk'), "qkv_mode must be one of 'separate'"),
    (dict(similarity='l2'), "similarity must be one of 'dot', 'cosine'"),
    (dict(mask_self='False'), "mask_self must be True or False, but got"),
    (dict(use_scale=1), 'use_scale must be True or False, but got 1'),
    (dict(reduction=0), 'reduction must be a positive int, but got 0'),
    (dict(reduction=16), 'reduction=16 leaves 8 // 16 = 0'),
    (dict(num_heads=2), 'supports num_heads=1 only, but got num_heads=2'),
    (dict(num_heads=0), 'num_heads must be a positive int, but got 0'),
    (dict(temperature=0), 'temperature must be a positive float, but got 0'),
    (dict(temperature=-0.05), 'but got -0.05'),
    (dict(temperature='0.05'), "but got '0.05'"),
    (dict(temperature=float('nan')), 'but got nan'),
    (dict(temperature=True), 'but got True'),
])
def test_bad_options_raise(options, message):
    with pytest.raises(ValueError, match=message):
        QKVDisentangledNonLocal2d(8, **options)


@pytest.mark.parametrize('qkv_mode', CONSTANT_QUERY_MODES)
def test_constant_query_modes_are_refused(qkv_mode):
    with pytest.raises(ValueError,
                       match=f"qkv_mode='{qkv_mode}'.*whitening.*'separate'"):
        QKVDisentangledNonLocal2d(8, qkv_mode=qkv_mode)


def test_bad_input_and_in_channels_raise():
    with pytest.raises(ValueError, match='in_channels must be a positive int'):
        QKVDisentangledNonLocal2d(0)
    with pytest.raises(ValueError, match='built with in_channels=8'):
        QKVDisentangledNonLocal2d(8)(torch.randn(1, 4, 2, 2))


@pytest.mark.parametrize('mode', ['gaussian', 'dot_product'])
def test_from_mmseg_dnl_refuses_other_modes(mode):
    with pytest.raises(ValueError,
                       match=f"mode='{mode}'.*'embedded_gaussian'"):
        from_mmseg_dnl(DisentangledNonLocal2d(8, temperature=0.05, mode=mode))


def test_from_mmseg_dnl_refuses_sub_sample_and_other_types():
    with pytest.raises(ValueError, match='sub_sample=True'):
        from_mmseg_dnl(DisentangledNonLocal2d(8, temperature=0.05,
                                              sub_sample=True))
    with pytest.raises(TypeError, match='not Conv2d'):
        from_mmseg_dnl(torch.nn.Conv2d(3, 3, 1))


def test_dnl_head_checkpoint_converts_with_same_logits(tmp_path):
    stock_head = dict(type='DNLHead', reduction=2, use_scale=True,
                      mode='embedded_gaussian', temperature=0.05)
    stock = build_segmentor(Config.fromfile(TINY),
                            decode_head=dict(stock_head, **HEAD))
    _randomise(stock)
    src, dst = tmp_path / 'stock.pth', tmp_path / 'converted.pth'
    torch.save(dict(meta=dict(iter=1), state_dict=stock.state_dict(),
                    optimizer={}), src)

    result = run_tool('tools/convert_mmseg_checkpoint.py', src, dst)
    assert "type='AttentionHead'" in result.stdout
    assert "'QKVDisentangledNonLocal2d'" in result.stdout
    assert "'temperature': 0.05" in result.stdout

    attention = dict(type='QKVDisentangledNonLocal2d', reduction=2)
    ours = build_segmentor(
        Config.fromfile(TINY),
        decode_head=dict(type='AttentionHead', attention=attention, **HEAD))
    checkpoint = torch.load(dst, weights_only=True)
    assert set(checkpoint) == {'meta', 'state_dict'}
    assert any(k.startswith('decode_head.attention.unary.')
               for k in checkpoint['state_dict'])
    ours.load_state_dict(checkpoint['state_dict'], strict=True)
    expected, got = seg_logits(stock), seg_logits(ours)
    scale = expected.abs().max()
    assert (expected - got).abs().max() <= 1e-5 * scale, scale


def test_gaussian_dnl_checkpoint_is_refused():
    stock = build_segmentor(
        Config.fromfile(TINY),
        decode_head=dict(type='DNLHead', mode='gaussian', **HEAD))
    with pytest.raises(ValueError,
                       match="mode='gaussian'.*'embedded_gaussian'"):
        convert_head_state_dict(stock.state_dict())


def test_study_configs_use_the_layer():
    for track in ('1500it_qkvsyn-cyclic', '1200it_qkvsyn-grouping'):
        path = (CONFIGS / 'qkv_study' /
                f'dnl-separate_tinyr18s2_1xb8-{track}-128x128.py')
        layer = build_segmentor(path).decode_head.attention
        assert isinstance(layer, QKVDisentangledNonLocal2d)
        assert layer.proj.qkv_mode == 'separate'
