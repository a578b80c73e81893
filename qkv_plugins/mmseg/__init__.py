"""MMSegmentation glue; imported by ``import qkv_plugins`` when mmseg is
installed."""
from .attention_head import AttentionHead
from .convert import convert_head_state_dict
from .convert_dnl import from_mmseg_dnl  # noqa: F401
from .dataset import QKVSyntheticDataset
from .diagnostics_hook import AttentionDiagnosticsHook
from .hooks import RNGStateHook, RunStatsHook
from .loss_series_hook import LossSeriesHook
from .transformer_backbones import (QKVMixVisionTransformer,
                                    QKVVisionTransformer)

__all__ = [
    'AttentionDiagnosticsHook', 'AttentionHead', 'LossSeriesHook',
    'QKVSyntheticDataset', 'RNGStateHook', 'RunStatsHook',
    'convert_head_state_dict', 'QKVMixVisionTransformer',
    'QKVVisionTransformer'
]
