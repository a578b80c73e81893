"""Benchmark torch.compile against eager, per block (CPU training step).

For each block (one or two option sets each: the default, and the study's
variant that runs a hand-written Function in eager), at the study's head
shape (B=8, C=64, 16x16) and at 64x64 (B=2, C=64): forward + backward in
eager (fast path) and compiled (Inductor, the tracers' plain-op path), in
turns; the path each ran, compile time and graph breaks. Writes
benchmarks/compile-<device>.md and .csv. Run it on a quiet machine: a busy
one puts its load into the ratios (turns keep the drift out, not the
contention).

Examples:
    python tools/benchmark_compile.py --threads 1           # the published table
    python tools/benchmark_compile.py --layers nonlocal --shapes 8x64x16x16
"""
import argparse
import re
from pathlib import Path
from typing import Optional, Sequence, Tuple

from ..cli import at_least
from ..layers.catalog import names
from . import command_line


def shape(text: str) -> Tuple[int, int, int, int]:
    """argparse type: ``BxCxHxW``."""
    match = re.fullmatch(r'(\d+)x(\d+)x(\d+)x(\d+)', text)
    if match is None or min(map(int, match.groups())) < 1:
        raise argparse.ArgumentTypeError(
            f'{text!r} is not BxCxHxW (four positive integers, e.g. '
            '8x64x16x16)')
    return tuple(map(int, match.groups()))


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='\n'.join(__doc__.splitlines()[1:]))
    parser.add_argument('--layers', nargs='+', choices=names(),
                        default=None, help='catalog names (default: all)')
    parser.add_argument('--shapes', nargs='+', type=shape, default=None,
                        metavar='BxCxHxW',
                        help='default: 8x64x16x16 2x64x64x64')
    parser.add_argument('--warmup', type=at_least(0), default=2)
    parser.add_argument('--repeats', type=at_least(1), default=5)
    parser.add_argument('--min-seconds', type=at_least(0, float),
                        default=2.0,
                        help='more turns until a case took this long')
    parser.add_argument('--threads', type=at_least(1), default=None,
                        help="intra-op threads (default: torch's); on a "
                        'busy machine 1 thread times steadier: with 2 '
                        'beside other jobs, every parallel region waits for '
                        'a descheduled thread')
    parser.add_argument('--backend', default='inductor',
                        help='torch.compile backend (tests: aot_eager)')
    parser.add_argument('--out-dir', default='benchmarks')
    args = parser.parse_args(argv)
    # imported after parsing: a bad argument fails fast
    from ..bench.compile import (DEFAULT_SHAPES, default_cases, run_case,
                                 to_csv, to_markdown)
    from ..io import write_text_atomic
    from ..machine import load_average
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    load_at_start = load_average()
    rows = [run_case(case, s, args.warmup, args.repeats, args.min_seconds,
                     args.backend)
            for case in default_cases(args.layers)
            for s in (args.shapes or DEFAULT_SHAPES)]
    command = command_line('benchmark-compile', argv)
    out = Path(args.out_dir) / 'compile-cpu'
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out.with_suffix('.md'),
                      to_markdown(rows, command, args.backend,
                                  (load_at_start, load_average())))
    write_text_atomic(out.with_suffix('.csv'), to_csv(rows))
    print(f'[compile] wrote {out}.md (.csv)')


if __name__ == '__main__':
    main()
