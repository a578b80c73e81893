"""Benchmarking: layers against their stock twins, end-to-end mmseg steps,
timing in turns, extra peak memory, FLOPs."""
from .flops import EXTRA_FLOP_HANDLES, count_flops

__all__ = [EXTRA_FLOP_HANDLES, count_flops]
