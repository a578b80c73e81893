"""``python -m qkv_plugins.check``: is this node ready?

Prints PASS/FAIL/SKIP per item, writes a Markdown summary with the layer
and end-to-end tables beside it, and exits non-zero on any FAIL. On a GPU:
bf16/fp16 correctness, the layer benchmark at the GPU shapes, the R-50-D8
step and whole-image inference, a one-GPU distributed training with
evaluation and resume, the CUDA tests. On a CPU-only machine the same items
at CPU sizes.
"""
from .items import Item
from .run import ITEMS, run_check

__all__ = ['ITEMS', 'Item', 'run_check']
