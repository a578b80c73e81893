"""FLOP handlers against hand counts; the table lists every expected run."""
import csv
import io
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


def _stats(root, config, seed, miou, complete=True, tested=True):
    """A run's files: val mIoU at iterations 5 and 10 (miou - 10, miou - 5)
    and, when complete and tested, test mIoU ``miou``."""
    work = root / config / f'seed{seed}'
    work.mkdir(parents=True)
    (work / 'run_stats.json').write_text(json.dumps(dict(
        complete=complete, iter=10 if complete else 4, max_iters=10,
        metrics=dict(mIoU=miou - 5) if complete else None, params=1000,
        flops=2e9, step_time_s=0.1, peak_memory_mib=300.0,
        val_history=[dict(iter=5, mIoU=miou - 10),
                     dict(iter=10, mIoU=miou - 5)][:2 if complete else 0])))
    if complete and tested:
        (work / 'test_metrics.json').write_text(json.dumps(dict(
            checkpoint='x', metrics=dict(mIoU=miou))))


def test_table_reports_mean_std_and_every_missing_run(tmp_path):
    nl = 'nonlocal-shared_tinyr18s2_1xb8-1500it_qkvsyn-cyclic-128x128'
    fcn = 'fcn_tinyr18s2_1xb8-1500it_qkvsyn-cyclic-128x128'
    _stats(tmp_path, nl, 0, 60.0)
    _stats(tmp_path, nl, 1, 70.0)
    _stats(tmp_path, nl, 2, 0.0, complete=False)
    _stats(tmp_path, fcn, 0, 40.0)
    _stats(tmp_path, fcn, 3, 40.0, tested=False)
    (tmp_path / 'sweep.json').write_text(json.dumps(dict(runs=[
        dict(config=fcn, seed=1, status='failed', returncode=1),
        dict(config=fcn, seed=2)])))
    variants, problems = collect(str(tmp_path))
    text = to_markdown(variants, problems)
    assert '| cyclic | nonlocal | shared | 65.00 ± 7.07 | 60.0 / 70.0 |' \
        in text
    assert f'{nl} seed 2: partial (iter 4/10)' in problems
    assert f'{fcn} seed 1: failed (exit 1)' in problems
    assert f'{fcn} seed 2: missing' in problems
    assert f'{fcn} seed 3: not evaluated on the test split' in problems
    assert '2/3' in text and '1/4' in text
    assert 'seed 2: partial' in to_csv(variants)


def test_table_compares_each_variant_with_separate_over_paired_seeds(
        tmp_path):
    from qkv_plugins.stats.paired import holm, paired_difference
    name = '{}_tinyr18s2_1xb8-1500it_qkvsyn-cyclic-128x128'
    separate = {0: 80.0, 1: 90.0, 2: 85.0, 3: 70.0}
    shared = {0: 60.0, 1: 75.0, 2: 66.0}  # seed 3 missing: not paired
    fcn = {0: 20.0, 1: 21.0, 2: 25.0}
    for variant, values in (('nonlocal-separate', separate),
                            ('nonlocal-shared', shared), ('fcn', fcn)):
        for seed, miou in values.items():
            _stats(tmp_path, name.format(variant), seed, miou)
    _stats(tmp_path, name.format('nonlocal-shared') + '-3000it', 0, 99.0)
    variants, problems = collect(str(tmp_path))
    assert problems == []
    # by hand: differences -20, -15, -19 over seeds 0-2
    diff = paired_difference(shared, separate)
    assert diff.seeds == 3 and diff.mean == pytest.approx(-18.0)
    half = 4.302652729911275 * 2.6457513110645907 / 3**0.5
    assert (diff.low, diff.high) == pytest.approx((-18 - half, -18 + half))
    p_fcn = paired_difference(fcn, separate).p
    adjusted = holm([diff.p, p_fcn])
    text = to_markdown(variants, problems)
    assert (f'| cyclic | nonlocal | shared | 67.00 ± 7.55 | 60.0 / 75.0 / '
            f'66.0 | -18.00 [{-18 - half:+.2f}, {-18 + half:+.2f}] | '
            f'{adjusted[0]:.3f} |') in text
    assert '| cyclic | nonlocal | separate | 81.25 ± 8.54 |' in text
    # the reference is not compared with itself; another schedule is not
    # compared at all
    assert '| separate | 81.25 ± 8.54 | 80.0 / 90.0 / 85.0 / 70.0 | - | - |' \
        in text
    assert '| shared @3000it | 99.00 ± 0.00 | 99.0 | - | - |' in text
    rows = {r['qkv_mode']: r for r in csv.DictReader(
        io.StringIO(to_csv(variants)))}
    assert float(rows['shared']['p_holm']) == pytest.approx(adjusted[0])
    assert float(rows['-']['p_holm']) == pytest.approx(adjusted[1])
    assert rows['shared']['test_miou_per_seed'] == '0:60.00 1:75.00 2:66.00'
    assert rows['shared']['val_miou_curve'] == '5:57.00 10:62.00'


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
    masked = ('nonlocal-identity-cosine-maskself_tinyr18s2_1xb8-1500it_'
              'qkvsyn-cyclic-128x128')
    stats = dict(self_top1_obj=0.5, self_top1_bg=0.75,
                 scaled_self_affinity_obj=3.0, asymmetry=0.0,
                 logit_asymmetry=0.25, query_independence=0.1)
    for seed, entropy in ((0, 0.2), (1, 0.4)):
        _stats(tmp_path, nl, seed, 50.0)
        (tmp_path / nl / f'seed{seed}' / 'attention_diagnostics.json') \
            .write_text(json.dumps({'decode_head.attention': dict(
                stats, entropy=entropy)}))
        _stats(tmp_path, masked, seed, 50.0)
        for name, own in (('attention_diagnostics.json', 0.0),
                          ('attention_diagnostics_lifted.json', 1.0)):
            (tmp_path / masked / f'seed{seed}' / name).write_text(json.dumps(
                {'decode_head.attention': dict(
                    stats, entropy=entropy, self_top1_obj=own,
                    source_mass=0.5, source_mass_chance_image=0.025,
                    source_mass_chance_objects=0.33)}))
    variants, problems = collect(str(tmp_path))
    text = to_markdown(variants, problems)
    assert ('| logit asym. | self top-1 (obj) | self top-1 (bg) | '
            'self-wt ×keys (obj) | entropy | q-indep. | mass on source | '
            'source chance (image / objects) |') in text
    assert '| 0.25 | 0.50 | 0.75 | 3.0 | 0.30 | 0.10 | - | - |' in text
    # a masked model's own key: measured with the mask lifted
    assert ('| 0.25 | 1.00† | 0.75† | 3.0† | 0.30 | 0.10 | 0.500 | '
            '0.025 / 0.330 |') in text
    rows = list(csv.DictReader(io.StringIO(to_csv(variants))))
    assert rows[0]['entropy_per_seed'] == '0:0.2000 1:0.4000'


def test_runs_outside_the_embedded_study_report_their_last_validation(
        tmp_path):
    config = 'qkv-nonlocal-shared_r50-d8_4xb2-40k_cityscapes-512x1024'
    _stats(tmp_path, config, 0, 70.0, tested=False)
    variants, problems = collect(str(tmp_path))
    assert problems == []
    assert f'| - | {config} | - | 65.00 ± 0.00 (val) | 65.0 |' in \
        to_markdown(variants, problems)
