"""QKVMixVisionTransformer and QKVVisionTransformer against mmseg's stock
backbones (float64, reduced widths), the load hook of every mode, the token
attention's paths, recording and errors."""
import itertools
import re

import pytest
import torch
from mmseg.models.backbones import MixVisionTransformer, VisionTransformer

from qkv_plugins.layers import QKV_MODES, QKVMultiheadAttention, record_attention
from qkv_plugins.layers.catalog import entry_for, entry_named
from qkv_plugins.layers.multihead import from_stock
from qkv_plugins.layers.options import CONSTANT_QUERY_MODES
from qkv_plugins.mmseg import QKVMixVisionTransformer, QKVVisionTransformer

MIT = dict(embed_dims=8, num_stages=2, num_layers=[1, 2], num_heads=[1, 2],
           patch_sizes=[7, 3], strides=[4, 2], sr_ratios=[2, 1],
           out_indices=(0, 1))
VIT = dict(img_size=(32, 32), patch_size=8, embed_dims=16, num_layers=2,
           num_heads=2, mlp_ratio=2, out_indices=(0, 1))
BACKBONES = {
    'mit': (MixVisionTransformer, QKVMixVisionTransformer, MIT, (32, 40)),
    'vit': (VisionTransformer, QKVVisionTransformer, VIT, (32, 32)),
}
SIMILARITIES = ('dot', 'cosine')
# the modes of the one table that tokens refuse, and the error naming the rest
TOKEN_REFUSED = re.escape('qkv_mode must be one of ' + ', '.join(
    repr(m) for m in QKV_MODES if m not in CONSTANT_QUERY_MODES))


def _skip_refused(mode, build):
    """Check that ``build()`` refuses a constant-query ``mode`` by naming
    the allowed modes, then skip."""
    if mode in CONSTANT_QUERY_MODES:
        with pytest.raises(ValueError, match=TOKEN_REFUSED):
            build()
        pytest.skip(f'token attention refuses {mode!r} (error checked)')


