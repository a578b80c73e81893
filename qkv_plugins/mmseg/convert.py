"""Convert NLHead / CCHead / DNLHead / GCHead checkpoints into AttentionHead
ones."""
from typing import Dict, Mapping, Tuple

from torch import Tensor

from ..layers.context_block import CONTEXT_BLOCK_KEYS, context_block_options
from ..layers.convert import CRISS_CROSS_KEYS, NON_LOCAL_KEYS, rename_keys
from .convert_dnl import DNL_KEYS, dnl_attention_config

# stock head's attention module prefix -> (our layer type, key map)
STOCK_HEADS = {
    'decode_head.nl_block.': ('QKVNonLocal2d', NON_LOCAL_KEYS),
    'decode_head.cca.': ('QKVCrissCrossAttention', CRISS_CROSS_KEYS),
    'decode_head.dnl_block.': ('QKVDisentangledNonLocal2d', DNL_KEYS),
    'decode_head.gc_block.': ('QKVContextBlock', CONTEXT_BLOCK_KEYS),
}
OUR_PREFIX = 'decode_head.attention.'


def convert_head_state_dict(
        state_dict: Mapping[str, Tensor]) -> Tuple[Dict[str, Tensor], dict]:
    """Rename a stock NLHead/CCHead/DNLHead/GCHead model's keys for
    AttentionHead.

    Returns:
        ``(state_dict, attention)``: the renamed state dict and the
        ``attention=`` config of the AttentionHead it fits (``use_scale`` and
        ``recurrence`` are not stored in weights: keep the stock config's;
        DNLHead's ``temperature`` is not either: the config names its
        default, 0.05).
    """
    found = [p for p in STOCK_HEADS if any(k.startswith(p) for k in state_dict)]
    if len(found) != 1:
        raise ValueError('expected a checkpoint whose decode head is NLHead '
                         '(decode_head.nl_block.*), CCHead (decode_head.'
                         'cca.*), DNLHead (decode_head.dnl_block.*) or '
                         'GCHead (decode_head.gc_block.*), '
                         f'found attention prefixes {found}')
    prefix = found[0]
    layer_type, table = STOCK_HEADS[prefix]
    inner = {k[len(prefix):]: v for k, v in state_dict.items()
             if k.startswith(prefix)}
    converted = {k: v for k, v in state_dict.items() if not k.startswith(prefix)}
    converted.update({OUR_PREFIX + k: v
                      for k, v in rename_keys(inner, table).items()})
    return converted, _attention_config(layer_type, inner)


def _attention_config(layer_type: str, inner: Mapping[str, Tensor]) -> dict:
    if layer_type == 'QKVContextBlock':  # GCHead: ratio, fusion from weights
        return dict(type=layer_type, **context_block_options(inner))
    if layer_type == 'QKVDisentangledNonLocal2d':
        return dnl_attention_config(inner)  # temperature: DNLHead's 0.05
    if layer_type == 'QKVCrissCrossAttention':
        weight = inner['query_conv.weight']
        return dict(type=layer_type, qkv_mode='separate',
                    reduction=weight.shape[1] // weight.shape[0])
    weight = inner['g.conv.weight']
    mode = 'separate' if 'theta.conv.weight' in inner else 'identity_qk'
    config = dict(type=layer_type, qkv_mode=mode,
                  reduction=weight.shape[1] // weight.shape[0])
    if mode == 'identity_qk':
        config['use_scale'] = False  # mmcv's gaussian mode never scales
    return config
