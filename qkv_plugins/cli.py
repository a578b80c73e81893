"""argparse types shared by the tools: counts with a lower bound, model
specs."""
import argparse
import re
from typing import Callable, Tuple


def at_least(low, kind: Callable = int) -> Callable[[str], object]:
    """argparse type: ``kind(text)`` no smaller than ``low``."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f'{text!r} is not a {kind.__name__}') from None
        if value < low:
            raise argparse.ArgumentTypeError(f'{text} is below {low}')
        return value

    return parse


def config_and_checkpoint(text: str) -> Tuple[str, str]:
    """argparse type for ``CONFIG.py:CHECKPOINT``: split after the config's
    ``.py``, so that checkpoint URLs (``https://...``) and Windows-style
    paths keep their colons."""
    match = re.fullmatch(r'(.+?\.py):(.+)', text)
    if match is None:
        raise argparse.ArgumentTypeError(
            f'{text!r} is not CONFIG.py:CHECKPOINT (a config file ending in '
            '.py, a colon, then a checkpoint path or URL)')
    return match.group(1), match.group(2)
