"""Training through tools/train.py: checkpoints, resume, kill, distributed,
bad configs."""
import json
import socket
import textwrap

import pytest
import torch

from .helpers import CONFIGS, REPO, run_tool

STUDY = CONFIGS / 'qkv_study'
CONFIG = STUDY / 'nonlocal-separate_tinyr18s2_1xb8-1500it_qkvsyn-cyclic-128x128.py'
SINGLE_THREAD = {'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}


def tiny_options(data_root, iters, checkpoint_every=2):
    options = [f'{loader}.dataset.data_root={data_root}'
               for loader in ('train_dataloader', 'val_dataloader',
                              'test_dataloader')]
    return options + [
        f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
        f'param_scheduler.0.end={iters}',
        f'default_hooks.checkpoint.interval={checkpoint_every}',
        'default_hooks.logger.interval=1', 'train_dataloader.batch_size=2',
        'randomness.deterministic=True'
    ]


def train(config, work_dir, options, *extra, env=None, check=True):
    return run_tool('tools/train.py', config, '--work-dir', work_dir, *extra,
                    '--cfg-options', *options,
                    env=dict(SINGLE_THREAD, **(env or {})), check=check)


def stats(work_dir):
    return json.loads((work_dir / 'run_stats.json').read_text())


def test_train_save_resume_and_load(tiny_data, tmp_path):
    work = tmp_path / 'run'
    train(CONFIG, work, tiny_options(tiny_data, 4))
    assert stats(work)['complete'] and stats(work)['iter'] == 4
    assert [h['iter'] for h in stats(work)['val_history']] == [4]
    checkpoint = work / 'iter_4.pth'
    from qkv_plugins.compat.requirements import torch_version
    if torch_version() >= (2, 6):  # weights_only=True by default
        # Stock torch refuses it (mmengine's HistoryBuffer, numpy state)...
        plain = run_tool('-c', 'import sys, torch; torch.load(sys.argv[1])',
                         checkpoint, check=False)
        assert plain.returncode != 0 and 'weights_only' in plain.stderr
    # ...with qkv_plugins imported, everything in it is allow-listed.
    unsafe = getattr(torch.serialization, 'get_unsafe_globals_in_checkpoint',
                     None)  # torch >= 2.5
    if unsafe is not None:
        assert unsafe(checkpoint) == []
    assert torch.load(checkpoint, weights_only=True)['meta']['iter'] == 4

    result = train(CONFIG, work, tiny_options(tiny_data, 6), '--resume')
    assert 'resumed' in (result.stdout + result.stderr).lower()
    assert stats(work)['iter'] == 6 and stats(work)['steps_per_rank'] == [2]
    # another length is another run: its history starts afresh
    assert [h['iter'] for h in stats(work)['val_history']] == [6]

    result = run_tool('tools/test.py', CONFIG, work / 'iter_6.pth',
                      '--work-dir', tmp_path / 'test', '--cfg-options',
                      *tiny_options(tiny_data, 6), env=SINGLE_THREAD)
    assert 'mIoU' in result.stdout + result.stderr


def _crashable_config(tmp_path):
    path = tmp_path / 'crashable.py'
    path.write_text(textwrap.dedent(f'''\
        _base_ = ['{CONFIG}']
        custom_imports = dict(imports=['qkv_plugins', 'tests.crash_hook'],
                              allow_failed_imports=False)
        custom_hooks = [dict(type='RunStatsHook'), dict(type='RNGStateHook'),
                        dict(type='LossSeriesHook'), dict(type='CrashHook')]
        # Dropout draws from torch's RNG, which mmengine's replay of the
        # dataloader does not advance: without RNGStateHook it would differ.
        model = dict(decode_head=dict(dropout_ratio=0.3))
        '''))
    return path


def _losses(work_dir):
    """{iteration: training loss} from mmengine's scalar logs (all runs)."""
    losses = {}
    for path in sorted(work_dir.glob('*/vis_data/scalars.json')):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if 'loss' in record:
                losses[record['step']] = record['loss']
    return losses


@pytest.mark.parametrize('crash', ['iter:5', 'save:6'])
def test_killed_run_resumes_to_the_uninterrupted_result(tiny_data, tmp_path,
                                                         crash):
    config = _crashable_config(tmp_path)
    options = tiny_options(tiny_data, 8)
    env = {'PYTHONPATH': str(REPO)}
    train(config, tmp_path / 'straight', options, '--resume', env=env)

    work = tmp_path / 'killed'
    killed = train(config, work, options, '--resume', check=False,
                   env=dict(env, QKV_TEST_CRASH=crash))
    assert killed.returncode == 9
    assert not (work / 'iter_8.pth').exists()
    # The same command again resumes from the last complete checkpoint.
    result = train(config, work, options, '--resume', env=env)
    assert 'iter_4.pth' in result.stdout + result.stderr
    assert stats(work)['complete']
    assert stats(work)['metrics'] == stats(tmp_path / 'straight')['metrics']
    # A resumed run is the uninterrupted one to the last bit: every
    # iteration's loss (one thread, RNG states and the data order restored).
    expected, got = (json.loads((w / 'loss_series.json').read_text())
                     for w in (tmp_path / 'straight', work))
    assert got['iters'] == 8 and got['losses'] == expected['losses']


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_two_process_cpu_training(tiny_data, tmp_path):
    work = tmp_path / 'ddp'
    result = run_tool(
        '-m', 'torch.distributed.run', '--nproc_per_node=2',
        f'--master_port={_free_port()}', 'tools/train.py', CONFIG,
        '--launcher', 'pytorch', '--work-dir', work, '--cfg-options',
        *tiny_options(tiny_data, 4, checkpoint_every=4),
        env=SINGLE_THREAD)
    run = stats(work)
    assert run['world_size'] == 2 and run['steps_per_rank'] == [4, 4]
    assert run['complete']
    assert sorted(p.name for p in work.glob('*.pth')) == ['iter_4.pth']
    assert 'gloo' in result.stdout + result.stderr


@pytest.mark.parametrize('option,message', [
    ('train_dataloader.dataset.track=spiral', "track='spiral'"),
    ('model.decode_head.attention.qkv_mode=sepa', "qkv_mode must be one of"),
    ('train_dataloader.dataset.data_root=/nonexistent',
     'tools/make_dataset.py'),
])
def test_bad_config_fails_before_training(tiny_data, tmp_path, option,
                                          message):
    work = tmp_path / 'bad'
    result = train(CONFIG, work, [*tiny_options(tiny_data, 4), option],
                   check=False)
    assert result.returncode != 0
    assert message in result.stderr
    assert not list(work.glob('*.pth'))
    assert 'Iter(train)' not in result.stdout + result.stderr


def test_checkpoint_getattr_stand_in_refuses_other_attributes():
    import os
    import pickle

    from mmengine.logging import HistoryBuffer

    from qkv_plugins.compat.checkpoint import history_buffer_method
    assert history_buffer_method(HistoryBuffer, 'mean') is HistoryBuffer.mean
    for owner, name in ((os, 'system'), (HistoryBuffer, '__init__')):
        with pytest.raises(pickle.UnpicklingError, match='refusing getattr'):
            history_buffer_method(owner, name)
