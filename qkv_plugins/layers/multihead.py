"""Multi-head token attention with the Q/K/V switch: the attention of mmseg's
transformer backbones (SegFormer's efficient attention with spatially
reduced keys, ViT's plain attention), as one layer on the shared core.

Its modes come from :data:`~qkv_plugins.layers.options.QKV_MODES` through
:class:`~qkv_plugins.layers.projection.QKVProjection` in the ``'linear'``
layout, whose parameters carry ``nn.MultiheadAttention``'s names
(``attn.in_proj_weight``, ``attn.in_proj_bias``, ``attn.out_proj``; ``sr``
and ``norm`` as mmseg's): in ``separate`` mode a stock state dict loads
unchanged, and for the other modes a load hook maps the stock packed
projection onto the mode's parameters. Logits come from
:class:`~qkv_plugins.layers.similarity.Similarity` (cosine: one learnt
scale per head, saved as ``logit_scale`` [heads, 1, 1]) and attention from
:func:`~qkv_plugins.layers.kernels.dense_attention`, which masks the own
key without an N×N matrix.
"""
import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.drop import build_dropout
from mmengine.registry import MODELS
from torch import Tensor

from . import kernels
from .autograd_kernels import distinct
from .catalog import LayerEntry, StockTwin, register_layer, register_twin
from .maps import dense_macs, query_subset
from .options import (CONSTANT_QUERY_MODES, QKV_MODES, check_bool,
                      check_choice, check_dropout, check_positive_int,
                      check_similarity)
from .projection import QKVProjection
from .recording import RecordsAttention
from .similarity import Similarity

# The modes of the one table that tokens take: a constant query has no
# meaning over tokens (derived from the table, not a table of its own).
TOKEN_MODES = tuple(m for m in QKV_MODES if m not in CONSTANT_QUERY_MODES)


class TokenProjections(QKVProjection):
    """The mode's Q/K/V projections in the ``'linear'`` layout and the
    output projection: the stock ``attn`` sub-module's keys
    (``in_proj_weight`` / ``in_proj_bias`` packed [3C, C] in ``separate``;
    ``qk_proj_*``, ``v_proj_*``, ``qkv_proj_*`` otherwise; ``out_proj``)."""

    def __init__(self, channels: int, qkv_mode: str, bias: bool) -> None:
        # Built first, as nn.MultiheadAttention draws its random init before
        # the projections' Xavier init: the same seed gives the same layer.
        out_proj = nn.Linear(channels, channels, bias=bias)
        super().__init__(channels, channels, channels, qkv_mode,
                         layout='linear', bias=bias)
        self.out_proj = out_proj
        if out_proj.bias is not None:
            nn.init.zeros_(out_proj.bias)


