"""Evaluate a checkpoint on a config's test set (mmseg's tools/test.py)."""
from qkv_plugins.commands.test import main

if __name__ == '__main__':
    main()
