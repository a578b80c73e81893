"""Pure analysis over tensors and files: FLOPs, the benchmark table."""
from .flops import EXTRA_FLOP_HANDLES, count_flops

__all__ = ['EXTRA_FLOP_HANDLES', 'count_flops']
