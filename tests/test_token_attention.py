"""QKVMultiheadAttention on the shared core: modes from the one table,
shared kernels and similarity, saved keys, precision, degenerate inputs,
dropout, registry."""
import itertools
import math
import re

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import qkv_plugins.layers.kernels as kernels
from qkv_plugins.layers import QKV_MODES, SIMILARITIES, QKVMultiheadAttention
from qkv_plugins.layers.autograd_kernels import SelfMaskedAttentionFunction
from qkv_plugins.layers.options import CONSTANT_QUERY_MODES
from qkv_plugins.layers.projection import QKVProjection
from qkv_plugins.layers.similarity import Similarity, set_logit_transform

C, HEADS = 8, 2
TOKEN_ALLOWED = ', '.join(repr(m) for m in QKV_MODES
                          if m not in CONSTANT_QUERY_MODES)


def token_layer(mode: str, **options) -> QKVMultiheadAttention:
    """The layer in ``mode``; for a mode tokens refuse, check the error
    names the allowed modes, then skip."""
    options = dict(dict(num_heads=HEADS), **options)
    if mode in CONSTANT_QUERY_MODES:
        with pytest.raises(ValueError, match=re.escape(
                f'qkv_mode must be one of {TOKEN_ALLOWED}, but got '
                f'{mode!r}')):
            QKVMultiheadAttention(C, qkv_mode=mode, **options)
        pytest.skip(f'token attention refuses {mode!r} (error checked)')
    return QKVMultiheadAttention(C, qkv_mode=mode, **options)


modes = pytest.mark.parametrize('mode', list(QKV_MODES))
similarities = pytest.mark.parametrize('similarity', SIMILARITIES)
mask_selfs = pytest.mark.parametrize('mask_self', [False, True])


# -- one core -------------------------------------------------------------

@modes
@similarities
@mask_selfs
def test_calls_the_shared_projection_similarity_and_kernel(
        monkeypatch, mode, similarity, mask_self):
    layer = token_layer(mode, similarity=similarity, mask_self=mask_self)
    assert isinstance(layer.attn, QKVProjection)
    assert layer.attn.qkv_mode == mode and layer.attn.layout == 'linear'
    assert isinstance(layer.score, Similarity)
    calls = []
    real_kernel, real_score = kernels.dense_attention, Similarity.forward

    def kernel(*args, **kwargs):
        calls.append('dense_attention')
        return real_kernel(*args, **kwargs)

    def score(self, *args, **kwargs):
        calls.append('similarity')
        return real_score(self, *args, **kwargs)

    monkeypatch.setattr(kernels, 'dense_attention', kernel)
    monkeypatch.setattr(Similarity, 'forward', score)
    x = torch.randn(2, C, 3, 4)
    for need_weights in (False, True):
        layer.forward_with_weights(x, need_weights=need_weights)
    assert calls == ['similarity', 'dense_attention'] * 2


@modes
def test_mask_self_holds_no_n_by_n_tensor(monkeypatch, mode):
    """Fast path, forward and backward: no op makes a tensor of N×N
    elements (the masked kernel's query chunks are made small here)."""
    layer = token_layer(mode, mask_self=True, num_heads=1)
    height = width = 12
    n = height * width
    monkeypatch.setattr(
        'qkv_plugins.layers.autograd_kernels.MASKED_BLOCK_ELEMENTS', 16 * n)
    x = torch.randn(1, C, height, width, requires_grad=True)

    class Largest(TorchDispatchMode):
        largest = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else [out]:
                if isinstance(t, torch.Tensor):
                    Largest.largest = max(Largest.largest, t.numel())
            return out

    with Largest():
        layer(x).square().sum().backward()
    assert 0 < Largest.largest < n * n
    with Largest():  # the check sees them: the explicit path has them
        layer.forward_with_weights(x)[0].square().sum().backward()
    assert Largest.largest >= n * n


