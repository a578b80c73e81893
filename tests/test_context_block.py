"""GCNet two ways: ``qkv_mode='query_independent'`` in the switch layers, and
``QKVContextBlock``, mmcv's ``ContextBlock`` (float64, copied weights)."""
from pathlib import Path

import pytest
import torch
from mmcv.cnn import ContextBlock, build_plugin_layer
from mmengine.config import Config
from mmengine.registry import MODELS

from qkv_plugins import record_attention
from qkv_plugins.layers.catalog import count_parameters, describe
from qkv_plugins.layers.context_block import (CONTEXT_BLOCK_KEYS,
                                              QKVContextBlock,
                                              context_block_from_mmcv,
                                              ratio_for)
from qkv_plugins.mmseg import convert_head_state_dict

from .conftest import LAYERS, build_layer
from .helpers import CONFIGS, build_segmentor, seg_logits
from .test_convert_checkpoint import HEAD, TINY, _randomise
from .test_layers import _output_and_grads
from .test_mmcv_equivalence import (SIZES, assert_same_function,
                                    assert_same_parameter_grads)

QI = 'query_independent'
layer_kinds = pytest.mark.parametrize('kind', sorted(LAYERS))
mask_selfs = pytest.mark.parametrize('mask_self', [False, True])
FUSIONS = [('channel_add', ), ('channel_mul', ),
           ('channel_add', 'channel_mul')]


# --- (a) qkv_mode='query_independent' --------------------------------------

@mask_selfs
@pytest.mark.parametrize('num_heads', [1, 2])
def test_non_local_query_independent_weights_are_softmax_of_key(
        mask_self, num_heads):
    layer = build_layer('nonlocal', qkv_mode=QI, mask_self=mask_self,
                        num_heads=num_heads)
    x = torch.randn(2, 16, 3, 5)
    _, weights = layer.forward_with_weights(x)  # [B, heads, N, N]
    n = 15
    assert weights.shape == (2, num_heads, n, n)
    key = layer.proj.key(x).flatten(2)  # [B, heads, N]: one channel a head
    logits = key[:, :, None, :].expand(-1, -1, n, -1)
    if mask_self:
        logits = logits.masked_fill(torch.eye(n, dtype=torch.bool), -torch.inf)
    torch.testing.assert_close(weights, logits.softmax(-1))
    if not mask_self:  # every query has the same weights
        torch.testing.assert_close(weights,
                                   weights[:, :, :1].expand_as(weights))


def _same_logits_on_shared_keys(log_a, log_b):
    """Two queries' log-weights over the keys both see differ by a constant
    (their normalisers): each shared key has one logit for both."""
    for a, b in zip(log_a, log_b):  # per image: [keys]
        diff = (a - b)[a.isfinite() & b.isfinite()]
        assert diff.numel() >= 2
        torch.testing.assert_close(diff, diff[:1].expand_as(diff))


@mask_selfs
def test_criss_cross_query_independent_logit_is_the_key(mask_self):
    layer = build_layer('ccnet', qkv_mode=QI, mask_self=mask_self)
    x = torch.randn(2, 16, 4, 5)
    _, (weights, ) = layer.forward_with_weights(x)  # [B, H, W, H + W]
    batch, height, width = 2, 4, 5
    key = layer.proj.key(x)[:, 0]  # [B, H, W]
    # query (h, w): column key (i, w) -> key[i, w]; row key (h, j) -> key[h, j]
    col = key.transpose(1, 2)[:, None].expand(batch, height, width, height)
    col = col.masked_fill(torch.eye(height, dtype=torch.bool)[:, None],
                          -torch.inf)
    row = key[:, :, None, :].expand(batch, height, width, width)
    if mask_self:
        row = row.masked_fill(torch.eye(width, dtype=torch.bool), -torch.inf)
    torch.testing.assert_close(weights,
                               torch.cat([col, row], -1).softmax(-1))
    log = weights.log()
    for h in range(height):  # queries of one row share its keys
        _same_logits_on_shared_keys(log[:, h, 0, height:],
                                    log[:, h, -1, height:])
    for w in range(width):  # queries of one column share its keys
        _same_logits_on_shared_keys(log[:, 0, w, :height],
                                    log[:, -1, w, :height])


