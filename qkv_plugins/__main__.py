"""``python -m qkv_plugins [COMMAND] [ARGS ...]``: every user-facing command
(``--help`` lists them; :mod:`qkv_plugins.commands` holds the registry).
Without a command it lists the layers, as it always did."""
import sys

from .commands import main

if __name__ == '__main__':
    sys.exit(main())
