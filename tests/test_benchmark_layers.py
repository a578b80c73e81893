"""tools/benchmark_layers.py: layer cases, timing in turns, and
--end-to-end on a shrunken R-50-D8."""
import argparse
import csv

import pytest
import torch

from qkv_plugins.bench.layers import Case, run_cases
from qkv_plugins.bench.report import (end_to_end_from_args,
                                                   to_markdown)
from qkv_plugins.bench.end_to_end import catalog_heads
from qkv_plugins.bench.timing import interleaved_ms

from .helpers import CONFIGS, run_tool


def test_interleaved_ms_runs_steps_in_turns_reversing_each_turn():
    calls = []
    steps = [lambda name=name: calls.append(name) for name in 'abc']
    times = interleaved_ms(steps, torch.device('cpu'), warmup=1, repeats=3)
    assert len(times) == 3 and all(t >= 0 for t in times)
    # warm-up, then turns in order, reversed, in order
    assert ''.join(calls) == 'abc' + 'abc' + 'cba' + 'abc'


@pytest.mark.parametrize('layer,reference', [
    ('nonlocal', 'mmcv NonLocal2d embedded_gaussian'),
    ('ccnet', 'mmcv CCA x2')])
def test_run_cases_measures_ours_and_the_reference(layer, reference):
    cases = [Case(layer, 'separate', 'dot', False, 4, 5, 16, 2),
             Case(layer, 'shared', 'cosine', True, 3, 3, 16, 1)]
    results = run_cases(cases, torch.device('cpu'), torch.float32, warmup=0,
                        repeats=2, log=lambda _: None)
    assert [(r.case, r.impl) for r in results][0::2] == [(c, 'ours')
                                                         for c in cases]
    assert results[1].impl == reference
    for r in results:
        assert r.time_ms > 0 and r.extra_mib is not None and not r.error, r
    table = to_markdown(results, 'title', 'cmd')
    assert sum(line.startswith(f'| {layer} |')
               for line in table.splitlines()) == len(cases)


def _shrink(cfg):
    """ResNet-18-D8 with narrow heads: same graph, a fraction of the time."""
    cfg.model.backbone.depth = 18
    cfg.model.decode_head.in_channels = 512
    cfg.model.decode_head.channels = 32
    cfg.model.auxiliary_head.in_channels = 256
    cfg.model.auxiliary_head.channels = 16


def test_end_to_end_writes_one_row_per_head_and_phase(tmp_path):
    infer = True
    args = argparse.Namespace(
        end_to_end=True, device='cpu', dtype=None, e2e_size='32x64',
        e2e_batch=None, e2e_infer=infer, repeats=1, warmup=0,
        out_dir=str(tmp_path), config_root=str(CONFIGS))
    out = end_to_end_from_args(args, 'python tools/benchmark_layers.py',
                               overrides=_shrink)
    rows = list(csv.DictReader(out.with_suffix('.csv').open()))
    phases = ['train', 'infer'] if infer else ['train']
    assert [(r['head'], r['phase']) for r in rows] == [
        (head, phase) for phase in phases for head, _ in catalog_heads()]
    for r in rows:
        assert float(r['time_ms']) > 0 and float(r['peak_mib']) >= 0, r
        # CPU default batch 1; inference is always one whole image
        assert (r['batch'], r['height'], r['width'], r['dtype']) == (
            '1', '32', '64', 'float32')
    text = out.with_suffix('.md').read_text()
    assert '--end-to-end --e2e-size 32x64' in text
    assert text.count('| 1.00 |') >= len(phases), 'FCN ratio to itself'
    assert sum(line.startswith('| ') for line in text.splitlines()) == \
        1 + len(rows)
    assert not list(tmp_path.glob('.*.tmp')), 'atomic write left a file'


@pytest.mark.parametrize('flag,value,message', [
    ('--repeats', '0', '--repeats: 0 is below 1'),
    ('--warmup', '-1', '--warmup: -1 is below 0'),
    ('--min-seconds', 'soon', "--min-seconds: 'soon' is not a float")])
def test_benchmark_tool_rejects_bad_counts(flag, value, message):
    result = run_tool('tools/benchmark_layers.py', flag, value, check=False)
    assert result.returncode == 2 and message in result.stderr, result.stderr
