"""Train a segmentor from a config (mmseg's tools/train.py, with qkv_plugins'
fixes for the pinned stack: CPU distributed, safe checkpoint loading, a
locked work dir, finished runs left finished).

Thin entry point; the same as ``python -m qkv_plugins train``.
"""
import sys

from qkv_plugins.commands.train import main

if __name__ == '__main__':
    sys.exit(main())
