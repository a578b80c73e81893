"""The layers are found through MMEngine's registries, with or without scope."""
import pytest
import torch
from mmcv.cnn import build_plugin_layer
from mmengine.registry import DefaultScope, MODELS

from qkv_plugins import QKVCrissCrossAttention, QKVNonLocal2d

CASES = [(QKVNonLocal2d, 'qkv_nonlocal'), (QKVCrissCrossAttention, 'qkv_cca')]


@pytest.mark.parametrize('cls,abbr', CASES)
@pytest.mark.parametrize('scope', [None, 'mmseg', 'mmdet'])
def test_build_plugin_layer_with_postfix(cls, abbr, scope):
    cfg = dict(type=cls.__name__, qkv_mode='shared_qk')
    if scope is None:
        name, layer = build_plugin_layer(cfg, postfix='_2', in_channels=16)
    else:
        with DefaultScope.overwrite_default_scope(scope):
            name, layer = build_plugin_layer(cfg, postfix='_2',
                                             in_channels=16)
    assert name == f'{abbr}_2'
    assert isinstance(layer, cls)
    assert layer.proj.qkv_mode == 'shared_qk'


@pytest.mark.parametrize('cls,abbr', CASES)
def test_downstream_registries_see_root_layers(cls, abbr):
    from mmseg.registry import MODELS as SEG_MODELS
    assert SEG_MODELS.get(cls.__name__) is cls
    assert MODELS.get(cls.__name__) is cls
    layer = SEG_MODELS.build(dict(type=cls.__name__, in_channels=16))
    assert layer(torch.randn(1, 16, 3, 3)).shape == (1, 16, 3, 3)
