"""Turn stock attention modules into our layers (:func:`from_mmcv`), and the
key maps that also convert checkpoints (``tools/convert_mmseg_checkpoint.py``).

Which stock type becomes which layer is the catalog's: each layer module
registers its twins (:class:`~.catalog.StockTwin`) with their converters.
"""
from typing import Dict, Mapping, Tuple

import torch.nn as nn
from torch import Tensor

from .catalog import twin_for

# mmcv key prefix -> our key prefix
NON_LOCAL_KEYS: Tuple[Tuple[str, str], ...] = (
    ('g.conv.', 'proj.value.'),
    ('theta.conv.', 'proj.query.'),
    ('phi.conv.', 'proj.key.'),
    ('conv_out.', 'out.'),
)
CRISS_CROSS_KEYS: Tuple[Tuple[str, str], ...] = (
    ('query_conv.', 'proj.query.'),
    ('key_conv.', 'proj.key.'),
    ('value_conv.', 'proj.value.'),
    ('gamma.scale', 'gamma'),
)
# mmcv NonLocal2d mode -> our qkv_mode
NON_LOCAL_MODES = {'embedded_gaussian': 'separate', 'gaussian': 'identity_qk'}


def rename_keys(state_dict: Mapping[str, Tensor],
                table: Tuple[Tuple[str, str], ...]) -> Dict[str, Tensor]:
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
                   table: Tuple[Tuple[str, str], ...]) -> nn.Module:
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
            mmseg installed, mmseg's ``DisentangledNonLocal2d``.

    Returns:
        The catalogued layer that computes the same function, on the
        module's device and dtype.
    """
    return twin_for(module).convert(module)


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
