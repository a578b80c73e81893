"""Turn study work dirs into the benchmark table (Markdown, CSV, PNG plot).

Thin entry point; the same as ``python -m qkv_plugins table``.
"""
import sys

from qkv_plugins.commands.table import main

if __name__ == '__main__':
    sys.exit(main())
