"""The sweep: configs × seeds, each a training run
(``python -m qkv_plugins.commands.train``) in its own work dir, skipping
complete runs and resuming incomplete ones; then each run's final
checkpoint evaluated on the held-out test split with attention diagnostics
(:func:`evaluate`)."""
import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

from ..io import SymlinkRefused, open_append, write_text_atomic
from ..workdir import (INIT_DIAGNOSTICS_FILE, INTERVENTION_FILES,
                       LIFTED_DIAGNOSTICS_FILE, PLAN_FILE, TEST_METRICS_FILE,
                       RunFileError, locked, run_state)

TRAIN = [sys.executable, '-m', 'qkv_plugins.commands.train']
TEST = [sys.executable, '-m', 'qkv_plugins.commands.test']


@dataclass
class Run:
    """One training run: a config at one seed in its work dir, with
    ``options`` of its own (``--cfg-options``, after the sweep's)."""
    config: Path
    seed: int
    work_dir: Path
    options: Tuple[str, ...] = ()
    _configs: Dict[tuple, object] = field(default_factory=dict, repr=False,
                                          compare=False)

    @property
    def name(self) -> str:
        return f'{self.work_dir.parent.name} seed {self.seed}'

    def cfg_options(self, cfg_options: Sequence[str] = ()) -> List[str]:
        """The sweep's options, then the run's own."""
        return [*cfg_options, *self.options]

    def config_for(self, cfg_options: Sequence[str] = ()):
        """The Config the training command builds for this run; read once
        per set of options (the sweep asks before and after training, and
        the evaluation again)."""
        key = tuple(cfg_options)
        if key not in self._configs:
            from ..training import load_config
            options = {**parse_cfg_options(self.cfg_options(cfg_options)),
                       'randomness.seed': self.seed}
            self._configs[key] = load_config(str(self.config), options,
                                             str(self.work_dir))
        return self._configs[key]

    def requested(self, cfg_options: Sequence[str] = ()) -> Tuple[str, int]:
        """(fingerprint, max_iters) of the requested run."""
        cfg = self.config_for(cfg_options)
        return cfg.run_fingerprint, cfg.get('train_cfg', {}).get('max_iters')

    def state(self, cfg_options: Sequence[str] = ()) -> Tuple[str, str]:
        """(state, why): :func:`~qkv_plugins.workdir.run_state` for this
        config, seed and length, or ``'corrupt'`` with the file's error."""
        fingerprint, max_iters = self.requested(cfg_options)
        identity = self.config_for(cfg_options).run_identity
        try:
            return run_state(self.work_dir, fingerprint, max_iters, identity,
                             self.seed)
        except RunFileError as error:
            return 'corrupt', str(error)

    def is_complete(self, cfg_options: Sequence[str] = ()) -> bool:
        return self.state(cfg_options)[0] == 'complete'


def parse_cfg_options(options: Sequence[str]) -> dict:
    """``['a.b=1', ...]`` as mmengine's ``--cfg-options`` parses them."""
    from mmengine.config import DictAction
    if not options:
        return {}
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(['--cfg-options', *options]).cfg_options


def plan(configs: Sequence[str],
         seeds: Sequence[int],
         root: str,
         options: Sequence[str] = (),
         suffix: str = '') -> List[Run]:
    """One run per (config, seed) under ``root/<config stem><suffix>/seed<k>``
    (``options``: each run's own ``--cfg-options``)."""
    missing = [c for c in configs if not Path(c).is_file()]
    if missing:
        raise FileNotFoundError(f'config files not found: {missing}')
    return [
        Run(Path(c), s, Path(root) / f'{Path(c).stem}{suffix}' / f'seed{s}',
            tuple(options))
        for c in configs for s in seeds
    ]


def _command(run: Run, cfg_options: Sequence[str]) -> List[str]:
    return [
        *TRAIN,
        str(run.config), '--work-dir', str(run.work_dir), '--resume',
        '--cfg-options', f'randomness.seed={run.seed}',
        *run.cfg_options(cfg_options)
    ]


def _write_plan(root: str, runs: List[Run], status: dict) -> None:
    write_text_atomic(
        Path(root) / PLAN_FILE,
        json.dumps(dict(runs=[
            dict(config=r.work_dir.parent.name, path=str(r.config),
                 seed=r.seed, options=list(r.options),
                 **status.get(r.name, {})) for r in runs
        ]), indent=1))


