"""Benchmark our layers against mmcv's blocks (forward + backward).

Thin entry point; the same as ``python -m qkv_plugins benchmark-layers``.
"""
import sys

from qkv_plugins.commands.benchmark_layers import main

if __name__ == '__main__':
    sys.exit(main())
