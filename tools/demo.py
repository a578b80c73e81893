"""``make demo``: the embedded study end to end (data → sweep → test-split
evaluation → table).

Thin entry point; the same as ``python -m qkv_plugins demo``.
"""
import sys

from qkv_plugins.study.demo import main

if __name__ == '__main__':
    sys.exit(main())
