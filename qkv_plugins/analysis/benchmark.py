"""Layer benchmark: our layers against mmcv's blocks, forward + backward.

Each case times ``layer(x).sum().backward()`` (median of ``repeats`` after
``warmup``), its steps and the reference's run in turns on one input, and
measures its extra peak memory; ratios compare a case with its reference.
References: mmcv ``NonLocal2d`` (``embedded_gaussian`` for ``separate`` and
``shared*``, ``gaussian`` for the identity modes), mmcv
``CrissCrossAttention`` applied ``recurrence`` times, and where mmcv has
no twin, our explicit path (non-local ``cosine``) or, for non-local
``mask_self``, the same layer without the mask (what the mask costs).
"""
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from typing import Callable, Iterable, List, Optional, Tuple

import torch
import torch.nn as nn

from ..layers import QKVCrissCrossAttention, QKVNonLocal2d
from .memory import configure_cpu_memory, extra_peak_mib
from .timing import interleaved_ms

RECURRENCE = 2


@dataclass(frozen=True)
class Case:
    layer: str  # 'non_local' | 'criss_cross'
    qkv_mode: str
    similarity: str
    mask_self: bool
    height: int
    width: int
    channels: int
    batch: int

    @property
    def positions(self) -> int:
        return self.height * self.width

    @property
    def label(self) -> str:
        extra = ''.join([',cos' if self.similarity == 'cosine' else '',
                         ',mask' if self.mask_self else ''])
        return f'{self.layer}:{self.qkv_mode}{extra}'


@dataclass
class Result:
    case: Case
    impl: str  # 'ours' or the reference's name
    time_ms: Optional[float]
    extra_mib: Optional[float]
    attn_tflops: Optional[float]
    error: str = ''

    def row(self) -> dict:
        return dict(asdict(self.case), impl=self.impl, time_ms=self.time_ms,
                    extra_mib=self.extra_mib, attn_tflops=self.attn_tflops,
                    error=self.error)


