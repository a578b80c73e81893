"""A segmentor from a config to ONNX, checked in ONNX Runtime against PyTorch
eager and timed against it (``python -m qkv_plugins export-onnx``).

The exported graph is the segmentor's logits resized to its input:
``model(x, mode='tensor')`` (backbone, neck, decode head; no auxiliary head,
no test-time augmentation or sliding window), then a bilinear resize to the
input's height and width with the decode head's ``align_corners``. Its input
is the *normalised* image [1, 3, H, W] (H and W dynamic): the
``data_preprocessor`` (BGR→RGB, mean/std, padding) is left out, as
mmdeploy's SDK leaves it to the application; the file's metadata records its
mean, std and ``bgr_to_rgb``. Latency compares that same graph in ONNX
Runtime and in PyTorch eager, in turns (:func:`~.timing.interleaved_ms`).

Parity passes when, at every checked size, argmax agreement is at least
:data:`MIN_AGREEMENT` % and ``max |Δ logit| ≤ LOGIT_TOLERANCE · max(1,
max |logit|)``.
"""
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config
from torch import Tensor

from ..compat import sync_bn_to_bn
from ..layers.recording import attention_layers
from .onnx_runtime import (export_onnx, redraw_parameters_, run_session,
                           session)
from .timing import interleaved_ms

MIN_AGREEMENT = 99.9  # % of pixels with the same argmax class
LOGIT_TOLERANCE = 1e-4  # of max(1, max |logit|)
# Segmentors whose mode='tensor' forward is the whole-image logits.
SEGMENTORS = ('EncoderDecoder', 'CascadeEncoderDecoder')


class CannotExport(ValueError):
    """A config or option the export cannot take (the message names it)."""


class SegmentorLogits(nn.Module):
    """[B, 3, H, W] normalised image → [B, classes, H, W] logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        head = model.decode_head
        head = head[-1] if isinstance(head, nn.ModuleList) else head
        self.align_corners = bool(getattr(head, 'align_corners', False))

    def forward(self, x: Tensor) -> Tensor:
        logits = self.model(x, mode='tensor')
        return F.interpolate(logits, size=x.shape[2:], mode='bilinear',
                             align_corners=self.align_corners)


def load_export_config(config: Union[str, Config],
                       cfg_options: Optional[dict] = None) -> Config:
    """The config (``--cfg-options`` applied), checked for what the export
    cannot take; CannotExport names the option."""
    cfg = (config.copy() if isinstance(config, Config) else
           Config.fromfile(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    name = getattr(cfg, 'filename', None) or 'the config'
    model = cfg.get('model')
    if not model:
        raise CannotExport(f'{name} has no model: nothing to export')
    if model.get('type') not in SEGMENTORS:
        raise CannotExport(
            f'{name}: model.type={model.get("type")!r} cannot be exported; '
            f'export-onnx takes the segmentors {SEGMENTORS}, whose '
            "mode='tensor' forward is the whole-image logits")
    mode = (model.get('test_cfg') or {}).get('mode', 'whole')
    if mode != 'whole':
        raise CannotExport(
            f"{name}: model.test_cfg.mode={mode!r} cannot be exported: the "
            'graph is one whole-image forward, with no sliding window; pass '
            '--cfg-options model.test_cfg.mode=whole to export that')
    return cfg


def build_model(cfg: Config, checkpoint: Optional[str] = None,
                seed: int = 0) -> nn.Module:
    """The config's segmentor on CPU in eval mode: SyncBN as BN, no
    pretrained download; the checkpoint's weights (strict), or, when
    ``checkpoint`` is None, the config's initialisation under ``seed`` with
    every attention layer's parameters then redrawn at random (they start as
    the identity, which any export matches; redrawn, the check sees them)."""
    import qkv_plugins
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint
    from mmseg.registry import MODELS
    if qkv_plugins.MMSEG_GLUE_ERROR:
        raise ImportError(qkv_plugins.MMSEG_GLUE_ERROR)
    model_cfg = sync_bn_to_bn(cfg.model)
    model_cfg.pretrained = None
    if (model_cfg.get('backbone') or {}).get('init_cfg') is not None:
        model_cfg.backbone.init_cfg = None  # a pretrained download
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    # the current logger: init_weights' per-parameter lines stay out
    MMLogger.get_instance('qkv_plugins.export', log_level='WARNING')
    torch.manual_seed(seed)
    model = MODELS.build(model_cfg)
    model.init_weights()
    if checkpoint is None:
        for index, (_, layer) in enumerate(attention_layers(model)):
            redraw_parameters_(layer, seed + index)
    else:
        load_checkpoint(model, checkpoint, map_location='cpu', strict=True,
                        revise_keys=[(r'^module\.', '')], logger='silent')
    return model.eval()


def compiled_ops(model: nn.Module) -> List[str]:
    """``name (type)`` of every sub-module from mmcv's compiled ops
    (``mmcv.ops``), the usual reason an export fails."""
    return [f'{name} ({type(m).__module__}.{type(m).__name__})'
            for name, m in model.named_modules()
            if type(m).__module__.startswith('mmcv.ops')]


def normalised_image(cfg: Config, shape: Tuple[int, int],
                     seed: int) -> Tensor:
    """A random [1, 3, H, W] image in [0, 255] through the config's
    mean/std: what the exported graph takes."""
    pre = cfg.model.get('data_preprocessor') or {}
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(1, 3, *shape, generator=generator) * 255
    mean = torch.tensor(pre.get('mean') or [0.0] * 3).view(1, 3, 1, 1)
    std = torch.tensor(pre.get('std') or [1.0] * 3).view(1, 3, 1, 1)
    return (image - mean) / std


def preprocessing_metadata(cfg: Config) -> dict:
    """What the application must do before the graph (the left-out
    ``data_preprocessor``)."""
    pre = cfg.model.get('data_preprocessor') or {}
    return dict(input='normalised image [1, 3, H, W], float32',
                mean=json.dumps(list(pre.get('mean') or [])),
                std=json.dumps(list(pre.get('std') or [])),
                bgr_to_rgb=str(bool(pre.get('bgr_to_rgb', False))),
                output='logits [1, classes, H, W] (argmax: the class map)')


def write_metadata(path: Path, entries: dict) -> None:
    """Add ``entries`` to the ONNX file's ``metadata_props``."""
    import onnx
    model = onnx.load(str(path))
    for key, value in entries.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    onnx.save(model, str(path))


