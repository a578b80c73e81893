"""A study's run records: the small files each finished run leaves (its
statistics, loss series, test metrics, diagnostics and interventions), kept
in a folder of their own, ``<records>/<work root name>/<config>/seed<k>/``.

The table is built from these files alone, so a sweep can go on elsewhere —
a later session, another machine — without its work dirs: ``demo
--records DIR`` restores the records into the work root before it sweeps
(restored runs are complete and evaluated, nothing retrains them) and
exports every run it finished afterwards. Checkpoints stay out: a run is
exported only once every evaluation pass has read its checkpoint.
"""
import filecmp
import shutil
from pathlib import Path
from typing import Callable, List, Sequence, Tuple

from ..io import atomic_path
from ..workdir import (DIAGNOSTICS_FILE, INIT_DIAGNOSTICS_FILE,
                       INTERVENTION_FILES, LIFTED_DIAGNOSTICS_FILE,
                       LOSS_SERIES_FILE, STATS_FILE, TEST_METRICS_FILE)
from .sweep import Run

# What a finished run's record holds (those of its files that exist).
RECORD_FILES = (STATS_FILE, LOSS_SERIES_FILE, TEST_METRICS_FILE,
                DIAGNOSTICS_FILE, LIFTED_DIAGNOSTICS_FILE,
                *INTERVENTION_FILES.values(), INIT_DIAGNOSTICS_FILE)


class RecordConflict(RuntimeError):
    """A record file and the file it would replace differ."""


def record_dir(records: Path, run: Run) -> Path:
    """Where ``run``'s record lives: ``<records>/<config>/seed<k>``."""
    return Path(records) / run.work_dir.parent.name / run.work_dir.name


def _copy(src: Path, dest: Path) -> bool:
    """Copy ``src`` to ``dest`` atomically; False if ``dest`` already holds
    the same bytes; RecordConflict if it holds others."""
    if dest.is_file():
        if filecmp.cmp(src, dest, shallow=False):
            return False
        raise RecordConflict(f'{dest} differs from {src}; refusing to '
                             'replace it (two different runs under one name)')
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
    return True


def export_records(runs: Sequence[Run], records: Path,
                   finished: Callable[[Run], bool]) -> List[Run]:
    """Copy the record files of every ``finished`` run into ``records``;
    return the runs that added a file. A record file already there must be
    identical (RecordConflict names it otherwise)."""
    exported = []
    for run in runs:
        if not finished(run):
            continue
        dest = record_dir(records, run)
        added = [_copy(run.work_dir / name, dest / name)
                 for name in RECORD_FILES if (run.work_dir / name).is_file()]
        if any(added):
            exported.append(run)
    return exported


def import_records(runs: Sequence[Run],
                   records: Path) -> Tuple[List[Run], List[str]]:
    """Restore each run's record from ``records`` into its work dir.

    A work dir that already holds statistics keeps them: its files must
    match the record's (else it is listed as a conflict and left as it is).
    Returns (runs restored, conflicts).
    """
    restored, conflicts = [], []
    for run in runs:
        src = record_dir(records, run)
        if not (src / STATS_FILE).is_file():
            continue
        names = [name for name in RECORD_FILES if (src / name).is_file()]
        held = run.work_dir / STATS_FILE
        if held.is_file():
            differ = [name for name in names
                      if (run.work_dir / name).is_file()
                      and not filecmp.cmp(src / name, run.work_dir / name,
                                          shallow=False)]
            if differ:
                conflicts.append(f'{run.name}: {run.work_dir} holds another '
                                 f'run ({", ".join(differ)} differ); kept')
                continue
        # statistics last: the run counts as complete once all are there
        added = [_copy(src / name, run.work_dir / name)
                 for name in sorted(names, key=lambda n: n == STATS_FILE)]
        if any(added):
            restored.append(run)
    return restored, conflicts
