"""FLOP handlers against hand counts; the table lists every expected run."""
import json

import pytest
import torch
import torch.nn.functional as F

from qkv_plugins import QKVCrissCrossAttention, QKVNonLocal2d
from qkv_plugins.bench import count_flops
from qkv_plugins.study.table import collect, to_csv, to_markdown
from qkv_plugins.study.sweep import plan, sweep


class _SDPA(torch.nn.Module):

    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v)


def test_sdpa_flops_match_hand_count():
    q, k, v = torch.randn(2, 3, 10, 4), torch.randn(2, 3, 7, 4), \
        torch.randn(2, 3, 7, 5)
    # q·kᵀ: 2·3·10·7·4, softmax: 2·3·10·7, weights·v: 2·3·10·7·5
    assert count_flops(_SDPA(), (q, k, v)) == 2 * 3 * 10 * 7 * (4 + 1 + 5)


def test_non_local_flops_include_attention():
    c, d, n = 8, 4, 5 * 6
    layer = QKVNonLocal2d(c).eval()
    x = torch.randn(1, c, 5, 6)
    projections = 3 * n * c * d  # q, k, v: 1x1 convs C -> d
    attention = n * n * (d + 1 + d)
    out = n * d * c
    with torch.no_grad():
        assert count_flops(layer, (x, )) == projections + attention + out


def test_criss_cross_flops_include_attention():
    c, h, w = 16, 5, 6
    layer = QKVCrissCrossAttention(c, qkv_mode='identity').eval()
    x = torch.randn(1, c, h, w)
    # per hop: logits over the column (H) and row (W) keys, softmax over
    # H + W, weighted sums over both
    expected = h * w * h * c + h * w * w * c + h * w * (h + w) + \
        h * w * h * c + h * w * w * c
    with torch.no_grad():
        assert count_flops(layer, (x, )) == expected


def _stats(root, config, seed, miou, complete=True):
    work = root / config / f'seed{seed}'
    work.mkdir(parents=True)
    (work / 'run_stats.json').write_text(json.dumps(dict(
        complete=complete, iter=10 if complete else 4, max_iters=10,
        metrics=dict(mIoU=miou) if complete else None, params=1000,
        flops=2e9, step_time_s=0.1, peak_memory_mib=300.0)))


def test_table_reports_mean_std_and_every_missing_run(tmp_path):
    nl = 'nonlocal-shared_tinyr18s2_1xb8-1500it_qkvsyn-cyclic-128x128'
    fcn = 'fcn_tinyr18s2_1xb8-1500it_qkvsyn-cyclic-128x128'
    _stats(tmp_path, nl, 0, 60.0)
    _stats(tmp_path, nl, 1, 70.0)
    _stats(tmp_path, nl, 2, 0.0, complete=False)
    _stats(tmp_path, fcn, 0, 40.0)
    (tmp_path / 'sweep.json').write_text(json.dumps(dict(runs=[
        dict(config=fcn, seed=1, status='failed', returncode=1),
        dict(config=fcn, seed=2)])))
    variants, problems = collect(str(tmp_path))
    text = to_markdown(variants, problems)
    assert '| cyclic | nonlocal | shared | 65.00 ± 7.07 | 60.0 / 70.0 | +25.00' \
        in text
    assert f'{nl} seed 2: partial (iter 4/10)' in problems
    assert f'{fcn} seed 1: failed (exit 1)' in problems
    assert f'{fcn} seed 2: missing' in problems
    assert '2/3' in text and '1/3' in text
    assert 'seed 2: partial' in to_csv(variants)


def test_sweep_skips_complete_runs(tmp_path, monkeypatch):
    config = tmp_path / 'a_config.py'
    config.write_text('')
    runs = plan([str(config)], [0], str(tmp_path / 'root'))
    _stats(tmp_path / 'root', 'a_config', 0, 50.0)
    monkeypatch.setattr('subprocess.Popen', None)  # would fail if called
    lines = []
    status = sweep(runs, str(tmp_path / 'root'), log=lines.append)
    assert status == {'a_config seed 0': {'status': 'complete'}}
    assert '1 complete, 0 to run' in lines[0]


def test_plan_refuses_missing_configs(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.py'):
        plan([str(tmp_path / 'nope.py')], [0], str(tmp_path))


def test_table_joins_attention_diagnostics(tmp_path):
    nl = 'nonlocal-identity_tinyr18s2_1xb8-1200it_qkvsyn-grouping-128x128'
    for seed, entropy in ((0, 0.2), (1, 0.4)):
        _stats(tmp_path, nl, seed, 50.0)
        (tmp_path / nl / f'seed{seed}' / 'attention_diagnostics.json') \
            .write_text(json.dumps({'decode_head.attention': dict(
                scaled_self_affinity=3.0, self_top1=0.5, entropy=entropy,
                asymmetry=0.0, logit_asymmetry=0.25,
                query_independence=0.1)}))
    variants, problems = collect(str(tmp_path))
    text = to_markdown(variants, problems)
    assert ('| self-aff. ×keys | self top-1 | entropy | asym. | logit asym. | '
            'q-indep. | mass on source |') in text
    assert '| 3.00 | 0.50 | 0.30 | 0.00 | 0.25 | 0.10 | - |' in text
