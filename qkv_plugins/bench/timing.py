"""Median step times of several callables, measured in turns.

Shared machines drift by tens of percent over a minute; timing A's steps and
then B's puts that drift into the ratio A / B. Running them in turns
(A, B, …, then …, B, A) lets a busy spell slow all of them alike.
"""
import statistics
import time
from contextlib import nullcontext
from typing import Callable, ContextManager, List, Sequence

import torch


def interleaved_ms(steps: Sequence[Callable[[], None]],
                   device: torch.device,
                   warmup: int,
                   repeats: int,
                   min_seconds: float = 0.0) -> List[float]:
    """Median milliseconds of each step over at least ``repeats`` turns.

    Args:
        steps: Callables, each one step (e.g. forward + backward).
        device: Where the steps run (CUDA is synchronised around a step).
        warmup: Untimed steps of each, first.
        repeats: Timed turns; each turn runs every step once, the order
            reversed every other turn so that none always runs first.
        min_seconds: Go on with more turns until the timed steps took this
            long in all (fast steps get more samples).
    """
    if repeats < 1:
        raise ValueError(f'repeats must be at least 1, got {repeats}')
    if not steps:
        return []
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    for step in steps:
        for _ in range(warmup):
            step()
    times: List[List[float]] = [[] for _ in steps]
    turn = 0
    while turn < repeats or sum(map(sum, times)) < min_seconds:
        order = range(len(steps)) if turn % 2 == 0 else reversed(
            range(len(steps)))
        for i in order:
            sync()
            start = time.perf_counter()
            steps[i]()
            sync()
            times[i].append(time.perf_counter() - start)
        turn += 1
    return [1000 * statistics.median(t) for t in times]


def autocast(device: torch.device, dtype: torch.dtype) -> ContextManager:
    """Autocast to ``dtype`` on ``device``; a no-op for float32."""
    return (nullcontext() if dtype == torch.float32 else
            torch.autocast(device.type, dtype=dtype))
