"""Transformer backbones against mmseg's stock ones: forward + backward time
and extra peak memory of ``QKVMixVisionTransformer`` / ``QKVVisionTransformer``
in every mode next to ``MixVisionTransformer`` / ``VisionTransformer``, in
turns (``python -m qkv_plugins.bench.backbones``; writes
``benchmarks/backbones-<device>.{md,csv}``)."""
import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import torch

from ..cli import at_least
from ..io import cell, write_text_atomic
from ..layers.catalog import entry_named
from ..machine import describe_machine, git_commit
from ..report import csv_text, markdown_table
from .memory import configure_cpu_memory, extra_peak_mib
from .report import CSV_LINE_END, device_tag
from .timing import interleaved_ms

# name -> (family, constructor arguments, (batch, height, width))
CASES: Dict[str, Tuple[str, dict, Tuple[int, int, int]]] = {
    'study MiT (tinymit2s)': ('mit', dict(
        embed_dims=16, num_stages=2, num_layers=[2, 2], num_heads=[1, 2],
        patch_sizes=[11, 3], strides=[8, 1], sr_ratios=[1, 1],
        out_indices=(0, 1)), (8, 128, 128)),
    'MiT-B0': ('mit', dict(embed_dims=32, num_layers=[2, 2, 2, 2],
                           num_heads=[1, 2, 5, 8]), (1, 512, 512)),
    'study-sized ViT': ('vit', dict(
        img_size=(128, 128), patch_size=8, embed_dims=64, num_layers=4,
        num_heads=2, mlp_ratio=4, out_indices=(3, )), (8, 128, 128)),
}


@dataclass
class Row:
    case: str
    model: str
    params: int
    time_ms: float
    memory_mib: float
    time_ratio: float = 1.0
    memory_ratio: float = 1.0


def _build(family: str, kwargs: dict, mode):
    """The stock backbone (mode None) or ours in ``mode``."""
    from mmseg.models.backbones import MixVisionTransformer, VisionTransformer

    from ..mmseg import QKVMixVisionTransformer, QKVVisionTransformer
    stock, ours = {'mit': (MixVisionTransformer, QKVMixVisionTransformer),
                   'vit': (VisionTransformer, QKVVisionTransformer)}[family]
    torch.manual_seed(0)
    model = (stock(**kwargs) if mode is None else ours(**kwargs,
                                                       qkv_mode=mode))
    model.init_weights()
    model.train()
    return model


def _step(model, x) -> Callable[[], None]:
    def run():
        x.grad = None
        model.zero_grad(set_to_none=True)
        sum(o.float().sum() for o in model(x)).backward()
    return run


def run_case(name: str, warmup: int, repeats: int,
             log: Callable[[str], None] = print) -> List[Row]:
    """Stock, then ours in every mode, timed in turns; memory each alone."""
    family, kwargs, (batch, height, width) = CASES[name]
    device = torch.device('cpu')
    labels = ['stock'] + entry_named('mha').modes()
    models = [_build(family, kwargs, None if m == 'stock' else m)
              for m in labels]
    x = torch.randn(batch, 3, height, width, requires_grad=True)
    steps = [_step(m, x) for m in models]
    began = time.time()
    times = interleaved_ms(steps, device, warmup, repeats)
    memory = [extra_peak_mib(step, device) for step in steps]
    rows = [Row(name, 'stock' if label == 'stock' else f'ours {label}',
                sum(p.numel() for p in model.parameters()), t, mem)
            for label, model, t, mem in zip(labels, models, times, memory)]
    for row in rows:
        row.time_ratio = row.time_ms / rows[0].time_ms
        row.memory_ratio = row.memory_mib / max(rows[0].memory_mib, 1e-9)
    log(f'[backbones] {name}: {time.time() - began:.0f}s; separate / stock '
        f'time {rows[1].time_ratio:.2f}x, memory {rows[1].memory_ratio:.2f}x')
    return rows


MARKDOWN_HEADER = ('case (B, H×W)', 'model', 'params', 'time (ms)', '× stock',
                   'memory (MiB)', '× stock')
CSV_HEADER = ('case', 'model', 'params', 'time_ms', 'time_ratio',
              'memory_mib', 'memory_ratio')


def to_markdown(rows: List[Row], command: str) -> str:
    """The backbone table with the command, commit and machine above it."""
    lines = [
        '# Transformer backbones: ours against stock mmseg', '',
        f'Command: `{command}` at commit {git_commit()}', '',
        f'Machine: {describe_machine()}', '',
        'Forward + backward of the whole backbone in training mode (fp32), '
        'median time over turns (stock and every mode in turns); extra peak '
        'memory above the inputs, each alone. Ratios against the stock '
        'backbone in the same run.', ''
    ]
    cells = []
    for row in rows:
        _, _, (batch, height, width) = CASES[row.case]
        cells.append((
            f'{row.case} ({batch}, {height}×{width})', row.model,
            f'{row.params:,}', f'{row.time_ms:.1f}', f'{row.time_ratio:.2f}',
            cell(row.memory_mib, '.1f'), f'{row.memory_ratio:.2f}'))
    return '\n'.join(lines) + '\n' + markdown_table(MARKDOWN_HEADER, cells)


def to_csv(rows: List[Row]) -> str:
    return csv_text(CSV_HEADER, ((row.case, row.model, row.params, row.time_ms,
                                  row.time_ratio, row.memory_mib,
                                  row.memory_ratio) for row in rows),
                    lineterminator=CSV_LINE_END)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--cases', nargs='+', default=list(CASES),
                        choices=list(CASES), metavar='CASE',
                        help=f'default: all of {list(CASES)}')
    parser.add_argument('--warmup', type=at_least(0), default=2)
    parser.add_argument('--repeats', type=at_least(1), default=10)
    parser.add_argument('--out-dir', default='benchmarks')
    args = parser.parse_args(argv)
    configure_cpu_memory()
    rows = [row for name in args.cases
            for row in run_case(name, args.warmup, args.repeats)]
    command = 'python -m qkv_plugins.bench.backbones' + ''.join(
        f' {a}' for a in (argv or []))
    out = Path(args.out_dir) / f'backbones-{device_tag(torch.device("cpu"))}'
    write_text_atomic(out.with_suffix('.md'), to_markdown(rows, command))
    write_text_atomic(out.with_suffix('.csv'), to_csv(rows))
    print(to_markdown(rows, command))
    print(f'[backbones] wrote {out}.md (.csv)')


if __name__ == '__main__':
    main()
