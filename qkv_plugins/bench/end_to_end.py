"""End-to-end benchmark: a training step of stock MMSegmentation R-50-D8
with each decode head (tools/benchmark_layers.py --end-to-end).

Each model is built from its config without pretrained weights (SyncBN → BN
off GPU) and trained with SGD on random images; steps of all models are
interleaved (A, B, C, A, B, C, …) so that a busy machine slows them alike.
Time is the median step; memory the extra peak of one step after a warm
one (see :mod:`.memory`), measured in a second pass. Ratios are to FCN.
"""
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch

from ..io import cell
from ..layers.catalog import entry_named, twins
from ..report import markdown_table
from .memory import configure_cpu_memory, extra_peak_mib
from .timing import autocast, interleaved_ms

_FCN = ('FCN', 'mmseg::fcn/fcn_r50-d8_4xb2-40k_cityscapes-512x1024.py')


def catalog_heads() -> Tuple[Tuple[str, str], ...]:
    """(label, config) of FCN, the reference of every ratio, then each
    stock head of the catalog and our AttentionHead twin of it."""
    heads = [_FCN]
    for twin in twins():
        if twin.head is not None:
            layer = entry_named(twin.layer).cls.__name__
            heads += [(f'{twin.head.label} (mmseg)', twin.head.config),
                      (f'AttentionHead {layer} separate', twin.head.ours)]
    return tuple(heads)


@dataclass
class E2EResult:
    head: str
    config: str
    phase: str  # 'train' (SGD step) or 'infer' (whole image, no grad)
    batch: int
    height: int
    width: int
    dtype: str
    time_ms: Optional[float] = None
    peak_mib: Optional[float] = None
    error: str = ''

    def row(self) -> dict:
        return asdict(self)


def read_config(config: str, config_root: str):
    """An mmseg package config (``mmseg::…``) or a path under
    ``config_root`` (the repository's ``configs/``)."""
    from mmengine.config import Config
    from mmengine.hub import get_config
    if config.startswith('mmseg::'):
        return get_config(config)
    return Config.fromfile(str(Path(config_root) / config))


def build_model(config: str, config_root: str, device: torch.device,
                overrides=None):
    """The config's segmentor, no pretrained weights, BN for SyncBN off GPU.

    ``overrides(cfg)`` may edit the config before building (tests shrink
    the model with it).
    """
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import qkv_plugins  # noqa: F401  (registers AttentionHead and layers)
    from ..compat import sync_bn_to_bn
    cfg = read_config(config, config_root)
    cfg.model.pretrained = None
    if 'init_cfg' in cfg.model.backbone:
        cfg.model.backbone.init_cfg = None
    if device.type != 'cuda':
        cfg.model = sync_bn_to_bn(cfg.model)
    if overrides is not None:
        overrides(cfg)
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.to(device)


def _batch(model, batch: int, size: Tuple[int, int], device: torch.device):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    height, width = size
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, height, width, generator=gen).to(device)
    num_classes = model.decode_head.num_classes
    samples = []
    for _ in range(batch):
        labels = torch.randint(0, num_classes, (1, height, width),
                               generator=gen)
        sample = SegDataSample(metainfo=dict(
            img_shape=size, ori_shape=size, pad_shape=size))
        sample.gt_sem_seg = PixelData(data=labels.to(device))
        samples.append(sample)
    return images, samples


def train_step(model, batch: int, size: Tuple[int, int], device: torch.device,
               dtype: torch.dtype) -> Callable[[], None]:
    """A callable running one SGD step (forward, loss, backward, update)."""
    images, samples = _batch(model, batch, size, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9,
                                weight_decay=5e-4)
    model.train()

    def run():
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, dtype):
            losses = model(images, samples, mode='loss')
        loss, _ = model.parse_losses(losses)
        loss.backward()
        optimizer.step()

    return run


def infer_step(model, size: Tuple[int, int], device: torch.device,
               dtype: torch.dtype) -> Callable[[], None]:
    """A callable running whole-image inference (B = 1, no grad)."""
    images, _ = _batch(model, 1, size, device)

    def run():
        model.eval()
        with torch.no_grad(), autocast(device, dtype):
            model(images, mode='tensor')

    return run


