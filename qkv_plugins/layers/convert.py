"""Turn stock attention modules into our layers (:func:`from_mmcv`) and
stock heads' checkpoints into AttentionHead ones
(:func:`convert_head_state_dict`).

Which stock type becomes which layer, by which key map, in which head, is
the catalog's: each block's module registers its twins
(:class:`~.catalog.StockTwin`) with everything conversion needs; nothing
here knows a block.
"""
from typing import Dict, Mapping, Tuple

import torch.nn as nn
from torch import Tensor

from .catalog import KeyMap, entry_named, twin_for, twins

# where AttentionHead keeps its attention layer
OUR_PREFIX = 'decode_head.attention.'


def rename_keys(state_dict: Mapping[str, Tensor],
                table: KeyMap) -> Dict[str, Tensor]:
    """Rename keys by prefix; a key no prefix matches raises KeyError."""
    renamed = {}
    for key, value in state_dict.items():
        for old, new in table:
            if key.startswith(old):
                renamed[new + key[len(old):]] = value
                break
        else:
            raise KeyError(f'no conversion for stock key {key!r}; known '
                           f'prefixes: {[old for old, _ in table]}')
    return renamed


def load_converted(layer: nn.Module, module: nn.Module,
                   table: KeyMap) -> nn.Module:
    """``layer`` with ``module``'s renamed weights, device, dtype and mode."""
    param = next(module.parameters())
    layer.to(device=param.device, dtype=param.dtype)
    layer.load_state_dict(rename_keys(module.state_dict(), table))
    return layer.train(module.training)


def from_mmcv(module: nn.Module) -> nn.Module:
    """Our layer with the weights of a stock attention module.

    Args:
        module: Any stock twin in the catalog: mmcv ``NonLocal2d``
            (``embedded_gaussian`` → ``separate``; ``gaussian`` →
            ``identity_qk`` without scaling, as mmcv), ``CrissCrossAttention``
            (→ ``separate``, ``recurrence=1``), ``ContextBlock``, and, with
            mmseg installed, mmseg's ``DisentangledNonLocal2d`` and the
            transformer attentions (``python -m qkv_plugins layers`` lists
            them).

    Returns:
        The catalogued layer that computes the same function, on the
        module's device and dtype.
    """
    return twin_for(module).convert(module)


def convert_head_state_dict(
        state_dict: Mapping[str, Tensor]) -> Tuple[Dict[str, Tensor], dict]:
    """Rename a stock head model's keys (NLHead, CCHead, DNLHead, GCHead:
    every twin of the catalog with a head) for AttentionHead.

    Returns:
        ``(state_dict, attention)``: the renamed state dict and the
        ``attention=`` config of the AttentionHead it fits (options the
        weights do not hold, e.g. ``use_scale``, ``recurrence`` or DNLHead's
        ``temperature``, are our defaults, which are the stock head's).
    """
    heads = [t for t in twins() if t.head is not None]
    found = [t for t in heads
             if any(k.startswith(t.head.prefix) for k in state_dict)]
    if len(found) != 1:
        known = ', '.join(f'{t.head.label} ({t.head.prefix}*)' for t in heads)
        raise ValueError(f'expected a checkpoint whose decode head is one of '
                         f'{known}; found '
                         f'{[t.head.prefix for t in found] or "none of them"}')
    twin = found[0]
    prefix = twin.head.prefix
    inner = {k[len(prefix):]: v for k, v in state_dict.items()
             if k.startswith(prefix)}
    converted = {k: v for k, v in state_dict.items()
                 if not k.startswith(prefix)}
    converted.update({OUR_PREFIX + k: v
                      for k, v in rename_keys(inner, twin.keys).items()})
    options = twin.options(inner) if twin.options else {}
    return converted, dict(type=entry_named(twin.layer).cls.__name__,
                           **options)