@dataclass
class Parity:
    """ONNX Runtime against eager at one input size."""
    shape: Tuple[int, int]
    max_abs_diff: float
    max_logit: float
    agreement: float  # % of pixels with the same argmax class

    @property
    def tolerance(self) -> float:
        return LOGIT_TOLERANCE * max(1.0, self.max_logit)

    @property
    def ok(self) -> bool:
        return (self.agreement >= MIN_AGREEMENT
                and self.max_abs_diff <= self.tolerance)

    def line(self) -> str:
        height, width = self.shape
        return (f'parity {height}×{width}: max |Δ logit| '
                f'{self.max_abs_diff:.2e} (tolerance {self.tolerance:.2e} = '
                f'{LOGIT_TOLERANCE:g} × max(1, max |logit| '
                f'{self.max_logit:.3g})), argmax agreement '
                f'{self.agreement:.3f} % (≥ {MIN_AGREEMENT} %): '
                f'{"PASS" if self.ok else "FAIL"}')


def parity(wrapper: nn.Module, sess, x: Tensor) -> Parity:
    """Eager logits against ONNX Runtime's for input ``x``."""
    with torch.no_grad():
        eager = wrapper(x)
    ort = run_session(sess, x)
    agreement = (eager.argmax(1) == ort.argmax(1)).float().mean().item()
    return Parity(tuple(x.shape[-2:]), (eager - ort).abs().max().item(),
                  eager.abs().max().item(), 100 * agreement)


def latency_ms(wrapper: nn.Module, sess, x: Tensor, warmup: int,
               repeats: int) -> Tuple[float, float]:
    """Median ms of ONNX Runtime and of PyTorch eager on ``x``, in turns."""

    def eager() -> None:
        with torch.no_grad():
            wrapper(x)

    ort_ms, eager_ms = interleaved_ms(
        [lambda: run_session(sess, x), eager], torch.device('cpu'), warmup,
        repeats)
    return ort_ms, eager_ms


@dataclass
class ExportReport:
    """What :func:`export_and_check` found."""
    path: Path
    parities: List[Parity]
    ort_ms: Optional[float]
    eager_ms: Optional[float]
    latency_shape: Tuple[int, int]
    threads: int

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.parities)

    def latency_line(self) -> str:
        if self.ort_ms is None:
            return 'latency: not measured (--repeats 0)'
        height, width = self.latency_shape
        threads = f'{self.threads} thread' + ('s' if self.threads > 1 else '')
        return (f'latency 1×3×{height}×{width} (CPU, {threads}, median in '
                'turns): ONNX '
                f'Runtime {self.ort_ms:.1f} ms, PyTorch eager '
                f'{self.eager_ms:.1f} ms ({self.ort_ms / self.eager_ms:.2f}× '
                'eager)')


def export_and_check(config: Union[str, Config],
                     out: Union[str, Path],
                     shape: Tuple[int, int],
                     check_shapes: Sequence[Tuple[int, int]],
                     checkpoint: Optional[str] = None,
                     cfg_options: Optional[dict] = None,
                     warmup: int = 2,
                     repeats: int = 5,
                     seed: int = 0,
                     threads: Optional[int] = None,
                     log: Callable[[str], None] = print) -> ExportReport:
    """Export the config's segmentor at ``shape``, check it at each of
    ``check_shapes`` and time it at the first (``threads``: intra-op
    threads of both, default torch's).

    Raises:
        CannotExport: The config, an option or a module cannot be exported.
    """
    cfg = load_export_config(config, cfg_options)
    model = build_model(cfg, checkpoint, seed)
    wrapper = SegmentorLogits(model).eval()
    out = Path(out)
    try:
        export_onnx(wrapper, normalised_image(cfg, shape, seed), out)
    except Exception as error:  # noqa: BLE001  (re-raised, named)
        suspects = compiled_ops(model)
        hint = (f'; modules from mmcv\'s compiled ops: {suspects}'
                if suspects else '')
        first = (str(error).strip().splitlines() or [''])[0]
        raise CannotExport(
            f'{getattr(cfg, "filename", "the config")} did not export '
            f'({type(error).__name__}: {first}){hint}') from error
    write_metadata(out, preprocessing_metadata(cfg))
    log(f'[export-onnx] wrote {out} (exported at 1×3×{shape[0]}×{shape[1]}, '
        'height and width dynamic)')
    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    sess = session(out, threads)
    parities = []
    for index, check in enumerate(check_shapes):
        result = parity(wrapper, sess, normalised_image(cfg, check,
                                                        seed + 1 + index))
        log(result.line())
        parities.append(result)
    ort_ms = eager_ms = None
    if repeats:
        ort_ms, eager_ms = latency_ms(
            wrapper, sess, normalised_image(cfg, check_shapes[0], seed),
            warmup, repeats)
    report = ExportReport(out, parities, ort_ms, eager_ms,
                          tuple(check_shapes[0]), threads)
    log(report.latency_line())
    return report
