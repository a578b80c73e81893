"""FLOP handlers against hand counts; the table lists every expected run."""
import csv
import io
import json

import pytest
import torch
import torch.nn.functional as F

from qkv_plugins import QKVCrissCrossAttention, QKVNonLocal2d
from qkv_plugins.bench import count_flops
from qkv_plugins.study.collect import collect
from qkv_plugins.study.render import to_csv, to_markdown
from qkv_plugins.study.sweep import plan, sweep


class _SDPA(torch.nn.Module):

    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v)


def test_sdpa_flops_match_hand_count():
    q, k, v = torch.randn(2, 3, 10, 4), torch.randn(2, 3, 7, 4), \
        torch.randn(2, 3, 7, 5)
    # q·kᵀ: 2·3·10·7·4, softmax: 2·3·10·7, weights·v: 2·3·10·7·5
    assert count_flops(_SDPA(), (q, k, v)) == 2 * 3 * 10 * 7 * (4 + 1 + 5)


@pytest.mark.parametrize('mask_self', [False, True])
def test_non_local_flops_include_attention(mask_self):
    """With mask_self too: tracing takes the plain masked path (before,
    the chunked Function traced as one opaque op and counted 0)."""
    c, d, n = 8, 4, 5 * 6
    layer = QKVNonLocal2d(c, mask_self=mask_self).eval()
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
    assert '| cyclic | nonlocal | shared | 2/3 | 65.00 ± 7.07 | 60.0 / 70.0 |' \
        in text
    assert f'{nl} seed 2: partial (iter 4/10)' in problems
    assert (f'{fcn} seed 1: missing; the sweep recorded failed (exit 1)'
            in problems)
    assert f'{fcn} seed 2: missing' in problems
    assert f'{fcn} seed 3: not evaluated on the test split' in problems
    assert '| cyclic | fcn | - | 1/4 |' in text
    assert 'seed 2: partial' in to_csv(variants)


def test_table_compares_each_variant_with_separate_over_paired_seeds(
        tmp_path):
    from qkv_plugins.stats.paired import paired_difference
    name = '{}_tinyr18s2_1xb8-1500it_qkvsyn-cyclic-128x128'
    separate = {0: 80.0, 1: 90.0, 2: 85.0, 3: 70.0}
    shared = {0: 60.0, 1: 75.0, 2: 66.0}  # seed 3 missing: not paired
    for variant, values in (('nonlocal-separate', separate),
                            ('nonlocal-shared', shared)):
        for seed, miou in values.items():
            _stats(tmp_path, name.format(variant), seed, miou)
    variants, problems = collect(str(tmp_path))
    assert problems == []
    # by hand: differences -20, -15, -19 over seeds 0-2
    diff = paired_difference(shared, separate)
    half = 4.302652729911275 * 2.6457513110645907 / 3**0.5
    assert (diff.low, diff.high) == pytest.approx((-18 - half, -18 + half))
    text = to_markdown(variants, problems)
    # three pairs: an interval, no exact test, the smallest detectable Δ
    row = next(line for line in text.splitlines()
               if line.startswith('| cyclic | nonlocal | shared |'))
    assert (f'| -18.00 [{-18 - half:+.2f}, {-18 + half:+.2f}] | no test '
            'possible |') in row
    assert '| 0/3 [0.00, 0.71] | primary |' in row
    assert '| cyclic | nonlocal | separate | 4/4 | 81.25 ± 8.54 | 80.0 / ' \
        '90.0 / 85.0 / 70.0 | 1/4 [0.01, 0.81] | - | - | - |' in text
    rows = {r['row']: r for r in csv.DictReader(
        io.StringIO(to_csv(variants)))}
    shared_row = rows['cyclic/nonlocal-shared']
    assert shared_row['test_possible'] == 'False'
    assert shared_row['p_signflip'] == '' and shared_row['p_mcnemar'] != ''
    assert shared_row['test_miou_per_seed'] == '0:60.00 1:75.00 2:66.00'
    assert shared_row['val_miou_curve'] == '5:57.00 10:62.00'
    # (t.975 + t.80 with 2 df) · sd / √3
    assert float(shared_row['detectable_effect']) == pytest.approx(
        (4.302652729911275 + 1.0606601717798212) * 2.6457513110645907
        / 3**0.5)


