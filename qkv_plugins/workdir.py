"""A run's work dir: who holds it (a lock) and whether its run is complete.

A training run locks its work dir, so that a second run on the same folder
refuses instead of overwriting the first one's checkpoints and statistics.
The lock (``.qkv_lock.json``) records host, pid and start time; it is taken
over as stale only on the same host when that pid is gone.

"Complete" means complete for the requested config and length: the run's
``run_stats.json`` says complete and carries the fingerprint of the same
config (seed and schedule included). A run complete for another config or
length is resumed to the requested one, unless it went past its length.
"""
import hashlib
import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Tuple, Union

from .io import pid_alive, umask_mode
# The file names live below the hooks that write them; named here too.
from .workfiles import (DIAGNOSTICS_FILE, INIT_DIAGNOSTICS_FILE,  # noqa: F401
                        INTERVENTION_FILES, LIFTED_DIAGNOSTICS_FILE, LOCK_FILE,
                        LOSS_SERIES_FILE, PLAN_FILE, STATS_FILE,
                        TEST_METRICS_FILE)

# Keys that say where and how a run executes, not what it computes.
_NOT_FINGERPRINTED = ('work_dir', 'resume', 'load_from', 'launcher', 'env_cfg',
                      'model_wrapper_cfg', 'run_fingerprint')


class WorkDirBusy(RuntimeError):
    """Another run holds the work dir."""


class WorkDirConflict(RuntimeError):
    """The work dir holds a run of another config or length."""


class RunFileError(ValueError):
    """A run's file is unreadable: names the path and the reason."""


def config_fingerprint(cfg) -> str:
    """SHA-256 (16 hex digits) of what a config computes: everything but
    where and how it runs (:data:`_NOT_FINGERPRINTED`)."""
    data = {k: v for k, v in cfg.to_dict().items()
            if k not in _NOT_FINGERPRINTED}
    text = json.dumps(data, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_json(path: Union[str, Path], what: str = 'file') -> dict:
    """A JSON object from ``path``; RunFileError naming the path and the
    reason if it is unreadable, truncated or not an object."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunFileError(f'{path}: unreadable {what} ({error})') from None
    if not isinstance(data, dict):
        raise RunFileError(f'{path}: unreadable {what} (a JSON '
                           f'{type(data).__name__}, not an object)')
    return data


def run_state(work_dir: Union[str, Path],
              fingerprint: Optional[str] = None,
              max_iters: Optional[int] = None) -> Tuple[str, str]:
    """(state, why) of the run in ``work_dir`` against the requested one.

    States: ``'new'`` (no statistics yet), ``'partial'``, ``'complete'``
    (for this fingerprint; without one, or for a stats file written without
    one, any complete run), ``'other'`` (complete for another config or
    length that resuming can reach: the requested run goes on from it) and
    ``'past'`` (it ran past the requested ``max_iters``: resuming cannot
    give the requested run). Raises RunFileError for a corrupt stats file.
    """
    path = Path(work_dir) / STATS_FILE
    if not path.is_file():
        return 'new', f'no {STATS_FILE}'
    stats = read_json(path, 'run statistics')
    done = stats.get('iter')
    if not stats.get('complete'):
        return 'partial', f'partial (iter {done}/{stats.get("max_iters")})'
    held = stats.get('fingerprint')
    if fingerprint is None or held is None or held == fingerprint:
        return 'complete', 'complete'
    other = (f'complete for another config or length (iter {done}, seed '
             f'{stats.get("seed")}, fingerprint {held}; asked {fingerprint})')
    if isinstance(done, int) and max_iters is not None and done > max_iters:
        return 'past', f'{other}, past the requested {max_iters} iterations'
    return 'other', other


def _describe(holder: dict) -> str:
    started = holder.get('started')
    when = (time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(started))
            if isinstance(started, (int, float)) else '?')
    return (f'pid {holder.get("pid")} on host {holder.get("host")!r} since '
            f'{when}')


def _try_create(path: Path, record: dict) -> bool:
    """Create ``path`` holding ``record`` atomically; False if it exists."""
    tmp = path.with_name(f'{path.name}.{os.getpid()}.tmp')
    tmp.write_text(json.dumps(record))
    os.chmod(tmp, umask_mode())
    try:
        os.link(tmp, path)  # fails if the lock exists: no half-written lock
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink()


def acquire(work_dir: Union[str, Path]) -> Path:
    """Take the lock of ``work_dir``; WorkDirBusy naming the holder if a
    live run holds it. Returns the lock's path."""
    path = Path(work_dir) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    record = dict(host=socket.gethostname(), pid=os.getpid(),
                  started=time.time())
    for _ in range(2):
        if _try_create(path, record):
            return path
        try:
            holder = read_json(path, 'lock')
        except RunFileError as error:
            raise WorkDirBusy(f'{error}; if no run uses {work_dir}, remove '
                              f'{path}') from None
        if (holder.get('host') == record['host']
                and isinstance(holder.get('pid'), int)
                and not pid_alive(holder['pid'])):
            path.unlink(missing_ok=True)  # stale: its process is gone
            continue
        raise WorkDirBusy(
            f'{work_dir} is in use by another run ({_describe(holder)}; '
            f'lock {path}); wait for it to finish or choose another '
            '--work-dir')
    raise WorkDirBusy(f'could not take {path}: another run took it first')


def release(path: Path) -> None:
    """Remove our lock (if it is still ours)."""
    try:
        if read_json(path, 'lock').get('pid') == os.getpid():
            path.unlink()
    except (RunFileError, FileNotFoundError):
        pass


@contextmanager
def locked(work_dir: Union[str, Path], rank: int = 0) -> Iterator[None]:
    """Hold the work dir's lock for the block (rank 0 only; other ranks of
    a distributed run share rank 0's lock)."""
    if rank != 0:
        yield
        return
    path = acquire(work_dir)
    try:
        yield
    finally:
        release(path)
