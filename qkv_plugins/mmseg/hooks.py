"""Hooks of the study: run statistics, and RNG states in checkpoints."""
import json
import random
import resource
import statistics
import time
from typing import Optional

import numpy as np
import torch
from mmengine.dist import all_gather_object
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS

from ..stats.flops import count_flops
from ..workfiles import STATS_FILE
from ..io import write_text_atomic
from ..machine import code_commit, cpu_capability, device_name


def peak_memory_mib() -> tuple:
    """(peak MiB, what was measured): CUDA allocations, or the process's
    peak resident set on CPU."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20, 'cuda_allocated'
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 'cpu_rss'


@HOOKS.register_module()
class RunStatsHook(Hook):
    """Writes ``run_stats.json`` (params, FLOPs, step time, peak memory,
    validation metrics, each validation's metrics and learnt cosine scales
    by iteration in ``val_history``, completion — at ``max_iters``, or
    earlier when an early-stopping hook ended the run —, the commits that
    trained it, threads and CPU capability) to the work dir for the table
    builder.

    Args:
        warmup: Iterations of each process left out of the step time.
    """

    priority = 'VERY_LOW'

    def __init__(self, warmup: int = 5) -> None:
        self.warmup = warmup
        self.times = []
        self.metrics: Optional[dict] = None
        self.history: list = []
        self.static: dict = {}
        self.commits: list = []
        self._start = 0.0

    def before_train(self, runner) -> None:
        earlier = _earlier_stats(runner) if runner.iter else {}
        self.history = _earlier_history(earlier, runner.iter)
        # every commit whose code trained a part of this run
        self.commits = list(dict.fromkeys(_earlier_commits(earlier)
                                          + [code_commit()]))
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        size = tuple(model.data_preprocessor.size or (512, 512))
        param = next(model.parameters())
        was_training = model.training
        model.eval()
        with torch.no_grad():
            flops = count_flops(model,
                                (torch.zeros(1, 3, *size, device=param.device), ))
        model.train(was_training)
        self.static = dict(
            params=sum(p.numel() for p in model.parameters()),
            flops=flops,
            flops_input=[1, 3, *size])

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self._start = time.perf_counter()

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        self.times.append(time.perf_counter() - self._start)

    def after_val_epoch(self, runner, metrics=None) -> None:
        self.metrics = dict(metrics or {})
        self.history = [h for h in self.history if h['iter'] < runner.iter]
        point = dict(iter=runner.iter, **self.metrics)
        scales = cosine_scales(runner.model)
        if scales:
            point['cosine_scale'] = scales
        self.history.append(point)
        self._write(runner)

    def after_train(self, runner) -> None:
        self._write(runner)

    def _write(self, runner) -> None:
        # Collective: every rank reports its step count, rank 0 writes.
        steps_per_rank = all_gather_object(len(self.times))
        if runner.rank != 0:
            return
        steps = self.times[self.warmup:] or self.times
        # an early-stopping hook ended the run (e.g. at its solve threshold)
        stopped = bool(getattr(runner.train_loop, 'stop_training', False))
        memory, memory_kind = peak_memory_mib()
        stats = dict(
            config=runner.cfg.filename,
            fingerprint=runner.cfg.get('run_fingerprint'),
            identity=runner.cfg.get('run_identity'),
            experiment=runner.experiment_name,
            seed=runner.seed,
            iter=runner.iter,
            max_iters=runner.max_iters,
            complete=(runner.iter >= runner.max_iters or stopped)
            and self.metrics is not None,
            stopped_early=stopped and runner.iter < runner.max_iters,
            step_time_s=statistics.median(steps) if steps else None,
            peak_memory_mib=memory,
            memory_kind=memory_kind,
            world_size=runner.world_size,
            steps_per_rank=steps_per_rank,
            device=device_name(),
            torch=torch.__version__,
            threads=torch.get_num_threads(),
            cpu_capability=cpu_capability(),
            commits=self.commits,
            metrics=self.metrics,
            val_history=self.history,
            **self.static)
        write_text_atomic(f'{runner.work_dir}/{STATS_FILE}',
                          json.dumps(stats, indent=1))


def cosine_scales(model) -> dict:
    """{module name: learnt cosine logit scale} of every cosine similarity
    in the model (empty for dot-product models)."""
    from ..layers.similarity import Similarity
    model = model.module if is_model_wrapper(model) else model
    return {name: module.cosine_scale for name, module in model.named_modules()
            if isinstance(module, Similarity)
            and module.cosine_scale is not None}


def _earlier_stats(runner) -> dict:
    """The work dir's statistics of the same run (fingerprint), else {}."""
    try:
        with open(f'{runner.work_dir}/{STATS_FILE}') as file:
            stats = json.load(file)
    except (OSError, ValueError):
        return {}
    if (not isinstance(stats, dict) or stats.get('fingerprint')
            != runner.cfg.get('run_fingerprint')):
        return {}
    return stats


def _earlier_history(stats: dict, until: int) -> list:
    """Validations up to iteration ``until`` of earlier statistics."""
    return [h for h in stats.get('val_history') or []
            if isinstance(h, dict) and isinstance(h.get('iter'), int)
            and h['iter'] <= until]


def _earlier_commits(stats: dict) -> list:
    """The commits that trained the run before it was resumed."""
    commits = stats.get('commits')
    return [c for c in commits if isinstance(c, str)] if isinstance(
        commits, list) else []


def _set_rng_states(states: dict) -> None:
    random.setstate(states['python'])
    np.random.set_state(states['numpy'])
    torch.set_rng_state(states['torch'])
    if states['cuda'] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states['cuda'])


class _RestoreBeforeFetch:
    """Dataloader iterator proxy: after ``skip`` fetches (mmengine's replay
    of the batches already trained), restore the RNG states, then fetch."""

    def __init__(self, iterator, skip: int, states: dict) -> None:
        self._iterator, self._skip, self._states = iterator, skip, states

    def __iter__(self):
        return self

    def __next__(self):
        if self._skip == 0 and self._states is not None:
            _set_rng_states(self._states)
            self._states = None
        self._skip -= 1
        return next(self._iterator)


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Saves the python/numpy/torch RNG states in checkpoints and restores
    them when a run resumes, so that a resumed run draws the same random
    numbers (dropout, transforms) as an uninterrupted one.

    mmengine replays the dataloader up to the resumed iteration, and that
    replay consumes RNG: the states are restored right after it, before the
    first new batch is loaded.
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._pending: Optional[dict] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['rng_states'] = dict(
            python=random.getstate(),
            numpy=np.random.get_state(),
            torch=torch.get_rng_state(),
            cuda=torch.cuda.get_rng_state_all()
            if torch.cuda.is_available() else [])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._pending = checkpoint.get('rng_states')

    def before_train_epoch(self, runner) -> None:
        if self._pending is None:
            return
        loop = runner.train_loop
        loop.dataloader_iterator = _RestoreBeforeFetch(
            loop.dataloader_iterator, loop.iter, self._pending)
        self._pending = None
