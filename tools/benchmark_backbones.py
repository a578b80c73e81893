"""Transformer backbones against mmseg's stock ones: forward + backward time
and extra peak memory.

Thin entry point; the same as ``python -m qkv_plugins benchmark-backbones``.
"""
import sys

from qkv_plugins.bench.backbones import main

if __name__ == '__main__':
    sys.exit(main())
