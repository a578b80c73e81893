"""MMSegmentation glue; imported by ``import qkv_plugins`` when mmseg is
installed."""
from .attention_head import AttentionHead
from .convert import convert_head_state_dict
from .dataset import QKVSyntheticDataset
from .hooks import RNGStateHook, RunStatsHook

__all__ = [
    'AttentionHead', 'QKVSyntheticDataset', 'RNGStateHook', 'RunStatsHook',
    'convert_head_state_dict'
]