@pytest.mark.parametrize('kind,path', [('nonlocal', 'fused'),
                                       ('nonlocal', 'function'),
                                       ('ccnet', 'function')])
@mask_selfs
@pytest.mark.parametrize('dtype,size', [
    (torch.float64, (4, 6)), (torch.float64, (1, 5)), (torch.float64, (5, 1)),
    (torch.float64, (1, 1)), (torch.float32, (4, 6)), (torch.float32, (1, 5))
], ids=str)
def test_query_independent_fast_path_equals_explicit(monkeypatch, kind, path,
                                                     mask_self, dtype, size):
    """Outputs and gradients of the input and every parameter."""
    if path == 'function':
        monkeypatch.setattr('qkv_plugins.layers.kernels.CPU_FUSED_MAX_HEAD_DIM',
                            0)
    extra = {'recurrence': 2} if kind == 'ccnet' else {'num_heads': 2}
    layer = build_layer(kind, qkv_mode=QI, mask_self=mask_self,
                        **extra).to(dtype)
    x = torch.randn(2, 16, *size, dtype=dtype, requires_grad=True)
    fast, fast_grads = _output_and_grads(layer, x, explicit=False)
    ref, ref_grads = _output_and_grads(layer, x, explicit=True)
    tol = {} if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast, ref, **tol)
    for a, b in zip(fast_grads, ref_grads):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, **tol)


@layer_kinds
@mask_selfs
@pytest.mark.parametrize('shape', [(2, 1, 1), (2, 1, 6), (2, 6, 1),
                                   (0, 4, 5)])
@pytest.mark.parametrize('explicit', [False, True])
def test_query_independent_degenerate_maps_have_finite_grads(
        kind, mask_self, shape, explicit):
    layer = build_layer(kind, qkv_mode=QI, mask_self=mask_self)
    x = torch.randn(shape[0], 16, *shape[1:], requires_grad=True)
    out, grads = _output_and_grads(layer, x, explicit)
    assert out.shape == x.shape and out.isfinite().all()
    assert all(g is not None and g.isfinite().all() for g in grads)


@pytest.mark.parametrize('kind,num_heads', [('nonlocal', 1),
                                            ('nonlocal', 2),
                                            ('ccnet', 1)])
def test_query_independent_parameters(kind, num_heads):
    """separate's count without its query conv, the key conv to one channel
    per head."""
    heads = {'num_heads': num_heads} if kind == 'nonlocal' else {}
    c = 32
    separate = LAYERS[kind](c, **heads)
    ours = LAYERS[kind](c, qkv_mode=QI, **heads)
    assert not hasattr(ours.proj, 'query')
    assert ours.proj.key.out_channels == num_heads
    expected = (count_parameters(separate) -
                count_parameters(separate.proj.query) -
                count_parameters(separate.proj.key) + (c * num_heads +
                                                       num_heads))
    assert count_parameters(ours) == expected


@layer_kinds
def test_query_independent_differs_from_separate_in_logits_only(kind):
    separate = build_layer(kind)
    ours = build_layer(kind, qkv_mode=QI)
    theirs = {k: v for k, v in separate.state_dict().items()
              if not k.startswith('proj.query.')}
    mine = ours.state_dict()
    assert sorted(mine) == sorted(theirs)
    assert {k for k in mine if mine[k].shape != theirs[k].shape} == {
        'proj.key.weight', 'proj.key.bias'}
    # Zero Q/K convs make both uniform: then nothing else may differ.
    ours.load_state_dict({k: v for k, v in theirs.items()
                          if not k.startswith('proj.key.')}, strict=False)
    with torch.no_grad():
        for layer in (separate, ours):
            for name in ('query', 'key'):
                if hasattr(layer.proj, name):
                    getattr(layer.proj, name).weight.zero_()
    x = torch.randn(2, 16, 3, 4)
    torch.testing.assert_close(ours(x), separate(x))
    assert not torch.allclose(ours(x), x)


