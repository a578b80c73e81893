"""Export a segmentor to ONNX and check it in ONNX Runtime against PyTorch.

Builds the model of CONFIG (decode heads, backbone plugins=, switchable
MiT / ViT: anything that uses our layers), exports its logits resized to the
input (the data_preprocessor left out: the graph takes the normalised
image; the file's metadata records mean, std and bgr_to_rgb) at --shape with
height and width dynamic, runs ONNX Runtime at --check-shape (another size)
and prints one parity line per checked size (max |Δ logit|, argmax
agreement) and the CPU latency of ONNX Runtime against PyTorch eager.

Exit status: 0 when parity passes at every checked size (argmax agreement
>= 99.9 % and max |Δ logit| <= 1e-4 · max(1, max |logit|)), 1 when it fails,
2 for a config or option that cannot be exported (named) or bad arguments.

Examples:
    python tools/export_onnx.py configs/qkv_study/nonlocal-shared_tinyr18s2_1xb8-1500it_qkvsyn-cyclic-128x128.py \\
        --random-init --out work_dirs/nl.onnx --shape 128 128
    python tools/export_onnx.py CONFIG --checkpoint iter_1500.pth --out m.onnx --shape 512 1024 --check-shape 384 768
"""
import argparse
import sys
from typing import List, Optional, Sequence

from mmengine.config import DictAction

from ..cli import at_least

PROG_ERROR = 2


def _default_check(shape: List[int]) -> List[int]:
    """Another size than the export's: ¾ of the height, 5/4 of the width,
    each made odd (no stride divides it)."""
    height, width = shape
    return [max(9, height * 3 // 4) | 1, max(9, width * 5 // 4) | 1]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='\n'.join(__doc__.splitlines()[1:]))
    parser.add_argument('config', help='model config file')
    weights = parser.add_mutually_exclusive_group(required=True)
    weights.add_argument('--checkpoint', help='checkpoint to load (strict)')
    weights.add_argument('--random-init', action='store_true',
                         help="the config's initialisation (seed --seed), "
                         'every attention layer then redrawn at random (they '
                         'start as the identity)')
    parser.add_argument('--out', required=True, help='the .onnx file to write')
    parser.add_argument('--shape', nargs=2, type=at_least(8), required=True,
                        metavar=('H', 'W'), help='input size to export at')
    parser.add_argument('--check-shape', nargs=2, type=at_least(8),
                        action='append', metavar=('H', 'W'),
                        help='input size to check ONNX Runtime at (repeat '
                        'for more; default: ¾ H × 5/4 W, made odd); latency '
                        'is timed at the first')
    parser.add_argument('--repeats', type=at_least(0), default=5,
                        help='timed turns of the latency (0: none)')
    parser.add_argument('--warmup', type=at_least(0), default=2)
    parser.add_argument('--threads', type=at_least(1), default=None,
                        help='intra-op threads of ONNX Runtime and PyTorch '
                        '(default: torch\'s; on a busy machine 1 thread '
                        'times steadier)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of --random-init and of the inputs')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings, e.g. key=value a.b=1')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    # imported after parsing: a bad argument fails fast
    from ..bench.export_model import CannotExport, export_and_check
    from ..bench.onnx_runtime import ExportUnavailable
    check_shapes = args.check_shape or [_default_check(args.shape)]
    try:
        report = export_and_check(
            args.config, args.out, tuple(args.shape),
            [tuple(s) for s in check_shapes], checkpoint=args.checkpoint,
            cfg_options=args.cfg_options, warmup=args.warmup,
            repeats=args.repeats, seed=args.seed, threads=args.threads)
    except (CannotExport, ExportUnavailable) as error:
        print(f'export-onnx: {error}', file=sys.stderr)
        return PROG_ERROR
    return 0 if report.ok else 1


if __name__ == '__main__':
    sys.exit(main())
