"""Benchmark torch.compile against eager, per block (CPU training step).

Thin entry point; the same as ``python -m qkv_plugins benchmark-compile``.
"""
import sys

from qkv_plugins.commands.benchmark_compile import main

if __name__ == '__main__':
    sys.exit(main())
