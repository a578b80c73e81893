"""Benchmarking: layers against their stock twins, end-to-end mmseg steps,
timing in turns, extra peak memory. FLOP counting lives in
:mod:`qkv_plugins.stats.flops` (below the hooks that record it);
``count_flops`` stays importable from here."""
from ..stats.flops import EXTRA_FLOP_HANDLES, count_flops

__all__ = ['EXTRA_FLOP_HANDLES', 'count_flops']
