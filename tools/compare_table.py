"""Compare a study table with a published one, bit for bit (exit 0 when
every run of the reference matches).

Thin entry point; the same as ``python -m qkv_plugins compare-table``.
"""
import sys

from qkv_plugins.study.compare_tables import main

if __name__ == '__main__':
    sys.exit(main())
