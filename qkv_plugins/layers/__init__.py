"""Plugin attention layers with a Q/K/V projection switch.

Depends on torch, mmengine's registry and ``mmcv.cnn`` helpers only, never on
mmseg or ``mmcv.ops``.
"""
from .convert import from_mmcv
from .criss_cross import QKVCrissCrossAttention
from .kernels import criss_cross_attention, dense_attention
from .non_local import QKVNonLocal2d
from .options import QKV_MODES, SIMILARITIES
from .recording import record_attention

__all__ = [
    'QKVNonLocal2d', 'QKVCrissCrossAttention', 'from_mmcv', 'record_attention',
    'dense_attention', 'criss_cross_attention', 'QKV_MODES', 'SIMILARITIES'
]
