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

from .io import pid_alive, refuse_symlink, temporary_path, umask_mode
# The file names live below the hooks that write them; named here too.
from .workfiles import (DIAGNOSTICS_FILE, INIT_DIAGNOSTICS_FILE,  # noqa: F401
                        INTERVENTION_FILES, LIFTED_DIAGNOSTICS_FILE, LOCK_FILE,
                        LOSS_SERIES_FILE, PLAN_FILE, STATS_FILE,
                        TEST_METRICS_FILE)

# Keys that say where and how a run executes, not what it computes.
_NOT_FINGERPRINTED = ('work_dir', 'resume', 'load_from', 'launcher', 'env_cfg',
                      'model_wrapper_cfg', 'run_fingerprint', 'run_identity')
# Keys that set a run's length (and what scales with it): the same run
# resumed to another length keeps its identity.
_LENGTH_KEYS = (('max_iters', ), ('max_epochs', ), ('train_cfg', 'max_iters'),
                ('train_cfg', 'max_epochs'), ('train_cfg', 'val_interval'),
                ('default_hooks', 'checkpoint', 'interval'))


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


def run_identity(cfg) -> str:
    """SHA-256 (16 hex digits) of what a config computes apart from its
    length (:data:`_LENGTH_KEYS`, the schedulers' ``end``): another seed,
    model, data or optimiser is another run; the same run to more
    iterations is not."""
    data = {k: v for k, v in cfg.to_dict().items()
            if k not in _NOT_FINGERPRINTED}
    for path in _LENGTH_KEYS:
        node = data
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(path[-1], None)
    schedulers = data.get('param_scheduler')
    for scheduler in (schedulers if isinstance(schedulers, list) else
                      [schedulers] if isinstance(schedulers, dict) else []):
        if isinstance(scheduler, dict):
            for key in ('end', 'T_max', 'total_iters'):
                scheduler.pop(key, None)
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
              max_iters: Optional[int] = None,
              identity: Optional[str] = None,
              seed: Optional[int] = None) -> Tuple[str, str]:
    """(state, why) of the run in ``work_dir`` against the requested one.

    States: ``'new'`` (no statistics yet), ``'foreign'`` (a run of another
    identity — config or seed, whatever its length —, or of another seed
    where the statistics predate identities: resuming would mix two runs),
    ``'partial'``, ``'complete'`` (for this fingerprint; without one, or for
    a stats file written without one, any complete run), ``'other'``
    (complete for another length that resuming can reach: the requested run
    goes on from it) and ``'past'`` (it ran past the requested
    ``max_iters``: resuming cannot give the requested run). Raises
    RunFileError for a corrupt stats file.
    """
    path = Path(work_dir) / STATS_FILE
    if not path.is_file():
        return 'new', f'no {STATS_FILE}'
    stats = read_json(path, 'run statistics')
    done = stats.get('iter')
    held_identity = stats.get('identity')
    if identity is not None and held_identity not in (None, identity):
        return 'foreign', (f'of another config or seed (identity '
                           f'{held_identity}, seed {stats.get("seed")}; '
                           f'asked identity {identity}, seed {seed})')
    if (held_identity is None and seed is not None
            and stats.get('seed') not in (None, seed)):
        return 'foreign', (f'of seed {stats.get("seed")} (asked seed '
                           f'{seed})')
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
    """Create ``path`` holding ``record`` atomically; False if it exists.
    The temporary is new (``O_EXCL | O_NOFOLLOW``, unpredictable name), so a
    link planted beside the lock is never written through."""
    refuse_symlink(path)
    tmp = temporary_path(path)
    try:
        with open(tmp, 'w') as file:
            file.write(json.dumps(record))
        os.chmod(tmp, umask_mode())
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


# locks this process holds (a holder may enter its own lock again)
_HELD = {}


@contextmanager
def locked(work_dir: Union[str, Path], rank: int = 0,
           reentrant: bool = False) -> Iterator[None]:
    """Hold the work dir's lock for the block (rank 0 only; other ranks of
    a distributed run share rank 0's lock). ``reentrant``: a block of this
    process that holds the lock may enter it again (the demo holds its work
    root across the sweep and the evaluation); otherwise a second holder,
    this process included, raises WorkDirBusy."""
    if rank != 0:
        yield
        return
    key = os.path.realpath(work_dir)
    if reentrant and key in _HELD:
        _HELD[key][1] += 1
    else:
        _HELD[key] = [acquire(work_dir), 1]
    try:
        yield
    finally:
        _HELD[key][1] -= 1
        if _HELD[key][1] == 0:
            release(_HELD.pop(key)[0])
