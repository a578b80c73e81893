"""Layer benchmark: our layers against their stock twins, forward + backward.

Each case times ``layer(x).sum().backward()`` (median of ``repeats`` after
``warmup``), its steps and the reference's run in turns on one input, and
measures its extra peak memory; ratios compare a case with its reference.
Layers and references come from the catalog: the layer's stock twin where it
has a counterpart for the case's options (mmcv ``NonLocal2d``
``embedded_gaussian`` for the projection modes and ``gaussian`` for the
identity modes, mmcv ``CrissCrossAttention`` applied ``recurrence`` times,
mmseg ``DisentangledNonLocal2d``, mmcv ``ContextBlock``); otherwise, for
``mask_self``, the same layer without the mask (what the mask costs), and
else our explicit path.
"""
from dataclasses import asdict, dataclass, replace
from typing import Callable, Iterable, List, Optional, Tuple

import torch
import torch.nn as nn

from ..layers.catalog import entry_named, twins_of
from .memory import configure_cpu_memory, extra_peak_mib
from .timing import autocast, interleaved_ms


@dataclass(frozen=True)
class Case:
    layer: str  # catalog name ('nonlocal', 'ccnet', 'dnl', 'gcnet', ...)
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


def case_options(case: Case) -> dict:
    """Constructor options of our layer for ``case``."""
    options = dict(entry_named(case.layer).bench_options)
    options.update(qkv_mode=case.qkv_mode, similarity=case.similarity,
                   mask_self=case.mask_self)
    return options


def build_ours(case: Case) -> nn.Module:
    """Our layer for ``case``; UnknownLayer for a name the catalog lacks."""
    return entry_named(case.layer).cls(case.channels, **case_options(case))


def build_reference(case: Case) -> Tuple[str, nn.Module]:
    """(name, module) of the reference for ``case``."""
    options = case_options(case)
    for twin in twins_of(case.layer):
        if twin.build is None:
            continue
        module = twin.build(twin.stock_class(), case.channels, options)
        if module is not None:
            return _twin_label(twin.label, module, options), module
    if case.mask_self:  # what the mask costs: the same layer without it
        return 'ours unmasked', build_ours(replace(case, mask_self=False))
    return 'ours explicit', _Explicit(build_ours(case))


def _twin_label(label: str, module: nn.Module, options: dict) -> str:
    """The twin's label with what distinguishes its configuration."""
    mode = getattr(module, 'mode', None)
    if mode is not None:
        return f'{label} {mode}'
    if isinstance(module, nn.Sequential):
        return f'{label} x{len(module)}'
    return label


def attention_flops(case: Case) -> float:
    """FLOPs (2 per multiply-add) of the attention products in forward +
    backward (backward ≈ 2× forward) of our layer, excluding projections;
    both rows of a case are rated by it."""
    entry = entry_named(case.layer)
    macs = entry.attention_macs(build_ours(case), case.batch, case.height,
                                case.width)
    return 2 * macs * 3


def _step(module: nn.Module, x: torch.Tensor,
          precision: Callable) -> Callable[[], None]:

    def run():
        x.grad = None
        module.zero_grad(set_to_none=True)
        with precision():
            out = module(x)
        out.float().sum().backward()

    return run


def _inputs(case: Case, device: torch.device) -> torch.Tensor:
    return torch.randn(case.batch, case.channels, case.height, case.width,
                       device=device, requires_grad=True)


def memory_mib(module: nn.Module, case: Case, device: torch.device,
               dtype: torch.dtype) -> float:
    """Extra peak memory of one forward + backward (after one warm-up)."""
    run = _step(module.to(device), _inputs(case, device),
                lambda: autocast(device, dtype))
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
        step = _step(module.to(device), x, lambda: autocast(device, dtype))
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
                                  attention_flops(case) / ms / 1e9))
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
