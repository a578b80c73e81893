"""Generate the embedded dataset (the only writer of data/qkv_synthetic).

Thin entry point; the same as ``python -m qkv_plugins make-dataset``.
"""
import sys

from qkv_plugins.commands.make_dataset import main

if __name__ == '__main__':
    sys.exit(main())
