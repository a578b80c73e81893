"""Run the node check's items and write its summary."""
import argparse
import os
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence

import torch

from ..bench.report import device_tag
from ..io import write_text_atomic
from ..layers.catalog import names
from ..machine import describe_machine
from ..report import markdown_table
from . import items as checks
from .items import Item

ITEMS = ('environment', 'correctness', 'benchmark', 'end-to-end',
         'training', 'cuda-tests')
# The Cityscapes config the training item runs (under --config-root).
TRAIN_CONFIG = ('qkv_cityscapes/'
                'qkv-nonlocal-separate_r50-d8_4xb2-40k_cityscapes-512x1024.py')


def _benchmark(args, device, dtype) -> tuple:
    from ..bench.layers import run_cases
    from ..bench.report import default_cases, plot, to_csv, to_markdown
    cases = default_cases(names(), device.type == 'cuda',
                          quick=device.type != 'cuda')
    results = run_cases(cases, device, dtype, warmup=0 if args.small else 1,
                        repeats=1 if args.small else 3,
                        min_seconds=0.0 if args.small else 0.5,
                        log=lambda line: print(f'  {line}', flush=True))
    out = Path(args.out_dir) / f'layers-{device_tag(device)}{_suffix(device)}'
    command = 'python -m qkv_plugins.check (layer benchmark item)'
    title = f'Layer benchmark: {describe_machine(device)}, {str(dtype)[6:]}'
    write_text_atomic(out.with_suffix('.md'), to_markdown(results, title,
                                                          command))
    write_text_atomic(out.with_suffix('.csv'), to_csv(results))
    plot(results, out.with_suffix('.png'))
    oom = sum(bool(r.error) for r in results)
    return 'PASS', (f'{len(cases)} cases, {oom} out of memory (recorded, '
                    f'not a failure): {out}.md')


def _suffix(device: torch.device) -> str:
    """CPU check tables are small ones: they must not replace the published
    CPU benchmarks (a GPU check's tables are the GPU benchmarks)."""
    return '' if device.type == 'cuda' else '-check'


def _end_to_end(args, device) -> tuple:
    from ..bench.report import end_to_end_from_args
    on_gpu = device.type == 'cuda'
    e2e = argparse.Namespace(
        end_to_end=True, device=str(device), dtype=None,
        e2e_size=None if on_gpu else ('64x128' if args.small else '128x256'),
        e2e_batch=None, e2e_infer=True,
        e2e_infer_size=None, repeats=1 if args.small else 3,
        warmup=0 if args.small else 1, out_dir=args.out_dir,
        config_root=args.config_root, out_suffix=_suffix(device))
    overrides = _small_backbone if args.small else None
    out = end_to_end_from_args(
        e2e, 'python -m qkv_plugins.check (end-to-end item):',
        overrides=overrides)
    text = out.with_suffix('.md').read_text()
    return 'PASS', f'{out}.md ({text.count("| train |")} train, ' \
                   f'{text.count("| infer |")} inference rows)'


def _small_backbone(cfg) -> None:
    """ResNet-18 with narrow heads (the check's ``--small`` mode)."""
    cfg.model.backbone.depth = 18
    cfg.model.decode_head.in_channels = 512
    cfg.model.decode_head.channels = 32
    cfg.model.auxiliary_head.in_channels = 256
    cfg.model.auxiliary_head.channels = 16


