"""tools/benchmark_layers.py --end-to-end, on a shrunken R-50-D8."""
import argparse
import csv

from qkv_plugins.analysis.benchmark_report import end_to_end_from_args
from qkv_plugins.analysis.end_to_end import HEADS


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
        out_dir=str(tmp_path))
    out = end_to_end_from_args(args, overrides=_shrink)
    rows = list(csv.DictReader(out.with_suffix('.csv').open()))
    phases = ['train', 'infer'] if infer else ['train']
    assert [(r['head'], r['phase']) for r in rows] == [
        (head, phase) for phase in phases for head, _ in HEADS]
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
