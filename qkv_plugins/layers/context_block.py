"""Global context block: one attention-pooled context added to every position.

Cao et al., "GCNet: Non-local Networks Meet Squeeze-Excitation Networks and
Beyond", ICCV Workshops 2019, https://arxiv.org/abs/1904.11492. With the
defaults this is mmcv's ``ContextBlock(pooling_type='att',
fusion_types=('channel_add',))``, the block of mmseg's ``GCHead``;
:func:`context_block_from_mmcv` converts one with its weights.

In the terms of the Q/K/V switch: the logits are those of
``qkv_mode='query_independent'`` (a key conv to one channel, Q a constant 1,
so the logit of key j is k_j for every query), the value is the input itself
(as in ``'identity'``), and GCNet's bottleneck (conv → LayerNorm → ReLU →
conv) takes the place of non-local's output conv. Since every query has the
same weights, the block pools one context with one query and broadcasts it.
"""
import math
from typing import Dict, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_conv_layer
from mmengine.registry import MODELS
from torch import Tensor

from .catalog import (KeyMap, LayerEntry, StockHead, StockTwin,
                      register_layer, register_twin)
from .convert import load_converted
from .maps import dense_grid, dense_macs, dense_maps, dense_matrix
from .options import (CONSTANT_QUERY_MODES, QKV_MODES, check_bool,
                      check_choice, check_input, check_positive_int,
                      check_similarity)
from .projection import zero_init_
from .recording import RecordsAttention

POOLING_TYPES = ('att', )
# fusion type -> how the transformed context acts on every position, applied
# in this order (as mmcv): x · sigmoid(mul(context)) + add(context)
FUSION_TYPES = ('channel_mul', 'channel_add')
QKV_MODE = CONSTANT_QUERY_MODES[0]  # 'query_independent', the only one here

# mmcv ContextBlock key prefix -> our key prefix
CONTEXT_BLOCK_KEYS: KeyMap = (
    ('conv_mask.', 'key.'),
    ('channel_add_conv.0.', 'channel_add.reduce.'),
    ('channel_add_conv.1.', 'channel_add.norm.'),
    ('channel_add_conv.3.', 'channel_add.expand.'),
    ('channel_mul_conv.0.', 'channel_mul.reduce.'),
    ('channel_mul_conv.1.', 'channel_mul.norm.'),
    ('channel_mul_conv.3.', 'channel_mul.expand.'),
)


def check_ratio(in_channels: int, ratio) -> int:
    """Bottleneck channels ``int(in_channels * ratio)`` (as mmcv), refusing
    a ratio that is no positive number or leaves none."""
    if (isinstance(ratio, bool) or not isinstance(ratio, (int, float))
            or not 0 < ratio < math.inf):
        raise ValueError(f'ratio must be a positive number, but got {ratio!r}')
    planes = int(in_channels * ratio)
    if planes < 1:
        raise ValueError(f'ratio={ratio!r} leaves int({in_channels} * '
                         f'{ratio!r}) = 0 bottleneck channels; use a ratio of '
                         f'at least 1/in_channels = {1 / in_channels:.4g}')
    return planes


def check_fusion_types(fusion_types) -> Tuple[str, ...]:
    """``fusion_types`` as a tuple if it is a non-empty list or tuple of
    distinct :data:`FUSION_TYPES`, else raise ValueError."""
    if not isinstance(fusion_types, (list, tuple)) or not fusion_types:
        raise ValueError('fusion_types must be a non-empty tuple of '
                         f'{FUSION_TYPES}, but got {fusion_types!r}')
    for fusion in fusion_types:
        check_choice('fusion_types entry', fusion, FUSION_TYPES)
    if len(set(fusion_types)) != len(fusion_types):
        raise ValueError(f'fusion_types lists a type twice: {fusion_types!r}')
    return tuple(fusion_types)


class ContextTransform(nn.Module):
    """GCNet's bottleneck on the pooled context: 1×1 conv → LayerNorm over
    [C', 1, 1] → ReLU → 1×1 conv. [B, C, 1, 1] -> [B, C, 1, 1]."""

    def __init__(self, channels: int, planes: int,
                 conv_cfg: Optional[dict] = None) -> None:
        super().__init__()
        self.reduce = build_conv_layer(conv_cfg, channels, planes, 1)
        self.norm = nn.LayerNorm([planes, 1, 1])
        self.expand = build_conv_layer(conv_cfg, planes, channels, 1)

    def forward(self, context: Tensor) -> Tensor:
        return self.expand(F.relu(self.norm(self.reduce(context))))


