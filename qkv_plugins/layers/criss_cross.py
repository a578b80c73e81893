"""Criss-cross attention with a switch for how Q, K and V are made.

Huang et al., "CCNet: Criss-Cross Attention for Semantic Segmentation",
ICCV 2019, https://arxiv.org/abs/1811.11721. In ``qkv_mode='separate'`` with
``recurrence=1`` this is mmcv's ``CrissCrossAttention``; in
``query_independent`` a key's logit is the same for every query that sees it
(GCNet's logits, https://arxiv.org/abs/1904.11492, over row and column).
"""
from typing import List, Mapping, Optional, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import build_conv_layer
from mmengine.registry import MODELS
from torch import Tensor

from .catalog import (KeyMap, LayerEntry, StockHead, StockTwin,
                      register_layer, register_twin)
from .kernels import criss_cross_attention
from .maps import query_subset
from .options import (check_bool, check_choice, check_input, check_positive_int,
                      check_similarity, reduced_channels, QKV_MODES)
from .projection import QKVProjection
from .recording import RecordsAttention
from .similarity import Similarity


@MODELS.register_module()
class QKVCrissCrossAttention(RecordsAttention, nn.Module):
    """Criss-cross attention: ``x + gamma · attn(x)`` over each position's row
    and column, applied ``recurrence`` times with shared weights.

    Args:
        in_channels: Channels of the input (and output).
        qkv_mode: As :class:`QKVNonLocal2d`; V keeps ``in_channels`` except in
            ``'shared'``, where a 1×1 output conv restores them
            (``'query_independent'``: a key conv to one channel, Q a
            constant 1, V as ``'separate'``).
        similarity: ``'dot'`` or ``'cosine'`` (learnt logit scale; refused
            by ``'query_independent'``, whose one channel it cannot act on).
        mask_self: Exclude each position's own key.
        reduction: Q/K channels are ``in_channels // reduction``.
        use_scale: Scale dot logits by 1/√(Q/K channels) (mmcv: no).
        recurrence: Applications with shared weights (CCNet uses 2).
        conv_cfg: mmcv conv config for all 1×1 convs.
    """

    _abbr_ = 'qkv_cca'

    def __init__(self,
                 in_channels: int,
                 *,
                 qkv_mode: str = 'separate',
                 similarity: str = 'dot',
                 mask_self: bool = False,
                 reduction: int = 8,
                 use_scale: bool = False,
                 recurrence: int = 1,
                 conv_cfg: Optional[dict] = None) -> None:
        super().__init__()
        self.in_channels = check_positive_int('in_channels', in_channels)
        self.recurrence = check_positive_int('recurrence', recurrence)
        check_choice('qkv_mode', qkv_mode, tuple(QKV_MODES))
        check_similarity(similarity, qkv_mode)
        self.mask_self = check_bool('mask_self', mask_self)
        reduced = reduced_channels(in_channels, reduction)  # checked always
        qk_channels = in_channels if qkv_mode == 'identity' else reduced
        self.proj = QKVProjection(in_channels, qk_channels, in_channels,
                                  qkv_mode, conv_cfg)
        self.similarity = Similarity(similarity, use_scale,
                                     self.proj.qk_channels)
        v_channels = self.proj.v_channels
        self.out = (None if v_channels == in_channels else build_conv_layer(
            conv_cfg, v_channels, in_channels, 1))
        # The one zero factor: the block starts as identity.
        self.gamma = nn.Parameter(torch.tensor(0.0))

    def forward_with_weights(
            self,
            x: Tensor,
            need_weights: bool = True) -> Tuple[Tensor, Optional[List[Tensor]]]:
        """Return ``(output, weights)``; weights is a list with one
        [B, H, W, H + W] tensor per hop when ``need_weights``, else None."""
        check_input(x, self.in_channels, type(self).__name__)
        hops = [] if need_weights else None
        for _ in range(self.recurrence):
            q, k, v = self.proj(x)
            q, k, scale = self.similarity(q, k, dim=1)
            y, weights = criss_cross_attention(q, k, v, scale, self.mask_self,
                                               need_weights)
            if self.out is not None:
                y = self.out(y)
            x = self.gamma * y + x
            if hops is not None:
                hops.append(weights)
        return x, hops

    def extra_repr(self) -> str:
        return (f'in_channels={self.in_channels}, '
                f'recurrence={self.recurrence}, mask_self={self.mask_self}')


