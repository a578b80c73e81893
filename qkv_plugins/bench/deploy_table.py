"""The deployment table: per block (and per stock twin), ONNX export ✔/✘,
ONNX Runtime parity, ``torch.compile`` graph breaks and the compiled
speed-up, measured (``python -m qkv_plugins deployment-table``; writes
``benchmarks/deploy-<device>.{md,csv}``: the summary for the README, then
every case).

Export, parity and graph breaks come from running the grid of
:mod:`.deploy` here; the speed-up is read from the compile benchmark's CSV
(:mod:`.compile`) when one is given, else the column says "not measured".
"""
import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..layers.catalog import entry_named, twins
from ..machine import code_commit, describe_machine
from ..report import csv_text, markdown_table
from .deploy import (ONNX_TOLERANCE, CaseResult, DeployCase, check_case,
                     check_module, deploy_cases, twin_module)

NOT_MEASURED = 'not measured'


@dataclass
class BlockRow:
    """One row of the summary: a block over its cases, or a stock twin."""
    name: str
    cases: int
    exported: int
    worst_relative: Optional[float]  # max over cases of max|Δ| / max|y − x|
    eval_breaks: int
    train_breaks: int
    speedup: str = NOT_MEASURED

    def cells(self) -> Tuple[str, ...]:
        mark = '✔' if self.exported == self.cases else '✘'
        exported = (f'{mark} {self.exported}/{self.cases}' if self.cases > 1
                    else mark)
        parity = ('-' if self.worst_relative is None else
                  f'{self.worst_relative:.1e} '
                  f'{"✔" if self.worst_relative <= ONNX_TOLERANCE else "✘"}')
        return (self.name, exported, parity,
                f'{self.eval_breaks} / {self.train_breaks}', self.speedup)


HEADER = ('block', 'ONNX export', 'ONNX Runtime parity (max |Δ| / max |y − x|)',
          'graph breaks (eval / train)', 'compiled speed-up (CPU)')


def _row(name: str, results: Sequence[CaseResult]) -> BlockRow:
    exported = [r for r in results if r.exported]
    return BlockRow(
        name, len(results), len(exported),
        max((r.parity.relative for r in exported), default=None),
        sum(r.eval_breaks.breaks for r in results),
        sum(r.train_breaks.breaks for r in results))


def read_speedups(path: Path) -> Dict[str, str]:
    """Catalog name -> ``1.2× / 0.8× (separate dot); ...`` from a compile
    benchmark CSV (speed-ups at its shapes, in order, per case)."""
    found: Dict[str, Dict[str, List[str]]] = {}
    with open(path, newline='') as f:
        for row in csv.DictReader(f):
            layer, _, options = row['block'].partition(' ')
            found.setdefault(layer, {}).setdefault(options, []).append(
                f'{float(row["speedup"]):.2f}×')
    return {layer: '; '.join(f'{" / ".join(v)} ({options})'
                             for options, v in cases.items())
            for layer, cases in found.items()}


def summary_rows(results: Sequence[Tuple[DeployCase, CaseResult]],
                 twin_results: Sequence[CaseResult],
                 speedups: Optional[Dict[str, str]] = None) -> List[BlockRow]:
    """One row per block (all its cases), then one per stock twin."""
    by_layer: Dict[str, List[CaseResult]] = {}
    for case, result in results:
        by_layer.setdefault(case.layer, []).append(result)
    rows = []
    for layer, layer_results in by_layer.items():
        row = _row(f'{layer} ({entry_named(layer).cls.__name__})',
                   layer_results)
        if speedups and layer in speedups:
            row.speedup = speedups[layer]
        rows.append(row)
    rows += [_row(r.label, [r]) for r in twin_results]
    return rows


def render_summary(rows: Sequence[BlockRow]) -> str:
    """The README's deployment table (Markdown)."""
    return markdown_table(HEADER, [row.cells() for row in rows])


CASE_HEADER = ('case', 'exported', 'max_abs_diff', 'max_y_minus_x',
               'relative', 'eval_graphs', 'eval_breaks', 'train_graphs',
               'train_breaks', 'error')


def cases_csv(results: Sequence[CaseResult]) -> str:
    return csv_text(CASE_HEADER, (
        (r.label, int(r.exported),
         None if r.parity is None else f'{r.parity.max_abs_diff:.3e}',
         None if r.parity is None else f'{r.parity.scale:.4g}',
         None if r.parity is None else f'{r.parity.relative:.3e}',
         r.eval_breaks.graphs, r.eval_breaks.breaks, r.train_breaks.graphs,
         r.train_breaks.breaks, r.export_error) for r in results))


def to_markdown(rows: Sequence[BlockRow], results: Sequence[CaseResult],
                command: str, speedup_source: Optional[str]) -> str:
    """Summary and every case, with command, commit and machine."""
    lines = [
        '# Deployment: ONNX Runtime and torch.compile, per block', '',
        f'Command: `{command}` at commit {code_commit()}', '',
        f'Machine: {describe_machine()}', '',
        'Each case: the block (16 channels, B = 2, every parameter redrawn '
        'at random) exported with `torch.onnx.export(dynamo=True)` at 8×8 '
        'with height and width dynamic, run in ONNX Runtime (CPU) at 7×9 '
        'and 5×12 against PyTorch eager: parity is max |Δ| / max |y − x| '
        f'(✔ at most {ONNX_TOLERANCE:g}); graph breaks from '
        '`torch._dynamo.explain` in eval and in a training forward, summed '
        'over the cases. Speed-up: eager time / compiled time of a training '
        'step, from ' + (f'`{speedup_source}`' if speedup_source else
                         'no compile benchmark (not measured)') + '.', '',
        render_summary(rows), '## Every case', '',
        markdown_table(CASE_HEADER[:-1] + ('error', ), (
            (r.label, '✔' if r.exported else '✘',
             '-' if r.parity is None else f'{r.parity.max_abs_diff:.1e}',
             '-' if r.parity is None else f'{r.parity.scale:.3g}',
             '-' if r.parity is None else f'{r.parity.relative:.1e}',
             r.eval_breaks.graphs, r.eval_breaks.breaks,
             r.train_breaks.graphs, r.train_breaks.breaks,
             r.export_error or '') for r in results))
    ]
    return '\n'.join(lines)


def run_grid(layers: Optional[Sequence[str]] = None,
             log: Callable[[str], None] = print
             ) -> Tuple[List[Tuple[DeployCase, CaseResult]], List[CaseResult]]:
    """Check every case of the grid, then every stock twin with a module."""
    results = []
    for case in deploy_cases(layers):
        result = check_case(case)
        log(f'[deploy] {case.label}: '
            + (f'ONNX {result.parity.relative:.1e}' if result.exported else
               f'ONNX ✘ {result.export_error}')
            + f', breaks {result.eval_breaks.breaks}/'
            f'{result.train_breaks.breaks}')
        results.append((case, result))
    twin_results = []
    for twin in twins():
        if layers is not None and twin.layer not in layers:
            continue
        module = twin_module(twin, entry_named(twin.layer).bench_options)
        if module is not None:
            twin_results.append(check_module(twin.label, module))
            log(f'[deploy] {twin.label}: exported '
                f'{twin_results[-1].exported}')
    return results, twin_results
