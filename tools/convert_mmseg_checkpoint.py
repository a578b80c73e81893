"""Convert an NLHead/CCHead/DNLHead checkpoint for AttentionHead (separate
mode).

Thin entry point; the same as ``python -m qkv_plugins convert-checkpoint``.
"""
import sys

from qkv_plugins.commands.convert_checkpoint import main

if __name__ == '__main__':
    sys.exit(main())
