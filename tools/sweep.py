"""Run a matrix of configs × seeds with tools/train.py.

Thin entry point; the same as ``python -m qkv_plugins sweep``.
"""
import sys

from qkv_plugins.commands.sweep import main

if __name__ == '__main__':
    sys.exit(main())