@layer_kinds
def test_query_independent_options(kind):
    with pytest.raises(ValueError) as info:
        LAYERS[kind](16, qkv_mode=QI, similarity='cosine')
    assert ("similarity='cosine' has nothing to act on with "
            "qkv_mode='query_independent'") in str(info.value)
    with pytest.raises(ValueError, match='reduction=32 leaves 16 // 32 = 0'):
        LAYERS[kind](16, qkv_mode=QI, reduction=32)
    with pytest.raises(ValueError, match='reduction must be a positive int'):
        LAYERS[kind](16, qkv_mode=QI, reduction=0)
    assert LAYERS[kind](16, qkv_mode=QI, use_scale=True).similarity.scale == 1


def test_catalog_lists_query_independent():
    assert QI in describe(16)


# --- (b) QKVContextBlock -----------------------------------------------------

def _randomise_mmcv(module):
    """mmcv zero-inits the transforms' last conv: make the block visible."""
    with torch.no_grad():
        for transform in (module.channel_add_conv, module.channel_mul_conv):
            if transform is not None:
                for p in transform.parameters():
                    p.normal_(0, 0.5)


@pytest.mark.parametrize('size', SIZES)
@pytest.mark.parametrize('fusion_types', FUSIONS)
def test_context_block_matches_mmcv(size, fusion_types):
    torch.manual_seed(4)
    reference = ContextBlock(16, 1 / 4, fusion_types=fusion_types).double()
    _randomise_mmcv(reference)
    ours = context_block_from_mmcv(reference)
    assert ours.fusion_types == fusion_types and ours.training
    x = torch.randn(2, 16, *size, dtype=torch.float64)
    assert_same_function(reference, ours, x)
    assert_same_parameter_grads(reference, ours, CONTEXT_BLOCK_KEYS)


def test_context_block_records_a_query_independent_map():
    layer = QKVContextBlock(16)
    with torch.no_grad():
        layer.channel_add.expand.weight.normal_()
    model = torch.nn.Sequential(layer)
    x = torch.randn(2, 16, 3, 5)
    expected = model(x)
    with record_attention(model) as maps:
        out = model(x)
    torch.testing.assert_close(out, expected)
    (weights, ) = maps['0']
    assert weights.shape == (2, 1, 15, 15)
    assert weights.stride(-2) == 0, 'expected a view, not an N x N copy'
    key = layer.key(x).flatten(2)[:, :, None]  # [B, 1, 1, N]
    torch.testing.assert_close(weights, key.softmax(-1).expand_as(weights))
    explicit, again = layer.forward_with_weights(x, need_weights=True)
    torch.testing.assert_close(explicit, expected)
    torch.testing.assert_close(again, weights)
    assert layer.forward_with_weights(x, need_weights=False)[1] is None


@pytest.mark.parametrize('fusion_types,identity', [(('channel_add', ), True),
                                                   (('channel_mul', ), False)])
def test_context_block_init_as_mmcv(fusion_types, identity):
    layer = QKVContextBlock(16, fusion_types=list(fusion_types))
    assert layer.fusion_types == fusion_types
    x = torch.randn(1, 16, 4, 5)
    out = layer(x)
    torch.testing.assert_close(out, x if identity else x / 2)
    out.square().sum().backward()
    transform = layer.channel_add or layer.channel_mul
    assert transform.expand.weight.grad.abs().sum() > 0


@pytest.mark.parametrize('shape', [(2, 1, 1), (2, 1, 6), (2, 6, 1),
                                   (0, 4, 5)])
def test_context_block_degenerate_maps_have_finite_grads(shape):
    layer = QKVContextBlock(16, fusion_types=('channel_add', 'channel_mul'))
    with torch.no_grad():
        for transform in (layer.channel_add, layer.channel_mul):
            transform.expand.weight.normal_(0, 0.5)
    x = torch.randn(shape[0], 16, *shape[1:], requires_grad=True)
    out, grads = _output_and_grads(layer, x, explicit=False)
    assert out.shape == x.shape and out.isfinite().all()
    assert all(g is not None and g.isfinite().all() for g in grads)


