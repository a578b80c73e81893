"""Generate the embedded dataset (the only writer of data/qkv_synthetic).

Same seed → byte-identical files. Written atomically with a manifest; an
existing folder at --out is replaced only if this tool wrote it.
"""
import argparse
from typing import Optional, Sequence

from ..cli import at_least
from ..data import DEFAULT_ROOT, SPLITS, TRACKS, DatasetError, make_dataset
from ..data.preview import render_samples


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default=DEFAULT_ROOT,
                        help=f'output folder (default: {DEFAULT_ROOT}); '
                        'must be absent, empty or written by this tool')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--tracks', nargs='+', choices=sorted(TRACKS),
                        default=sorted(TRACKS))
    for split, count in SPLITS.items():
        parser.add_argument(f'--num-{split}', type=at_least(1),
                            default=count,
                            help=f'{split} images per track (default: {count})')
    parser.add_argument('--preview', metavar='DIR',
                        help='also write DIR/samples-<track>.png (4 samples '
                        'with labels; unlabelled pixels dark grey)')
    args = parser.parse_args(argv)
    if args.preview:
        for track in args.tracks:
            path = render_samples(track, 4, f'{args.preview}/samples-'
                                  f'{track}.png', seed=args.seed)
            print(f'[make_dataset] preview: {path}')
    try:
        make_dataset(args.out, seed=args.seed, tracks=args.tracks,
                     splits={split: getattr(args, f'num_{split}')
                             for split in SPLITS})
    except DatasetError as error:
        raise SystemExit(f'make_dataset: {error}') from None


if __name__ == '__main__':
    main()
