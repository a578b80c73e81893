"""Draw where chosen query pixels attend, for one or more trained variants.

Examples:
    python tools/visualize_attention.py \
        CONFIG_A:CKPT_A CONFIG_B:CKPT_B --sample cyclic:0 --out attn.png
    python tools/visualize_attention.py CONFIG:CKPT \
        --image docs/images/chelsea.png --queries 150,220 60,100
"""
import argparse
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image

from ..cli import config_and_checkpoint
from ..data import DEFAULT_ROOT
from ..layers import entry_for, record_attention
from ..stats.pictures import draw
from ..study.names import describe_config


def load_image(args) -> tuple:
    """(RGB uint8 image, path) from --image or --sample track:index."""
    if args.image:
        path = Path(args.image)
    else:
        track, index = args.sample.split(':')
        path = Path(args.data_root) / track / 'img_dir' / 'val' / \
            f'{int(index):05d}.png'
    if not path.is_file():
        raise SystemExit(f'no image at {path} (for --sample, generate the '
                         'data: python tools/make_dataset.py)')
    return np.asarray(Image.open(path).convert('RGB')), path


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='\n'.join(__doc__.splitlines()[1:]))
    parser.add_argument('models', nargs='+', metavar='CONFIG:CHECKPOINT',
                        type=config_and_checkpoint)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--image', help='any RGB image')
    source.add_argument('--sample', help='embedded val sample, TRACK:INDEX')
    parser.add_argument('--data-root', default=DEFAULT_ROOT)
    parser.add_argument('--queries', nargs='+', default=None,
                        help='query pixels as y,x (default: 3 points)')
    parser.add_argument('--layer', default='decode_head.attention',
                        help='module name of the attention layer')
    parser.add_argument('--out', default='attention.png')
    args = parser.parse_args(argv)

    from mmseg.apis import inference_model, init_model
    image, path = load_image(args)
    height, width = image.shape[:2]
    queries = ([tuple(int(v) for v in q.split(',')) for q in args.queries]
               if args.queries else [(height // 4, width // 4),
                                     (height // 2, width // 2),
                                     (3 * height // 4, 2 * width // 3)])
    variants = {}
    for config, checkpoint in args.models:
        model = init_model(config, checkpoint, device='cpu')
        layer = dict(model.named_modules()).get(args.layer)
        if layer is None:
            raise SystemExit(f'{config} has no module {args.layer!r}')
        shapes = []
        handle = layer.register_forward_hook(
            lambda module, inputs, output: shapes.append(inputs[0].shape[-2:]))
        with torch.no_grad(), record_attention(model) as maps:
            inference_model(model, str(path))
        handle.remove()
        entry = entry_for(layer)  # a layer the catalog lacks: an error
        hops = maps[args.layer][-entry.hops(layer):]  # the last forward
        _, algo, variant = describe_config(Path(config).stem)
        label = f'{algo} {variant}' if variant != '-' else algo
        if label in variants:  # same head twice: tell them apart
            label = f'{label} ({len(variants)})'
        variants[label] = (entry, hops, tuple(shapes[-1]))
    draw(image, queries, variants, args.out)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
