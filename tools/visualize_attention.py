"""Draw where chosen query pixels attend, for one or more trained variants.

Thin entry point; the same as ``python -m qkv_plugins visualize``.
"""
import sys

from qkv_plugins.commands.visualize import main

if __name__ == '__main__':
    sys.exit(main())
