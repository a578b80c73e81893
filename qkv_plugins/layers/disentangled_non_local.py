"""Disentangled non-local block with a switch for how Q, K and V are made.

Yin et al., "Disentangled Non-Local Neural Networks", ECCV 2020,
https://arxiv.org/abs/2006.06668. In ``qkv_mode='separate'`` with
``similarity='dot'`` this is mmseg's ``DisentangledNonLocal2d`` (the block of
``DNLHead``) in its ``embedded_gaussian`` mode; ``from_mmseg_dnl`` in
``qkv_plugins.mmseg.convert_dnl`` converts one with its weights.

The block splits non-local attention in two terms:

- pairwise: ``softmax(s · (q − μ_q)(k − μ_k)ᵀ) v``, Q and K *whitened* (each
  channel's mean over positions subtracted, no variance scaling), with
  ``s = (1/√d if use_scale else 1) / temperature`` as mmseg computes it;
- unary: ``softmax(conv_mask(x)) v``, one weight per position from a 1×1 conv
  to one channel, the same context vector for every query.

Both are summed before the output conv: ``x + out(pairwise + unary)``.
"""
import math
from typing import Optional, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule, build_conv_layer
from mmengine.registry import MODELS
from torch import Tensor

from .autograd_kernels import distinct
from .catalog import LayerEntry, register_layer
from .kernels import dense_attention
from .maps import dense_grid, dense_macs, dense_maps, dense_matrix
from .options import (CONSTANT_QUERY_MODES, QKV_MODES, check_bool,
                      check_choice, check_input, check_positive_int,
                      reduced_channels)
from .projection import QKVProjection, normal_init_, zero_init_
from .recording import RecordsAttention
from .similarity import Similarity

DEFAULT_TEMPERATURE = 0.05  # mmseg's DNLHead default; its configs keep it


def check_temperature(value) -> float:
    """Return ``value`` as a float if it is a positive finite number."""
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not 0 < value < math.inf):
        raise ValueError(f'temperature must be a positive float, but got '
                         f'{value!r}')
    return float(value)


def whiten(t: Tensor) -> Tensor:
    """Subtract each channel's mean over positions. [B, C, H, W]."""
    return t - t.mean(dim=(2, 3), keepdim=True)


