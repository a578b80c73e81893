"""Turn mmcv's ``NonLocal2d`` and ``CrissCrossAttention`` into our layers.

The key maps here serve both module conversion (:func:`from_mmcv`) and
checkpoint conversion (``tools/convert_mmseg_checkpoint.py``).
"""
from typing import Dict, Mapping, Tuple

import torch.nn as nn
from torch import Tensor

from .criss_cross import QKVCrissCrossAttention
from .non_local import QKVNonLocal2d

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
# mmcv NonLocal2d mode -> (our qkv_mode, whether mmcv scales the logits)
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
            raise KeyError(f'no conversion for mmcv key {key!r}; known '
                           f'prefixes: {[old for old, _ in table]}')
    return renamed


def is_mmcv_criss_cross(module: nn.Module) -> bool:
    # Matched by name: importing mmcv.ops needs the compiled ops.
    return (type(module).__name__ == 'CrissCrossAttention'
            and type(module).__module__.startswith('mmcv.'))


def from_mmcv(module: nn.Module) -> nn.Module:
    """Our layer with the weights of an mmcv attention module.

    Args:
        module: mmcv ``NonLocal2d`` (``embedded_gaussian`` → ``separate``;
            ``gaussian`` → ``identity_qk`` without scaling, as mmcv) or
            ``CrissCrossAttention`` (→ ``separate``, ``recurrence=1``).

    Returns:
        A :class:`QKVNonLocal2d` or :class:`QKVCrissCrossAttention` that
        computes the same function, on the module's device and dtype.
    """
    from mmcv.cnn import NonLocal2d
    if isinstance(module, NonLocal2d):
        layer, table = _non_local_from_mmcv(module), NON_LOCAL_KEYS
    elif is_mmcv_criss_cross(module):
        layer = QKVCrissCrossAttention(module.in_channels)
        table = CRISS_CROSS_KEYS
    else:
        raise TypeError('from_mmcv converts mmcv NonLocal2d or '
                        f'CrissCrossAttention, not {type(module).__name__}')
    state = rename_keys(module.state_dict(), table)
    param = next(module.parameters())
    layer.to(device=param.device, dtype=param.dtype)
    layer.load_state_dict(state)
    return layer.train(module.training)


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


def _non_local_from_mmcv(module: nn.Module) -> QKVNonLocal2d:
    options = non_local_options(module.mode, module.use_scale,
                                module.sub_sample)
    return QKVNonLocal2d(
        module.in_channels,
        reduction=module.reduction,
        conv_cfg=module.conv_out.conv_cfg,
        norm_cfg=module.conv_out.norm_cfg,
        **options)