def single_thread_env() -> Dict[str, str]:
    """Environment for one intra-op thread per run, whatever ``jobs`` is.

    A CPU reduction split over threads adds its parts in an order that
    depends on the thread count (and, with dynamic threading, on the load
    beside the run): the same config and seed would give other bits with
    ``--jobs 1`` than with ``--jobs 2``. One thread each keeps a run's
    arithmetic fixed; ``jobs`` runs use ``jobs`` cores.
    """
    return dict(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1',
                MKL_DYNAMIC='FALSE', OMP_DYNAMIC='FALSE')


def _eta(done: int, total: int, elapsed: float) -> str:
    if done == 0:
        return '?'
    return f'{elapsed / done * (total - done) / 60:.1f} min'


def sweep(runs: List[Run],
          root: str,
          cfg_options: Sequence[str] = (),
          jobs: int = 1,
          log: Callable[[str], None] = print) -> dict:
    """Run every incomplete run (``jobs`` at a time); return their status.

    Each run's output goes to ``<work_dir>/sweep.log``. A failed run is
    recorded in ``sweep.json`` and the sweep goes on. Every run has one
    intra-op thread (:func:`single_thread_env`), so its results do not
    depend on ``jobs``.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f'jobs must be a positive int, but got {jobs!r}')
    Path(root).mkdir(parents=True, exist_ok=True)
    # a second sweep on this root refuses, naming us
    with locked(root, reentrant=True):
        return _sweep(runs, root, cfg_options, jobs, log)


def _sweep(runs: List[Run], root: str, cfg_options: Sequence[str],
           jobs: int, log: Callable[[str], None]) -> dict:
    status, todo = {}, []
    for run in runs:
        state, why = run.state(cfg_options)
        if state == 'complete':
            status[run.name] = dict(status='complete')
        elif state in ('past', 'foreign'):
            status[run.name] = dict(status='conflict', reason=why)
            log(f'[sweep] CONFLICT {run.name}: {run.work_dir} holds a run '
                f'{why}; not run (use another work root)')
        else:
            if state in ('corrupt', 'other'):
                log(f'[sweep] {run.name}: {why}; resuming it')
            todo.append(run)
    conflicts = sum(s['status'] == 'conflict' for s in status.values())
    log(f'[sweep] {len(runs)} runs: {len(status) - conflicts} complete, '
        f'{len(todo)} to run, {jobs} at a time'
        + (f', {conflicts} in conflict' if conflicts else ''))
    _write_plan(root, runs, status)
    env = dict(os.environ, PYTHONUNBUFFERED='1', **single_thread_env())
    running = {}
    start, done = time.time(), 0
    while todo or running:
        while todo and len(running) < jobs:
            run = todo.pop(0)
            run.work_dir.mkdir(parents=True, exist_ok=True)
            try:
                logfile = open_append(run.work_dir / 'sweep.log')
            except SymlinkRefused as error:
                status[run.name] = dict(status='failed', reason=str(error))
                log(f'[sweep] FAILED {run.name}: {error}')
                _write_plan(root, runs, status)
                continue
            proc = subprocess.Popen(_command(run, cfg_options), env=env,
                                    stdout=logfile, stderr=subprocess.STDOUT)
            running[proc] = (run, logfile, time.time())
            log(f'[sweep] start {run.name}')
        time.sleep(0.5)
        for proc in [p for p in running if p.poll() is not None]:
            run, logfile, began = running.pop(proc)
            logfile.close()
            done += 1
            # the run's own files say whether it is complete (a process
            # that failed after finishing its run leaves it complete)
            ok = run.is_complete(cfg_options)
            status[run.name] = dict(
                status='complete' if ok else 'failed',
                returncode=proc.returncode,
                seconds=round(time.time() - began, 1))
            _write_plan(root, runs, status)
            total = done + len(todo) + len(running)
            log(f'[sweep] {"done" if ok else "FAILED"} {run.name} in '
                f'{time.time() - began:.0f}s ({done}/{total}, eta '
                f'{_eta(done, total, time.time() - start)})'
                + ('' if ok else f'; see {run.work_dir / "sweep.log"}'))
    return status


def masks_self(cfg) -> bool:
    """Whether any part of a config sets ``mask_self=True``."""
    def walk(node) -> bool:
        if isinstance(node, dict):
            return node.get('mask_self') is True or any(
                walk(v) for v in node.values())
        if isinstance(node, (list, tuple)):
            return any(walk(v) for v in node)
        return False
    return walk(cfg.get('model', {}))


def _passes(run: Run, checkpoint: str, cfg_options: Sequence[str],
            lifted: bool, intervene: bool) -> List[Tuple[str, List[str]]]:
    """(file it writes, test command) of each evaluation pass of a run."""
    options = ['--cfg-options', *run.cfg_options(cfg_options)]
    work = ['--work-dir', str(run.work_dir)]
    test = [*TEST, str(run.config)]
    every = ['--diagnostics', '--diagnostics-batches', '0']
    passes = [(TEST_METRICS_FILE,
               [*test, checkpoint, *work, *every, '--metrics-out',
                str(run.work_dir / TEST_METRICS_FILE), *options])]
    if lifted:
        passes.append((LIFTED_DIAGNOSTICS_FILE,
                       [*test, checkpoint, *work, *every, '--lift-mask',
                        *options]))
    if intervene:
        for how, name in INTERVENTION_FILES.items():
            passes.append((name, [*test, checkpoint, *work,
                                  '--logit-transform', how, '--metrics-out',
                                  str(run.work_dir / name), *options]))
        passes.append((INIT_DIAGNOSTICS_FILE,
                       [*test, '--at-init', *work, '--diagnostics-batches',
                        '0', '--diagnostics-out', INIT_DIAGNOSTICS_FILE,
                        *options]))
    return passes


def unevaluated(run: Run, cfg_options: Sequence[str] = (),
                intervene: bool = False) -> List[str]:
    """The files of the run's evaluation passes (:func:`evaluate`) that are
    not written yet; ``[]`` once it is fully evaluated."""
    names = [name for name, _ in _passes(
        run, '', cfg_options, masks_self(run.config_for(cfg_options)),
        intervene)]
    return [name for name in names if not (run.work_dir / name).is_file()]


def evaluate(runs: List[Run],
             cfg_options: Sequence[str] = (),
             log: Callable[[str], None] = print,
             jobs: int = 1,
             intervene: Callable[[Run], bool] = lambda run: False) -> None:
    """Each complete run's final checkpoint on the held-out test split (the
    test command): metrics to ``test_metrics.json`` and, over every test
    image, attention diagnostics; for a ``mask_self`` model a second pass
    with the mask lifted; for the runs ``intervene`` picks, the metrics with
    the logits made symmetric and transposed, and the diagnostics of the
    model as its seed initialises it. Passes whose file exists are skipped;
    ``jobs`` runs at a time, one thread each (as training: the same bits
    whatever ``jobs``)."""
    from concurrent.futures import ThreadPoolExecutor

    from ..compat import find_resumable_checkpoint
    todo, unreadable = [], []
    for run in runs:
        if not run.is_complete(cfg_options) or not unevaluated(
                run, cfg_options, intervene(run)):
            continue
        checkpoint = find_resumable_checkpoint(str(run.work_dir))
        if checkpoint is None:  # complete, but its checkpoints are gone
            unreadable.append(f'{run.name} ({run.work_dir})')
            continue
        passes = [(name, command) for name, command in _passes(
            run, str(checkpoint), cfg_options,
            masks_self(run.config_for(cfg_options)), intervene(run))
            if not (run.work_dir / name).is_file()]
        todo.append((run, passes))
    log(f'[evaluate] {len(todo)} runs to evaluate on the test split'
        + (f'; {len(unreadable)} without a checkpoint: '
           + ', '.join(unreadable) if unreadable else ''))
    env = dict(os.environ, PYTHONUNBUFFERED='1', **single_thread_env())
    finished = []

    def one(item) -> None:
        run, passes = item
        began = time.time()
        with open_append(run.work_dir / 'evaluate.log') as logfile:
            codes = [subprocess.call(command, stdout=logfile, env=env,
                                     stderr=subprocess.STDOUT)
                     for _, command in passes]
        failed = [c for c in codes if c]
        finished.append(run)
        log(f'[evaluate] {len(finished)}/{len(todo)} {run.name}: '
            + (f'ok, {len(passes)} passes ({time.time() - began:.0f}s)'
               if not failed else f'FAILED (exit {failed[0]}), see '
               f'{run.work_dir / "evaluate.log"}'))

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(one, todo))