class _Explicit(nn.Module):
    """Our layer forced onto its explicit (weights-returning) path."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer.forward_with_weights(x, need_weights=True)[0]


def build_ours(case: Case) -> nn.Module:
    options = dict(qkv_mode=case.qkv_mode, similarity=case.similarity,
                   mask_self=case.mask_self)
    if case.layer == 'non_local':
        return QKVNonLocal2d(case.channels, **options)
    return QKVCrissCrossAttention(case.channels, recurrence=RECURRENCE,
                                  **options)


def build_reference(case: Case):
    """(name, module) of the reference for ``case``."""
    if case.layer == 'criss_cross':
        from mmcv.ops import CrissCrossAttention
        block = CrissCrossAttention(case.channels)
        return f'mmcv CCA x{RECURRENCE}', nn.Sequential(
            *[block] * RECURRENCE)
    if case.mask_self:  # what the mask costs: the same layer without it
        return 'ours unmasked', build_ours(replace(case, mask_self=False))
    if case.similarity == 'cosine':
        return 'ours explicit', _Explicit(build_ours(case))
    from mmcv.cnn import NonLocal2d
    mode = 'gaussian' if case.qkv_mode.startswith(
        'identity') else 'embedded_gaussian'
    return f'mmcv NonLocal2d {mode}', NonLocal2d(case.channels, mode=mode)


def attention_flops(case: Case, module: nn.Module) -> float:
    """FLOPs (2 per multiply-add) of the attention products in forward +
    backward (backward ≈ 2× forward), excluding projections."""
    layer = getattr(module, 'layer', module)
    if isinstance(layer, QKVNonLocal2d):
        c, cv = layer.proj.qk_channels, layer.proj.v_channels
        keys = case.positions
        hops = 1
    elif isinstance(layer, QKVCrissCrossAttention):
        c, cv = layer.proj.qk_channels, layer.proj.v_channels
        keys = case.height + case.width
        hops = layer.recurrence
    elif case.layer == 'criss_cross':
        c, cv = case.channels // 8, case.channels
        keys, hops = case.height + case.width, RECURRENCE
    else:
        c = cv = case.channels // 2
        keys, hops = case.positions, 1
    macs = case.batch * case.positions * keys * (c + cv) * hops
    return 2 * macs * 3


def _step(module: nn.Module, x: torch.Tensor, autocast) -> Callable[[], None]:

    def run():
        x.grad = None
        module.zero_grad(set_to_none=True)
        with autocast():
            out = module(x)
        out.float().sum().backward()

    return run


def _inputs(case: Case, device: torch.device) -> torch.Tensor:
    return torch.randn(case.batch, case.channels, case.height, case.width,
                       device=device, requires_grad=True)


def _autocast(device: torch.device, dtype: torch.dtype):
    return (nullcontext if dtype == torch.float32 else
            (lambda: torch.autocast(device.type, dtype=dtype)))


def memory_mib(module: nn.Module, case: Case, device: torch.device,
               dtype: torch.dtype) -> float:
    """Extra peak memory of one forward + backward (after one warm-up)."""
    run = _step(module.to(device), _inputs(case, device),
                _autocast(device, dtype))
    run()
    return extra_peak_mib(run, device)


def _modules(case: Case):
    torch.manual_seed(0)
    name, reference = build_reference(case)
    return [('ours', build_ours(case)), (name, reference)]


def _warm_steps(case: Case, device: torch.device, dtype: torch.dtype,
                warmup: int) -> List[Tuple[str, nn.Module, Optional[Callable]]]:
    """(impl, module, step) for ours and the reference on one input, each
    warmed up (at least one step, which also finds out-of-memory); step is
    None where that ran out of memory."""
    x = _inputs(case, device)
    warmed = []
    for impl, module in _modules(case):
        step = _step(module.to(device), x, _autocast(device, dtype))
        try:
            for _ in range(max(warmup, 1)):
                step()
        except torch.OutOfMemoryError:
            step = None
        warmed.append((impl, module, step))
    return warmed


def run_cases(cases: Iterable[Case], device: torch.device, dtype: torch.dtype,
              warmup: int = 2, repeats: int = 5, min_seconds: float = 0.0,
              log=print) -> List[Result]:
    """Measure each case and its reference: their steps in turns (at least
    ``repeats`` turns and ``min_seconds``, see :mod:`.timing`), then, in a
    second pass, every memory peak.

    On CPU the memory pass runs with glibc told to ``mmap`` large blocks
    (see :mod:`.memory`), which would slow the timings, hence two passes.
    """
    cases = list(cases)
    results = []
    for i, case in enumerate(cases):
        warmed = _warm_steps(case, device, dtype, warmup)
        live = [step for _, _, step in warmed if step is not None]
        times = iter(interleaved_ms(live, device, 0, repeats, min_seconds))
        for impl, module, step in warmed:
            if step is None:
                results.append(Result(case, impl, None, None, None,
                                      'out of memory'))
                continue
            ms = next(times)
            results.append(Result(case, impl, ms, None,
                                  attention_flops(case, module) / ms / 1e9))
        ours, ref = results[-2:]
        ratio = (f'{ours.time_ms / ref.time_ms:.2f}x'
                 if ours.time_ms and ref.time_ms else '-')
        log(f'[benchmark time {i + 1}/{len(cases)}] {case.label} '
            f'{case.height}x{case.width}: ours {_ms(ours)} vs {ref.impl} '
            f'{_ms(ref)} ({ratio})')
    if device.type == 'cpu':
        configure_cpu_memory()
    for i, case in enumerate(cases):
        for j, (impl, module) in enumerate(_modules(case)):
            result = results[2 * i + j]
            if result.error:
                continue
            try:
                result.extra_mib = memory_mib(module, case, device, dtype)
            except torch.OutOfMemoryError as error:
                result.error = f'out of memory: {str(error)[:60]}'
        ours, ref = results[2 * i:2 * i + 2]
        log(f'[benchmark memory {i + 1}/{len(cases)}] {case.label} '
            f'{case.height}x{case.width}: ours {_mib(ours)} vs {ref.impl} '
            f'{_mib(ref)}')
    return results


def _ms(r: Result) -> str:
    return r.error or f'{r.time_ms:.1f} ms'


def _mib(r: Result) -> str:
    return '-' if r.extra_mib is None else f'{r.extra_mib:.0f} MiB'
