"""A decode head that hosts any attention layer (NLHead/CCHead structure)."""
import inspect

import torch
from mmseg.models.decode_heads.fcn_head import FCNHead
from mmseg.registry import MODELS
from torch import Tensor


@MODELS.register_module()
class AttentionHead(FCNHead):
    """conv → attention → conv → optional concat with input → classifier.

    With ``attention=dict(type='QKVNonLocal2d')`` this is mmseg's ``NLHead``;
    with ``dict(type='QKVCrissCrossAttention', recurrence=2)`` its ``CCHead``
    (see ``tools/convert_mmseg_checkpoint.py``).

    Args:
        attention: Config of the attention layer. The head fills in
            ``in_channels`` (= ``channels``) and, where the layer takes them
            and the config does not set them, the head's ``conv_cfg`` and
            ``norm_cfg`` (as NLHead does).
        **kwargs: FCNHead arguments except ``num_convs`` (always 2).
    """

    def __init__(self, attention: dict, **kwargs) -> None:
        if 'num_convs' in kwargs:
            raise ValueError('AttentionHead always has num_convs=2 (conv → '
                             f'attention → conv); got num_convs='
                             f'{kwargs["num_convs"]!r}')
        super().__init__(num_convs=2, **kwargs)
        if not isinstance(attention, dict) or 'type' not in attention:
            raise ValueError('AttentionHead needs attention=dict(type=...), '
                             f'got {attention!r}')
        cfg = dict(attention, in_channels=self.channels)
        layer_cls = MODELS.get(cfg['type'])
        if layer_cls is None:
            raise KeyError(f'attention type {cfg["type"]!r} is not registered '
                           "(did you set custom_imports=dict(imports=["
                           "'qkv_plugins'])?)")
        accepted = inspect.signature(layer_cls).parameters
        for key in ('conv_cfg', 'norm_cfg'):
            if key in accepted and key not in cfg:
                cfg[key] = getattr(self, key)
        # Built on a fork of the RNG: whatever the layer draws, the parts
        # built and initialised after it (the backbone's init runs later)
        # start alike for every layer and mode at one seed, so that seeds
        # pair variants.
        with torch.random.fork_rng(devices=[]):
            self.attention = MODELS.build(cfg)

    def forward(self, inputs) -> Tensor:
        x = self._transform_inputs(inputs)
        output = self.convs[0](x)
        output = self.attention(output)
        output = self.convs[1](output)
        if self.concat_input:
            output = self.conv_cat(torch.cat([x, output], dim=1))
        return self.cls_seg(output)
