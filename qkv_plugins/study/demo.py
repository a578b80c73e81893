"""``make demo``: the embedded study end to end (data → sweep → test-split
evaluation → table).

The default scale (about 24 runs, ≤ 30 min on 2 cores) answers the question
as asked on the cyclic track: the no-attention FCN, non-local with separate
projections, one shared projection, raw cosine similarity (no projection,
cosine logits) and GCNet's query-independent control, three paired seeds
each; on the grouping track FCN, separate and raw cosine. ``--full`` (≤ 120
min) gives the decisive cyclic variants eight seeds, adds the other rows of
the question (cosine with projections, Reformer's shared Q = K with the
self key masked, raw cosine masked, the disentangled block, identity with
dot logits) with three, the decisive variants on grouping with three, and
one run at twice the schedule for shared Q = K, shared and raw cosine, and
the transformer family (a narrow MiT with SegFormer's head, its attention
in every mode, raw cosine and cosine Q = K) with three.
``--extended`` adds criss-cross, ``identity_qk`` and the parameter-matched
``shared`` control. ``--publish`` copies the table to ``--publish-dir``.
The study configs come from ``--configs`` (``make demo`` passes the
repository's ``configs/qkv_study``).
"""
import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from ..cli import at_least
from ..io import atomic_path, write_text_atomic
from ..layers.catalog import UnknownLayer, entry_named
from ..layers.options import CONSTANT_QUERY_MODES, QKV_MODES
from ..machine import describe_machine, git_commit
from .report import write_report
from .sweep import evaluate, plan, sweep
from .table import BASELINE, describe_config
from .synthetic import DEFAULT_ROOT, TRACKS, DatasetError, make_dataset
from .synthetic import verify_dataset

# "Raw cosine similarity": no projection, cosine logits.
RAW_COSINE = 'nonlocal-identity-cosine'
# The variants that decide the question on the cyclic track.
DECISIVE = ('nonlocal-separate', 'nonlocal-shared_qk', 'nonlocal-shared',
            RAW_COSINE, 'nonlocal-query_independent')
DEMO_HEADS = {
    'cyclic': ('fcn', 'nonlocal-separate', 'nonlocal-shared', RAW_COSINE,
               'nonlocal-query_independent'),
    'grouping': ('fcn', 'nonlocal-separate', RAW_COSINE),
}
DEMO_SEEDS = (0, 1, 2)
# --full: (heads per track, seeds); the demo's runs are a subset
FULL_GROUPS = (
    ({'cyclic': DECISIVE}, tuple(range(8))),
    ({'cyclic': ('fcn', 'nonlocal-separate-cosine', 'nonlocal-shared-cosine',
                 'nonlocal-shared_qk-cosine-maskself',
                 'nonlocal-identity-cosine-maskself', 'dnl-separate',
                 'nonlocal-identity'),
      'grouping': ('fcn', ) + DECISIVE}, DEMO_SEEDS),
    # the transformer family (narrow MiT, its own attention switched)
    ({'cyclic': tuple(f'mha-{v}' for v in (
        'separate', 'shared_qk', 'shared', 'identity_qk', 'identity',
        'identity-cosine', 'shared_qk-cosine'))}, DEMO_SEEDS),
)
# --full: one run each at LONG_FACTOR × the schedule (cyclic, seed 0)
LONG_HEADS = {'cyclic': ('nonlocal-shared_qk', 'nonlocal-shared',
                         RAW_COSINE)}
LONG_FACTOR = 2
EXTENDED_HEADS = {
    track: ('nonlocal-identity_qk', 'nonlocal-shared-r1') + tuple(
        f'ccnet-{m}' for m in QKV_MODES if m not in CONSTANT_QUERY_MODES)
    for track in ('cyclic', 'grouping')
}
# the schedule of each track's study configs (configs/_base_/schedules)
TRACK_ITERS = {'cyclic': 1500, 'grouping': 1200}
INVOCATIONS_FILE = 'invocations.json'


def _configs_by_head(config_dir: str) -> Dict[Tuple[str, str], List[str]]:
    """{(track, head): config files} of the study configs in ``config_dir``
    (as the table names them: ``fcn`` or ``<layer>-<variant>``)."""
    index: Dict[Tuple[str, str], List[str]] = {}
    for path in sorted(Path(config_dir).glob('*.py')):
        try:
            track, algo, variant = describe_config(path.stem)
        except UnknownLayer:  # not a config of this catalog's layers
            continue
        head = algo if variant == '-' else f'{algo}-{variant}'
        index.setdefault((track, head), []).append(str(path))
    return index


def study_configs(config_dir: str,
                  heads_per_track: Dict[str, Sequence[str]]) -> List[str]:
    """The config files in ``config_dir`` of the given heads, per track.

    A head is the baseline (``fcn``) or ``<layer>-<variant>`` with a layer
    of the catalog; any other raises UnknownLayer naming the known ones.
    """
    index = _configs_by_head(config_dir)
    configs = []
    for track, heads in heads_per_track.items():
        if track not in TRACKS:
            raise ValueError(f'unknown track {track!r}; known: '
                             f'{sorted(TRACKS)}')
        for head in heads:
            layer = head.split('-')[0]
            if layer != BASELINE:
                entry_named(layer)
            matches = index.get((track, head), [])
            if len(matches) != 1:
                raise FileNotFoundError(f'expected one config for {head} on '
                                        f'{track} in {config_dir}, found '
                                        f'{matches}')
            configs.append(matches[0])
    return configs


