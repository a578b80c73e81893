"""Eager against ``torch.compile`` per block: CPU time of a training step
(forward + backward), in turns, with the kernel path each ran and the
graph breaks (``python -m qkv_plugins benchmark-compile``; writes
``benchmarks/compile-<device>.{md,csv}``).

Eager runs the fast path (on CPU the hand-written ``autograd.Function`` s
where a block has one); the compiled step runs what a tracer gets (plain
tensor ops: ``scaled_dot_product_attention`` or the explicit path, with
``mask_self`` the N×N masked logits; :func:`~qkv_plugins.layers.kernels.
traceable`), compiled by Inductor. The paths are named by
:func:`~qkv_plugins.layers.kernels.paths_taken`.
"""
import os
import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor
from torch._inductor import config as inductor_config

from ..io import cell
from ..layers.kernels import paths_taken, tracer_paths
from ..machine import code_commit, describe_machine
from ..report import csv_text, markdown_table
from .deploy import DeployCase, graph_breaks
from .timing import interleaved_ms

# (B, C, H, W): the study's head (8 images of 128×128 at stride 8, 64
# channels) and a 64×64 map (B = 2, as the layer benchmark).
DEFAULT_SHAPES = ((8, 64, 16, 16), (2, 64, 64, 64))
# (catalog name, options) timed per block: the default, and where eager has
# a Function the tracer replaces, the study's variant that runs it
# (criss-cross runs CrissCrossFunction in every mode on CPU).
DEFAULT_CASES: Tuple[Tuple[str, dict], ...] = (
    ('nonlocal', dict(qkv_mode='separate')),
    ('nonlocal', dict(qkv_mode='shared_qk', similarity='cosine',
                      mask_self=True)),
    ('ccnet', dict(qkv_mode='separate', recurrence=2)),
    ('dnl', dict(qkv_mode='separate')),
    ('gcnet', dict(qkv_mode='query_independent')),
    ('mha', dict(qkv_mode='separate')),
    ('mha', dict(qkv_mode='shared_qk', mask_self=True)),
)
# What a block without an attention kernel call runs (GCNet's pooling).
PLAIN_OPS = 'plain ops'


def default_cases(layers: Optional[Sequence[str]] = None) -> List[DeployCase]:
    """:data:`DEFAULT_CASES` (of ``layers`` only, if given) as grid cases."""
    cases = []
    for layer, options in DEFAULT_CASES:
        if layers is None or layer in layers:
            full = {'similarity': 'dot', 'mask_self': False, **options}
            cases.append(DeployCase(layer, tuple(full.items())))
    return cases


@dataclass
class CompileRow:
    """One block at one shape."""
    label: str
    shape: Tuple[int, int, int, int]
    eager_path: str
    compiled_path: str
    eager_ms: float
    compiled_ms: float
    compile_s: float
    breaks: int

    @property
    def speedup(self) -> float:
        """Eager time over compiled time (above 1: compiled is faster)."""
        return self.eager_ms / self.compiled_ms


def _path_names(taken: List[str]) -> str:
    return ' + '.join(dict.fromkeys(taken)) or PLAIN_OPS


def kernel_paths(module: nn.Module, x: Tensor) -> Tuple[str, str]:
    """(eager path, tracer path) of one forward of ``module(x)``."""
    with torch.no_grad():
        with paths_taken() as eager:
            module(x)
        with tracer_paths(), paths_taken() as traced:
            module(x)
    return _path_names(eager), _path_names(traced)


def _train_step(module: Callable[[Tensor], Tensor],
                x: Tensor) -> Callable[[], None]:
    def run() -> None:
        x.grad = None
        module(x).sum().backward()
    return run


