"""``python -m qkv_plugins.check``: see :mod:`qkv_plugins.check`."""
import sys

from .run import main

sys.exit(main())