def schedule_options(iters: int) -> list:
    """--cfg-options that stretch the study schedule to ``iters`` (three
    validations, as the configs)."""
    third = max(1, iters // 3)
    return [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={third}',
            f'param_scheduler.0.end={iters}',
            f'default_hooks.checkpoint.interval={third}']


def study_runs(config_dir: str, work_root: str, full: bool, extended: bool,
               iters=None) -> list:
    """The runs of the chosen scale (duplicates dropped, first kept)."""
    groups = [(DEMO_HEADS, DEMO_SEEDS)]
    if full or extended:
        groups += list(FULL_GROUPS)
    if extended:
        groups.append((EXTENDED_HEADS, DEMO_SEEDS))
    runs, seen = [], set()
    own = schedule_options(iters) if iters else []
    for heads, seeds in groups:
        for run in plan(study_configs(config_dir, heads), seeds, work_root,
                        own):
            if run.work_dir not in seen:
                seen.add(run.work_dir)
                runs.append(run)
    if (full or extended) and not iters:
        for track, heads in LONG_HEADS.items():
            long_iters = LONG_FACTOR * TRACK_ITERS[track]
            runs += plan(study_configs(config_dir, {track: heads}), (0, ),
                         work_root, schedule_options(long_iters),
                         suffix=f'-{long_iters}it')
    return runs


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


def record_invocation(work_root: str, entry: dict) -> List[dict]:
    """Append this invocation (wall time, runs trained, commit, command) to
    ``<work_root>/invocations.json``; return the list."""
    path = Path(work_root) / INVOCATIONS_FILE
    try:
        previous = json.loads(path.read_text())
        previous = previous if isinstance(previous, list) else []
    except (OSError, ValueError):
        previous = []
    entries = previous + [entry]
    write_text_atomic(path, json.dumps(entries, indent=1))
    return entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--full', action='store_true',
                        help='the full study (about 85 runs, <= 120 min on '
                        '2 cores)')
    parser.add_argument('--extended', action='store_true',
                        help='the full study plus criss-cross, identity_qk '
                        'and the parameter-matched shared control')
    parser.add_argument('--configs', required=True, metavar='DIR',
                        help='the study configs: configs/qkv_study of the '
                        'repository checkout (an installed wheel has none)')
    parser.add_argument('--publish', action='store_true',
                        help='copy the table to --publish-dir')
    parser.add_argument('--publish-dir', default='benchmarks')
    parser.add_argument('--work-root', default='work_dirs/study')
    parser.add_argument('--jobs', type=at_least(1), default=2)
    parser.add_argument('--data-root', default=DEFAULT_ROOT)
    parser.add_argument('--iters', type=at_least(3), default=None,
                        help='training iterations per run (default: the '
                        "configs': 1500 cyclic, 1200 grouping); runs go to "
                        'WORK_ROOT-<N>it')
    args = parser.parse_args()

    began, at_commit = time.time(), git_commit()  # what this invocation runs
    ensure_data(args.data_root)
    work_root = args.work_root + ('-extended' if args.extended else
                                  '-full' if args.full else '')
    options = [f'{loader}.dataset.data_root={args.data_root}'
               for loader in ('train_dataloader', 'val_dataloader',
                              'test_dataloader')]
    if args.iters:
        work_root += f'-{args.iters}it'
    runs = study_runs(args.configs, work_root, args.full, args.extended,
                      args.iters)
    status = sweep(runs, work_root, options, jobs=args.jobs)
    evaluate(runs, options)
    minutes = (time.time() - began) / 60
    trained = sum('seconds' in s for s in status.values())
    invocations = record_invocation(work_root, dict(
        started=time.strftime('%Y-%m-%d %H:%M', time.localtime(began)),
        minutes=round(minutes, 1), runs=len(runs), trained=trained,
        commit=at_commit, command='python -m qkv_plugins.study.demo '
        + ' '.join(a for a in sys.argv[1:])))
    text = write_report(work_root, machine=describe_machine(),
                        invocations=invocations)
    print(text)
    print(f'[demo] table: {work_root}/table.md (.csv, .png); '
          f'{minutes:.1f} min')
    if args.publish:
        name = Path(work_root).name  # study, study-full, study-2000it, ...
        dest = Path(args.publish_dir)
        for suffix in ('.md', '.csv', '.png'):
            with atomic_path(dest / f'{name}{suffix}') as tmp:
                shutil.copyfile(Path(work_root) / f'table{suffix}', tmp)
        print(f'[demo] published to {dest}/{name}.md (.csv, .png)')


if __name__ == '__main__':
    main()
