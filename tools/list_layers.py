"""List the registered layers, their options and per-mode parameter counts.

Thin entry point; the same as ``python -m qkv_plugins layers``.
"""
import sys

from qkv_plugins.commands.layers import main

if __name__ == '__main__':
    sys.exit(main())
