"""Generate the embedded dataset (the only writer of data/qkv_synthetic).

Same seed → byte-identical files. Written atomically with a manifest.
"""
import argparse

from qkv_plugins.synthetic import DEFAULT_ROOT, TRACKS, make_dataset
from qkv_plugins.synthetic.preview import render_samples
from qkv_plugins.synthetic.writer import SPLITS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default=DEFAULT_ROOT,
                        help=f'output folder (default: {DEFAULT_ROOT})')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--tracks', nargs='+', choices=sorted(TRACKS),
                        default=sorted(TRACKS))
    for split, count in SPLITS.items():
        parser.add_argument(f'--num-{split}', type=int, default=count,
                            help=f'{split} images per track (default: {count})')
    parser.add_argument('--preview', metavar='DIR',
                        help='also write DIR/samples-<track>.png (4 samples '
                        'with labels; unlabelled pixels dark grey)')
    args = parser.parse_args()
    if args.preview:
        for track in args.tracks:
            path = render_samples(track, 4, f'{args.preview}/samples-'
                                  f'{track}.png', seed=args.seed)
            print(f'[make_dataset] preview: {path}')
    make_dataset(args.out, seed=args.seed, tracks=args.tracks,
                 splits={split: getattr(args, f'num_{split}')
                         for split in SPLITS})


if __name__ == '__main__':
    main()
