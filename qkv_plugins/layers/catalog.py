"""What the layers offer: options with defaults, and parameters per mode."""
import inspect
from typing import Dict, List, Type

import torch.nn as nn

from .criss_cross import QKVCrissCrossAttention
from .non_local import QKVNonLocal2d
from .options import QKV_MODES

LAYER_TYPES: List[Type[nn.Module]] = [QKVNonLocal2d, QKVCrissCrossAttention]


def layer_options(cls: Type[nn.Module]) -> Dict[str, object]:
    """Keyword options of a layer and their defaults."""
    params = inspect.signature(cls).parameters.values()
    return {p.name: p.default for p in params if p.kind == p.KEYWORD_ONLY}


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def parameters_per_mode(cls: Type[nn.Module], in_channels: int,
                        **options) -> Dict[str, int]:
    """Parameter count of ``cls(in_channels, qkv_mode=m, **options)`` for
    every mode ``m``."""
    return {
        mode: count_parameters(cls(in_channels, qkv_mode=mode, **options))
        for mode in QKV_MODES
    }


def describe(in_channels: int) -> str:
    """A text listing of every layer, its options and parameter counts."""
    lines = []
    for cls in LAYER_TYPES:
        lines.append(f'{cls.__name__}  (registry: mmengine MODELS, '
                     f'plugin abbr {cls._abbr_!r})')
        for name, default in layer_options(cls).items():
            lines.append(f'  {name} = {default!r}')
        lines.append(f'  parameters at in_channels={in_channels} '
                     '(dot similarity; cosine adds 1):')
        for mode, count in parameters_per_mode(cls, in_channels).items():
            lines.append(f'    {mode:<12} {count:>12,}')
    return '\n'.join(lines)
