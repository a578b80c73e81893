"""Export a module to ONNX and run it in ONNX Runtime (CPU).

One export recipe for the layers and the segmentors: torch's ``dynamo=True``
exporter (``torch.export`` underneath), the input's height and width
dynamic, the batch as exported, fp32, one file. While it runs, the kernels
take their plain-tensor-op paths (:func:`qkv_plugins.layers.kernels.traceable`).
"""
import contextlib
import io
import logging
from importlib import import_module
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

# The first torch whose dynamo=True exporter takes dynamic_shapes with
# Dim.DYNAMIC (the oldest supported stack, torch 2.4, has neither); tested
# on torch 2.13.
MIN_TORCH = (2, 6)
# The Python packages the export and the check need (onnxscript: the
# dynamo=True exporter imports it; onnx-ir and ml_dtypes come with it).
PACKAGES = ('onnx', 'onnxruntime', 'onnxscript')
INPUT, OUTPUT = 'input', 'output'
# Loggers of the exporter that warn on every export: about optional
# packages (torchvision), about ops its optimiser leaves unfolded.
_QUIET = ('torch.onnx._internal.exporter._registration',
          'onnxscript.optimizer._constant_folding')


class ExportUnavailable(RuntimeError):
    """This Python environment cannot export to ONNX or run ONNX Runtime."""


def _torch_version() -> Tuple[int, int]:
    major, minor = torch.__version__.split('.')[:2]
    return int(major), int(minor)


def missing_requirements() -> List[str]:
    """What this environment lacks for export and checks (empty: nothing)."""
    missing = []
    if _torch_version() < MIN_TORCH:
        missing.append(f'torch >= {".".join(map(str, MIN_TORCH))} (the '
                       f'dynamo=True ONNX exporter; this is {torch.__version__})')
    for name in PACKAGES:
        try:
            import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def check_requirements() -> None:
    """Raise :class:`ExportUnavailable` naming what is missing, if anything
    (``make venv`` installs the pinned onnx, onnxruntime, onnxscript)."""
    missing = missing_requirements()
    if missing:
        raise ExportUnavailable(
            'ONNX export needs ' + ', '.join(missing) + '; install them with '
            '`pip install -c constraints.txt onnx onnxruntime onnxscript '
            'onnx-ir ml_dtypes protobuf` (make venv does)')


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's progress lines and optional-package warnings
    (its errors still raise)."""
    loggers = [logging.getLogger(name) for name in _QUIET]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def export_onnx(module: nn.Module, example: Tensor,
                path: Union[str, Path]) -> Path:
    """Export ``module(example)`` (one [B, C, H, W] input, one output) to
    ``path`` with height and width dynamic; the module is put in eval mode.

    Raises:
        ExportUnavailable: The environment lacks torch >= 2.6 or a package.
    """
    check_requirements()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module.eval()
    dim = torch.export.Dim.DYNAMIC
    with _quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(
            module, (example, ), dynamo=True, external_data=False,
            input_names=[INPUT], output_names=[OUTPUT],
            dynamic_shapes=({2: dim, 3: dim}, ), verbose=False)
    program.save(str(path))
    return path


def session(path: Union[str, Path], threads: Optional[int] = None):
    """An ONNX Runtime CPU session of ``path`` (``threads``: intra-op
    threads; default torch's, so that latencies compare)."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), options,
                                providers=['CPUExecutionProvider'])


def run_session(sess, x: Tensor) -> Tensor:
    """The session's one output for input ``x`` (fp32, CPU)."""
    out = sess.run([OUTPUT], {INPUT: np.ascontiguousarray(
        x.detach().float().cpu().numpy())})[0]
    return torch.from_numpy(out)


def redraw_parameters_(module: nn.Module, seed: int = 0) -> nn.Module:
    """Redraw every parameter at random (in place; buffers kept): matrices
    N(0, 1/fan-in), vectors and scalars N(0, 0.25). A block starts as the
    identity, which any export matches; redrawn, every branch shows."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            std = p[0].numel()**-0.5 if p.dim() > 1 else 0.5
            p.copy_(torch.randn(p.shape, generator=generator) * std)
    return module


def sizes_text(shapes: Sequence[Tuple[int, ...]]) -> str:
    """``7×9, 5×12`` for [..., H, W] shapes."""
    return ', '.join(f'{s[-2]}×{s[-1]}' for s in shapes)