# -- the public keys --------------------------------------------------------

PROJECTION_KEYS = {
    'separate': ['attn.in_proj_weight', 'attn.in_proj_bias'],
    'shared_qk': ['attn.qk_proj_weight', 'attn.qk_proj_bias',
                  'attn.v_proj_weight', 'attn.v_proj_bias'],
    'shared': ['attn.qkv_proj_weight', 'attn.qkv_proj_bias'],
    'identity_qk': ['attn.v_proj_weight', 'attn.v_proj_bias'],
    'identity': [],
}


def saved_keys(mode: str, similarity: str, sr_ratio: int) -> dict:
    """The keys and shapes checkpoints of every mode carry (a public
    contract: these are the keys of the layer before the one-core
    rewrite)."""
    keys = {k: ((3 * C, C) if k.endswith('in_proj_weight') else
                (3 * C, ) if k.endswith('in_proj_bias') else
                (C, C) if k.endswith('weight') else (C, ))
            for k in PROJECTION_KEYS[mode]}
    keys.update({'attn.out_proj.weight': (C, C), 'attn.out_proj.bias': (C, )})
    if sr_ratio > 1:
        keys.update({'sr.weight': (C, C, sr_ratio, sr_ratio),
                     'sr.bias': (C, ), 'norm.weight': (C, ),
                     'norm.bias': (C, )})
    if similarity == 'cosine':
        keys['logit_scale'] = (HEADS, 1, 1)
    return keys