def run_case(case: DeployCase, shape: Tuple[int, int, int, int],
             warmup: int, repeats: int, min_seconds: float = 0.0,
             backend: str = 'inductor',
             log: Callable[[str], None] = print) -> CompileRow:
    """Time eager and compiled training steps of one block in turns (the
    compiled one's first call, compilation included, timed apart)."""
    batch, channels, height, width = shape
    layer = case.build(channels).train()
    x = torch.randn(batch, channels, height, width, requires_grad=True)
    eager_path, compiled_path = kernel_paths(layer, x)
    breaks = graph_breaks(layer, x, train=True).breaks
    layer.train()
    torch._dynamo.reset()
    compiled = torch.compile(layer, backend=backend, dynamic=False)
    eager_step, compiled_step = _train_step(layer, x), _train_step(compiled, x)
    # Inductor's on-disk caches off for the first call: a second run would
    # time a cache lookup instead of the compilation
    with inductor_config.patch(force_disable_caches=True):
        began = time.perf_counter()
        compiled_step()
        compile_s = time.perf_counter() - began
    eager_ms, compiled_ms = interleaved_ms(
        [eager_step, compiled_step], torch.device('cpu'), warmup, repeats,
        min_seconds)
    torch._dynamo.reset()
    row = CompileRow(case.label, shape, eager_path, compiled_path, eager_ms,
                     compiled_ms, compile_s, breaks)
    log(f'[compile] {row.label} {_shape_text(shape)}: eager {eager_ms:.2f} '
        f'ms ({eager_path}), compiled {compiled_ms:.2f} ms ({compiled_path}),'
        f' {row.speedup:.2f}x; compiled in {compile_s:.0f} s, {breaks} '
        'graph breaks')
    return row


def _shape_text(shape: Sequence[int]) -> str:
    batch, channels, height, width = shape
    return f'{batch}×{channels}×{height}×{width}'


HEADER = ('block', 'B×C×H×W', 'eager path', 'eager ms', 'compiled path',
          'compiled ms', 'speed-up', 'compile s', 'graph breaks')
CSV_HEADER = ('block', 'batch', 'channels', 'height', 'width', 'eager_path',
              'eager_ms', 'compiled_path', 'compiled_ms', 'speedup',
              'compile_s', 'graph_breaks')


def load_text(load: Sequence[Optional[float]]) -> str:
    """``Load: ...`` from the 1-minute load averages at the start and the
    end of the run: at the start, before the benchmark did any work, a load
    of 1 or more means other processes shared the machine."""
    if any(value is None for value in load):
        return 'Load: not available on this system.'
    start, end = load
    cores = os.cpu_count() or 1
    shared = (
        'other processes shared the machine: turns keep their drift out of '
        'the ratios, not their contention, and every ms is above an idle '
        "machine's" if start >= 1 else
        'no other process was busy when it started')
    return (f'Load: 1-minute load average {start:.1f} at the start, '
            f'{end:.1f} at the end, on {cores} cores ({shared}).')


def to_markdown(rows: List[CompileRow], command: str, backend: str,
                load: Sequence[Optional[float]] = (None, None)) -> str:
    """The compile table with the command, commit, machine and its load
    (1-minute load averages at the start and the end) above it."""
    lines = [
        '# torch.compile against eager, per block (CPU)', '',
        f'Command: `{command}` at commit {code_commit()}', '',
        f'Machine: {describe_machine()}', '', load_text(load), '',
        'A training step of the block alone (forward + backward of the sum '
        'of its output, fp32, training mode, parameters redrawn at random), '
        f'median time over turns: eager and `torch.compile(backend='
        f'{backend!r}, dynamic=False)` run in turns on one input; the '
        'compiled step\'s first call (compilation, with Inductor\'s on-disk '
        'caches off) is timed apart. Speed-up '
        '= eager ms / compiled ms. Eager runs the fast path (the '
        'hand-written Functions on CPU), compiled the tracers\' path (plain '
        'tensor ops; `kernels.traceable()`); graph breaks from '
        '`torch._dynamo.explain` of the training forward.', ''
    ]
    cells = [(r.label, _shape_text(r.shape), r.eager_path,
              f'{r.eager_ms:.2f}', r.compiled_path, f'{r.compiled_ms:.2f}',
              f'{r.speedup:.2f}×', f'{r.compile_s:.0f}', r.breaks)
             for r in rows]
    return '\n'.join(lines) + '\n' + markdown_table(HEADER, cells)


def to_csv(rows: List[CompileRow]) -> str:
    return csv_text(CSV_HEADER, ((r.label, *r.shape, r.eager_path,
                                  cell(r.eager_ms, '.4f'), r.compiled_path,
                                  cell(r.compiled_ms, '.4f'),
                                  cell(r.speedup, '.4f'),
                                  cell(r.compile_s, '.1f'), r.breaks)
                                 for r in rows))
