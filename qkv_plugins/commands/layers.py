"""List the registered layers, their options and per-mode parameter counts
(``python -m qkv_plugins``, ``python -m qkv_plugins --in-channels 512``)."""
import argparse
from typing import Optional, Sequence

from ..layers.catalog import describe


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        description='List the registered layers, their options and '
        'per-mode parameter counts.')
    parser.add_argument('--in-channels', type=int, default=512,
                        help='channels for the parameter counts (default: '
                        '512, as in NLHead/CCHead)')
    args = parser.parse_args(argv)
    print(describe(args.in_channels))


if __name__ == '__main__':
    main()