@modes
@similarities
@pytest.mark.parametrize('sr_ratio', [1, 2])
def test_state_dict_keys_are_the_published_ones_and_load_strictly(
        mode, similarity, sr_ratio):
    layer = token_layer(mode, similarity=similarity, sr_ratio=sr_ratio)
    expected = saved_keys(mode, similarity, sr_ratio)
    state = layer.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == expected
    # a checkpoint of those keys (other values) loads strictly, scale too
    checkpoint = {k: torch.randn(shape) for k, shape in expected.items()}
    again = token_layer(mode, similarity=similarity, sr_ratio=sr_ratio)
    result = again.load_state_dict(checkpoint, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    for key, value in again.state_dict().items():
        assert torch.equal(value, checkpoint[key]), key
    if similarity == 'cosine':
        assert torch.equal(again.logit_scale.detach(),
                           checkpoint['logit_scale'])


@modes
@similarities
def test_a_stock_state_dict_loads_into_every_mode(mode, similarity):
    from mmcv.cnn.bricks.transformer import MultiheadAttention
    stock = MultiheadAttention(C, HEADS, batch_first=True)
    layer = token_layer(mode, similarity=similarity)
    initial = None if layer.logit_scale is None else layer.logit_scale.clone()
    result = layer.load_state_dict(stock.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    packed = stock.attn.in_proj_weight
    for name, param in layer.attn.named_parameters():
        if name.endswith('_weight'):  # Q's rows for Q = K and Q = K = V
            role = name.split('_proj')[0]
            rows = {'in': packed, 'v': packed[2 * C:]}.get(role, packed[:C])
            assert torch.equal(param, rows), name
    if initial is not None:  # stock has no scale: the initial one stays
        assert torch.equal(layer.logit_scale, initial)


def test_per_head_scale_is_the_similarity_module_saved_as_logit_scale():
    layer = QKVMultiheadAttention(C, num_heads=HEADS, similarity='cosine')
    assert layer.logit_scale is layer.score.logit_scale
    assert layer.logit_scale.shape == (HEADS, 1, 1)
    assert layer.score.cosine_scale == pytest.approx(10.0)
    with torch.no_grad():  # a head with a larger scale gives sharper maps
        layer.score.logit_scale[1].fill_(4.0)
    _, weights = layer.forward_with_weights(torch.randn(1, C, 4, 4))
    peak = weights.amax(-1).mean((0, 2, 3))  # [heads]
    assert peak[1] > peak[0]
    assert layer.score.cosine_scale == pytest.approx((10 + math.exp(4)) / 2)


# -- paths, precision, degenerate inputs ---------------------------------

@modes
@pytest.mark.parametrize('mask_self', [False, True])
@pytest.mark.parametrize('path', ['fast', 'explicit'])
def test_cosine_in_float16_stays_within_2_percent_of_float32(mode, mask_self,
                                                             path):
    """Large activations (×1e3): the norms are taken in at least fp32."""
    torch.manual_seed(0)
    layer = token_layer(mode, similarity='cosine', mask_self=mask_self)
    half = token_layer(mode, similarity='cosine', mask_self=mask_self)
    half.load_state_dict(layer.state_dict())
    half.half()
    x = torch.randn(2, 20, C) * 1e3
    zero = torch.zeros_like(x)  # the attention branch alone
    need_weights = path == 'explicit'
    ref, _ = layer.forward_with_weights(x, identity=zero,
                                        need_weights=need_weights)
    out, _ = half.forward_with_weights(x.half(), identity=zero.half(),
                                       need_weights=need_weights)
    assert out.dtype == torch.float16 and out.isfinite().all()
    error = (out.float() - ref).norm() / ref.norm()
    assert error < 0.02, float(error)


@modes
@similarities
@mask_selfs
def test_empty_batch_gives_an_empty_output_on_both_paths(mode, similarity,
                                                         mask_self):
    layer = token_layer(mode, similarity=similarity, mask_self=mask_self)
    x = torch.randn(0, C, 3, 4, requires_grad=True)
    fast, none = layer.forward_with_weights(x, need_weights=False)
    explicit, weights = layer.forward_with_weights(x, need_weights=True)
    assert fast.shape == explicit.shape == (0, C, 3, 4) and none is None
    assert weights.shape == (0, HEADS, 3, 4, 12)
    fast.sum().backward()
    reduced = token_layer(mode, similarity=similarity, sr_ratio=2)
    assert reduced(torch.randn(0, 12, C), (3, 4)).shape == (0, 12, C)


@modes
@similarities
@mask_selfs
def test_one_position_keeps_its_own_key_on_both_paths(mode, similarity,
                                                      mask_self):
    """A position with no other key keeps itself: finite, weight 1."""
    layer = token_layer(mode, similarity=similarity, mask_self=mask_self)
    x = torch.randn(2, C, 1, 1, requires_grad=True)
    fast, _ = layer.forward_with_weights(x, need_weights=False)
    explicit, weights = layer.forward_with_weights(x, need_weights=True)
    assert fast.isfinite().all()
    torch.testing.assert_close(fast, explicit)
    assert torch.equal(weights, torch.ones(2, HEADS, 1, 1, 1))
    fast.sum().backward()
    assert x.grad.isfinite().all()


# -- dropout ---------------------------------------------------------------

@pytest.mark.parametrize('option', ['attn_drop', 'proj_drop'])
@pytest.mark.parametrize('value', [1.5, -0.1, 1, True, '0.1'])
def test_dropout_outside_0_1_is_refused_at_build_time(option, value):
    with pytest.raises(ValueError, match=re.escape(
            f'{option} must be a number in [0, 1), but got {value!r}')):
        QKVMultiheadAttention(C, **{option: value})


@modes
@mask_selfs
def test_attn_drop_acts_in_training_only(mode, mask_self):
    torch.manual_seed(0)
    plain = token_layer(mode, mask_self=mask_self)
    dropping = token_layer(mode, mask_self=mask_self, attn_drop=0.5)
    dropping.load_state_dict(plain.state_dict())
    x = torch.randn(2, C, 4, 5, requires_grad=True)
    for layer in (plain, dropping):
        layer.eval()
    torch.testing.assert_close(dropping(x), plain(x), rtol=0, atol=0)
    dropping.train()
    torch.manual_seed(1)
    first = dropping(x)
    torch.manual_seed(1)
    again = dropping(x)
    assert torch.equal(first, again)  # torch.manual_seed fixes the draws
    assert not torch.allclose(first, plain(x))
    first.square().sum().backward()
    assert x.grad.isfinite().all()


@pytest.mark.parametrize('aliases', ['none', 'qk', 'qkv'])
def test_chunked_masked_dropout_gradcheck(monkeypatch, aliases):
    monkeypatch.setattr(
        'qkv_plugins.layers.autograd_kernels.MASKED_BLOCK_ELEMENTS', 2 * 3 * 7)
    q, k, v = (torch.randn(2, 7, 3, dtype=torch.float64, requires_grad=True)
               for _ in range(3))

    def attend(q, k, v):
        k_in = q if aliases in ('qk', 'qkv') else k
        v_in = q if aliases == 'qkv' else v
        return SelfMaskedAttentionFunction.apply(q, k_in, v_in, 0.7, 0.3, 5)

    assert torch.autograd.gradcheck(attend, (q, k, v))


def test_chunked_masked_dropout_equals_explicit_with_the_same_draws(
        monkeypatch):
    """One chunk: the factors are one [batch, N, N] draw of the seeded
    generator; the explicit reference applies the same factors."""
    p, seed, scale = 0.4, 11, 0.5
    q, k, v = (torch.randn(3, 6, 4, dtype=torch.float64, requires_grad=True)
               for _ in range(3))
    out = SelfMaskedAttentionFunction.apply(q, k, v, scale, p, seed)
    generator = torch.Generator().manual_seed(seed)
    keep = torch.empty(3, 6, 6, dtype=torch.float64).bernoulli_(
        1 - p, generator=generator) / (1 - p)
    logits = (q @ k.transpose(1, 2) * scale).masked_fill(
        torch.eye(6, dtype=torch.bool), float('-inf'))
    ref = (logits.softmax(-1) * keep) @ v
    torch.testing.assert_close(out, ref)
    grads = torch.autograd.grad(out.square().sum(), (q, k, v))
    ref_grads = torch.autograd.grad(ref.square().sum(), (q, k, v))
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want)


def test_dense_attention_refuses_a_bad_dropout():
    q = torch.randn(1, 1, 3, 2)
    with pytest.raises(ValueError, match=re.escape(
            'dropout_p must be a number in [0, 1), but got 1.0')):
        kernels.dense_attention(q, q, q, 1.0, dropout_p=1.0)


# -- other options, interventions, registry ---------------------------------

def test_logit_transforms_refuse_reduced_keys_and_act_on_square_ones():
    reduced = QKVMultiheadAttention(C, num_heads=HEADS, sr_ratio=2)
    assert set_logit_transform(reduced, 'transpose') == 1
    with pytest.raises(ValueError, match="logit_transform='transpose' needs "
                       'one key per query position'):
        reduced(torch.randn(1, 16, C), (4, 4))
    layer = QKVMultiheadAttention(C, num_heads=HEADS, similarity='cosine')
    x = torch.randn(1, C, 3, 4)
    _, before = layer.forward_with_weights(x)
    set_logit_transform(layer, 'transpose')
    _, after = layer.forward_with_weights(x)
    assert not torch.allclose(before, after)


def test_built_through_mmengine_root_registry_and_mmcv_plugin_builder():
    from mmcv.cnn import build_plugin_layer
    from mmengine.registry import MODELS
    from mmseg.registry import MODELS as SEG_MODELS
    assert MODELS.get('QKVMultiheadAttention') is QKVMultiheadAttention
    assert SEG_MODELS.get('QKVMultiheadAttention') is QKVMultiheadAttention
    layer = MODELS.build(dict(type='QKVMultiheadAttention', embed_dims=16,
                              qkv_mode='shared_qk'))
    assert layer.embed_dims == 16 and layer.qkv_mode == 'shared_qk'
    name, plugin = build_plugin_layer(
        dict(type='QKVMultiheadAttention', num_heads=2), postfix='_1',
        in_channels=16)
    assert name == 'qkv_mha_1' and isinstance(plugin, QKVMultiheadAttention)
    assert plugin.embed_dims == 16 and plugin.num_heads == 2
    assert plugin(torch.randn(1, 16, 3, 3)).shape == (1, 16, 3, 3)


@pytest.mark.parametrize('options,message', [
    (dict(), 'needs embed_dims (or its alias in_channels), but got neither'),
    (dict(embed_dims=8, in_channels=16),
     'embed_dims=8 and in_channels=16 name the same channels'),
])
def test_channels_are_given_once(options, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        QKVMultiheadAttention(**options)
    assert QKVMultiheadAttention(8, in_channels=8).embed_dims == 8


@pytest.mark.parametrize('mode,similarity', [
    (m, s) for m, s in itertools.product(QKV_MODES, SIMILARITIES)])
def test_fast_path_equals_explicit_path_with_class_tokens(mode, similarity):
    """ViT's layout: one class token before a 3×4 grid (no hw_shape)."""
    layer = token_layer(mode, similarity=similarity, mask_self=True).double()
    layer.token_grid = (3, 4)
    x = torch.randn(2, 13, C, dtype=torch.double)
    fast, _ = layer.forward_with_weights(x, need_weights=False)
    explicit, weights = layer.forward_with_weights(x, need_weights=True)
    assert (fast - explicit).abs().max() < 1e-10
    assert weights.shape == (2, HEADS, 3, 4, 13)


@pytest.mark.parametrize('mode', ['identity_qk', 'identity'])
def test_wide_heads_with_reduced_keys_take_the_cpu_function(mode):
    """Heads wider than 128 on CPU run DenseAttentionFunction; with
    reduced keys (SegFormer) it returns one row per query, not per key."""
    wide = kernels.CPU_FUSED_MAX_HEAD_DIM + 16
    layer = QKVMultiheadAttention(wide, qkv_mode=mode, sr_ratio=2).double()
    x = torch.randn(2, wide, 7, 9, dtype=torch.double)
    with kernels.paths_taken() as taken:
        fast, _ = layer.forward_with_weights(x, need_weights=False)
    explicit, weights = layer.forward_with_weights(x, need_weights=True)
    assert taken == ['DenseAttentionFunction']
    assert weights.shape == (2, 1, 7, 9, 3 * 4)  # keys: 7×9 // 2
    assert (fast - explicit).abs().max() < 1e-10


def test_mask_memory_benchmark_measures_a_small_case():
    from qkv_plugins.bench.mask_memory import _case, _parser, measure_here
    from qkv_plugins.bench.memory import cpu_memory_supported
    if not cpu_memory_supported():
        pytest.skip('no /proc/self/clear_refs: CPU peak memory unreadable')
    args = _parser().parse_args(['--size', '6', '6', '--channels', '8'])
    case = _case(args, mask_self=True)
    assert (case.layer, case.mask_self, case.positions) == ('mha', True, 36)
    assert measure_here(case, torch.device('cpu')) >= 0


def test_mask_memory_benchmark_writes_its_rows(tmp_path, capsys):
    from qkv_plugins.bench import mask_memory
    from qkv_plugins.bench.memory import cpu_memory_supported
    if not cpu_memory_supported():
        pytest.skip('no /proc/self/clear_refs: CPU peak memory unreadable')
    out = tmp_path / 'mask-memory.md'
    mask_memory.main(['--size', '6', '6', '--channels', '8', '--out',
                      str(out)])
    text = out.read_text()
    assert '--size 6 6 --channels 8 --out' in text and 'at commit ' in text
    rows = [line for line in text.splitlines() if line.startswith('| mha')]
    assert [row.split(' | ')[5] for row in rows] == ['False', 'True']
