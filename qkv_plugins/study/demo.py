"""``make demo``: the embedded study end to end (data → sweep → table).

The default scale runs, three seeds each, the non-local head with separate,
one shared and no projections and the no-attention FCN baseline on both
tracks, plus shared Q = K on the cyclic track, where the theory puts it
between separate and shared (27 runs). ``--full`` adds ``identity_qk``, the
parameter-matched ``shared`` control and criss-cross (recurrence 2) in all
modes on both tracks, with five seeds. ``--publish`` copies the table to
``--publish-dir``. The study configs come from ``--configs`` (``make demo``
passes the repository's ``configs/qkv_study``).
"""
import argparse
import shutil
import time
from pathlib import Path
from typing import Dict, List, Sequence

from ..cli import at_least
from ..io import atomic_path
from ..layers.catalog import entry_named
from ..layers.options import CONSTANT_QUERY_MODES, QKV_MODES
from ..machine import describe_machine
from .report import write_report
from .sweep import diagnose, plan, sweep
from .table import BASELINE
from .synthetic import DEFAULT_ROOT, TRACKS, DatasetError, make_dataset
from .synthetic import verify_dataset

# The three points of the question (separate, one projection, none) and the
# no-attention baseline on both tracks; Q = K where it should matter.
QUESTION_HEADS = ('fcn', 'nonlocal-separate', 'nonlocal-shared',
                  'nonlocal-identity')
DEMO_HEADS = {
    'cyclic': QUESTION_HEADS + ('nonlocal-shared_qk', ),
    'grouping': QUESTION_HEADS,
}
EXTRA_HEADS = ('nonlocal-shared_qk', 'nonlocal-identity_qk',
               'nonlocal-shared-r1') + tuple(
                   f'ccnet-{m}' for m in QKV_MODES
                   if m not in CONSTANT_QUERY_MODES)
FULL_HEADS = {
    track: heads + tuple(h for h in EXTRA_HEADS if h not in heads)
    for track, heads in DEMO_HEADS.items()
}
DEMO_SEEDS = (0, 1, 2)
FULL_SEEDS = (0, 1, 2, 3, 4)


def study_configs(config_dir: str,
                  heads_per_track: Dict[str, Sequence[str]]) -> List[str]:
    """The config files in ``config_dir`` of the given heads, per track.

    A head is the baseline (``fcn``) or ``<layer>-<variant>`` with a layer
    of the catalog; any other raises UnknownLayer naming the known ones.
    """
    configs = []
    for track, heads in heads_per_track.items():
        if track not in TRACKS:
            raise ValueError(f'unknown track {track!r}; known: '
                             f'{sorted(TRACKS)}')
        for head in heads:
            layer = head.split('-')[0]
            if layer != BASELINE:
                entry_named(layer)
            matches = sorted(Path(config_dir).glob(f'{head}_tinyr18*'
                                                   f'qkvsyn-{track}-*.py'))
            if len(matches) != 1:
                raise FileNotFoundError(f'expected one config for {head} on '
                                        f'{track} in {config_dir}, found '
                                        f'{matches}')
            configs.append(str(matches[0]))
    return configs


def schedule_options(iters: int) -> list:
    """--cfg-options that stretch the study schedule to ``iters``."""
    return [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
            f'param_scheduler.0.end={iters}',
            f'default_hooks.checkpoint.interval={max(1, iters // 3)}']


def ensure_data(root: str) -> None:
    """Generate the dataset unless it is present and matches its manifest."""
    try:
        for track in TRACKS:
            verify_dataset(root, track)
        print(f'[demo] data: {root} matches its manifest')
    except DatasetError as error:
        print(f'[demo] data: {error}; generating it now')
        try:
            make_dataset(root)
        except DatasetError as refused:  # a folder the generator did not write
            raise SystemExit(f'[demo] {refused}') from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--full', action='store_true',
                        help='criss-cross heads too, 5 seeds')
    parser.add_argument('--configs', required=True, metavar='DIR',
                        help='the study configs: configs/qkv_study of the '
                        'repository checkout (an installed wheel has none)')
    parser.add_argument('--publish', action='store_true',
                        help='copy the table to --publish-dir')
    parser.add_argument('--publish-dir', default='benchmarks')
    parser.add_argument('--work-root', default='work_dirs/study')
    parser.add_argument('--jobs', type=at_least(1), default=2)
    parser.add_argument('--data-root', default=DEFAULT_ROOT)
    parser.add_argument('--iters', type=at_least(1), default=None,
                        help='training iterations per run (default: the '
                        "configs': 1500 cyclic, 1200 grouping); runs go to "
                        'WORK_ROOT-<N>it')
    args = parser.parse_args()

    began = time.time()
    ensure_data(args.data_root)
    heads, seeds = ((FULL_HEADS, FULL_SEEDS) if args.full else
                    (DEMO_HEADS, DEMO_SEEDS))
    work_root = args.work_root + ('-full' if args.full else '')
    options = [f'{loader}.dataset.data_root={args.data_root}'
               for loader in ('train_dataloader', 'val_dataloader',
                              'test_dataloader')]
    if args.iters:
        work_root += f'-{args.iters}it'
        options += schedule_options(args.iters)
    runs = plan(study_configs(args.configs, heads), seeds, work_root)
    sweep(runs, work_root, options, jobs=args.jobs)
    diagnose(runs, options)
    text = write_report(work_root, machine=describe_machine())
    print(text)
    print(f'[demo] table: {work_root}/table.md (.csv, .png); '
          f'{(time.time() - began) / 60:.1f} min')
    if args.publish:
        name = Path(work_root).name  # study, study-full, study-2000it, ...
        dest = Path(args.publish_dir)
        for suffix in ('.md', '.csv', '.png'):
            with atomic_path(dest / f'{name}{suffix}') as tmp:
                shutil.copyfile(Path(work_root) / f'table{suffix}', tmp)
        print(f'[demo] published to {dest}/{name}.md (.csv, .png)')


if __name__ == '__main__':
    main()
