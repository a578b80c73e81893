"""NLHead/CCHead checkpoints convert to AttentionHead with equal logits."""
import pytest
import torch
from mmengine.config import Config

from .helpers import CONFIGS, build_segmentor, run_tool, seg_logits

TINY = CONFIGS / '_base_/models/tinyr18s2_attention.py'
HEAD = dict(in_channels=32, in_index=0, channels=64, num_classes=5,
            norm_cfg=dict(type='BN', requires_grad=True), align_corners=False)
STOCK = {
    'nl': (dict(type='NLHead', reduction=2, use_scale=True,
                mode='embedded_gaussian'),
           dict(type='QKVNonLocal2d')),
    'nl-gaussian': (dict(type='NLHead', reduction=2, use_scale=True,
                         mode='gaussian'),
                    dict(type='QKVNonLocal2d', qkv_mode='identity_qk',
                         use_scale=False)),
    'cc': (dict(type='CCHead', recurrence=2),
           dict(type='QKVCrissCrossAttention', recurrence=2)),
}


def _randomise(model):
    """Make every parameter and BN statistic non-trivial (zero-init gamma,
    conv_out would hide the attention)."""
    torch.manual_seed(3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn_like(p) * 0.2 + (1.0 if 'bn' in name else 0))
        for name, b in model.named_buffers():
            if 'running_var' in name:
                b.uniform_(0.5, 1.5)
            elif 'running_mean' in name:
                b.normal_(0, 0.1)


@pytest.mark.parametrize('kind', sorted(STOCK))
def test_converted_checkpoint_gives_same_logits(kind, tmp_path):
    stock_head, attention = STOCK[kind]
    cfg = Config.fromfile(TINY)
    stock = build_segmentor(cfg, decode_head=dict(stock_head, **HEAD))
    _randomise(stock)
    src, dst = tmp_path / 'stock.pth', tmp_path / 'converted.pth'
    torch.save(dict(meta=dict(iter=1), state_dict=stock.state_dict(),
                    optimizer={}), src)

    result = run_tool('tools/convert_mmseg_checkpoint.py', src, dst)
    assert "type='AttentionHead'" in result.stdout
    assert attention['type'] in result.stdout

    ours = build_segmentor(
        Config.fromfile(TINY),
        decode_head=dict(type='AttentionHead', attention=attention, **HEAD))
    checkpoint = torch.load(dst, weights_only=True)
    assert set(checkpoint) == {'meta', 'state_dict'}
    ours.load_state_dict(checkpoint['state_dict'], strict=True)
    expected, got = seg_logits(stock), seg_logits(ours)
    # fp32 through randomised weights: logits reach ~1e4, so compare relative
    # to their scale (a wrong conversion is off by O(1) of it)
    scale = expected.abs().max()
    assert (expected - got).abs().max() <= 1e-5 * scale, scale


def test_convert_rejects_checkpoint_without_attention_head(tmp_path):
    src = tmp_path / 'fcn.pth'
    torch.save(dict(state_dict={'decode_head.conv_seg.weight':
                                torch.zeros(1)}), src)
    result = run_tool('tools/convert_mmseg_checkpoint.py', src,
                      tmp_path / 'out.pth', check=False)
    assert result.returncode != 0
    assert 'NLHead' in result.stderr and 'CCHead' in result.stderr
    assert not (tmp_path / 'out.pth').exists()