@MODELS.register_module()
class QKVDisentangledNonLocal2d(RecordsAttention, nn.Module):
    """Disentangled non-local block: ``x + out(pairwise + unary)``.

    Whitening applies to Q and K in every mode (in ``identity_qk`` and
    ``identity`` to the raw input that serves as Q and K), never to V; where
    the mode makes Q and K one tensor, it stays one tensor. The unary term
    has its own 1×1 conv (``unary``, to one channel) in every mode and
    weights the value, as the pairwise term does. ``mask_self`` acts on the
    pairwise term only; the unary term pools over all positions.

    Args:
        in_channels: Channels of the input (and output).
        qkv_mode: How Q, K, V are made: ``'separate'``, ``'shared_qk'``,
            ``'shared'``, ``'identity_qk'`` or ``'identity'`` (as
            :class:`~qkv_plugins.layers.non_local.QKVNonLocal2d`). The
            constant-query modes (``'query_independent'``) are refused:
            whitening a constant query leaves 0.
        similarity: ``'dot'``: logits ``(q · k) / temperature``, also divided
            by √d when ``use_scale`` (mmseg's order: √d first). ``'cosine'``:
            cosine of the whitened Q and K times a learnt scale initialised
            at 1/temperature (which takes the place of both factors; clamped
            at ``max(100, 1/temperature)``).
        mask_self: Exclude each position's own key from the pairwise term.
        reduction: Projected channels are ``in_channels // reduction``.
        use_scale: With ``'dot'``, scale logits by 1/√(Q/K channels).
        num_heads: Must be 1: a multi-head unary term could be one mask
            shared by the heads or one mask per head (as in GCNet), two
            different layers; the paper defines neither.
        temperature: Divides the dot logits (mmseg's default 0.05); with
            ``'cosine'`` sets the initial scale to its inverse.
        conv_cfg: mmcv conv config for all 1×1 convs.
        norm_cfg: mmcv norm config for the output conv (as mmseg's
            ``conv_out``); its weight is the zero-initialised factor.
    """

    _abbr_ = 'qkv_dnl'

    def __init__(self,
                 in_channels: int,
                 *,
                 qkv_mode: str = 'separate',
                 similarity: str = 'dot',
                 mask_self: bool = False,
                 reduction: int = 2,
                 use_scale: bool = True,
                 num_heads: int = 1,
                 temperature: float = DEFAULT_TEMPERATURE,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: Optional[dict] = None) -> None:
        super().__init__()
        self.in_channels = check_positive_int('in_channels', in_channels)
        if check_positive_int('num_heads', num_heads) != 1:
            raise ValueError(
                f'{type(self).__name__} supports num_heads=1 only, but got '
                f'num_heads={num_heads}: the unary term has one mask, and '
                'whether heads would share it or have one each is not '
                'defined by the paper')
        self.num_heads = 1
        check_choice('qkv_mode', qkv_mode, tuple(QKV_MODES))
        if qkv_mode in CONSTANT_QUERY_MODES:
            raise ValueError(
                f'{type(self).__name__} does not take qkv_mode={qkv_mode!r}: '
                'its query is a constant, which whitening turns into 0, so '
                'the pairwise term would be a plain mean over positions and '
                'the key conv would get no gradient (the unary term already '
                'is the query-independent part); use one of '
                + ', '.join(repr(m) for m in QKV_MODES
                            if m not in CONSTANT_QUERY_MODES))
        self.mask_self = check_bool('mask_self', mask_self)
        self.temperature = check_temperature(temperature)
        reduced = reduced_channels(in_channels, reduction)  # checked always
        inter_channels = in_channels if qkv_mode == 'identity' else reduced
        self.proj = QKVProjection(in_channels, inter_channels, inter_channels,
                                  qkv_mode, conv_cfg)
        self.similarity = Similarity(similarity, use_scale,
                                     self.proj.qk_channels,
                                     cosine_init_scale=1.0 / self.temperature)
        self.unary = build_conv_layer(conv_cfg, in_channels, 1, 1)
        self.out = ConvModule(
            self.proj.v_channels,
            in_channels,
            1,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=None)
        self.init_weights()

    def init_weights(self, std: float = 0.01) -> None:
        """mmseg's init: N(0, std) projections, a zero output factor; the
        unary conv keeps PyTorch's default init, as mmseg's ``conv_mask``."""
        normal_init_(self.proj, std)
        zero_init_(self.out)

    @property
    def logit_factor(self) -> float:
        """Dot logits are divided by the temperature; a cosine layer's
        learnt scale (initialised at 1/temperature) takes its place."""
        return 1.0 / self.temperature if self.similarity.kind == 'dot' else 1.0

    def forward_with_weights(
            self,
            x: Tensor,
            need_weights: bool = True) -> Tuple[Tensor, Optional[Tensor]]:
        """Return ``(output, weights)``; the pairwise weights [B, 1, HW, HW]
        come from the explicit path when ``need_weights``, else None (fast
        path, no HW × HW matrix)."""
        check_input(x, self.in_channels, type(self).__name__)
        batch, _, height, width = x.shape
        q, k, v = self.proj(x)
        q, k = distinct(q, k, fn=whiten)  # Q = K stays one tensor
        # [B, C', H, W] -> [B, 1, HW, C'], one view per distinct tensor
        q, k, v_heads = distinct(
            q, k, v, fn=lambda t: t.flatten(2).transpose(1, 2).unsqueeze(1))
        q, k, scale = self.similarity(q, k, dim=-1)
        # An empty batch takes the explicit path (empty weights, no cost):
        # the CPU Functions of the fast path cannot view 0 elements.
        pairwise, weights = dense_attention(q, k, v_heads,
                                            scale * self.logit_factor,
                                            self.mask_self,
                                            need_weights or batch == 0)
        weights = weights if need_weights else None
        # [B, 1, HW, Cv] -> [B, Cv, H, W]
        pairwise = pairwise.squeeze(1).transpose(1, 2).reshape(
            batch, self.proj.v_channels, height, width)
        # [B, 1, HW]: one weight per position, softmax over positions
        mask = self.unary(x).flatten(2).softmax(dim=-1)
        # [B, Cv, HW] x [B, HW, 1] -> [B, Cv, 1, 1], broadcast over positions
        unary = torch.matmul(v.flatten(2), mask.transpose(1, 2).to(v.dtype))
        unary = unary.unsqueeze(-1)
        return x + self.out(pairwise + unary), weights

    def extra_repr(self) -> str:
        return (f'in_channels={self.in_channels}, mask_self={self.mask_self}, '
                f'temperature={self.temperature:g}')


def _attention_macs(layer: QKVDisentangledNonLocal2d, batch: int,
                    height: int, width: int) -> int:
    """The pairwise term over all positions, plus the unary pooling."""
    n = height * width
    return (dense_macs(batch, n, n, layer.proj.qk_channels,
                       layer.proj.v_channels) +
            dense_macs(batch, 1, n, 0, layer.proj.v_channels))


# Its stock twin (mmseg's DisentangledNonLocal2d) registers from the mmseg
# glue (qkv_plugins.mmseg.convert_dnl): layers never import mmseg.
register_layer(
    LayerEntry(
        name='dnl',
        cls=QKVDisentangledNonLocal2d,
        maps=dense_maps,
        dense=dense_matrix,
        grid=dense_grid,
        attention_macs=_attention_macs))
