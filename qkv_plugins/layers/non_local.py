"""Non-local block with a switch for how Q, K and V are made.

Wang et al., "Non-local Neural Networks", CVPR 2018,
https://arxiv.org/abs/1711.07971. In ``qkv_mode='separate'`` this is mmcv's
``NonLocal2d`` (``embedded_gaussian``); ``identity_qk`` with
``use_scale=False`` is its ``gaussian`` mode. ``query_independent`` gives
every query the same map, GCNet's (Cao et al., 2019,
https://arxiv.org/abs/1904.11492) with non-local's value and output convs.
"""
from typing import Mapping, Optional, Tuple

import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.registry import MODELS
from torch import Tensor

from .autograd_kernels import distinct
from .catalog import (KeyMap, LayerEntry, StockHead, StockTwin,
                      register_layer, register_twin)
from .convert import load_converted
from .kernels import dense_attention
from .maps import dense_grid, dense_macs, dense_maps, dense_matrix
from .options import (check_bool, check_choice, check_input, check_positive_int,
                      check_similarity, reduced_channels, QKV_MODES)
from .projection import QKVProjection, normal_init_, zero_init_
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
            projected), ``'identity'`` (Q = K = V = input) or
            ``'query_independent'`` (a key conv to one channel per head, Q a
            constant 1, V as ``'separate'``: the logit of key j is k_j for
            every query).
        similarity: ``'dot'`` or ``'cosine'`` (learnt logit scale; refused
            by ``'query_independent'``, whose one channel it cannot act on).
        mask_self: Exclude each position's own key.
        reduction: Projected channels are ``in_channels // reduction``.
        use_scale: Scale dot logits by 1/√(channels per head) (1 in
            ``'query_independent'``).
        num_heads: Attention heads; must divide the Q/K and V channels.
        cosine_init_scale: With ``'cosine'``, the learnt logit scale's
            initial value (None: 10; the temperature control of the study
            starts it at 30).
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
                 cosine_init_scale: Optional[float] = None,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: Optional[dict] = None) -> None:
        super().__init__()
        self.in_channels = check_positive_int('in_channels', in_channels)
        self.num_heads = check_positive_int('num_heads', num_heads)
        check_choice('qkv_mode', qkv_mode, tuple(QKV_MODES))
        check_similarity(similarity, qkv_mode)
        self.mask_self = check_bool('mask_self', mask_self)
        reduced = reduced_channels(in_channels, reduction)  # checked always
        inter_channels = in_channels if qkv_mode == 'identity' else reduced
        self.proj = QKVProjection(in_channels, inter_channels, inter_channels,
                                  qkv_mode, conv_cfg, num_heads)
        for role, channels in (('Q/K', self.proj.qk_channels),
                               ('V', self.proj.v_channels)):
            if channels % num_heads:
                raise ValueError(
                    f'num_heads={num_heads} must divide the {role} channel '
                    f'count {channels} (qkv_mode={qkv_mode!r}, '
                    f'in_channels={in_channels}, reduction={reduction})')
        self.similarity = Similarity(similarity, use_scale,
                                     self.proj.qk_channels // num_heads,
                                     cosine_init_scale)
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
        zero_init_(self.out)

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


def _attention_macs(layer: QKVNonLocal2d, batch: int, height: int,
                    width: int) -> int:
    n = height * width
    return dense_macs(batch, n, n, layer.proj.qk_channels,
                      layer.proj.v_channels)


register_layer(
    LayerEntry(
        name='nonlocal',
        cls=QKVNonLocal2d,
        maps=dense_maps,
        dense=dense_matrix,
        grid=dense_grid,
        attention_macs=_attention_macs))


def _mmcv_non_local(stock: type, channels: int,
                    options: dict) -> Optional[nn.Module]:
    """mmcv's block for the projection modes (``embedded_gaussian``) and the
    identity modes (``gaussian``); none for what mmcv lacks."""
    mode = options.get('qkv_mode', 'separate')
    if (options.get('similarity', 'dot') != 'dot' or options.get('mask_self')
            or mode == 'query_independent'):
        return None
    return stock(channels, mode='gaussian' if mode.startswith('identity')
                 else 'embedded_gaussian')


# mmcv key prefix -> our key prefix
NON_LOCAL_KEYS: KeyMap = (
    ('g.conv.', 'proj.value.'),
    ('theta.conv.', 'proj.query.'),
    ('phi.conv.', 'proj.key.'),
    ('conv_out.', 'out.'),
)
# mmcv NonLocal2d mode -> our qkv_mode
NON_LOCAL_MODES = {'embedded_gaussian': 'separate', 'gaussian': 'identity_qk'}


def non_local_options(mode: str, use_scale: bool, sub_sample: bool) -> dict:
    """Our options for an mmcv non-local block's ``mode`` and flags."""
    if mode not in NON_LOCAL_MODES or sub_sample:
        raise ValueError(
            f'cannot convert mmcv NonLocal2d with mode={mode!r}, '
            f'sub_sample={sub_sample}: supported modes are '
            f'{sorted(NON_LOCAL_MODES)} without sub_sample')
    # mmcv's gaussian() never scales, whatever use_scale says.
    return dict(qkv_mode=NON_LOCAL_MODES[mode],
                use_scale=use_scale and mode == 'embedded_gaussian')


def _from_mmcv(module: nn.Module) -> QKVNonLocal2d:
    options = non_local_options(module.mode, module.use_scale,
                                module.sub_sample)
    layer = QKVNonLocal2d(
        module.in_channels,
        reduction=module.reduction,
        conv_cfg=module.conv_out.conv_cfg,
        norm_cfg=module.conv_out.norm_cfg,
        **options)
    return load_converted(layer, module, NON_LOCAL_KEYS)


def _options_from_state(state: Mapping[str, Tensor]) -> dict:
    """NLHead's block from its weights: ``embedded_gaussian`` has theta and
    phi, ``gaussian`` has not (and never scales)."""
    weight = state['g.conv.weight']
    mode = 'embedded_gaussian' if 'theta.conv.weight' in state else 'gaussian'
    options = non_local_options(mode, True, False)
    if options['use_scale']:
        del options['use_scale']  # our default, NLHead's
    return dict(options, reduction=weight.shape[1] // weight.shape[0])


_CITYSCAPES = '_r50-d8_4xb2-40k_cityscapes-512x1024.py'
register_twin(
    StockTwin(layer='nonlocal', qualname='mmcv.cnn.bricks.non_local.NonLocal2d',
              label='mmcv NonLocal2d', convert=_from_mmcv,
              build=_mmcv_non_local, keys=NON_LOCAL_KEYS,
              head=StockHead(
                  label='NLHead', prefix='decode_head.nl_block.',
                  config=f'mmseg::nonlocal_net/nonlocal{_CITYSCAPES}',
                  ours=f'qkv_cityscapes/qkv-nonlocal-separate{_CITYSCAPES}'),
              options=_options_from_state))
