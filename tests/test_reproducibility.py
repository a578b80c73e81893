"""The same config and seed give the same losses to the last bit, whatever
``--jobs`` is, whatever runs beside it and whatever Python's string hashing
(``PYTHONHASHSEED``) does to set order."""
import json
import os
import subprocess
import sys

import pytest
import torch

from qkv_plugins.layers import QKV_MODES, QKVNonLocal2d
from qkv_plugins.study.sweep import plan, sweep

from .helpers import CONFIGS
from .test_training import tiny_options

STUDY = CONFIGS / 'qkv_study'
# FCN, shared and raw cosine always reproduced: the two paths that did not
# are those with more than one projection.
CONFIGS_TO_REPEAT = [
    STUDY / f'nonlocal-{mode}_tinyr18s2_1xb8-1500it_qkvsyn-cyclic-128x128.py'
    for mode in ('separate', 'query_independent')
]
# Two hash seeds under which Python orders the projections' names
# ({'query', 'key', 'value'} and {'key', 'value'}) differently.
HASH_SEEDS = ('1', '2')
# A busy neighbour: two threads of matrix products for the whole sweep.
BUSY = ('import torch\ntorch.set_num_threads(2)\na = torch.randn(512, 512)\n'
        'while True:\n    a = (a @ a).tanh()\n')


def _set_orders(seed: str) -> str:
    code = ("print(list({'query', 'key', 'value'}), "
            "list({'key', 'value'}))")
    return subprocess.run([sys.executable, '-c', code], text=True,
                          capture_output=True, check=True,
                          env=dict(os.environ, PYTHONHASHSEED=seed)).stdout


def test_the_hash_seeds_order_the_projections_differently():
    first, second = (_set_orders(seed).split('] [') for seed in HASH_SEEDS)
    assert first[0] != second[0] and first[1] != second[1]


def _sweep(root, data, jobs, hash_seed, monkeypatch):
    monkeypatch.setenv('PYTHONHASHSEED', hash_seed)
    runs = plan([str(c) for c in CONFIGS_TO_REPEAT], [0], str(root))
    status = sweep(runs, str(root), tiny_options(data, 10,
                                                  checkpoint_every=5),
                   jobs=jobs, log=lambda *_: None)
    assert {s['status'] for s in status.values()} == {'complete'}, status
    return {run.work_dir.parent.name: json.loads(
        (run.work_dir / 'loss_series.json').read_text()) for run in runs}


def test_losses_are_bitwise_equal_across_jobs_load_and_hash_seed(
        tiny_data, tmp_path, monkeypatch):
    alone = _sweep(tmp_path / 'jobs1', tiny_data, 1, HASH_SEEDS[0],
                   monkeypatch)
    busy = subprocess.Popen([sys.executable, '-c', BUSY])
    try:
        crowded = _sweep(tmp_path / 'jobs2', tiny_data, 2, HASH_SEEDS[1],
                         monkeypatch)
    finally:
        busy.kill()
        busy.wait()
    assert alone.keys() == crowded.keys()
    for name, series in alone.items():
        assert series['iters'] == 10
        assert series['losses'] == crowded[name]['losses'], name
        assert series['sha256'] == crowded[name]['sha256']


@pytest.mark.parametrize('qkv_mode', ['separate', 'shared_qk',
                                      'query_independent'])
def test_projections_run_in_the_mode_tables_order(qkv_mode):
    layer = QKVNonLocal2d(8, qkv_mode=qkv_mode)
    called = []
    for name in dict.fromkeys(layer.proj.roles.values()):
        getattr(layer.proj, name).register_forward_hook(
            lambda module, args, out, name=name: called.append(name))
    layer(torch.randn(1, 8, 3, 3))
    assert called == [name for name, _ in QKV_MODES[qkv_mode]]
