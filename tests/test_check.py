"""python -m qkv_plugins.check: the CPU mode end to end, and an injected
fault turning its item into FAIL with a non-zero exit."""
import os
import subprocess
import sys

from qkv_plugins.check.run import main

from .helpers import REPO


def test_cpu_check_end_to_end(tmp_path):
    result = subprocess.run(
        ['bash', str(REPO / 'tools' / 'check_node.sh'), '--small',
         '--out-dir', str(tmp_path)], capture_output=True, text=True,
        timeout=900, env=dict(os.environ, PYTHON=sys.executable,
                              OMP_NUM_THREADS='2'))
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    for item in ('environment', 'correctness', 'benchmark', 'end-to-end',
                 'training'):
        assert f'[check] PASS {item}' in out, item
    assert '[check] SKIP cuda-tests' in out and 'no CUDA device' in out
    summary = (tmp_path / 'check-cpu.md').read_text()
    assert '| correctness | PASS |' in summary and '**PASS**' in summary
    for table in ('layers-cpu-check.md', 'layers-cpu-check.csv',
                  'e2e-cpu-check.md'):
        assert (tmp_path / table).is_file(), table
    assert 'resumed to 6' in summary  # 4 iterations, then resumed to 6


def test_a_wrong_fast_path_fails_the_check(tmp_path, monkeypatch, capsys):
    import torch.nn.functional as F
    sdpa = F.scaled_dot_product_attention

    def wrong(*args, **kwargs):  # a fast path off by 10 %
        return sdpa(*args, **kwargs) * 1.1

    monkeypatch.setattr(F, 'scaled_dot_product_attention', wrong)
    code = main(['--items', 'environment', 'correctness', '--out-dir',
                 str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1
    assert '[check] PASS environment' in out
    assert '[check] FAIL correctness' in out and 'nonlocal:separate,dot' in out
    assert '**FAIL: correctness**' in (tmp_path / 'check-cpu.md').read_text()


def test_items_needing_the_repository_say_so(tmp_path, capsys):
    code = main(['--items', 'training', '--out-dir', str(tmp_path)])
    assert code == 0
    assert "needs --config-root (the repository's configs/)" in \
        capsys.readouterr().out
