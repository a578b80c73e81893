"""Old commit against new: does a study run compute the same losses?

Trains one study config of each convolutional block (non-local, criss-cross,
disentangled non-local, GCNet's context block; seed 0, cyclic track) from
two worktrees with one intra-op thread each, for the first ``--iters``
iterations of its schedule (only ``max_iters`` shortened: the learning rate
follows the full run's curve), and compares the logged losses bit for bit
(``float.hex`` of every iteration). Token attention (the MiT config), whose
arithmetic the one-core redesign changed, is compared within a relative
tolerance over ``--token-iters`` iterations. Writes
benchmarks/refactor-losses-cpu.md; exit 1 when a check fails.

Usage (worktrees at the two commits, each with ``data`` or ``--data-root``):
    python benchmarks/refactor_losses.py ../wt-before ../wt-new
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from qkv_plugins.machine import git_commit
from qkv_plugins.study.sweep import single_thread_env

BITWISE = ('nonlocal-separate', 'ccnet-separate', 'dnl-separate', 'gcnet')
TOKEN = 'mha-separate'
SUFFIX = {'mha-separate': '_tinymit2s_1xb8-1500it_qkvsyn-cyclic-128x128.py'}
DEFAULT_SUFFIX = '_tinyr18s2_1xb8-1500it_qkvsyn-cyclic-128x128.py'


def train(tree: Path, head: str, iters: int, data_root: str,
          work_dir: Path) -> list:
    """The loss series (``float.hex`` strings) of one training."""
    config = tree / 'configs' / 'qkv_study' / (
        head + SUFFIX.get(head, DEFAULT_SUFFIX))
    options = [f'{loader}.dataset.data_root={data_root}' for loader in
               ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    subprocess.run(
        [sys.executable, 'tools/train.py', str(config), '--work-dir',
         str(work_dir), '--cfg-options', 'randomness.seed=0',
         f'train_cfg.max_iters={iters}', *options],
        cwd=tree, check=True, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**single_thread_env(), 'PYTHONPATH': str(tree.resolve()),
             'PATH': '/usr/bin:/bin', 'HOME': os.environ.get('HOME', '/')})
    return json.loads((work_dir / 'loss_series.json').read_text())['losses']


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('old', type=Path)
    parser.add_argument('new', type=Path)
    parser.add_argument('--iters', type=int, default=300)
    parser.add_argument('--token-iters', type=int, default=20)
    parser.add_argument('--rtol', type=float, default=1e-3)
    parser.add_argument('--jobs', type=int, default=2)
    parser.add_argument('--data-root',
                        default=str(Path('data/qkv_synthetic').resolve()))
    parser.add_argument('--out', type=Path,
                        default=Path('benchmarks/refactor-losses-cpu.md'))
    args = parser.parse_args()
    trees = {'old': args.old, 'new': args.new}
    commits = {k: git_commit(t) for k, t in trees.items()}
    began = time.time()
    jobs = [(head, which, args.iters) for head in BITWISE
            for which in trees] + [(TOKEN, which, args.token_iters)
                                   for which in trees]
    with tempfile.TemporaryDirectory() as tmp, \
            ThreadPoolExecutor(args.jobs) as pool:
        def one(job):
            head, which, iters = job
            print(f'[losses] {head} at {which} ({commits[which]}), '
                  f'{iters} it', flush=True)
            return job, train(trees[which], head, iters, args.data_root,
                              Path(tmp) / f'{head}-{which}')
        series = {(h, w): s for (h, w, _), s in pool.map(one, jobs)}
    lines = [
        '# The one-core redesign: the same study run before and after', '',
        f'Command: `python benchmarks/refactor_losses.py OLD NEW --iters '
        f'{args.iters} --token-iters {args.token_iters}` with OLD at '
        f'{commits["old"]} and NEW at {commits["new"]}; '
        f'{time.strftime("%Y-%m-%d")}, '
        f'{(time.time() - began) / 60:.0f} min, one intra-op thread per run.',
        '', 'Seed 0, cyclic track, the study config with only `max_iters` '
        'shortened (the learning rate follows the full run\'s curve). '
        '"identical" compares `float.hex` of every iteration\'s loss.', '',
        '| block | config | iterations | result |', '|---|---|---|---|']
    failed = False
    for head in BITWISE:
        old, new = series[(head, 'old')], series[(head, 'new')]
        same = old == new and len(old) == args.iters
        first = next((i + 1 for i, (a, b) in enumerate(zip(old, new))
                      if a != b), None)
        result = ('identical, bit for bit' if same else
                  f'DIFFERENT from iteration {first}')
        failed |= not same
        lines.append(f'| {head.split("-")[0]} | {head} | {len(new)} | '
                     f'{result} |')
    old = [float.fromhex(x) for x in series[(TOKEN, 'old')]]
    new = [float.fromhex(x) for x in series[(TOKEN, 'new')]]
    worst = max(abs(a - b) / abs(a) for a, b in zip(old, new))
    ok = worst <= args.rtol and len(new) == args.token_iters
    failed |= not ok
    lines.append(f'| token attention (MiT) | {TOKEN} | {len(new)} | '
                 f'max relative difference {worst:.2e} '
                 f'({"within" if ok else "OVER"} {args.rtol:g}) |')
    lines += ['', f'**{"FAIL" if failed else "PASS"}.**']
    args.out.write_text('\n'.join(lines) + '\n')
    print('\n'.join(lines))
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    main()