@pytest.mark.parametrize('options,message', [
    (dict(qkv_mode='separate'), "supports qkv_mode='query_independent' only, "
     "but got qkv_mode='separate': it pools one context for all queries"),
    (dict(qkv_mode='identity'), "but got qkv_mode='identity'"),
    (dict(qkv_mode='shard'), 'qkv_mode must be one of'),
    (dict(similarity='cosine'), "similarity='cosine' has nothing to act on"),
    (dict(similarity='l2'), "similarity must be one of 'dot', 'cosine'"),
    (dict(mask_self=True), 'supports mask_self=False only: excluding each '
     "position's own key would give every position its own context"),
    (dict(mask_self='False'), 'mask_self must be True or False'),
    (dict(pooling_type='avg'), "pooling_type must be one of ('att',), but "
     "got 'avg': average pooling has no attention"),
    (dict(fusion_types=()), 'fusion_types must be a non-empty tuple'),
    (dict(fusion_types='channel_add'), 'fusion_types must be a non-empty'),
    (dict(fusion_types=('channels_add', )), 'fusion_types entry must be one '
     "of 'channel_mul', 'channel_add', but got 'channels_add'"),
    (dict(fusion_types=('channel_add', 'channel_add')), 'lists a type twice'),
    (dict(ratio=0), 'ratio must be a positive number, but got 0'),
    (dict(ratio=True), 'ratio must be a positive number, but got True'),
    (dict(ratio=float('nan')), 'ratio must be a positive number'),
    (dict(ratio=1 / 32), 'leaves int(16 * 0.03125) = 0 bottleneck channels'),
])
def test_context_block_bad_option(options, message):
    with pytest.raises(ValueError) as info:
        QKVContextBlock(16, **options)
    assert message in str(info.value)


def test_context_block_refuses_misspelled_option_and_bad_input():
    with pytest.raises(TypeError, match='reduction'):
        QKVContextBlock(16, reduction=2)
    with pytest.raises(ValueError, match='in_channels must be a positive int'):
        QKVContextBlock(0)
    with pytest.raises(ValueError, match='input has 12 channels'):
        QKVContextBlock(16)(torch.randn(1, 12, 3, 3))


def test_context_block_from_mmcv_refuses_what_it_cannot_convert():
    with pytest.raises(ValueError, match="pooling_type='avg'"):
        context_block_from_mmcv(ContextBlock(16, 1 / 4, pooling_type='avg'))
    with pytest.raises(TypeError, match='not Conv2d'):
        context_block_from_mmcv(torch.nn.Conv2d(3, 3, 1))


def test_context_block_is_registered_as_a_plugin():
    name, layer = build_plugin_layer(dict(type='QKVContextBlock', ratio=1 / 8),
                                     postfix='_1', in_channels=16)
    assert name == 'qkv_gc_1' and isinstance(layer, QKVContextBlock)
    assert MODELS.get('QKVContextBlock') is QKVContextBlock


def test_ratio_for_round_trips():
    for channels in range(1, 130):
        for planes in range(1, 2 * channels):
            assert int(channels * ratio_for(channels, planes)) == planes


@pytest.mark.parametrize('fusion_types', [('channel_add', ),
                                          ('channel_add', 'channel_mul')])
def test_gchead_checkpoint_converts_with_same_logits(fusion_types):
    """GCHead = AttentionHead(attention=dict(type='QKVContextBlock'))."""
    stock = build_segmentor(
        Config.fromfile(TINY),
        decode_head=dict(type='GCHead', ratio=1 / 4, pooling_type='att',
                         fusion_types=fusion_types, **HEAD))
    _randomise(stock)
    state, attention = convert_head_state_dict(stock.state_dict())
    expected_attention = dict(type='QKVContextBlock', ratio=0.25)
    if fusion_types != ('channel_add', ):
        expected_attention['fusion_types'] = fusion_types
    assert attention == expected_attention
    ours = build_segmentor(
        Config.fromfile(TINY),
        decode_head=dict(type='AttentionHead', attention=attention, **HEAD))
    ours.load_state_dict(state, strict=True)
    expected, got = seg_logits(stock), seg_logits(ours)
    scale = expected.abs().max()
    assert (expected - got).abs().max() <= 1e-5 * scale, scale