@MODELS.register_module()
class QKVContextBlock(RecordsAttention, nn.Module):
    """Global context block: ``x + add(Σ_j softmax_j(k_j) x_j)``, one context
    for all positions (``channel_mul``: ``x · σ(mul(context))`` first).

    The switch options a query-independent block has are accepted for a
    clear answer: each value with nothing to act on raises a ValueError.

    Args:
        in_channels: Channels of the input (and output).
        ratio: Bottleneck channels are ``int(in_channels * ratio)``.
        pooling_type: ``'att'`` only (mmcv's ``'avg'`` pools without
            attention: refused).
        fusion_types: Non-empty tuple of ``'channel_add'`` and/or
            ``'channel_mul'``.
        qkv_mode: ``'query_independent'`` only: one context serves every
            query, so there is no query to project.
        similarity: ``'dot'`` only (``'cosine'`` has one key channel to act
            on; as in the other layers' ``query_independent``).
        mask_self: ``False`` only: removing each position's own key would
            give every position its own context.
        conv_cfg: mmcv conv config for all 1×1 convs.

    Recorded weights (:func:`~qkv_plugins.record_attention`,
    :meth:`forward_with_weights`) are [B, 1, HW, HW] like a one-head
    non-local map, every query's row the same: an expanded view of the
    [B, 1, 1, HW] weights, no HW × HW memory.
    """

    _abbr_ = 'qkv_gc'

    def __init__(self,
                 in_channels: int,
                 *,
                 ratio: float = 1 / 4,
                 pooling_type: str = 'att',
                 fusion_types: Sequence[str] = ('channel_add', ),
                 qkv_mode: str = QKV_MODE,
                 similarity: str = 'dot',
                 mask_self: bool = False,
                 conv_cfg: Optional[dict] = None) -> None:
        super().__init__()
        self.in_channels = check_positive_int('in_channels', in_channels)
        self.ratio = ratio
        planes = check_ratio(in_channels, ratio)
        if pooling_type not in POOLING_TYPES:
            raise ValueError(
                f'pooling_type must be one of {POOLING_TYPES}, but got '
                f'{pooling_type!r}: average pooling has no attention to '
                'switch or record (use mmcv ContextBlock for it)')
        self.fusion_types = check_fusion_types(fusion_types)
        check_choice('qkv_mode', qkv_mode, tuple(QKV_MODES))
        if qkv_mode != QKV_MODE:
            raise ValueError(
                f'{type(self).__name__} supports qkv_mode={QKV_MODE!r} only, '
                f'but got qkv_mode={qkv_mode!r}: it pools one context for '
                'all queries, so there is no query to project; use '
                f'QKVNonLocal2d(qkv_mode={qkv_mode!r}) for per-query maps')
        check_similarity(similarity, qkv_mode)
        if check_bool('mask_self', mask_self):
            raise ValueError(
                f'{type(self).__name__} supports mask_self=False only: '
                'excluding each position\'s own key would give every position '
                'its own context; use QKVNonLocal2d(qkv_mode='
                f'{QKV_MODE!r}, mask_self=True) for that')
        # The key: one logit per position (mmcv's conv_mask).
        self.key = build_conv_layer(conv_cfg, in_channels, 1, 1)
        self.channel_add = (ContextTransform(in_channels, planes, conv_cfg)
                            if 'channel_add' in self.fusion_types else None)
        self.channel_mul = (ContextTransform(in_channels, planes, conv_cfg)
                            if 'channel_mul' in self.fusion_types else None)
        self.init_weights()

    def init_weights(self) -> None:
        """mmcv's init: Kaiming-normal key (fan in), each transform's last
        conv zero. With ``channel_add`` alone the block starts as identity;
        ``channel_mul`` starts at ``x · σ(0) = x / 2``, as in mmcv."""
        nn.init.kaiming_normal_(self.key.weight, mode='fan_in',
                                nonlinearity='relu')
        if self.key.bias is not None:
            nn.init.zeros_(self.key.bias)
        for transform in (self.channel_add, self.channel_mul):
            if transform is not None:
                zero_init_(transform.expand)

    def forward_with_weights(
            self,
            x: Tensor,
            need_weights: bool = True) -> Tuple[Tensor, Optional[Tensor]]:
        """Return ``(output, weights)``; weights are a [B, 1, HW, HW]
        expanded view (every row the same) when ``need_weights``, else None.
        One path: with one map for all queries the weights cost HW numbers,
        and pooling is one matrix-vector product per image."""
        check_input(x, self.in_channels, type(self).__name__)
        batch, channels, height, width = x.shape
        n = height * width
        # [B, 1, H, W] -> [B, 1, HW]: q · k_j = k_j, softmax over positions
        weights = self.key(x).reshape(batch, 1, n).softmax(dim=-1)
        # [B, C, HW] x [B, HW, 1] -> [B, C, 1, 1]: the value is the input
        context = torch.matmul(x.reshape(batch, channels, n),
                               weights.transpose(1, 2))
        context = context.reshape(batch, channels, 1, 1)
        out = x
        if self.channel_mul is not None:
            out = out * torch.sigmoid(self.channel_mul(context))
        if self.channel_add is not None:
            out = out + self.channel_add(context)
        if not need_weights:
            return out, None
        # [B, 1, HW] -> [B, 1, HW, HW], a view
        return out, weights[:, :, None].expand(batch, 1, n, n)

    def extra_repr(self) -> str:
        return (f'in_channels={self.in_channels}, ratio={self.ratio:g}, '
                f'fusion_types={self.fusion_types}')


