"""Plugin attention layers with a Q/K/V projection switch, and their catalog.

Depends on torch, mmengine's registry and ``mmcv.cnn`` helpers only, never on
mmseg or ``mmcv.ops``. Importing it registers every layer in MMEngine's root
``MODELS`` and in the catalog (:mod:`.catalog`).
"""
# isort: off  (import order is catalog order: tables, benchmark, listing)
from .non_local import QKVNonLocal2d
from .criss_cross import QKVCrissCrossAttention
from .disentangled_non_local import QKVDisentangledNonLocal2d
from .context_block import QKVContextBlock
from .multihead import QKVMultiheadAttention
# isort: on
from .catalog import (LayerEntry, StockTwin, UnknownLayer, entries,
                      entry_for, entry_named, register_layer, register_twin)
from .convert import from_mmcv
from .kernels import criss_cross_attention, dense_attention
from .options import QKV_MODES, SIMILARITIES
from .recording import record_attention

__all__ = [
    'QKVNonLocal2d', 'QKVCrissCrossAttention', 'QKVDisentangledNonLocal2d',
    'QKVContextBlock', 'QKVMultiheadAttention', 'from_mmcv', 'record_attention', 'dense_attention',
    'criss_cross_attention', 'QKV_MODES', 'SIMILARITIES', 'LayerEntry',
    'StockTwin', 'UnknownLayer', 'entries', 'entry_for', 'entry_named',
    'register_layer', 'register_twin'
]
