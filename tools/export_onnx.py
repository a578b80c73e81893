"""Export a segmentor to ONNX and check it in ONNX Runtime against PyTorch.

Thin entry point; the same as ``python -m qkv_plugins export-onnx``.
"""
import sys

from qkv_plugins.commands.export_onnx import main

if __name__ == '__main__':
    sys.exit(main())
