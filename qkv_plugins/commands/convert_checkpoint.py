"""Convert an NLHead/CCHead/DNLHead checkpoint for AttentionHead (separate mode).

Usage:
    python tools/convert_mmseg_checkpoint.py IN.pth OUT.pth
"""
import argparse
from typing import Optional, Sequence

import torch

from ..io import atomic_path
from ..mmseg import convert_head_state_dict


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src',
                        help='checkpoint of a NLHead, CCHead or DNLHead model')
    parser.add_argument('dst', help='where to write the converted checkpoint')
    args = parser.parse_args(argv)
    checkpoint = torch.load(args.src, map_location='cpu', weights_only=True)
    state_dict = checkpoint.get('state_dict', checkpoint)
    converted, attention = convert_head_state_dict(state_dict)
    # Optimizer state is keyed by the old parameters: leave it behind.
    out = dict(meta=checkpoint.get('meta', {}), state_dict=converted)
    with atomic_path(args.dst) as tmp:
        torch.save(out, tmp)
    print(f'wrote {args.dst}; use it with decode_head=dict(type='
          f"'AttentionHead', attention={attention}, ...)")


if __name__ == '__main__':
    main()
