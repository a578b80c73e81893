"""Benchmark our layers against mmcv's blocks (forward + backward).

Writes benchmarks/layers-<device>.md and .csv and a log-log plot of time and
memory against positions. Every layer of the catalog; on CPU: fp32 at 32x32, 64x64, 48x80,
97x97 with C=256. On a GPU: bf16 autocast at 64x128, 97x97, 128x256 (B=1), 256x512
(B=1) with C=512.

With --end-to-end: a training step of stock MMSegmentation R-50-D8 with each
decode head (FCN, NLHead, CCHead, AttentionHead with our layers), written to
benchmarks/e2e-<device>.md and .csv. GPU: B=2, 512x1024, bf16 autocast; CPU:
B=1, 256x512, fp32.

Examples:
    python tools/benchmark_layers.py                 # default shapes here
    python tools/benchmark_layers.py --quick         # one shape, for a look
    python tools/benchmark_layers.py --end-to-end    # R-50-D8 training steps
    python tools/benchmark_layers.py --end-to-end --e2e-size 128x256 --e2e-infer
"""
import argparse
from typing import Optional, Sequence

from ..cli import at_least
from ..layers.catalog import names
from . import command_line


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='\n'.join(__doc__.splitlines()[1:]))
    parser.add_argument('--device', default=None,
                        help='cpu or cuda (default: cuda if available)')
    parser.add_argument('--dtype', choices=('float32', 'bfloat16', 'float16'),
                        default=None,
                        help='default: float32 on CPU, bfloat16 on GPU')
    parser.add_argument('--layers', nargs='+', choices=names(),
                        default=names(),
                        help='catalog names (default: all)')
    parser.add_argument('--quick', action='store_true',
                        help='first shape only, two modes')
    parser.add_argument('--repeats', type=at_least(1, int), default=None,
                        help='timed turns, default: 5 (layers), 3 '
                        '(end-to-end)')
    parser.add_argument('--warmup', type=at_least(0, int), default=None,
                        help='default: 2 (layers), 1 (end-to-end)')
    parser.add_argument('--min-seconds', type=at_least(0, float),
                        default=None,
                        help='layers: more turns until a case and its '
                        'reference took this long (default: 3)')
    parser.add_argument('--end-to-end', action='store_true',
                        help='time R-50-D8 training steps with each head')
    parser.add_argument('--e2e-size', default=None, metavar='HxW',
                        help='end-to-end crop (default: 512x1024 on GPU, '
                        '256x512 on CPU)')
    parser.add_argument('--e2e-batch', type=int, default=None,
                        help='end-to-end batch (default: 2 on GPU, 1 on CPU)')
    parser.add_argument('--e2e-infer', action='store_true',
                        help='also time whole-image inference (B=1, no grad)')
    parser.add_argument('--e2e-infer-size', default=None, metavar='HxW',
                        help='inference image (default: 1024x2048 on GPU, '
                        'the crop on CPU)')
    parser.add_argument('--config-root', default='configs',
                        help='where the end-to-end heads\' qkv configs live')
    parser.add_argument('--out-dir', default='benchmarks')
    args = parser.parse_args(argv)
    # imported after parsing: a bad argument fails fast, without torch
    from ..bench.report import main_from_args
    main_from_args(args, command_line('benchmark-layers', []))


if __name__ == '__main__':
    main()
