"""Criss-cross attention with a switch for how Q, K and V are made.

Huang et al., "CCNet: Criss-Cross Attention for Semantic Segmentation",
ICCV 2019, https://arxiv.org/abs/1811.11721. In ``qkv_mode='separate'`` with
``recurrence=1`` this is mmcv's ``CrissCrossAttention``.
"""
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import build_conv_layer
from mmengine.registry import MODELS
from torch import Tensor

from .kernels import criss_cross_attention
from .options import (check_bool, check_choice, check_input,
                      check_positive_int, reduced_channels, QKV_MODES)
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
            ``'shared'``, where a 1×1 output conv restores them.
        similarity: ``'dot'`` or ``'cosine'`` (learnt logit scale).
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

    def forward(self, x: Tensor) -> Tensor:
        """[B, C, H, W] -> [B, C, H, W]."""
        out, weights = self.forward_with_weights(x, need_weights=self.recording)
        for hop in weights or ():
            self._record(hop)
        return out

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
