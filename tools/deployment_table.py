"""Check every block's deployment and write the table (ONNX, torch.compile).

Thin entry point; the same as ``python -m qkv_plugins deployment-table``.
"""
import sys

from qkv_plugins.commands.deployment_table import main

if __name__ == '__main__':
    sys.exit(main())