def _pair(name, **options):
    """(stock backbone, ours with the stock weights) in eval mode."""
    stock_cls, our_cls, kwargs, _ = BACKBONES[name]
    _skip_refused(options.get('qkv_mode'),
                  lambda: our_cls(**kwargs, **options))
    torch.manual_seed(0)
    stock = stock_cls(**kwargs)
    stock.init_weights()
    ours = our_cls(**kwargs, **options)
    result = ours.load_state_dict(stock.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    stock.eval()
    ours.eval()
    return stock, ours


@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_separate_is_the_stock_backbone_in_float64(name):
    stock, ours = _pair(name)
    stock.double()
    ours.double()
    assert stock.state_dict().keys() == ours.state_dict().keys()
    size = BACKBONES[name][3]
    x = torch.randn(2, 3, *size, dtype=torch.double, requires_grad=True)
    outputs = []
    for model in (stock, ours):
        x.grad = None
        out = model(x)
        sum((o * torch.linspace(0, 1, o.numel(), dtype=o.dtype).view_as(o)
             ).sum() for o in out).backward()
        outputs.append(([o.detach() for o in out], x.grad.clone(),
                        {k: p.grad.clone()
                         for k, p in model.named_parameters()}))
    (a, ga, pa), (b, gb, pb) = outputs
    for p, q in zip(a, b):
        assert (p - q).abs().max() < 1e-6
    assert (ga - gb).abs().max() < 1e-6
    assert pa.keys() == pb.keys()
    for key in pa:
        assert (pa[key] - pb[key]).abs().max() < 1e-6, key


@pytest.mark.parametrize('name,mode,similarity', [
    (n, m, s) for n, m, s in itertools.product(sorted(BACKBONES), QKV_MODES,
                                               SIMILARITIES)
    if (m, s) != ('separate', 'dot')])
def test_every_mode_loads_stock_weights_and_uses_every_parameter(
        name, mode, similarity):
    stock, ours = _pair(name, qkv_mode=mode, similarity=similarity)
    ours.train()
    x = torch.randn(2, 3, *BACKBONES[name][3])
    sum(o.sum() for o in ours(x)).backward()
    unused = [k for k, p in ours.named_parameters() if p.grad is None]
    assert unused == []  # DDP would fail on them
    # the mode's projections hold the stock rows they are named after
    block = stock.layers[0][1][0] if name == 'mit' else stock.layers[0]
    ours_block = ours.layers[0][1][0] if name == 'mit' else ours.layers[0]
    packed = block.attn.attn.in_proj_weight
    rows = packed.shape[0] // 3
    for param, role in (('qk_proj_weight', 0), ('qkv_proj_weight', 0),
                        ('v_proj_weight', 2), ('in_proj_weight', None)):
        if hasattr(ours_block.attn.attn, param):
            got = getattr(ours_block.attn.attn, param)
            want = packed if role is None else packed[role * rows:(role + 1)
                                                      * rows]
            assert torch.equal(got, want), param


def test_a_mode_state_dict_loads_back_strictly():
    _, ours = _pair('mit', qkv_mode='shared_qk', similarity='cosine')
    again = QKVMixVisionTransformer(**MIT, qkv_mode='shared_qk',
                                    similarity='cosine')
    again.load_state_dict(ours.state_dict(), strict=True)
    for key, value in ours.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key


@pytest.mark.parametrize('mode,similarity,mask', [
    (m, s, k) for m, s, k in itertools.product(QKV_MODES, SIMILARITIES,
                                               (False, True))])
def test_fast_path_equals_explicit_path(mode, similarity, mask):
    options = dict(num_heads=2, qkv_mode=mode, similarity=similarity,
                   mask_self=mask)
    _skip_refused(mode, lambda: QKVMultiheadAttention(8, **options))
    torch.manual_seed(0)
    layer = QKVMultiheadAttention(8, **options).double()
    x = torch.randn(2, 8, 3, 5, dtype=torch.double)
    fast, _ = layer.forward_with_weights(x, need_weights=False)
    explicit, weights = layer.forward_with_weights(x, need_weights=True)
    assert (fast - explicit).abs().max() < 1e-10
    assert weights.shape == (2, 2, 3, 5, 15)
    own = weights.flatten(2, 3).diagonal(dim1=-2, dim2=-1)
    if mask:
        assert own.abs().max() == 0
    elif similarity == 'cosine' and mode != 'separate':
        # Q = K under cosine: every token's own key is its top key
        top = weights.flatten(2, 3).argmax(-1)
        assert torch.equal(top, torch.arange(15).expand_as(top))


def test_recording_goes_through_the_catalog():
    _, vit = _pair('vit')
    with record_attention(vit) as maps:
        vit(torch.randn(1, 3, 32, 32))
    weights = maps['layers.0.attn'][0]
    entry = entry_for(vit.layers[0].attn)
    assert entry is entry_named('mha')
    assert weights.shape == (1, 2, 4, 4, 17)  # 4x4 patches + class token
    sampled, own, square = entry.maps(weights, 1024)
    assert own.tolist() == list(range(1, 17)) and square.shape == (2, 16, 16)
    assert entry.dense(weights).shape == (1, 16, 16)
    _, mit = _pair('mit')
    with record_attention(mit) as maps:
        mit(torch.randn(1, 3, 32, 40))
    reduced = maps['layers.0.1.0.attn'][0]  # sr_ratio 2: 4x5 keys
    assert reduced.shape == (1, 1, 8, 10, 20)
    sampled, own, square = entry.maps(reduced, 1024)
    assert square is None and own[:4].tolist() == [0, 0, 1, 1]
    dense = entry.dense(reduced)
    assert torch.allclose(dense.sum(-1), torch.ones(1, 80))


@pytest.mark.parametrize('options,message', [
    (dict(num_heads=3), r'num_heads=3 must divide embed_dims=8 .*allowed: '
     r'\[1, 2, 4, 8\]'),
    (dict(qkv_mode='query_independent'), "qkv_mode must be one of 'separate'"),
    (dict(similarity='l2'), "similarity must be one of 'dot', 'cosine'"),
    (dict(mask_self=True, sr_ratio=2), 'mask_self=True needs sr_ratio=1'),
    (dict(mask_self='yes'), 'mask_self must be True or False'),
])
def test_bad_options_fail_at_build_time(options, message):
    with pytest.raises(ValueError, match=message):
        QKVMultiheadAttention(8, **options)


def test_backbone_refuses_mask_self_with_reduced_keys():
    with pytest.raises(ValueError, match='block 0: mask_self=True needs '
                       'sr_ratio=1, but got sr_ratio=2'):
        QKVMixVisionTransformer(**MIT, mask_self=True)
    QKVMixVisionTransformer(**dict(MIT, sr_ratios=[1, 1]), mask_self=True)


def test_from_stock_converts_mmcv_multihead_attention():
    from mmcv.cnn.bricks.transformer import MultiheadAttention
    stock = MultiheadAttention(8, 2, batch_first=True).double().eval()
    ours = from_stock(stock)
    x = torch.randn(2, 6, 8, dtype=torch.double)
    assert (stock(x) - ours(x)).abs().max() < 1e-12


def test_backbone_benchmark_writes_every_mode(tmp_path, monkeypatch):
    from qkv_plugins.bench import backbones
    monkeypatch.setattr(backbones, 'CASES', {'tiny': ('mit', dict(MIT),
                                                      (1, 32, 40))})
    backbones.main(['--warmup', '0', '--repeats', '1', '--out-dir',
                    str(tmp_path)])
    text = (tmp_path / 'backbones-cpu.md').read_text()
    for model in ['stock'] + [f'ours {m}'
                              for m in entry_named('mha').modes()]:
        assert f'| tiny (1, 32×40) | {model} |' in text
    assert len((tmp_path / 'backbones-cpu.csv').read_text().splitlines()) == 7


@pytest.mark.parametrize('mode', ['separate', 'shared_qk', 'identity'])
def test_stock_pretrained_init_cfg_loads_into_every_mode(tmp_path, mode):
    stock, _ = _pair('mit')
    checkpoint = tmp_path / 'mit.pth'
    torch.save(dict(state_dict=stock.state_dict()), checkpoint)
    ours = QKVMixVisionTransformer(
        **MIT, qkv_mode=mode,
        init_cfg=dict(type='Pretrained', checkpoint=str(checkpoint)))
    ours.init_weights()
    mine = ours.state_dict()
    for key, value in stock.state_dict().items():
        if 'in_proj' not in key:
            assert torch.equal(mine[key], value), key
    if mode == 'shared_qk':
        packed = stock.state_dict()['layers.0.1.0.attn.attn.in_proj_weight']
        assert torch.equal(mine['layers.0.1.0.attn.attn.qk_proj_weight'],
                           packed[:8])
