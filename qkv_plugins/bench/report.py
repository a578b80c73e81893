"""Cases, tables and plots of the layer benchmark (tools/benchmark_layers.py)."""
from pathlib import Path
from typing import List, Tuple

import torch

from ..io import atomic_path, cell, write_text_atomic
from ..layers.catalog import entry_named
from ..layers.options import QKV_MODES
from ..machine import describe_machine
from ..report import csv_text, markdown_table
from .layers import Case, Result, run_cases

CPU_SHAPES = ((32, 32, 2), (64, 64, 2), (48, 80, 2), (97, 97, 2))
GPU_SHAPES = ((64, 128, 2), (97, 97, 2), (128, 256, 1), (256, 512, 1))
# Timed seconds per case (ours + reference) at least: fast cases get more
# turns than --repeats.
MIN_SECONDS = 3.0
# The published benchmark CSVs end their lines as the csv module does by
# default.
CSV_LINE_END = '\r\n'
# (qkv_mode, similarity, mask_self) beyond each mode with dot similarity
EXTRA = (('separate', 'cosine', False), ('separate', 'dot', True),
         ('shared_qk', 'dot', True), ('shared', 'cosine', True))


def layer_variants(layer: str) -> List[Tuple[str, str, bool]]:
    """The (qkv_mode, similarity, mask_self) cases a layer accepts: every
    mode with dot similarity, then :data:`EXTRA`."""
    entry = entry_named(layer)
    return [(mode, sim, mask)
            for mode, sim, mask in [(m, 'dot', False) for m in QKV_MODES] +
            list(EXTRA)
            if entry.accepts(**entry.bench_options, qkv_mode=mode,
                             similarity=sim, mask_self=mask)]


def default_cases(layers, on_gpu: bool, quick: bool) -> List[Case]:
    shapes = GPU_SHAPES if on_gpu else CPU_SHAPES
    channels = 512 if on_gpu else 256
    cases = []
    for layer in layers:
        variants = layer_variants(layer)
        if quick:
            variants = sorted(set([variants[0], variants[-1]]),
                              key=variants.index)
        cases += [Case(layer, mode, sim, mask, h, w, channels, b)
                  for (h, w, b) in (shapes[:1] if quick else shapes)
                  for mode, sim, mask in variants]
    return cases


def pairs(results: List[Result]) -> List[Tuple[Result, Result]]:
    return list(zip(results[0::2], results[1::2]))


LAYER_HEADER = ('layer', 'mode', 'H×W', 'B', 'C', 'ours ms', 'ref', 'ref ms',
                'time ratio', 'ours MiB', 'ref MiB', 'memory ratio',
                'ours TFLOP/s')


def to_markdown(results: List[Result], title: str, command: str) -> str:
    """The layer table: ours beside the reference, one row per pair."""
    lines = [
        f'# {title}', '', f'Command: `{command}`', '',
        'Forward + backward, median time; extra peak memory above the '
        'inputs; attention TFLOP/s = FLOPs of the attention products '
        '(2 per multiply-add, backward = 2x forward) / block time. Ratios '
        'are ours / reference, their steps run in turns on one input.', ''
    ]
    rows = []
    for ours, ref in pairs(results):
        c = ours.case
        t_ratio = (f'{ours.time_ms / ref.time_ms:.2f}'
                   if ours.time_ms and ref.time_ms else '-')
        m_ratio = (f'{ours.extra_mib / ref.extra_mib:.3f}'
                   if ours.extra_mib is not None and ref.extra_mib else '-')
        rows.append((
            c.layer, c.label.split(':')[1], f'{c.height}×{c.width}', c.batch,
            c.channels, cell(ours.time_ms, error=ours.error), ref.impl,
            cell(ref.time_ms, error=ref.error), t_ratio,
            cell(ours.extra_mib, '.0f'), cell(ref.extra_mib, '.0f'),
            m_ratio, cell(ours.attn_tflops, '.3f')))
    return '\n'.join(lines) + '\n' + markdown_table(LAYER_HEADER, rows)


def to_csv(results) -> str:
    """CSV of any results with a ``row()`` dict (layer or end-to-end)."""
    rows = [r.row() for r in results]
    header = list(rows[0])
    return csv_text(header, ([row.get(k) for k in header] for row in rows),
                    lineterminator=CSV_LINE_END)


def plot(results: List[Result], path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    series = {}
    for r in results:
        if r.time_ms is None:
            continue
        key = f'{r.case.label} [{r.impl}]'
        series.setdefault(key, []).append(
            (r.case.positions, r.time_ms, max(r.extra_mib or 0, 0.1)))
    for key, points in sorted(series.items()):
        points.sort()
        xs, ts, ms = zip(*points)
        style = '-' if '[ours]' in key else '--'
        axes[0].plot(xs, ts, style, marker='o', ms=3, label=key, lw=1)
        axes[1].plot(xs, ms, style, marker='o', ms=3, lw=1)
    for ax, ylabel in zip(axes, ('time (ms)', 'extra peak memory (MiB)')):
        ax.set_xscale('log')
        ax.set_yscale('log')
        ax.set_xlabel('positions (H×W)')
        ax.set_ylabel(ylabel)
        ax.grid(True, which='both', alpha=0.3)
    axes[0].legend(fontsize=5, ncol=2)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format='png', dpi=110)
    plt.close(fig)


