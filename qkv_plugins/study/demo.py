"""``make demo``: the embedded study end to end (data → sweep → test-split
evaluation → table).

The scales (``qkv_plugins/study/design.py`` declares their rows and seeds):

- default (24 runs, three paired seeds a row): on the cyclic track the
  no-attention FCN, non-local with separate projections, one shared
  projection, raw cosine similarity (no projection, cosine logits) and
  GCNet's query-independent control; on the grouping track FCN, separate
  and raw cosine.
- ``--full``: the primary rows (separate, shared Q = K, shared, raw cosine,
  query-independent) with 12 seeds, the factorial that separates the
  explanations with 8, and FCN, cosine with a shared projection, the
  disentangled block, identity with dot logits and the grouping track with
  3.
- ``--extended``: ``--full`` plus criss-cross in every mode.
- ``--time-to-solve``: the primary rows and ``identity_qk``, 8 seeds, one
  constant learning rate, each run stopped at its first validation at or
  above the solve threshold (at most 4,500 iterations).
- ``--transformers``: a narrow MiT whose own attention takes the switch
  (shows that the switch runs there; not part of the answer).
- ``--transformer-pilot``: that MiT with separate projections, two seeds at
  three times the schedule (4,500 iterations unless ``--iters``): does it
  solve cyclic at all?

Every run has one intra-op thread, so ``--jobs`` does not change its bits.
The reference's trained models are also evaluated with their logits made
symmetric and transposed, and at initialisation. ``--publish`` copies the
table to ``--publish-dir`` and is refused unless the code and every run are
of clean commits. The study configs come from ``--configs`` (``make demo``
passes the repository's ``configs/qkv_study``).

A sweep longer than a session: ``--records DIR`` restores the runs recorded
under ``DIR/<work root name>`` before the sweep and records every run it
finished (:mod:`qkv_plugins.study.records`); ``--no-train`` evaluates and
tabulates what is complete without training more.
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
from ..machine import code_commit, describe_machine, is_clean
from ..workdir import WorkDirBusy, locked
from .design import (DEMO_HEADS, DEMO_SEEDS, EXTENDED_HEADS, FULL_GROUPS,
                     REFERENCE, TIME_TO_SOLVE_DIR, TIME_TO_SOLVE_HEADS,
                     TIME_TO_SOLVE_SEEDS, TRANSFORMER_HEADS,
                     TRANSFORMER_PILOT_HEADS, TRANSFORMER_PILOT_ITERS,
                     TRANSFORMER_PILOT_SEEDS)
from .records import RecordConflict, export_records, import_records
from .report import write_report
from .sweep import evaluate, plan, sweep, unevaluated
from .collect import collect
from .names import BASELINE, describe_config
from ..data import DEFAULT_ROOT, TRACKS, DatasetError, make_dataset
from ..data import verify_dataset

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


# The study's scales: the groups of (heads per track, seeds) each trains
# (the default's runs are a subset of --full's and --extended's), and the
# config folder below --configs that holds its configs.
SCALES = {
    'default': ([(DEMO_HEADS, DEMO_SEEDS)], '.'),
    'full': ([(DEMO_HEADS, DEMO_SEEDS), *FULL_GROUPS], '.'),
    'extended': ([(DEMO_HEADS, DEMO_SEEDS), *FULL_GROUPS,
                  (EXTENDED_HEADS, DEMO_SEEDS)], '.'),
    'time-to-solve': ([(TIME_TO_SOLVE_HEADS, TIME_TO_SOLVE_SEEDS)],
                      TIME_TO_SOLVE_DIR),
    'transformers': ([(TRANSFORMER_HEADS, DEMO_SEEDS)], '.'),
    'transformer-pilot': ([(TRANSFORMER_PILOT_HEADS,
                            TRANSFORMER_PILOT_SEEDS)], '.'),
}


def study_runs(config_dir: str, work_root: str, scale: str = 'default',
               iters=None) -> list:
    """The runs of the chosen scale (duplicates dropped, first kept)."""
    groups, folder = SCALES[scale]
    config_dir = str(Path(config_dir) / folder)
    runs, seen = [], set()
    own = schedule_options(iters) if iters else []
    for heads, seeds in groups:
        for run in plan(study_configs(config_dir, heads), seeds, work_root,
                        own):
            if run.work_dir not in seen:
                seen.add(run.work_dir)
                runs.append(run)
    return runs


def intervened(run) -> bool:
    """Runs whose logits the evaluation also makes symmetric and
    transposes (and measures at initialisation): the reference's."""
    return describe_config(run.work_dir.parent.name)[1:] == tuple(
        REFERENCE.split('-', 1))


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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    scale = parser.add_mutually_exclusive_group()
    scale.add_argument('--full', action='store_const', dest='scale',
                       const='full', help='the full study (<= 150 min on 2 '
                       'cores from scratch)')
    scale.add_argument('--extended', action='store_const', dest='scale',
                       const='extended',
                       help='the full study plus criss-cross')
    scale.add_argument('--time-to-solve', action='store_const', dest='scale',
                       const='time-to-solve',
                       help='time to solve: the decisive variants and '
                       'identity_qk, 8 seeds, constant learning rate, '
                       'stopped when solved (<= 150 min)')
    scale.add_argument('--transformers', action='store_const', dest='scale',
                       const='transformers',
                       help='the narrow MiT with its own attention switched '
                       '(shows that the switch runs; not part of the answer)')
    scale.add_argument('--transformer-pilot', action='store_const',
                       dest='scale', const='transformer-pilot',
                       help='the narrow MiT with separate projections, two '
                       'seeds at three times the schedule (4,500 '
                       'iterations unless --iters): does it solve cyclic?')
    parser.set_defaults(scale='default')
    parser.add_argument('--configs', required=True, metavar='DIR',
                        help='the study configs: configs/qkv_study of the '
                        'repository checkout (an installed wheel has none)')
    parser.add_argument('--publish', action='store_true',
                        help='copy the table to --publish-dir (refused '
                        'unless every run and this checkout are clean '
                        'commits)')
    parser.add_argument('--publish-dir', default='benchmarks')
    parser.add_argument('--work-root', default='work_dirs/study')
    parser.add_argument('--jobs', type=at_least(1), default=2,
                        help='trainings at a time (one thread each)')
    parser.add_argument('--data-root', default=DEFAULT_ROOT)
    parser.add_argument('--records', metavar='DIR', default=None,
                        help='run records (see qkv_plugins.study.records): '
                        'restore DIR/<work root name> into the work root '
                        'before the sweep, export every finished run into '
                        'it after the evaluation; a sweep goes on in a later '
                        'session or on another machine from these files')
    parser.add_argument('--no-train', action='store_true',
                        help='train nothing: evaluate the complete runs, '
                        'write the table of what is there (and export their '
                        'records)')
    parser.add_argument('--iters', type=at_least(3), default=None,
                        help='training iterations per run (default: the '
                        "configs': 1500 cyclic, 1200 grouping); runs go to "
                        'WORK_ROOT-<N>it')
    args = parser.parse_args(argv)
    if args.iters and args.scale == 'time-to-solve':
        parser.error('--iters does not apply to --time-to-solve (its runs '
                     'stop when solved, at most at 4,500 iterations)')
    if args.scale == 'transformer-pilot' and not args.iters:
        args.iters = TRANSFORMER_PILOT_ITERS

    began, at_commit = time.time(), code_commit()  # what this invocation runs
    if args.publish and not is_clean(at_commit):
        raise SystemExit(f'[demo] --publish refused: the code is at commit '
                         f'{at_commit}, not a clean one; commit first')
    ensure_data(args.data_root)
    work_root = args.work_root + ('' if args.scale == 'default' else
                                  f'-{args.scale}')
    options = [f'{loader}.dataset.data_root={args.data_root}'
               for loader in ('train_dataloader', 'val_dataloader',
                              'test_dataloader')]
    if args.iters:
        work_root += f'-{args.iters}it'
    runs = study_runs(args.configs, work_root, args.scale, args.iters)
    Path(work_root).mkdir(parents=True, exist_ok=True)
    records = (Path(args.records) / Path(work_root).name
               if args.records else None)
    tested = args.scale != 'time-to-solve'  # it reads validations
    try:
        with locked(work_root, reentrant=True):  # sweep and evaluation
            if records is not None:
                restore(runs, records, Path(work_root))
            status = ({} if args.no_train else
                      sweep(runs, work_root, options, jobs=args.jobs))
            if tested:
                evaluate(runs, options, jobs=args.jobs, intervene=intervened)
    except WorkDirBusy as error:
        raise SystemExit(f'[demo] {error}') from None
    minutes = (time.time() - began) / 60
    trained = sum('seconds' in s for s in status.values())
    invocations = record_invocation(work_root, dict(
        started=time.strftime('%Y-%m-%d %H:%M', time.localtime(began)),
        minutes=round(minutes, 1), runs=len(runs), trained=trained,
        jobs=args.jobs, commit=at_commit,
        command='python -m qkv_plugins.study.demo '
        + ' '.join(a for a in (argv if argv is not None else sys.argv[1:]))))
    if records is not None:
        keep(runs, records, Path(work_root), options, tested)
    text = write_report(work_root, machine=describe_machine(),
                        invocations=invocations)
    print(text)
    print(f'[demo] table: {work_root}/table.md (.csv, .png); '
          f'{minutes:.1f} min')
    if args.publish:
        publish(work_root, Path(args.publish_dir))


