"""qkv_plugins: attention plugin layers with a Q/K/V projection switch.

``import qkv_plugins`` registers the layers in MMEngine's root ``MODELS``,
the MMSegmentation glue when mmseg is installed, and the checkpoint-loading
fixes the pinned stack needs (mmengine's types allow-listed; every scheme,
http and open-mmlab included, loads with ``weights_only=True``).
"""
from importlib import import_module
from importlib.util import find_spec

from .compat.requirements import check_torch

check_torch()  # before anything needs a newer torch: a clear ImportError

from . import compat  # noqa: E402
from .layers import (  # noqa: E402
    QKV_MODES, SIMILARITIES, QKVContextBlock, QKVCrissCrossAttention,
    QKVDisentangledNonLocal2d, QKVMultiheadAttention, QKVNonLocal2d,
    from_mmcv, record_attention)

__version__ = '0.1.0'

compat.allow_mmengine_checkpoints()
compat.enforce_weights_only()

def _has_mmcv_ops() -> bool:
    try:
        import_module('mmcv._ext')
    except ImportError:
        return False
    return True


# Why the MMSegmentation glue is not registered, where it is not (mmseg
# imports mmcv's compiled ops: an mmcv built without them cannot host it);
# the layers above are registered either way, and building a config that
# needs the glue raises naming this (training.build_runner).
MMSEG_GLUE_ERROR = None
if find_spec('mmseg') is not None:
    try:
        from . import mmseg  # noqa: F401  (registers AttentionHead)
    except ImportError as error:
        if _has_mmcv_ops():
            raise
        MMSEG_GLUE_ERROR = (
            f'MMSegmentation cannot be imported without mmcv\'s compiled ops '
            f'(mmcv._ext is missing: {error}); reinstall mmcv with '
            f'MMCV_WITH_OPS=1 (README: set-up)')

__all__ = [
    'QKVNonLocal2d', 'QKVCrissCrossAttention', 'QKVDisentangledNonLocal2d',
    'QKVContextBlock', 'QKVMultiheadAttention', 'from_mmcv',
    'record_attention',
    'QKV_MODES', 'SIMILARITIES', '__version__'
]
