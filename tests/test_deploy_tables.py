"""The deployment tables: ``benchmark-compile`` (eager against
torch.compile per block) and ``deployment-table`` (the README's summary)
on tiny cases; the whole grid runs in ``make test-deploy``."""
import csv

import pytest

from qkv_plugins.bench.onnx_runtime import missing_requirements
from qkv_plugins.commands import main as door

MISSING = missing_requirements()
pytestmark = pytest.mark.skipif(
    bool(MISSING), reason='deployment checks need ' + ', '.join(MISSING))


def test_benchmark_compile_writes_a_row_per_case(tmp_path):
    import torch
    threads = torch.get_num_threads()
    try:
        door(['benchmark-compile', '--layers', 'nonlocal', '--shapes',
              '3x8x5x3', '--backend', 'aot_eager', '--repeats', '1',
              '--warmup', '0', '--min-seconds', '0', '--threads', '1',
              '--out-dir', str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
    rows = list(csv.DictReader((tmp_path / 'compile-cpu.csv').open()))
    assert [(r['block'], r['batch'], r['height'], r['width'])
            for r in rows] == [
        ('nonlocal separate dot', '3', '5', '3'),
        ('nonlocal shared_qk cosine mask_self', '3', '5', '3')]
    # eager runs the chunked Function for mask_self, the compiled graph the
    # explicit masked path; no graph breaks
    assert [(r['eager_path'], r['compiled_path']) for r in rows] == [
        ('fused SDPA', 'fused SDPA'),
        ('SelfMaskedAttentionFunction', 'explicit')]
    assert all(r['graph_breaks'] == '0' and float(r['speedup']) > 0
               for r in rows)
    text = (tmp_path / 'compile-cpu.md').read_text()
    assert "backend='aot_eager'" in text and 'Machine: ' in text
    assert '--shapes 3x8x5x3' in text and '\nLoad: ' in text
    assert '--threads 1' in text and ', 1 threads, ' in text


def test_the_compile_header_says_whether_the_machine_was_shared():
    from qkv_plugins.bench.compile import load_text
    assert 'other processes shared the machine' in load_text((3.2, 4.0))
    assert load_text((3.2, 4.0)).startswith(
        'Load: 1-minute load average 3.2 at the start, 4.0 at the end')
    assert 'no other process was busy' in load_text((0.3, 2.0))
    assert load_text((None, None)) == 'Load: not available on this system.'


def test_benchmark_compile_refuses_a_bad_shape(capsys):
    with pytest.raises(SystemExit) as exit_:
        door(['benchmark-compile', '--shapes', '8x64x16'])
    assert exit_.value.code == 2
    assert "'8x64x16' is not BxCxHxW" in capsys.readouterr().err


def test_summary_rows_and_speedups_render_the_readme_table(tmp_path):
    from qkv_plugins.bench.deploy import (CaseResult, DeployCase,
                                          GraphBreaks, OnnxParity)
    from qkv_plugins.bench.deploy_table import (read_speedups,
                                                render_summary, summary_rows)
    (tmp_path / 'compile.csv').write_text(
        'block,batch,channels,height,width,eager_path,eager_ms,'
        'compiled_path,compiled_ms,speedup,compile_s,graph_breaks\n'
        'gcnet query_independent dot,8,64,16,16,plain ops,2,plain ops,1,'
        '2.0,5,0\n'
        'gcnet query_independent dot,2,64,64,64,plain ops,3,plain ops,4,'
        '0.75,5,0\n')
    speedups = read_speedups(tmp_path / 'compile.csv')
    assert speedups == {'gcnet': '2.00× / 0.75× (query_independent dot)'}

    def result(label, relative, breaks=0):
        parity = None if relative is None else OnnxParity(
            relative, 1.0, ((7, 9), ))
        return CaseResult(label, parity, None if parity else 'Error: x',
                          GraphBreaks(1, 0), GraphBreaks(1 + breaks, breaks))

    case = DeployCase('gcnet', (('qkv_mode', 'query_independent'),
                                ('similarity', 'dot'), ('mask_self', False)))
    rows = summary_rows(
        [(case, result('gcnet query_independent dot', 2e-7))],
        [result('mmcv ContextBlock', None, breaks=2)], speedups)
    table = render_summary(rows).splitlines()
    assert table[2] == ('| gcnet (QKVContextBlock) | ✔ | 2.0e-07 ✔ | 0 / 0 '
                        '| 2.00× / 0.75× (query_independent dot) |')
    assert table[3] == ('| mmcv ContextBlock | ✘ | - | 0 / 2 | '
                        'not measured |')


@pytest.mark.deploy
def test_deployment_table_command_on_one_block(tmp_path, capsys):
    assert door(['deployment-table', '--layers', 'gcnet', '--out-dir',
                 str(tmp_path), '--compile-csv', str(tmp_path / 'none')]) == 0
    out = capsys.readouterr().out
    assert '| gcnet (QKVContextBlock) | ✔ |' in out
    assert '| mmcv ContextBlock | ✔ |' in out
    rows = list(csv.DictReader((tmp_path / 'deploy-cpu.csv').open()))
    assert [r['case'] for r in rows] == ['gcnet query_independent dot',
                                         'mmcv ContextBlock']
    assert all(r['exported'] == '1' and float(r['relative']) < 1e-4
               for r in rows)