def _seeded(tmp_path, values_by_variant, track='cyclic'):
    name = '{}_tinyr18s2_1xb8-1500it_qkvsyn-' + track + '-128x128'
    for variant, values in values_by_variant.items():
        for seed, miou in enumerate(values):
            _stats(tmp_path, name.format(variant), seed, miou)


def test_exact_tests_and_holm_within_the_declared_families(tmp_path):
    from qkv_plugins.stats.exact import mcnemar_exact, sign_flip_p
    from qkv_plugins.stats.paired import holm
    separate = [99.0, 98.5, 99.2, 97.0, 99.9, 50.0, 99.1, 98.8]
    primary = {  # the four declared primary rows, 8 seeds each
        'nonlocal-shared_qk': [50.0, 51.0, 99.0, 49.0, 52.0, 48.0, 50.5,
                               49.5],
        'nonlocal-shared': [50.0] * 8,
        'nonlocal-identity-cosine': [45.0 + s for s in range(8)],
        'nonlocal-query_independent': [48.0] * 7 + [99.0],
    }
    secondary = {'nonlocal-identity_qk': [60.0] * 8}
    _seeded(tmp_path, {'nonlocal-separate': separate, **primary,
                       **secondary})
    variants, problems = collect(str(tmp_path))
    rows = {r['row']: r for r in csv.DictReader(
        io.StringIO(to_csv(variants)))}
    solved = {s: v >= 90 for s, v in enumerate(separate)}
    raw = {h: mcnemar_exact({s: v >= 90 for s, v in enumerate(values)},
                            solved).p for h, values in primary.items()}
    adjusted = dict(zip(raw, holm(list(raw.values()))))
    for head, p in adjusted.items():
        row = rows[f'cyclic/{head}']
        assert row['family'] == 'primary'
        assert float(row['p_mcnemar']) == pytest.approx(raw[head])
        assert float(row['p_mcnemar_holm']) == pytest.approx(p)
    # the secondary family: every other test of the table (the sign-flip
    # test of each row and contrast, McNemar of the other rows and of the
    # contrasts), Holm over all of them
    signflips = {h: sign_flip_p([a - b for a, b in zip(v, separate)])
                 for h, v in {**primary, **secondary}.items()}
    for head, p in signflips.items():
        assert float(rows[f'cyclic/{head}']['p_signflip']) == pytest.approx(p)
    family = [(r['row'], column) for r in rows.values()
              for column in ('p_signflip', 'p_mcnemar')
              if r[column] and not (column == 'p_mcnemar'
                                    and r['family'] == 'primary')]
    assert len(family) == 5 + 1 + 2 * 3  # rows, identity_qk, 3 contrasts
    expected = holm([float(rows[r][c]) for r, c in family])
    for (row, column), p in zip(family, expected):
        assert float(rows[row][f'{column}_holm']) == pytest.approx(p)
    assert rows['cyclic/nonlocal-separate']['solved'] == '7'
    # the declared contrasts whose rows both exist: Q/K projected or not
    contrast = rows['contrast/nonlocal-identity_qk-vs-nonlocal-shared_qk']
    assert contrast['factor'].startswith('projecting Q/K')
    assert float(contrast['delta']) == pytest.approx(
        sum(60.0 - v for v in primary['nonlocal-shared_qk']) / 8)