def device_tag(device: torch.device) -> str:
    return ('cpu' if device.type == 'cpu' else
            torch.cuda.get_device_name(device).split()[-1].lower())


def e2e_command(args, program: str) -> str:
    """The command line that reproduces an end-to-end run: ``program``
    (how the caller was started) and the options that differ from the
    defaults."""
    parts = [program, '--end-to-end']
    for flag, value, default in (
            ('--e2e-size', args.e2e_size, None),
            ('--e2e-batch', args.e2e_batch, None),
            ('--e2e-infer-size', getattr(args, 'e2e_infer_size', None), None),
            ('--dtype', args.dtype, None),
            ('--repeats', args.repeats, E2E_REPEATS),
            ('--warmup', args.warmup, E2E_WARMUP)):
        if value is not None and value != default:
            parts.append(f'{flag} {value}')
    if args.e2e_infer:
        parts.append('--e2e-infer')
    return ' '.join(parts)


# End-to-end defaults: (batch, (H, W)) per device kind.
E2E_GPU = (2, (512, 1024))
E2E_CPU = (1, (256, 512))
# Whole-image inference: a Cityscapes image on GPU, the crop on CPU.
E2E_GPU_INFER = (1024, 2048)
E2E_REPEATS, E2E_WARMUP = 3, 1


def end_to_end_from_args(args, program: str, overrides=None) -> Path:
    """Run the end-to-end benchmark; write e2e-<device>.md/.csv (headed by
    ``program`` with the run's options); return the path without suffix."""
    from .end_to_end import run_end_to_end
    from .end_to_end import to_markdown as e2e_markdown
    device, dtype = _device_and_dtype(args)
    batch, size = E2E_GPU if device.type == 'cuda' else E2E_CPU
    if args.e2e_size:
        size = tuple(int(v) for v in args.e2e_size.lower().split('x'))
    batch = args.e2e_batch or batch
    infer_size = getattr(args, 'e2e_infer_size', None)
    if infer_size:
        infer_size = tuple(int(v) for v in infer_size.lower().split('x'))
    elif device.type == 'cuda':
        infer_size = E2E_GPU_INFER
    repeats = E2E_REPEATS if args.repeats is None else args.repeats
    warmup = E2E_WARMUP if args.warmup is None else args.warmup
    print(f'[e2e] B={batch} {size[0]}x{size[1]} on '
          f'{describe_machine(device)}, {dtype}')
    results = run_end_to_end(device, dtype, batch, size, args.config_root,
                             warmup, repeats, infer=args.e2e_infer,
                             overrides=overrides, infer_size=infer_size)
    out = Path(args.out_dir) / (f'e2e-{device_tag(device)}'
                                + getattr(args, 'out_suffix', ''))
    title = (f'End-to-end benchmark: {describe_machine(device)}, '
             f'{str(dtype)[6:]}')
    text = e2e_markdown(results, title, e2e_command(args, program))
    write_text_atomic(out.with_suffix('.md'), text)
    write_text_atomic(out.with_suffix('.csv'), to_csv(results))
    print(text)
    print(f'[e2e] wrote {out}.md, .csv')
    return out


def _device_and_dtype(args):
    device = torch.device(
        args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    dtype = getattr(torch, args.dtype or (
        'bfloat16' if device.type == 'cuda' else 'float32'))
    return device, dtype


def main_from_args(args, program: str) -> None:
    """The layer (or, with ``--end-to-end``, the end-to-end) benchmark;
    its tables name ``program`` (e.g. ``python tools/benchmark_layers.py``)
    with the options that differ from the defaults."""
    if getattr(args, 'end_to_end', False):
        end_to_end_from_args(args, program)
        return
    device, dtype = _device_and_dtype(args)
    args.repeats = 5 if args.repeats is None else args.repeats
    args.warmup = 2 if args.warmup is None else args.warmup
    args.min_seconds = (MIN_SECONDS if args.min_seconds is None else
                        args.min_seconds)
    cases = default_cases(args.layers, device.type == 'cuda', args.quick)
    print(f'[benchmark] {len(cases)} cases on {describe_machine(device)}, {dtype}')
    results = run_cases(cases, device, dtype, args.warmup, args.repeats,
                        args.min_seconds)
    out = Path(args.out_dir) / f'layers-{device_tag(device)}{"-quick" if args.quick else ""}'
    title = f'Layer benchmark: {describe_machine(device)}, {str(dtype)[6:]}'
    command = program + ''.join(
        flag for flag, on in ((' --quick', args.quick),
                              (f' --repeats {args.repeats}', args.repeats != 5),
                              (f' --warmup {args.warmup}', args.warmup != 2),
                              (f' --min-seconds {args.min_seconds:g}',
                               args.min_seconds != MIN_SECONDS))
        if on)
    text = to_markdown(results, title, command)
    write_text_atomic(out.with_suffix('.md'), text)
    write_text_atomic(out.with_suffix('.csv'), to_csv(results))
    plot(results, out.with_suffix('.png'))
    print(text)
    print(f'[benchmark] wrote {out}.md, .csv, .png')