def test_gchead_with_average_pooling_is_refused():
    stock = build_segmentor(
        Config.fromfile(TINY),
        decode_head=dict(type='GCHead', pooling_type='avg', **HEAD))
    with pytest.raises(ValueError, match="pooling_type='avg'"):
        convert_head_state_dict(stock.state_dict())


# --- configs -----------------------------------------------------------------

@pytest.mark.parametrize('name', [
    'qkv_study/gcnet_tinyr18s2_1xb8-1500it_qkvsyn-cyclic-128x128',
    'qkv_study/gcnet_tinyr18s2_1xb8-1200it_qkvsyn-grouping-128x128',
    'qkv_study/nonlocal-query_independent_tinyr18s2_1xb8-1500it_qkvsyn-cyclic'
    '-128x128',
    'qkv_study/nonlocal-query_independent_tinyr18s2_1xb8-1200it_qkvsyn-'
    'grouping-128x128',
])
def test_study_configs_build(name):
    layer = build_segmentor(CONFIGS / f'{name}.py').decode_head.attention
    if 'gcnet' in name:
        assert isinstance(layer, QKVContextBlock) and layer.ratio == 0.25
    else:
        assert layer.proj.qkv_mode == QI


def _unscoped(value):
    """``value`` without the ``_scope_`` keys that inheriting across
    packages (``mmseg::``) adds."""
    if isinstance(value, dict):
        return {k: _unscoped(v) for k, v in value.items() if k != '_scope_'}
    if isinstance(value, (list, tuple)):
        return [_unscoped(v) for v in value]
    return value


@pytest.mark.parametrize('name,stock', [
    ('qkv_cityscapes/qkv-gcnet_r50-d8_4xb2-40k_cityscapes-512x1024',
     'gcnet/gcnet_r50-d8_4xb2-40k_cityscapes-512x1024'),
    ('qkv_ade20k/qkv-gcnet_r50-d8_4xb4-80k_ade20k-512x512',
     'gcnet/gcnet_r50-d8_4xb4-80k_ade20k-512x512'),
    ('qkv_cityscapes/qkv-nonlocal-query_independent_r50-d8_4xb2-40k_'
     'cityscapes-512x1024',
     'nonlocal_net/nonlocal_r50-d8_4xb2-40k_cityscapes-512x1024'),
    ('qkv_ade20k/qkv-nonlocal-query_independent_r50-d8_4xb4-80k_ade20k-'
     '512x512', 'nonlocal_net/nonlocal_r50-d8_4xb4-80k_ade20k-512x512'),
])
def test_stock_twin_configs_change_only_the_head(name, stock):
    ours = Config.fromfile(CONFIGS / f'{name}.py')
    import mmseg
    theirs = Config.fromfile(
        Path(mmseg.__file__).parent / '.mim' / 'configs' / f'{stock}.py')
    head, stock_head = ours.model.pop('decode_head'), theirs.model.pop(
        'decode_head')
    for key in ('model', 'train_dataloader', 'val_dataloader',
                'param_scheduler', 'train_cfg', 'optim_wrapper'):
        assert _unscoped(ours[key]) == _unscoped(theirs[key]), key
    assert head.type == 'AttentionHead'
    if 'gcnet' in name:
        assert head.attention == dict(type='QKVContextBlock', ratio=0.25)
        assert stock_head.ratio == 0.25
    else:
        assert head.attention == dict(type='QKVNonLocal2d', qkv_mode=QI)
    for key in ('in_channels', 'channels', 'num_classes', 'dropout_ratio',
                'in_index', 'align_corners'):
        assert head[key] == stock_head[key], key