def run_end_to_end(device: torch.device, dtype: torch.dtype, batch: int,
                   size: Tuple[int, int], config_root: str, warmup: int = 1,
                   repeats: int = 3, infer: bool = False, heads=None,
                   overrides=None, infer_size: Optional[Tuple[int, int]] = None,
                   log=print) -> List[E2EResult]:
    """Time and measure every head's training step (and inference, on
    ``infer_size`` images, default ``size``); ``config_root`` holds the
    heads' qkv configs (``configs/``); ``heads`` default to
    :func:`catalog_heads`."""
    heads = catalog_heads() if heads is None else heads
    models: Dict[str, torch.nn.Module] = {}
    for head, config in heads:
        torch.manual_seed(0)
        models[head] = build_model(config, config_root, device, overrides)
    phases = [('train', batch, size)] + (
        [('infer', 1, infer_size or size)] if infer else [])
    results = []
    for phase, b, shape in phases:
        rows = [E2EResult(head, config, phase, b, *shape, str(dtype)[6:])
                for head, config in heads]
        make = ((lambda m: train_step(m, b, shape, device, dtype))
                if phase == 'train' else
                (lambda m: infer_step(m, shape, device, dtype)))
        steps = [make(models[h]) for h, _ in heads]
        for row, ms in zip(rows, interleaved_ms(steps, device, warmup,
                                                repeats)):
            row.time_ms = ms
            log(f'[e2e {phase}] {row.head}: {ms:.0f} ms')
        results.extend(rows)
    if device.type == 'cpu':
        configure_cpu_memory()  # slows steps: after all the timings
    for row in results:
        model = models[row.head]
        shape = (row.height, row.width)
        step = (train_step(model, row.batch, shape, device, dtype)
                if row.phase == 'train' else
                infer_step(model, shape, device, dtype))
        try:
            step()  # momentum buffers and caches exist before measuring
            row.peak_mib = extra_peak_mib(step, device)
        except torch.OutOfMemoryError as error:
            row.error = f'out of memory: {str(error).splitlines()[0][:60]}'
        log(f'[e2e {row.phase} memory] {row.head}: '
            f'{cell(row.peak_mib, ".0f", row.error)} MiB')
    return results


def _ratio(value, base, spec):
    return format(value / base, spec) if value and base else '-'


E2E_HEADER = ('head', 'phase', 'B', 'H×W', 'dtype', 'step ms', 'time / FCN',
              'peak MiB', 'memory / FCN', 'config')


def to_markdown(results: List[E2EResult], title: str, command: str) -> str:
    """The end-to-end table: one row per head and phase, ratios to FCN."""
    lines = [
        f'# {title}', '', f'Command: `{command}`', '',
        'Stock MMSegmentation R-50-D8 (Cityscapes configs, no pretrained '
        'weights, random images and labels) with each decode head. train: '
        'one SGD step (forward, loss, backward, update), median over '
        'interleaved repeats; infer: whole-image forward without grad. Peak '
        'MiB: extra peak memory of one step above the model. Ratios are to '
        'FCN in the same phase. GPU rows come from running the same command '
        'on a GPU machine (B=2, 512×1024, bf16 autocast by default), which '
        'writes e2e-<gpu>.md.', ''
    ]
    fcn = {r.phase: r for r in results if r.head == 'FCN'}
    rows = []
    for r in results:
        base = fcn.get(r.phase)
        rows.append((
            r.head, r.phase, r.batch, f'{r.height}×{r.width}', r.dtype,
            cell(r.time_ms, '.0f', r.error),
            _ratio(r.time_ms, base and base.time_ms, '.2f'),
            cell(r.peak_mib, '.0f', r.error),
            _ratio(r.peak_mib, base and base.peak_mib, '.2f'),
            f'`{r.config}`'))
    return '\n'.join(lines) + '\n' + markdown_table(E2E_HEADER, rows)