@MODELS.register_module()
class QKVMultiheadAttention(RecordsAttention, nn.Module):
    """``identity + drop(out_proj(softmax(s · q kᵀ) v))`` over tokens, with
    keys and values from a map reduced ``sr_ratio`` times (SegFormer).

    Takes tokens ``[B, N, C]`` (with ``hw_shape``, as mmseg's
    ``EfficientMultiheadAttention``; without, as mmcv's
    ``MultiheadAttention`` in ViT, where leading tokens beyond the grid set
    by :attr:`token_grid` are class tokens) or a feature map ``[B, C, H,
    W]`` (a plug-in layer, residual like the non-local block).

    Args:
        embed_dims: Channels C.
        in_channels: The same as ``embed_dims`` (the name mmcv's
            ``build_plugin_layer`` passes); give one of the two.
        num_heads: Heads; must divide C (in every mode: the identity modes
            split the input channels into heads).
        qkv_mode: ``'separate'`` (stock: packed Q, K, V projections),
            ``'shared_qk'``, ``'shared'``, ``'identity_qk'`` or
            ``'identity'`` (every mode of the table but the constant-query
            ones).
        similarity: ``'dot'`` (scaled by 1/√(C/heads)) or ``'cosine'`` with
            a learnt per-head logit scale (Swin V2: initial 10, at most
            100), normalised in at least fp32.
        mask_self: Exclude each token's own key (kept where it is the only
            key); needs ``sr_ratio=1`` (a reduced key summarises a window,
            no key is the query's own).
        sr_ratio: Spatial reduction of the keys and values (SegFormer).
        qkv_bias: Biases of the projections (and of ``out_proj``, as
            ``nn.MultiheadAttention``).
        attn_drop: Dropout on the attention weights in training, in [0, 1).
        proj_drop: Dropout after the output projection, in [0, 1).
        dropout_layer: mmcv dropout config on the branch (e.g. DropPath).
        norm_cfg: Norm after the spatial reduction.
    """

    _abbr_ = 'qkv_mha'

    def __init__(self,
                 embed_dims: Optional[int] = None,
                 *,
                 in_channels: Optional[int] = None,
                 num_heads: int = 1,
                 qkv_mode: str = 'separate',
                 similarity: str = 'dot',
                 mask_self: bool = False,
                 sr_ratio: int = 1,
                 qkv_bias: bool = True,
                 attn_drop: float = 0.,
                 proj_drop: float = 0.,
                 dropout_layer: Optional[dict] = None,
                 norm_cfg: Optional[dict] = None) -> None:
        super().__init__()
        embed_dims = _channels(embed_dims, in_channels)
        self.embed_dims = check_positive_int('embed_dims', embed_dims)
        self.num_heads = check_positive_int('num_heads', num_heads)
        check_choice('qkv_mode', qkv_mode, TOKEN_MODES)
        check_similarity(similarity, qkv_mode)
        self.qkv_mode, self.similarity = qkv_mode, similarity
        self.mask_self = check_bool('mask_self', mask_self)
        self.sr_ratio = check_positive_int('sr_ratio', sr_ratio)
        if embed_dims % num_heads:
            allowed = [d for d in range(1, embed_dims + 1)
                       if embed_dims % d == 0]
            raise ValueError(f'num_heads={num_heads} must divide '
                             f'embed_dims={embed_dims} (qkv_mode='
                             f'{qkv_mode!r}: every head takes embed_dims / '
                             f'num_heads channels); allowed: {allowed}')
        if mask_self and sr_ratio > 1:
            raise ValueError(
                f'mask_self=True needs sr_ratio=1, but got sr_ratio='
                f'{sr_ratio}: a reduced key summarises a {sr_ratio}x'
                f'{sr_ratio} window, so no key is a query\'s own position')
        self.attn_drop = check_dropout('attn_drop', attn_drop)
        proj_drop = check_dropout('proj_drop', proj_drop)
        self.attn = TokenProjections(embed_dims, qkv_mode,
                                     check_bool('qkv_bias', qkv_bias))
        self.proj_drop = nn.Dropout(proj_drop)
        self.dropout_layer = (build_dropout(dropout_layer)
                              if dropout_layer else nn.Identity())
        if sr_ratio > 1:
            self.sr = nn.Conv2d(embed_dims, embed_dims, sr_ratio, sr_ratio)
            self.norm = build_norm_layer(norm_cfg or dict(type='LN'),
                                         embed_dims)[1]
        # Its cosine scale is saved as `logit_scale` (see _save_keys).
        self.score = Similarity(similarity, True, embed_dims // num_heads,
                                num_heads=num_heads)
        # (h, w) of the token grid, for recording when no hw_shape is passed
        # (ViT: set by the backbone); tokens before the grid are class tokens
        self.token_grid: Optional[Tuple[int, int]] = None
        self.register_load_state_dict_pre_hook(_load_keys)
        self.register_state_dict_post_hook(_save_keys)

    @property
    def logit_scale(self) -> Optional[nn.Parameter]:
        """The learnt per-head cosine scale, log-space [heads, 1, 1] (None
        for ``'dot'``); state-dict key ``logit_scale``."""
        return self.score.logit_scale

    def forward(self,
                x: Tensor,
                hw_shape: Optional[Sequence[int]] = None,
                identity: Optional[Tensor] = None,
                **unused) -> Tensor:
        """Tokens [B, N, C] (+ ``hw_shape``) or a map [B, C, H, W]; the
        fast path, or the explicit path while recording."""
        out, weights = self.forward_with_weights(
            x, hw_shape, identity, need_weights=self.recording)
        self._record(weights)
        return out

    def forward_with_weights(
            self,
            x: Tensor,
            hw_shape: Optional[Sequence[int]] = None,
            identity: Optional[Tensor] = None,
            need_weights: bool = True) -> Tuple[Tensor, Optional[Tensor]]:
        """Return ``(output, weights)``; weights [B, heads, h, w, keys] of
        the grid's queries (explicit path) when ``need_weights``."""
        image = x.dim() == 4
        if image:  # [B, C, H, W] -> [B, HW, C]
            batch, channels, height, width = x.shape
            hw_shape = (height, width)
            x = x.flatten(2).transpose(1, 2)
        if x.dim() != 3 or x.shape[-1] != self.embed_dims:
            raise ValueError(f'{type(self).__name__} expects [B, N, '
                             f'{self.embed_dims}] tokens or [B, '
                             f'{self.embed_dims}, H, W], got '
                             f'{tuple(x.shape)}')
        if identity is None:
            identity = x
        x_kv = None  # keys and values read x itself
        if self.sr_ratio > 1:
            if hw_shape is None:
                raise ValueError('sr_ratio > 1 needs hw_shape')
            # [B, HW, C] -> [B, C, H, W] -> reduced -> [B, hw', C]
            grid = x.transpose(1, 2).reshape(x.shape[0], self.embed_dims,
                                             *hw_shape)
            x_kv = self.norm(self.sr(grid).flatten(2).transpose(1, 2))
        q, k, v = self.attn(x, x_kv)
        # [B, N, C] -> [B, heads, N, C/heads]; one view per distinct tensor,
        # so that the kernel sees shared roles as one tensor
        q, k, v = distinct(q, k, v, fn=self._heads)
        q, k, scale = self.score(q, k, dim=-1)
        y, weights = kernels.dense_attention(
            q, k, v, scale, self.mask_self, need_weights,
            dropout_p=self.attn_drop if self.training else 0.0)
        # [B, heads, N, C/heads] -> [B, N, C]
        y = y.transpose(1, 2).reshape(x.shape[0], x.shape[1], self.embed_dims)
        out = identity + self.dropout_layer(
            self.proj_drop(self.attn.out_proj(y)))
        if image:  # [B, HW, C] -> [B, C, H, W]
            out = out.transpose(1, 2).reshape(batch, channels, height, width)
        if weights is not None:
            weights = self._grid_weights(weights, hw_shape or self.token_grid)
        return out, weights

    def _heads(self, t: Tensor) -> Tensor:
        """[B, N, C] -> [B, heads, N, C/heads] (sizes spelt out: B may be
        0)."""
        return t.reshape(t.shape[0], t.shape[1], self.num_heads,
                         self.embed_dims // self.num_heads).transpose(1, 2)

    @staticmethod
    def _grid_weights(weights: Tensor,
                      grid: Optional[Sequence[int]]) -> Tensor:
        """[B, heads, N, keys] -> [B, heads, h, w, keys] of the grid's
        queries (leading class-token queries dropped)."""
        if grid is None:
            grid = (1, weights.shape[2])
        height, width = grid
        return weights[:, :, weights.shape[2] - height * width:].reshape(
            *weights.shape[:2], height, width, weights.shape[-1])

    def extra_repr(self) -> str:
        return (f'embed_dims={self.embed_dims}, num_heads={self.num_heads}, '
                f'qkv_mode={self.qkv_mode!r}, similarity='
                f'{self.similarity!r}, mask_self={self.mask_self}, '
                f'sr_ratio={self.sr_ratio}')


# where the cosine scale lives inside the layer, and the key it is saved as
_SCORE_KEY = 'score.logit_scale'


def _save_keys(module: QKVMultiheadAttention, state_dict: dict, prefix: str,
               local_metadata) -> None:
    """State-dict post-hook: save the similarity's per-head scale under the
    layer's own key ``logit_scale`` (the key checkpoints carry)."""
    own = prefix + _SCORE_KEY
    if own in state_dict:
        state_dict[prefix + 'logit_scale'] = state_dict.pop(own)


def _load_keys(module: QKVMultiheadAttention, state_dict: dict, prefix: str,
               *args) -> None:
    """Load pre-hook: map a stock state dict (packed ``attn.in_proj_*``, no
    logit scale) onto the mode's parameters, and a saved ``logit_scale``
    onto the similarity's; a state dict of this mode needs only the
    latter."""
    if prefix + 'attn.in_proj_weight' in state_dict:
        module.attn.load_packed_(state_dict, prefix + 'attn.')
    saved, own = prefix + 'logit_scale', prefix + _SCORE_KEY
    if saved in state_dict:
        state_dict[own] = state_dict.pop(saved)
    elif (module.score.logit_scale is not None and own not in state_dict
          and prefix + 'attn.out_proj.weight' in state_dict):
        # a stock state dict: keep the initial scale
        state_dict[own] = module.score.logit_scale.detach().clone()


def _channels(embed_dims: Optional[int], in_channels: Optional[int]) -> int:
    """``embed_dims``, or its alias ``in_channels`` (mmcv's plug-in
    builder passes that name); ValueError if neither or two different."""
    if embed_dims is None and in_channels is None:
        raise ValueError('QKVMultiheadAttention needs embed_dims (or its '
                         'alias in_channels), but got neither')
    if (embed_dims is not None and in_channels is not None
            and embed_dims != in_channels):
        raise ValueError(f'embed_dims={embed_dims!r} and in_channels='
                         f'{in_channels!r} name the same channels; give one '
                         'or two equal values')
    return embed_dims if embed_dims is not None else in_channels


def key_layout(height: int, width: int, keys: int) -> Tuple[int, int, int]:
    """(reduction s, key grid width, leading non-grid keys) of a map of
    ``keys`` keys over a height × width query grid: the key grid is
    ⌈h/s⌉ × ⌈w/s⌉ after 0 or 1 class-token keys."""
    for s in range(1, max(height, width) + 1):
        cells = math.ceil(height / s) * math.ceil(width / s)
        if keys - cells in (0, 1):
            return s, math.ceil(width / s), keys - cells
    raise ValueError(f'{keys} keys fit no reduction of a {height}x{width} '
                     'grid')


def _own_keys(height: int, width: int, layout: Tuple[int, int, int],
              device) -> Tensor:
    """Index of each query's own key (its reduced cell) in a
    :func:`key_layout`."""
    s, key_width, extra = layout
    ys = torch.arange(height, device=device)[:, None] // s
    xs = torch.arange(width, device=device)[None, :] // s
    return (extra + ys * key_width + xs).flatten()


def token_maps(weights: Tensor, max_queries: int):
    """Catalog ``maps``: [B, heads, h, w, K] -> ([B·heads, Q, K], own [Q],
    square [B·heads, Q, Q] where keys are the queries' positions)."""
    height, width, keys = weights.shape[-3:]
    maps = weights.flatten(0, 1).flatten(1, 2)  # [B·heads, hw, K]
    queries = query_subset(height * width, max_queries, maps.device)
    layout = key_layout(height, width, keys)
    own = _own_keys(height, width, layout, maps.device)
    sampled = maps[:, queries]
    s, _, extra = layout
    square = sampled[:, :, extra + queries] if s == 1 else None
    return sampled, own[queries], square


def token_dense(weights: Tensor) -> Tensor:
    """Catalog ``dense``: [B, heads, h, w, K] -> [B, hw, hw], heads
    averaged; a reduced key's weight spread evenly over its window, a class
    token's left out."""
    height, width, keys = weights.shape[-3:]
    maps = weights.float().mean(1).flatten(1, 2)  # [B, hw, K]
    own = _own_keys(height, width, key_layout(height, width, keys),
                    maps.device)  # key of each cell
    counts = torch.bincount(own, minlength=keys).clamp_min(1).to(maps.dtype)
    return maps[:, :, own] / counts[own]


def tokens_grid(weights: Tensor, image: Tuple[int, int]) -> Tuple[int, int]:
    return tuple(weights.shape[-3:-1])


def _attention_macs(layer: QKVMultiheadAttention, batch: int, height: int,
                    width: int) -> int:
    s = layer.sr_ratio
    keys = math.ceil(height / s) * math.ceil(width / s)
    return dense_macs(batch, height * width, keys, layer.embed_dims,
                      layer.embed_dims)


register_layer(
    LayerEntry(
        name='mha',
        cls=QKVMultiheadAttention,
        maps=token_maps,
        dense=token_dense,
        grid=tokens_grid,
        attention_macs=_attention_macs,
        deploy_variants=(dict(sr_ratio=1), dict(sr_ratio=2))))


class TokensOf(nn.Module):
    """A stock token attention as a [B, C, H, W] layer (for the layer
    benchmark)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: Tensor) -> Tensor:
        batch, channels, height, width = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        if hasattr(self.module, 'sr_ratio'):
            out = self.module(tokens, (height, width))
        else:
            out = self.module(tokens)
        return out.transpose(1, 2).reshape(batch, channels, height, width)


def _stock_options(module: nn.Module) -> dict:
    mha = module.attn  # nn.MultiheadAttention
    options = dict(num_heads=mha.num_heads,
                   qkv_bias=mha.in_proj_bias is not None,
                   attn_drop=mha.dropout, proj_drop=module.proj_drop.p)
    if getattr(module, 'sr_ratio', 1) > 1:
        options.update(sr_ratio=module.sr_ratio,
                       norm_cfg=dict(type='LN', eps=module.norm.eps))
    return options


def from_stock(module: nn.Module, **options) -> QKVMultiheadAttention:
    """Our layer computing what a stock (Efficient)MultiheadAttention
    computes, with its weights (``options``: another mode, similarity, ...;
    the load hook maps the weights)."""
    if not module.batch_first:
        raise ValueError('only batch_first stock attention converts (as in '
                         "mmseg's MiT and ViT)")
    layer = QKVMultiheadAttention(module.embed_dims,
                                  **{**_stock_options(module), **options})
    layer.dropout_layer = module.dropout_layer
    param = next(module.parameters())
    layer.to(device=param.device, dtype=param.dtype)
    layer.load_state_dict(module.state_dict())
    return layer.train(module.training)


def _build_stock(stock: type, channels: int,
                 options: dict) -> Optional[nn.Module]:
    if (options.get('qkv_mode', 'separate') != 'separate'
            or options.get('similarity', 'dot') != 'dot'
            or options.get('mask_self') or options.get('sr_ratio', 1) > 1):
        return None
    return TokensOf(stock(channels, options.get('num_heads', 1),
                          batch_first=True))


register_twin(
    StockTwin(layer='mha',
              qualname='mmcv.cnn.bricks.transformer.MultiheadAttention',
              label='mmcv MultiheadAttention', convert=from_stock,
              build=_build_stock))
