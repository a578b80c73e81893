"""Evaluate a checkpoint on a config's test set (mmseg's tools/test.py).

Thin entry point; the same as ``python -m qkv_plugins test``.
"""
import sys

from qkv_plugins.commands.test import main

if __name__ == '__main__':
    sys.exit(main())