def test_interventions_are_rows_against_the_model_as_trained(tmp_path):
    separate = [99.0, 98.0, 97.0, 99.5, 96.0, 99.0]
    _seeded(tmp_path, {'nonlocal-separate': separate})
    name = 'nonlocal-separate_tinyr18s2_1xb8-1500it_qkvsyn-cyclic-128x128'
    for seed in range(6):
        work = tmp_path / name / f'seed{seed}'
        for how, miou in (('symmetric', 50.0 + seed), ('transpose', 40.0)):
            (work / f'test_metrics_{how}.json').write_text(json.dumps(dict(
                checkpoint='x', metrics=dict(mIoU=miou))))
        (work / 'attention_diagnostics_init.json').write_text(json.dumps(
            {'decode_head.attention': dict(logit_asymmetry=1.4)}))
    variants, problems = collect(str(tmp_path))
    rows = {r['row']: r for r in csv.DictReader(
        io.StringIO(to_csv(variants)))}
    symmetric = rows['cyclic/nonlocal-separate[symmetric]']
    assert symmetric['kind'] == 'intervention'
    assert symmetric['reference'] == 'cyclic/nonlocal-separate'
    assert float(symmetric['delta']) == pytest.approx(
        sum(50.0 + s - v for s, v in enumerate(separate)) / 6)
    assert float(symmetric['p_signflip']) == pytest.approx(2 / 2**6)
    assert symmetric['solved'] == '0'
    assert float(rows['cyclic/nonlocal-separate']['logit_asymmetry_init']) \
        == pytest.approx(1.4)
    text = to_markdown(variants, problems)
    assert '| cyclic/nonlocal-separate[transpose] |' in text
    assert '| cyclic/nonlocal-separate | 0 | 99.0 | yes |' in text


def test_time_to_solve_table(tmp_path):
    from qkv_plugins.stats.survival import kaplan_meier, logrank_p
    from qkv_plugins.study.report import write_report
    name = '{}_tinyr18s2_1xb8-4500it-tts_qkvsyn-cyclic-128x128'
    solved_at = {'nonlocal-separate': [600, 900, 900, 1200],
                 'nonlocal-identity-cosine': [None, 2400, None, None]}
    for head, times in solved_at.items():
        for seed, at in enumerate(times):
            work = tmp_path / name.format(head) / f'seed{seed}'
            work.mkdir(parents=True)
            end = at or 4500
            history = [dict(iter=i, mIoU=95.0 if at and i >= at else 50.0,
                            cosine_scale={'a': 10.0 + i / 300})
                       for i in range(300, end + 1, 300)]
            (work / 'run_stats.json').write_text(json.dumps(dict(
                complete=True, iter=end, max_iters=4500,
                stopped_early=bool(at), val_history=history)))
    text = write_report(str(tmp_path))
    assert '| cyclic | nonlocal-separate | 4 | 4/4 [0.40, 1.00] | 600 / ' \
        '900 / 900 / 1200 | 900 [600, 1200] |' in text
    row = next(line for line in text.splitlines()
               if '| nonlocal-identity-cosine |' in line)
    assert '>4500 / 2400 / >4500 / >4500 | not reached' in row
    p = logrank_p([600, 900, 900, 1200], [True] * 4,
                  [4500, 2400, 4500, 4500], [False, True, False, False])
    rows = {r['row']: r for r in csv.DictReader(
        (tmp_path / 'table.csv').open())}
    assert float(rows['cyclic/nonlocal-identity-cosine']['p_logrank']) == \
        pytest.approx(p)
    assert rows['cyclic/nonlocal-separate']['km_median'] == '900'
    assert '0:300=11.000,600=12.000 1:' in rows['cyclic/nonlocal-separate'][
        'cosine_scale_per_seed']
    assert kaplan_meier([600], [True])[0].survival == 0.0
    assert (tmp_path / 'table.png').stat().st_size > 0


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
    assert f'| - | {config} | - | 1/1 | 65.00 ± 0.00 (val) | 65.0 |' in \
        to_markdown(variants, problems)
