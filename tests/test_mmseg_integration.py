"""Stock mmseg configs with our head or backbone plugins build and run."""
import pytest
import torch

from qkv_plugins import QKVCrissCrossAttention, QKVNonLocal2d
from qkv_plugins.layers import QKVMultiheadAttention

from .helpers import CONFIGS, build_segmentor, seg_logits

EXAMPLES = CONFIGS / 'qkv_attention'


def test_head_swap_in_stock_config():
    model = build_segmentor(
        EXAMPLES / 'qkv-nonlocal-shared_r50-d8_4xb2-40k_cityscapes-512x1024.py')
    layer = model.decode_head.attention
    assert isinstance(layer, QKVNonLocal2d)
    assert layer.proj.qkv_mode == 'shared'
    # The head fills in the stock config's norm for the output conv.
    assert layer.out.with_norm
    assert seg_logits(model).shape == (1, 19, 8, 8)


def test_backbone_plugins_in_stock_config():
    model = build_segmentor(
        EXAMPLES / 'fcn-qkvnl-stage4_r50-d8_4xb2-40k_cityscapes-512x1024.py')
    blocks = list(model.backbone.layer4)
    assert all(isinstance(b.qkv_nonlocal, QKVNonLocal2d) for b in blocks)
    assert not hasattr(model.backbone.layer3[0], 'qkv_nonlocal')
    assert seg_logits(model).shape == (1, 19, 8, 8)


@pytest.mark.parametrize('attention', [
    dict(type='QKVCrissCrossAttention', qkv_mode='shared_qk', recurrence=2),
    dict(type='QKVNonLocal2d', qkv_mode='identity', num_heads=2,
         norm_cfg=None),
])
def test_attention_head_hosts_any_layer(attention):
    from mmseg.registry import MODELS
    head = MODELS.build(
        dict(type='AttentionHead', attention=attention, in_channels=32,
             channels=16, num_classes=3, norm_cfg=dict(type='BN')))
    assert head.attention.in_channels == 16
    if attention['type'] == 'QKVCrissCrossAttention':
        assert isinstance(head.attention, QKVCrissCrossAttention)
        assert head.attention.recurrence == 2
    else:
        assert not head.attention.out.with_norm  # explicit None wins
    assert head([torch.randn(2, 32, 6, 6)]).shape == (2, 3, 6, 6)


@pytest.mark.parametrize('attention,message', [
    (dict(type='NoSuchLayer'), "'NoSuchLayer' is not registered"),
    ('QKVNonLocal2d', 'needs attention=dict'),
])
def test_attention_head_rejects_bad_attention(attention, message):
    from qkv_plugins.mmseg import AttentionHead
    with pytest.raises((KeyError, ValueError), match=message):
        AttentionHead(attention=attention, in_channels=8, channels=8,
                      num_classes=2)


def _readme_configs():
    from .helpers import REPO
    text = (REPO / 'README.md').read_text()
    blocks = text.split('```python\n')[1:]
    return [b.split('```')[0] for b in blocks if "_base_ = ['mmseg::" in b]


# per README snippet: (layer type, logits of a 64 x 64 image)
SNIPPET_EXPECTED = ((QKVNonLocal2d, (1, 19, 8, 8)),
                    (QKVNonLocal2d, (1, 19, 8, 8)),
                    (QKVMultiheadAttention, (1, 150, 16, 16)))


@pytest.mark.parametrize('index', range(len(SNIPPET_EXPECTED)))
def test_readme_config_snippets_build_and_run(index, tmp_path):
    snippets = _readme_configs()
    assert len(snippets) == len(SNIPPET_EXPECTED)
    path = tmp_path / 'snippet.py'
    path.write_text(snippets[index])
    model = build_segmentor(path)
    layer_type, shape = SNIPPET_EXPECTED[index]
    layers = [m for m in model.modules() if isinstance(m, layer_type)]
    assert layers
    assert seg_logits(model).shape == shape