def _writable(folder: str) -> Optional[str]:
    """Why ``folder`` cannot take the check's files, or None."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        probe = Path(folder) / f'.check-probe-{os.getpid()}'
        probe.write_text('')
        probe.unlink()
    except OSError as error:
        return f'{type(error).__name__}: {error}'
    return None


def preflight(args: argparse.Namespace) -> List[Item]:
    """What is missing, reported as FAIL lines before the items run: an
    output dir that cannot be written, mmcv without its compiled ops (or
    mmseg's glue that could not be imported)."""
    found = []
    problem = _writable(args.out_dir)
    if problem:
        found.append(Item('output-dir', 'FAIL',
                          f'{args.out_dir} cannot be written ({problem}): the '
                          'tables and the summary go to stdout only'))
    import qkv_plugins
    if qkv_plugins.MMSEG_GLUE_ERROR:
        found.append(Item('mmseg-glue', 'FAIL', qkv_plugins.MMSEG_GLUE_ERROR))
    for item in found:
        print(f'[check] {item.status} {item.name}: {item.detail}',
              flush=True)
    return found


def run_check(args: argparse.Namespace) -> List[Item]:
    """Every item chosen in ``args.items``; prints each as it ends."""
    device = torch.device(args.device or (
        'cuda' if torch.cuda.is_available() else 'cpu'))
    on_gpu = device.type == 'cuda'
    dtypes = ((torch.bfloat16, torch.float16) if on_gpu else
              (torch.bfloat16, ))
    config_root = Path(args.config_root) if args.config_root else None
    run = {
        'environment': lambda: checks.environment(device),
        'correctness': lambda: checks.correctness(device, dtypes),
        'benchmark': lambda: _benchmark(args, device, dtypes[0] if on_gpu
                                        else torch.float32),
        'end-to-end': lambda: (_end_to_end(args, device) if config_root
                               else ('SKIP', 'needs --config-root (the '
                                     "repository's configs/)")),
        'training': lambda: (checks.distributed_training(
            config_root / TRAIN_CONFIG, device, 4 if args.small else 20,
            args.dist_train, Path(args.out_dir),
            (512, 256) if on_gpu else (128, 64),
            (256, 512) if on_gpu else (64, 64)) if config_root else
            ('SKIP', "needs --config-root (the repository's configs/)")),
        'cuda-tests': lambda: checks.cuda_tests(device, args.tests_root),
    }
    results = preflight(args)
    for name in args.items:
        print(f'[check] {name} …', flush=True)
        item = checks.timed(name, run[name])
        print(f'[check] {item.status} {name} ({item.seconds:.0f} s): '
              f'{item.detail}', flush=True)
        results.append(item)
    return results


def to_markdown(results: Sequence[Item], device: torch.device,
                command: str, seconds: float) -> str:
    """The summary: one row per item, then PASS or the failed items."""
    table = markdown_table(
        ('item', 'status', 'seconds', 'detail'),
        ((item.name, item.status, f'{item.seconds:.0f}', item.detail)
         for item in results))
    failed = [r.name for r in results if r.status == 'FAIL']
    return (f'# Node check: {describe_machine(device)}\n\n'
            f'Command: `{command}` ({seconds:.0f} s in all)\n\n' + table +
            f'\n**{"FAIL: " + ", ".join(failed) if failed else "PASS"}**\n')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='python -m qkv_plugins.check', description=__doc__.splitlines()[0])
    parser.add_argument('--items', nargs='+', choices=ITEMS, default=ITEMS)
    parser.add_argument('--device', default=None,
                        help='cpu or cuda (default: cuda if available)')
    parser.add_argument('--out-dir', default='work_dirs/check',
                        help='where check-<device>.md and the tables go')
    parser.add_argument('--config-root', default=None,
                        help="the repository's configs/ (end-to-end and "
                        'training items need it)')
    parser.add_argument('--tests-root', default=None,
                        help="the repository's tests/ (CUDA tests)")
    parser.add_argument('--dist-train', default=None,
                        help='tools/dist_train.sh to launch the training '
                        'item with (default: torch.distributed.run -m '
                        'qkv_plugins.commands.train)')
    parser.add_argument('--small', action='store_true',
                        help='smallest sizes (tests): ResNet-18 end to end, '
                        '4 training iterations')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    results = run_check(args)
    device = torch.device(args.device or (
        'cuda' if torch.cuda.is_available() else 'cpu'))
    command = 'python -m qkv_plugins.check ' + ' '.join(
        sys.argv[1:] if argv is None else argv)
    out = Path(args.out_dir) / f'check-{device_tag(device)}.md'
    summary = to_markdown(results, device, command.strip(),
                          time.perf_counter() - began)
    try:
        write_text_atomic(out, summary)
    except OSError as error:
        print(summary)
        out = f'stdout (could not write {out}: {error})'
        results.append(Item('summary', 'FAIL', out))
    failed = [r.name for r in results if r.status == 'FAIL']
    print(f'[check] {"FAIL: " + ", ".join(failed) if failed else "PASS"} — '
          f'summary: {out}')
    return 1 if failed else 0
