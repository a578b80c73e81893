"""Non-local block with a switch for how Q, K and V are made.

Wang et al., "Non-local Neural Networks", CVPR 2018,
https://arxiv.org/abs/1711.07971. In ``qkv_mode='separate'`` this is mmcv's
``NonLocal2d`` (``embedded_gaussian``); ``identity_qk`` with
``use_scale=False`` is its ``gaussian`` mode.
"""
from typing import Optional, Tuple

import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.registry import MODELS
from torch import Tensor

from .autograd_kernels import distinct
from .kernels import dense_attention
from .options import (check_bool, check_choice, check_input,
                      check_positive_int, reduced_channels, QKV_MODES)
from .projection import QKVProjection, normal_init_
from .recording import RecordsAttention
from .similarity import Similarity


@MODELS.register_module()
class QKVNonLocal2d(RecordsAttention, nn.Module):
    """Non-local block: ``x + out(softmax(s · q kᵀ) v)`` over all positions.

    Args:
        in_channels: Channels of the input (and output).
        qkv_mode: How Q, K, V are made: ``'separate'`` (three 1×1 convs),
            ``'shared_qk'`` (one conv for Q = K, one for V), ``'shared'`` (one
            conv for Q = K = V), ``'identity_qk'`` (Q = K = input, V
            projected) or ``'identity'`` (Q = K = V = input).
        similarity: ``'dot'`` or ``'cosine'`` (learnt logit scale).
        mask_self: Exclude each position's own key.
        reduction: Projected channels are ``in_channels // reduction``.
        use_scale: Scale dot logits by 1/√(channels per head).
        num_heads: Attention heads; must divide the Q/K and V channels.
        conv_cfg: mmcv conv config for all 1×1 convs.
        norm_cfg: mmcv norm config for the output conv (as mmcv's
            ``conv_out``); its weight is the zero-initialised factor.
    """

    _abbr_ = 'qkv_nonlocal'

    def __init__(self,
                 in_channels: int,
                 *,
                 qkv_mode: str = 'separate',
                 similarity: str = 'dot',
                 mask_self: bool = False,
                 reduction: int = 2,
                 use_scale: bool = True,
                 num_heads: int = 1,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: Optional[dict] = None) -> None:
        super().__init__()
        self.in_channels = check_positive_int('in_channels', in_channels)
        self.num_heads = check_positive_int('num_heads', num_heads)
        check_choice('qkv_mode', qkv_mode, tuple(QKV_MODES))
        self.mask_self = check_bool('mask_self', mask_self)
        reduced = reduced_channels(in_channels, reduction)  # checked always
        inter_channels = in_channels if qkv_mode == 'identity' else reduced
        self.proj = QKVProjection(in_channels, inter_channels, inter_channels,
                                  qkv_mode, conv_cfg)
        for role, channels in (('Q/K', self.proj.qk_channels),
                               ('V', self.proj.v_channels)):
            if channels % num_heads:
                raise ValueError(
                    f'num_heads={num_heads} must divide the {role} channel '
                    f'count {channels} (qkv_mode={qkv_mode!r}, '
                    f'in_channels={in_channels}, reduction={reduction})')
        self.similarity = Similarity(similarity, use_scale,
                                     self.proj.qk_channels // num_heads)
        self.out = ConvModule(
            self.proj.v_channels,
            in_channels,
            1,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=None)
        self.init_weights()

    def init_weights(self, std: float = 0.01) -> None:
        """mmcv's init: N(0, std) projections, a zero output factor."""
        normal_init_(self.proj, std)
        zero = self.out.norm if self.out.with_norm else self.out.conv
        nn.init.zeros_(zero.weight)
        if zero.bias is not None:
            nn.init.zeros_(zero.bias)

    def forward(self, x: Tensor) -> Tensor:
        """[B, C, H, W] -> [B, C, H, W]."""
        out, weights = self.forward_with_weights(x, need_weights=self.recording)
        self._record(weights)
        return out

    def forward_with_weights(
            self,
            x: Tensor,
            need_weights: bool = True) -> Tuple[Tensor, Optional[Tensor]]:
        """Return ``(output, weights)``; weights [B, heads, HW, HW] come from
        the explicit path when ``need_weights``, else None (fast path)."""
        check_input(x, self.in_channels, type(self).__name__)
        batch, _, height, width = x.shape
        q, k, v = self.proj(x)
        # [B, C', H, W] -> [B, heads, HW, C'/heads]; one view per distinct
        # tensor, so that the kernel sees shared roles as one tensor.
        q, k, v = distinct(
            q, k, v, fn=lambda t: t.reshape(batch, self.num_heads,
                                            t.shape[1] // self.num_heads,
                                            height * width).transpose(-1, -2))
        q, k, scale = self.similarity(q, k, dim=-1)
        y, weights = dense_attention(q, k, v, scale, self.mask_self,
                                     need_weights)
        # [B, heads, HW, Cv/heads] -> [B, Cv, H, W]
        y = y.transpose(-1, -2).reshape(batch, self.proj.v_channels, height,
                                        width)
        return x + self.out(y), weights

    def extra_repr(self) -> str:
        return (f'in_channels={self.in_channels}, num_heads={self.num_heads}, '
                f'mask_self={self.mask_self}')