def ratio_for(channels: int, planes: int) -> float:
    """A ratio with ``int(channels * ratio) == planes`` (``planes /
    channels`` unless rounding makes it fall short, as 1/49 · 49 does)."""
    ratio = planes / channels
    if int(channels * ratio) != planes:
        ratio = (planes + 0.5) / channels
    return ratio


def context_block_options(state: Mapping[str, Tensor]) -> Dict[str, object]:
    """Options of the :class:`QKVContextBlock` that fits the state dict of an
    mmcv ``ContextBlock`` (mmcv's keys, the block's own prefix removed)."""
    if 'conv_mask.weight' not in state:
        raise ValueError('cannot convert an mmcv ContextBlock without '
                         'conv_mask (pooling_type=\'avg\'): QKVContextBlock '
                         'pools with attention only')
    fusion_types = tuple(f for f in ('channel_add', 'channel_mul')
                         if f'{f}_conv.0.weight' in state)
    planes, channels = state[f'{fusion_types[0]}_conv.0.weight'].shape[:2]
    options = dict(ratio=ratio_for(channels, planes))
    if fusion_types != ('channel_add', ):
        options['fusion_types'] = fusion_types
    return options


def context_block_from_mmcv(module: nn.Module) -> QKVContextBlock:
    """A :class:`QKVContextBlock` with the weights of an mmcv ``ContextBlock``
    (``pooling_type='att'``, any fusion types), on its device and dtype,
    computing the same function."""
    if not (type(module).__name__ == 'ContextBlock'
            and type(module).__module__.startswith('mmcv.')):
        raise TypeError('context_block_from_mmcv converts mmcv ContextBlock, '
                        f'not {type(module).__name__}')
    if module.pooling_type not in POOLING_TYPES:
        raise ValueError('cannot convert mmcv ContextBlock with pooling_type='
                         f'{module.pooling_type!r}: QKVContextBlock pools '
                         'with attention only (pooling_type=\'att\')')
    layer = QKVContextBlock(module.in_channels, ratio=module.ratio,
                            fusion_types=tuple(module.fusion_types))
    return load_converted(layer, module, CONTEXT_BLOCK_KEYS)


def _attention_macs(layer: QKVContextBlock, batch: int, height: int,
                    width: int) -> int:
    """One query over all positions: its 1-channel scores, then the pooled
    value (the input, C channels)."""
    return dense_macs(batch, 1, height * width, 1, layer.in_channels)


register_layer(
    LayerEntry(
        name='gcnet',
        cls=QKVContextBlock,
        maps=dense_maps,
        dense=dense_matrix,
        grid=dense_grid,
        attention_macs=_attention_macs))


def _mmcv_context_block(stock: type, channels: int,
                        options: dict) -> nn.Module:
    return stock(channels, ratio=options.get('ratio', 1 / 4))


_CITYSCAPES = '_r50-d8_4xb2-40k_cityscapes-512x1024.py'
register_twin(
    StockTwin(layer='gcnet',
              qualname='mmcv.cnn.bricks.context_block.ContextBlock',
              label='mmcv ContextBlock', convert=context_block_from_mmcv,
              build=_mmcv_context_block, keys=CONTEXT_BLOCK_KEYS,
              head=StockHead(label='GCHead', prefix='decode_head.gc_block.',
                             config=f'mmseg::gcnet/gcnet{_CITYSCAPES}',
                             ours=f'qkv_cityscapes/qkv-gcnet{_CITYSCAPES}'),
              options=context_block_options))