def criss_cross_maps(weights: Tensor, max_queries: int
                     ) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """(maps [B, Q, H + W - 1], own [Q], dense square [B, Q, Q] among the
    sampled queries or None when H·W > max_queries)."""
    batch, height, width, _ = weights.shape
    n = height * width
    rows = torch.arange(height, device=weights.device)
    # key indices per query (h, w): column keys i != h, then all row keys
    col = rows[None, :].expand(height, height)
    col = col[~torch.eye(height, dtype=torch.bool, device=weights.device)]
    col = col.view(height, height - 1)  # [H, H - 1]
    row = height + torch.arange(width, device=weights.device)  # [W]
    index = torch.cat([
        col[:, None, :].expand(height, width, height - 1),
        row[None, None, :].expand(height, width, width)
    ], dim=-1)  # [H, W, H + W - 1]
    maps = weights.gather(-1, index.expand(batch, -1, -1, -1))
    maps = maps.view(batch, n, height + width - 1)
    own = (height - 1 + torch.arange(width, device=weights.device)).repeat(
        height)  # [N]: own position is row key w
    queries = query_subset(n, max_queries, weights.device)
    square = None
    if n <= max_queries:
        square = dense_cross(weights)
    return maps[:, queries], own[queries], square


def dense_cross(weights: Tensor) -> Tensor:
    """The N × N matrix of criss-cross weights (zeros off the cross)."""
    batch, height, width, _ = weights.shape
    dense = weights.new_zeros(batch, height, width, height, width)
    h = torch.arange(height, device=weights.device)
    w = torch.arange(width, device=weights.device)
    # column keys (i, w) for query (h, w)
    dense[:, h[:, None, None], w[None, :, None], h[None, None, :],
          w[None, :, None]] = weights[..., :height]
    # row keys (h, j) for query (h, w); the own position lands here
    dense[:, h[:, None, None], w[None, :, None], h[:, None, None],
          w[None, None, :]] += weights[..., height:]
    return dense.view(batch, height * width, height * width)


def _grid(weights: Tensor, image: Tuple[int, int]) -> Tuple[int, int]:
    return tuple(weights.shape[1:3])


def _attention_macs(layer: QKVCrissCrossAttention, batch: int, height: int,
                    width: int) -> int:
    """Scores and weighted sums over each position's H + W keys, per hop."""
    keys = height + width
    return (batch * height * width * keys * layer.recurrence *
            (layer.proj.qk_channels + layer.proj.v_channels))


register_layer(
    LayerEntry(
        name='ccnet',
        cls=QKVCrissCrossAttention,
        maps=criss_cross_maps,
        dense=lambda weights: dense_cross(weights.float()),
        grid=_grid,
        attention_macs=_attention_macs,
        hops=lambda layer: layer.recurrence,
        per_hop=True,
        bench_options=dict(recurrence=2),
        deploy_variants=(dict(recurrence=1), dict(recurrence=2))))


def _mmcv_criss_cross(stock: type, channels: int, options: dict) -> nn.Module:
    """mmcv's CCA applied as often as the case's recurrence (the reference
    of every mode: mmcv has one)."""
    block = stock(channels)
    return nn.Sequential(*[block] * options.get('recurrence', 1))


# mmcv key prefix -> our key prefix
CRISS_CROSS_KEYS: KeyMap = (
    ('query_conv.', 'proj.query.'),
    ('key_conv.', 'proj.key.'),
    ('value_conv.', 'proj.value.'),
    ('gamma.scale', 'gamma'),
)


def _from_mmcv(module: nn.Module) -> QKVCrissCrossAttention:
    from .convert import load_converted
    return load_converted(QKVCrissCrossAttention(module.in_channels), module,
                          CRISS_CROSS_KEYS)


def _options_from_state(state: Mapping[str, Tensor]) -> dict:
    """CCHead's block from its weights (``recurrence`` is not stored: the
    config keeps CCHead's)."""
    weight = state['query_conv.weight']
    return dict(qkv_mode='separate',
                reduction=weight.shape[1] // weight.shape[0])


_CITYSCAPES = '_r50-d8_4xb2-40k_cityscapes-512x1024.py'
register_twin(
    StockTwin(layer='ccnet', qualname='mmcv.ops.cc_attention.CrissCrossAttention',
              label='mmcv CCA', convert=_from_mmcv, build=_mmcv_criss_cross,
              keys=CRISS_CROSS_KEYS,
              head=StockHead(
                  label='CCHead', prefix='decode_head.cca.',
                  config=f'mmseg::ccnet/ccnet{_CITYSCAPES}',
                  ours=f'qkv_cityscapes/qkv-ccnet-separate{_CITYSCAPES}'),
              options=_options_from_state))