def restore(runs: list, records: Path, work_root: Path) -> None:
    """Restore the runs recorded under ``records`` into their work dirs (and
    the earlier invocations into a work root that has none)."""
    restored, conflicts = import_records(runs, records)
    held = records / INVOCATIONS_FILE
    if held.is_file() and not (work_root / INVOCATIONS_FILE).is_file():
        write_text_atomic(work_root / INVOCATIONS_FILE, held.read_text())
    print(f'[demo] records: {len(restored)} runs restored from {records}')
    for line in conflicts:
        print(f'[demo] records: CONFLICT {line}')


def keep(runs: list, records: Path, work_root: Path,
         options: Sequence[str], tested: bool) -> None:
    """Export every finished run (complete and, unless ``tested`` is False,
    evaluated in every pass) and the invocations into ``records``."""
    def finished(run) -> bool:
        return run.is_complete(options) and not (
            tested and unevaluated(run, options, intervened(run)))
    try:
        exported = export_records(runs, records, finished)
    except RecordConflict as error:
        raise SystemExit(f'[demo] records: {error}') from None
    done = sum(map(finished, runs))
    invocations = work_root / INVOCATIONS_FILE  # restored ones and ours
    if invocations.is_file():
        write_text_atomic(records / INVOCATIONS_FILE, invocations.read_text())
    print(f'[demo] records: {len(exported)} runs exported to {records} '
          f'({done} of {len(runs)} finished)')


def publish(work_root: str, dest: Path) -> None:
    """Copy the table to ``dest/<work root name>.{md,csv,png}``; refused
    when a run was trained by code with local changes (or of no known
    commit), naming the runs."""
    variants, _ = collect(work_root)
    unclean = [f'{v.config} seed {seed}: {stats.get("commits")}'
               for v in variants for seed, stats in sorted(v.runs.items())
               if not stats.get('commits')
               or not all(is_clean(c) for c in stats['commits'])]
    if unclean:
        raise SystemExit('[demo] --publish refused: runs trained from a '
                         'tree with local changes (or of unknown commit):\n'
                         + '\n'.join(f'  {u}' for u in unclean))
    name = Path(work_root).name  # study, study-full, study-2000it, ...
    for suffix in ('.md', '.csv', '.png'):
        with atomic_path(dest / f'{name}{suffix}') as tmp:
            shutil.copyfile(Path(work_root) / f'table{suffix}', tmp)
    print(f'[demo] published to {dest}/{name}.md (.csv, .png)')


if __name__ == '__main__':
    main()
