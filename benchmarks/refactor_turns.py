"""Old commit against new, in turns: did the one-core redesign change speed?

Runs the layer benchmark (its first CPU shape, 32×32, every layer and mode)
and the transformer-backbone benchmark from two worktrees, alternating which
commit goes first in each round, each in a fresh process; then writes, per
row, the median over rounds of new / old for our block's time and for the
stock reference's (the same mmcv / mmseg code in both: its ratio is the
machine's noise). Writes benchmarks/refactor-cpu.md.

Usage (worktrees at the two commits, e.g. ``git worktree add ../wt-old
1ba299b``):
    python benchmarks/refactor_turns.py ../wt-old . --rounds 3
"""
import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from qkv_plugins.machine import git_commit

# The layer benchmark's first CPU shape (32x32), set in the
# benchmark's own module before its command runs.
LAYERS = ('import runpy, sys; import qkv_plugins.bench.report as r; '
          'r.CPU_SHAPES = r.CPU_SHAPES[:1]; '
          "sys.argv = ['benchmark_layers.py', '--device', 'cpu', "
          "'--min-seconds', '0.5', '--repeats', '3', '--warmup', '1', "
          "'--out-dir', sys.argv[1]]; "
          "runpy.run_path('tools/benchmark_layers.py', run_name='__main__')")
BACKBONES = ('import sys; from qkv_plugins.bench.backbones import main; '
             "main(['--repeats', '4', '--warmup', '1', '--out-dir', "
             'sys.argv[1]])')


def run(tree: Path, code: str, out: Path) -> None:
    """One benchmark in a fresh process, the tree's own code."""
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, '-c', code, str(out)], cwd=tree,
                   env={'PYTHONPATH': str(tree.resolve()),
                        'PATH': '/usr/bin:/bin'}, check=True,
                   stdout=subprocess.DEVNULL)


def layer_rows(path: Path) -> dict:
    """{(layer, mode, sim, mask, H×W): (ours ms, reference ms)}."""
    rows = list(csv.DictReader(path.open()))
    table = {}
    for ours, ref in zip(rows[0::2], rows[1::2]):
        key = (ours['layer'], ours['qkv_mode'], ours['similarity'],
               ours['mask_self'], f"{ours['height']}×{ours['width']}")
        table[key] = (float(ours['time_ms']), float(ref['time_ms']))
    return table


def backbone_rows(path: Path) -> dict:
    """{(case, model): time ms}; the stock model is the reference."""
    return {(r['case'], r['model']): float(r['time_ms'])
            for r in csv.DictReader(path.open())}


def median_ratio(values):
    return statistics.median(values) if values else float('nan')


def verdict(ours: float, reference: float, band=(0.95, 1.05)) -> str:
    """PASS / FAIL when the reference held still, else INCONCLUSIVE."""
    low, high = band
    if not low <= reference <= high:
        return (f'INCONCLUSIVE: the reference moved (median {reference:.3f}, '
                f'outside {low}–{high}); rerun on a quieter machine')
    if low <= ours <= high:
        return f'PASS: median ours new/old {ours:.3f} within {low}–{high}'
    return f'FAIL: median ours new/old {ours:.3f} outside {low}–{high}'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('old', type=Path)
    parser.add_argument('new', type=Path)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--out', type=Path,
                        default=Path('benchmarks/refactor-cpu.md'))
    args = parser.parse_args()
    trees = {'old': args.old, 'new': args.new}
    commits = {k: git_commit(t) for k, t in trees.items()}
    layers = {'old': [], 'new': []}
    backbones = {'old': [], 'new': []}
    began = time.time()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            order = ('old', 'new') if round_ % 2 == 0 else ('new', 'old')
            for which in order:
                out = Path(tmp) / f'{which}{round_}'
                print(f'[turns] round {round_ + 1}/{args.rounds}: {which} '
                      f'({commits[which]}), {time.time() - began:.0f} s',
                      flush=True)
                run(trees[which], LAYERS, out)
                run(trees[which], BACKBONES, out)
                layers[which].append(layer_rows(out / 'layers-cpu.csv'))
                backbones[which].append(
                    backbone_rows(out / 'backbones-cpu.csv'))
    load_after = os.getloadavg()[0]
    lines = [
        '# The one-core redesign: old commit against new, in turns', '',
        f'Command: `python benchmarks/refactor_turns.py OLD NEW --rounds '
        f'{args.rounds}` with OLD at {commits["old"]} and NEW at '
        f'{commits["new"]}; {time.strftime("%Y-%m-%d")}, '
        f'{(time.time() - began) / 60:.0f} min; {os.cpu_count()} CPUs, '
        f'load average (1 min) {load_before:.2f} before and '
        f'{load_after:.2f} after.', '',
        'Each round runs both commits in fresh processes, the order '
        'alternating. A cell is the median over rounds of new / old time '
        '(forward + backward). The reference is the stock module (mmcv, '
        'mmseg), the same code in both commits: its ratio is the noise of '
        'this machine. "ours ÷ reference" divides, round by round, ours '
        'new/old by the reference new/old of the same row (they ran in '
        'turns in one process), then takes the median over rounds.',
        '', '## Layers (tools/benchmark_layers.py, 32×32, C=256, '
        'B=2)', '',
        '| layer | mode | sim | mask | H×W | ours new/old | reference '
        'new/old | ours ÷ reference |', '|---|---|---|---|---|---|---|---|']
    ours_all, ref_all, norm_all = [], [], []
    for key in layers['old'][0]:
        pairs = list(zip(layers['new'], layers['old']))
        ours = median_ratio([n[key][0] / o[key][0] for n, o in pairs])
        ref = median_ratio([n[key][1] / o[key][1] for n, o in pairs])
        norm = median_ratio([(n[key][0] / o[key][0]) / (n[key][1] / o[key][1])
                             for n, o in pairs])
        ours_all.append(ours)
        ref_all.append(ref)
        norm_all.append(norm)
        lines.append('| ' + ' | '.join(key) +
                     f' | {ours:.3f} | {ref:.3f} | {norm:.3f} |')
    ours_median = statistics.median(ours_all)
    ref_median = statistics.median(ref_all)
    lines += ['', f'Across the {len(ours_all)} rows: median ours new/old '
              f'{ours_median:.3f} (range '
              f'{min(ours_all):.3f}–{max(ours_all):.3f}); reference '
              f'{ref_median:.3f} (range {min(ref_all):.3f}–'
              f'{max(ref_all):.3f}); ours ÷ reference '
              f'{statistics.median(norm_all):.3f} (range '
              f'{min(norm_all):.3f}–{max(norm_all):.3f}).', '',
              f'**{verdict(ours_median, ref_median)}.**', '',
              '## Transformer backbones (python -m qkv_plugins.bench.'
              'backbones)', '', '| case | model | new/old |', '|---|---|---|']
    for key in backbones['old'][0]:
        ratio = median_ratio([n[key] / o[key] for n, o in
                              zip(backbones['new'], backbones['old'])])
        lines.append(f'| {key[0]} | {key[1]} | {ratio:.3f} |')
    args.out.write_text('\n'.join(lines) + '\n')
    print(f'[turns] wrote {args.out}')


if __name__ == '__main__':
    main()
