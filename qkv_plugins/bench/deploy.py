"""Does each block deploy? The catalog's grid (every block × ``qkv_mode`` ×
``similarity`` × ``mask_self`` × its ``deploy_variants``: criss-cross
``recurrence`` 1 and 2, token attention ``sr_ratio`` 1 and 2) and the checks
of one case: ONNX export at one size, ONNX Runtime at others (odd ones
included) against PyTorch eager, and ``torch.compile`` graph breaks in eval
and in a training forward.

Parameters are redrawn at random first: every block starts as the identity
(a zero factor), which any export matches. Parity is
``max |Δ| ≤ ONNX_TOLERANCE · max |y − x|``: the difference against what the
block adds to its input.
"""
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from ..layers.catalog import StockTwin, entries, entry_named
from ..layers.options import QKV_MODES, SIMILARITIES
from .onnx_runtime import (export_onnx, redraw_parameters_, run_session,
                           session)

ONNX_TOLERANCE = 1e-4
CHANNELS = 16
BATCH = 2
# (H, W) exported at, and checked at (odd sizes; another aspect ratio)
EXPORT_SIZE = (8, 8)
CHECK_SIZES = ((7, 9), (5, 12))


@dataclass(frozen=True)
class DeployCase:
    """One block with one set of options."""
    layer: str
    options: Tuple[Tuple[str, object], ...]

    @property
    def kwargs(self) -> Dict[str, object]:
        return dict(self.options)

    @property
    def label(self) -> str:
        """``nonlocal shared_qk cosine mask_self`` (+ ``recurrence=2``)."""
        o = self.kwargs
        words = [self.layer, str(o.pop('qkv_mode')), str(o.pop('similarity'))]
        if o.pop('mask_self'):
            words.append('mask_self')
        words += [f'{k}={v}' for k, v in o.items()]
        return ' '.join(words)

    def build(self, channels: int = CHANNELS, seed: int = 0) -> nn.Module:
        """The block with every parameter redrawn (``seed``), in eval mode."""
        torch.manual_seed(seed)
        layer = entry_named(self.layer).cls(channels, **self.kwargs)
        return redraw_parameters_(layer, seed).eval()


def deploy_cases(layers: Optional[Sequence[str]] = None) -> List[DeployCase]:
    """Every case the catalog's layers accept (``layers``: catalog names,
    default all), in catalog order."""
    cases = []
    for entry in entries():
        if layers is not None and entry.name not in layers:
            continue
        for variant in entry.deploy_variants:
            for mode in QKV_MODES:
                for similarity in SIMILARITIES:
                    for mask_self in (False, True):
                        options = dict(qkv_mode=mode, similarity=similarity,
                                       mask_self=mask_self, **variant)
                        if entry.accepts(**options):
                            cases.append(DeployCase(
                                entry.name, tuple(options.items())))
    return cases


@dataclass
class OnnxParity:
    """ONNX Runtime against PyTorch eager at each checked size.

    Attributes:
        max_abs_diff: Largest |Δ| over the sizes.
        scale: Smallest max |y − x| over the sizes (what the block adds).
        sizes: The (H, W) checked.
    """
    max_abs_diff: float
    scale: float
    sizes: Tuple[Tuple[int, int], ...]

    @property
    def relative(self) -> float:
        return self.max_abs_diff / max(self.scale, 1e-30)

    @property
    def ok(self) -> bool:
        return self.relative <= ONNX_TOLERANCE


def onnx_parity(module: nn.Module, path: Path,
                export_size: Tuple[int, int] = EXPORT_SIZE,
                check_sizes: Sequence[Tuple[int, int]] = CHECK_SIZES,
                channels: int = CHANNELS, seed: int = 0) -> OnnxParity:
    """Export ``module`` (a [B, C, H, W] → [B, C, H, W] residual block) at
    ``export_size`` and compare ONNX Runtime with eager at ``check_sizes``.
    Export errors propagate."""
    generator = torch.Generator().manual_seed(seed)

    def draw(size: Tuple[int, int]) -> Tensor:
        return torch.randn(BATCH, channels, *size, generator=generator)

    export_onnx(module, draw(export_size), path)
    sess = session(path)
    worst, scale = 0.0, float('inf')
    with torch.no_grad():
        for size in check_sizes:
            x = draw(size)
            y = module(x)
            worst = max(worst, (run_session(sess, x) - y).abs().max().item())
            scale = min(scale, (y - x).abs().max().item())
    return OnnxParity(worst, scale, tuple(check_sizes))


@dataclass
class GraphBreaks:
    """What ``torch._dynamo.explain`` found in one forward."""
    graphs: int
    breaks: int
    reasons: List[str] = field(default_factory=list)


def graph_breaks(module: nn.Module, x: Tensor, train: bool) -> GraphBreaks:
    """Graphs and breaks Dynamo makes of ``module(x)``: in eval without
    gradients, or (``train``) in training mode with gradients, as the
    forward of a training step (its backward runs through AOTAutograd on
    the forward's graphs and adds no break)."""
    torch._dynamo.reset()
    was_training = module.training
    module.train(train)
    try:
        with torch.set_grad_enabled(train):
            found = torch._dynamo.explain(module)(
                x.detach().requires_grad_(train))
    finally:
        module.train(was_training)
        torch._dynamo.reset()
    return GraphBreaks(found.graph_count, found.graph_break_count,
                       [str(b.reason).splitlines()[0]
                        for b in found.break_reasons])


@dataclass
class CaseResult:
    """The checks of one block (or stock twin).

    Attributes:
        label: What was checked.
        parity: ONNX Runtime against eager; None where export failed.
        export_error: The first line of the export error, if any.
        eval_breaks, train_breaks: Dynamo graph breaks.
    """
    label: str
    parity: Optional[OnnxParity]
    export_error: Optional[str]
    eval_breaks: GraphBreaks
    train_breaks: GraphBreaks

    @property
    def exported(self) -> bool:
        return self.parity is not None


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f'{type(error).__name__}: {text[0] if text else ""}'[:200]


def check_module(label: str, module: nn.Module,
                 folder: Optional[Path] = None) -> CaseResult:
    """Export + parity and graph breaks of one [B, C, H, W] block."""
    x = torch.randn(BATCH, CHANNELS, *EXPORT_SIZE)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        try:
            parity, error = onnx_parity(module, Path(tmp) / 'block.onnx'), None
        except Exception as exc:  # noqa: BLE001  (any export failure is data)
            parity, error = None, _first_line(exc)
    return CaseResult(label, parity, error, graph_breaks(module, x, False),
                      graph_breaks(module, x, True))


def check_case(case: DeployCase, folder: Optional[Path] = None) -> CaseResult:
    """:func:`check_module` of one grid case."""
    return check_module(case.label, case.build(), folder)


def twin_module(twin: StockTwin,
                options: Mapping[str, object]) -> Optional[nn.Module]:
    """The stock twin built for ``options`` (None where it has none), with
    redrawn parameters, in eval mode."""
    if twin.build is None:
        return None
    torch.manual_seed(0)
    module = twin.build(twin.stock_class(), CHANNELS, dict(options))
    return None if module is None else redraw_parameters_(module).eval()
