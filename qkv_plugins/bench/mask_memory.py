"""What ``mask_self`` costs in memory: extra peak memory of one forward +
backward of a catalogued layer with and without the mask, each measured in a
fresh process (so that neither inherits the other's heap), on the CPU or
CUDA. Prints the rows; ``--out FILE.md`` also writes them as a table with
the machine, the command and the commit.

    python -m qkv_plugins.bench.mask_memory --layer mha --size 128 128
    python -m qkv_plugins.bench.mask_memory --out benchmarks/mask-memory-cpu.md

Default case: token attention (``mha``, ``separate``, one head, 32
channels, batch 1) over 128×128 tokens, fp32; the goal is masked ≤ 2×
unmasked.
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

import torch

from ..cli import at_least
from ..io import write_text_atomic
from ..machine import code_commit, describe_machine
from ..report import markdown_table
from .layers import Case, build_ours, memory_mib
from .memory import configure_cpu_memory


def _case(args: argparse.Namespace, mask_self: bool) -> Case:
    height, width = args.size
    return Case(layer=args.layer, qkv_mode=args.qkv_mode,
                similarity=args.similarity, mask_self=mask_self,
                height=height, width=width, channels=args.channels,
                batch=args.batch)


def measure_here(case: Case, device: torch.device) -> float:
    """Extra peak MiB of one forward + backward of ``case`` in this
    process (after one warm-up step), fp32."""
    if device.type == 'cpu':
        configure_cpu_memory()
    torch.manual_seed(0)
    return memory_mib(build_ours(case), case, device, torch.float32)


def measure_fresh(argv: List[str], mask_self: bool) -> float:
    """:func:`measure_here` in a new Python process."""
    command = [sys.executable, '-m', __spec__.name, *argv, '--one',
               'masked' if mask_self else 'unmasked']
    done = subprocess.run(command, capture_output=True, text=True,
                          check=True)
    return float(json.loads(done.stdout.strip().splitlines()[-1])['mib'])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--layer', default='mha', help='catalog name')
    parser.add_argument('--qkv-mode', default='separate')
    parser.add_argument('--similarity', default='dot')
    parser.add_argument('--size', nargs=2, type=at_least(1),
                        default=[128, 128], metavar=('H', 'W'))
    parser.add_argument('--channels', type=at_least(1), default=32)
    parser.add_argument('--batch', type=at_least(1), default=1)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--out', type=Path, default=None,
                        help='also write the rows as a Markdown table')
    parser.add_argument('--one', choices=['masked', 'unmasked'],
                        help=argparse.SUPPRESS)  # a child's one measurement
    return parser


def main(argv: Optional[List[str]] = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    device = torch.device(args.device)
    if args.one is not None:
        mib = measure_here(_case(args, args.one == 'masked'), device)
        print(json.dumps(dict(mib=mib)))
        return
    # a child (--one) measures and returns above: it never writes --out
    rows = {mask: measure_fresh(argv, mask) for mask in (False, True)}
    case = _case(args, True)
    print(f'{case.layer}:{case.qkv_mode} {case.height}x{case.width}, '
          f'B={case.batch}, C={case.channels}, {device.type}, fp32, '
          'forward + backward, extra peak MiB (fresh process each):')
    print(f'  unmasked  {rows[False]:8.1f}')
    print(f'  mask_self {rows[True]:8.1f}  '
          f'({rows[True] / max(rows[False], 1e-9):.2f}x)')
    if args.out is not None:
        write_text_atomic(args.out, to_markdown(case, device, rows, argv))
        print(f'[mask-memory] wrote {args.out}')


def to_markdown(case, device: torch.device, rows: dict,
                argv: List[str]) -> str:
    """The two rows with the machine, the command and the commit."""
    ratio = rows[True] / max(rows[False], 1e-9)
    table = markdown_table(
        ('layer', 'mode', 'tokens', 'B', 'C', 'mask_self', 'extra peak MiB',
         '× unmasked'),
        [(case.layer, case.qkv_mode, f'{case.height}×{case.width}',
          case.batch, case.channels, mask, f'{rows[mask]:.1f}',
          f'{rows[mask] / max(rows[False], 1e-9):.2f}')
         for mask in (False, True)])
    return '\n'.join([
        '# What mask_self costs in memory', '',
        f'Command: `python -m qkv_plugins.bench.mask_memory '
        f'{" ".join(argv)}` at commit {code_commit()}', '',
        f'Machine: {describe_machine(device)}', '',
        'Forward + backward in fp32, extra peak memory above the inputs, each '
        'case in a fresh process. The goal: masked at most 2× unmasked '
        f'(measured: {ratio:.2f}×).', '', table])


if __name__ == '__main__':
    main()
