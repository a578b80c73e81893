"""Turn mmseg's ``DisentangledNonLocal2d`` (``DNLHead``) into our layer.

Lives with the mmseg glue because the stock block is mmseg's, not mmcv's
(layers never import mmseg); importing it registers the twin in the layer
catalog, so :func:`qkv_plugins.from_mmcv` and the layer benchmark find it.
:data:`DNL_KEYS` serves both module conversion (:func:`from_mmseg_dnl`) and
checkpoint conversion (:func:`~qkv_plugins.layers.convert.convert_head_state_dict`).
"""
from typing import Mapping

import torch.nn as nn
from torch import Tensor

from ..layers.catalog import KeyMap, StockHead, StockTwin, register_twin
from ..layers.convert import load_converted
from ..layers.non_local import NON_LOCAL_KEYS
from ..layers.disentangled_non_local import (DEFAULT_TEMPERATURE,
                                             QKVDisentangledNonLocal2d)

# mmseg key prefix -> our key prefix (mmcv NonLocal2d's, plus the unary conv)
DNL_KEYS: KeyMap = NON_LOCAL_KEYS + (
    ('conv_mask.', 'unary.'), )
# The one DisentangledNonLocal2d mode we reproduce -> our qkv_mode
DNL_MODES = {'embedded_gaussian': 'separate'}
LAYER_TYPE = 'QKVDisentangledNonLocal2d'


def _check_convertible(mode: str, sub_sample: bool) -> str:
    if mode not in DNL_MODES or sub_sample:
        raise ValueError(
            f'cannot convert mmseg DisentangledNonLocal2d with mode={mode!r}, '
            f'sub_sample={sub_sample}: supported is mode='
            f'{", ".join(map(repr, DNL_MODES))} without sub_sample')
    return DNL_MODES[mode]


def from_mmseg_dnl(module: nn.Module) -> QKVDisentangledNonLocal2d:
    """Our layer with the weights of an mmseg ``DisentangledNonLocal2d``.

    Args:
        module: The block of a ``DNLHead`` (``head.dnl_block``), in
            ``embedded_gaussian`` mode without ``sub_sample``.

    Returns:
        A :class:`QKVDisentangledNonLocal2d` (``qkv_mode='separate'``,
        ``similarity='dot'``, the module's reduction, use_scale, temperature,
        conv and norm configs) that computes the same function, on the
        module's device and dtype and in its train/eval state.
    """
    from mmseg.models.decode_heads.dnl_head import DisentangledNonLocal2d
    if not isinstance(module, DisentangledNonLocal2d):
        raise TypeError('from_mmseg_dnl converts mmseg DisentangledNonLocal2d '
                        f'(DNLHead.dnl_block), not {type(module).__name__}')
    qkv_mode = _check_convertible(module.mode, module.sub_sample)
    layer = QKVDisentangledNonLocal2d(
        module.in_channels,
        qkv_mode=qkv_mode,
        reduction=module.reduction,
        use_scale=module.use_scale,
        temperature=module.temperature,
        conv_cfg=module.conv_out.conv_cfg,
        norm_cfg=module.conv_out.norm_cfg)
    return load_converted(layer, module, DNL_KEYS)


def dnl_attention_config(inner: Mapping[str, Tensor]) -> dict:
    """The ``attention=`` config for a DNLHead block's state dict (keys
    without the ``decode_head.dnl_block.`` prefix).

    Neither ``use_scale`` nor ``temperature`` is stored in the weights: the
    config keeps our defaults, which are DNLHead's (``use_scale=True``,
    ``temperature=0.05``; mmseg's DNLNet configs set no other). The mode is
    read from the keys (``gaussian`` has no theta/phi, ``concatenation`` a
    ``concat_project``, ``sub_sample`` wraps g in a Sequential);
    ``dot_product`` has the keys of ``embedded_gaussian`` and cannot be told
    apart from them.
    """
    if any(k.startswith('concat_project.') for k in inner):
        mode = 'concatenation'
    elif any(k.startswith('theta.') for k in inner):
        mode = 'embedded_gaussian'
    else:
        mode = 'gaussian'
    _check_convertible(mode, sub_sample='g.conv.weight' not in inner)
    weight = inner['g.conv.weight']
    return dict(type=LAYER_TYPE, qkv_mode=DNL_MODES[mode],
                reduction=weight.shape[1] // weight.shape[0],
                temperature=DEFAULT_TEMPERATURE)


def _mmseg_dnl(stock: type, channels: int, options: dict):
    """mmseg's block for dot-product cases without the mask (its
    ``embedded_gaussian``); none for cosine or ``mask_self``."""
    if options.get('similarity', 'dot') != 'dot' or options.get('mask_self'):
        return None
    return stock(channels, reduction=2, use_scale=True, mode='embedded_gaussian',
                 temperature=DEFAULT_TEMPERATURE)


def _options_from_state(inner: Mapping[str, Tensor]) -> dict:
    options = dnl_attention_config(inner)
    del options['type']
    return options


_CITYSCAPES = '_r50-d8_4xb2-40k_cityscapes-512x1024.py'
register_twin(
    StockTwin(layer='dnl',
              qualname='mmseg.models.decode_heads.dnl_head.'
              'DisentangledNonLocal2d',
              label='mmseg DisentangledNonLocal2d', convert=from_mmseg_dnl,
              build=_mmseg_dnl, keys=DNL_KEYS,
              head=StockHead(label='DNLHead', prefix='decode_head.dnl_block.',
                             config=f'mmseg::dnlnet/dnl{_CITYSCAPES}',
                             ours=f'qkv_cityscapes/qkv-dnl-separate'
                             f'{_CITYSCAPES}'),
              options=_options_from_state))
