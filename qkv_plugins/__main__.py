"""``python -m qkv_plugins``: list the registered layers, their options and
per-mode parameter counts."""
import argparse

from .layers.catalog import describe


def main() -> None:
    parser = argparse.ArgumentParser(
        prog='python -m qkv_plugins',
        description='List the registered layers, their options and '
        'per-mode parameter counts.')
    parser.add_argument('--in-channels', type=int, default=512,
                        help='channels for the parameter counts (default: '
                        '512, as in NLHead/CCHead)')
    args = parser.parse_args()
    print(describe(args.in_channels))


if __name__ == '__main__':
    main()
