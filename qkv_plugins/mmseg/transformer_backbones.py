"""mmseg's transformer backbones with the Q/K/V switch in every block:
``QKVMixVisionTransformer`` (SegFormer's MiT) and ``QKVVisionTransformer``
(ViT). Each builds the stock backbone and swaps every block's attention for
:class:`~qkv_plugins.layers.QKVMultiheadAttention` with the same sizes; in
``separate`` mode a stock state dict loads unchanged (same keys, strict), so
stock ``init_cfg`` checkpoints work, and for the other modes each block's
load hook maps the stock projection onto the mode's parameters.
"""
from typing import Iterator, Tuple

import torch.nn as nn
from mmseg.models.backbones import MixVisionTransformer, VisionTransformer
from mmseg.registry import MODELS

from ..layers.catalog import StockTwin, register_twin
from ..layers.multihead import from_stock

# mmseg's MiT default norm
MIT_NORM = dict(type='LN', eps=1e-6)


def _swap(blocks: Iterator[nn.Module], qkv_mode: str, similarity: str,
          mask_self: bool) -> None:
    """Replace each block's ``attn`` by our layer with its sizes (the
    stock weights are dropped: the backbone's ``init_weights`` or a
    checkpoint sets them)."""
    for index, block in enumerate(blocks):
        stock = block.attn
        try:
            block.attn = from_stock(stock, qkv_mode=qkv_mode,
                                    similarity=similarity,
                                    mask_self=mask_self)
        except ValueError as error:
            raise ValueError(f'block {index}: {error}') from None


@MODELS.register_module()
class QKVMixVisionTransformer(MixVisionTransformer):
    """SegFormer's Mix Transformer with the Q/K/V switch.

    Args:
        qkv_mode: ``'separate'`` (stock), ``'shared_qk'``, ``'shared'``,
            ``'identity_qk'`` or ``'identity'`` (per head).
        similarity: ``'dot'`` or ``'cosine'`` (learnt per-head scale).
        mask_self: Exclude each token's own key; every stage needs
            ``sr_ratio`` 1 (a reduced key is no query's own position).
        **kwargs: ``MixVisionTransformer`` arguments.
    """

    def __init__(self, *args, qkv_mode: str = 'separate',
                 similarity: str = 'dot', mask_self: bool = False,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        blocks = [block for stage in self.layers for block in stage[1]]
        _swap(blocks, qkv_mode, similarity, mask_self)


@MODELS.register_module()
class QKVVisionTransformer(VisionTransformer):
    """mmseg's ViT with the Q/K/V switch (the class token's own key is
    masked too with ``mask_self``).

    Args:
        qkv_mode, similarity, mask_self: As :class:`QKVMixVisionTransformer`.
        **kwargs: ``VisionTransformer`` arguments.
    """

    def __init__(self, *args, qkv_mode: str = 'separate',
                 similarity: str = 'dot', mask_self: bool = False,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _swap(self.layers, qkv_mode, similarity, mask_self)
        # the patch grid, for recording (ViT's blocks get no hw_shape)
        self.patch_embed.register_forward_hook(self._set_grid)

    def _set_grid(self, module, inputs, output: Tuple) -> None:
        for block in self.layers:
            block.attn.token_grid = tuple(output[1])


# mmseg's own twin of the token layer registers from the mmseg glue (the
# layers never import mmseg); mmcv's MultiheadAttention registers with the
# layer.
register_twin(
    StockTwin(layer='mha',
              qualname='mmseg.models.backbones.mit.'
              'EfficientMultiheadAttention',
              label='mmseg EfficientMultiheadAttention', convert=from_stock))
