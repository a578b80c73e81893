"""tools/export_onnx.py: a segmentor from a config to ONNX, parity in ONNX
Runtime at other sizes, exit status, the errors it names.

CI: a checkpoint round trip on the study's tiny non-local model, and the
refusals. ``make test-deploy`` (marker ``deploy``): round trips of an NL
head, a CC backbone plugin, a DNL head, a GCNet head and a MiT with the
switch at two sizes each with ``--random-init``, one from a checkpoint that
``tools/train.py`` trained, and a study config trained with MMEngine's
``compile=True`` against eager. Skipped with a reason without torch >= 2.6
and the ONNX packages.
"""
import json

import pytest
import torch

from qkv_plugins.bench.onnx_runtime import missing_requirements

from .helpers import CONFIGS, run_tool

MISSING = missing_requirements()
pytestmark = pytest.mark.skipif(
    bool(MISSING), reason='deployment checks need ' + ', '.join(MISSING))

STUDY = CONFIGS / 'qkv_study'
NL = STUDY / 'nonlocal-shared_tinyr18s2_1xb8-1500it_qkvsyn-cyclic-128x128.py'
FAST = ['--repeats', '1', '--warmup', '0', '--threads', '1']


def export(*args):
    """``python -m qkv_plugins export-onnx ARGS`` in this process: exit
    status."""
    from qkv_plugins.commands import main as door
    return door(['export-onnx', *map(str, args)])


def _checkpoint(path, seed=3):
    """A state dict of the NL study model with its attention redrawn (the
    non-local block starts as the identity)."""
    from qkv_plugins.bench.export_model import build_model, load_export_config
    model = build_model(load_export_config(NL), seed=seed)
    torch.save(dict(state_dict=model.state_dict(), meta={}), path)
    return model


def test_round_trip_from_a_checkpoint(tmp_path, capsys):
    import onnx

    from qkv_plugins.bench.export_model import SegmentorLogits
    from qkv_plugins.bench.onnx_runtime import run_session, session
    model = _checkpoint(tmp_path / 'nl.pth')
    out = tmp_path / 'nl.onnx'
    assert export(NL, '--checkpoint', tmp_path / 'nl.pth', '--out', out,
                  '--shape', 64, 64, '--check-shape', 49, 81, *FAST) == 0
    lines = capsys.readouterr().out.splitlines()
    parity = [line for line in lines if line.startswith('parity 49×81: ')]
    assert len(parity) == 1 and 'argmax agreement 100.000 %' in parity[0]
    assert parity[0].endswith('PASS')
    assert any(line.startswith('latency 1×3×49×81 (CPU, 1 thread') and
               'ONNX Runtime' in line and 'PyTorch eager' in line
               for line in lines), lines
    # the checkpoint's weights went into the file: ONNX Runtime gives the
    # logits of the model saved, at a third size
    x = torch.randn(1, 3, 57, 40)
    with torch.no_grad():
        expected = SegmentorLogits(model).eval()(x)
    got = run_session(session(out, 1), x)
    assert got.shape == (1, 4, 57, 40)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    metadata = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(metadata['mean']) == [127.5, 127.5, 127.5]
    assert metadata['bgr_to_rgb'] == 'True'


@pytest.mark.parametrize('override,named', [
    ('model.test_cfg.mode=slide', "model.test_cfg.mode='slide'"),
    ('model.type=SegTTAModel', "model.type='SegTTAModel'"),
])
def test_names_the_option_it_cannot_export(override, named, tmp_path,
                                           capsys):
    assert export(NL, '--random-init', '--out', tmp_path / 'x.onnx',
                  '--shape', 64, 64, '--cfg-options', override) == 2
    err = capsys.readouterr().err
    assert err.startswith('export-onnx: ') and named in err, err
    assert not (tmp_path / 'x.onnx').exists()


def test_a_failed_parity_exits_1(monkeypatch, tmp_path, capsys):
    from qkv_plugins.bench import export_model
    failing = export_model.ExportReport(
        tmp_path / 'x.onnx', [export_model.Parity((9, 9), 0.0, 1.0, 99.8)],
        None, None, (9, 9), 1)
    monkeypatch.setattr(export_model, 'export_and_check',
                        lambda *args, **kwargs: failing)
    assert export(NL, '--random-init', '--out', tmp_path / 'x.onnx',
                  '--shape', 64, 64) == 1
    assert failing.parities[0].line().endswith('FAIL')
    assert '99.800 % (≥ 99.9 %)' in failing.parities[0].line()


def test_parity_needs_agreement_and_a_small_difference():
    from qkv_plugins.bench.export_model import LOGIT_TOLERANCE, Parity
    assert Parity((9, 9), 0.0, 5.0, 99.9).ok
    assert not Parity((9, 9), 0.0, 5.0, 99.89).ok
    assert Parity((9, 9), 5 * LOGIT_TOLERANCE, 5.0, 100.0).ok
    assert not Parity((9, 9), 6 * LOGIT_TOLERANCE, 5.0, 100.0).ok
    assert Parity((9, 9), LOGIT_TOLERANCE, 0.1, 100.0).ok  # floor of 1


def test_checkpoint_or_random_init_is_required(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        export(NL, '--out', tmp_path / 'x.onnx', '--shape', 64, 64)
    assert exit_.value.code == 2
    assert 'one of the arguments --checkpoint --random-init is required' in \
        capsys.readouterr().err


# -- make test-deploy -------------------------------------------------------------

ROUND_TRIPS = {
    'NL head': NL,
    'CC backbone plugin': CONFIGS / 'qkv_deploy' /
    'fcn-qkvcc-stage2-shared_tinyr50s2_1xb8-1500it_qkvsyn-cyclic-128x128.py',
    'DNL head': STUDY / 'dnl-separate_tinyr18s2_1xb8-1500it_qkvsyn-cyclic-'
    '128x128.py',
    'GCNet head': STUDY / 'gcnet_tinyr18s2_1xb8-1500it_qkvsyn-cyclic-'
    '128x128.py',
    'MiT with the switch': STUDY / 'mha-shared_qk_tinymit2s_1xb8-1500it_'
    'qkvsyn-cyclic-128x128.py',
}


@pytest.mark.deploy
@pytest.mark.parametrize('name', list(ROUND_TRIPS))
def test_round_trip_with_random_init_at_two_sizes(name, tmp_path, capsys):
    assert export(ROUND_TRIPS[name], '--random-init', '--out',
                  tmp_path / 'm.onnx', '--shape', 128, 128, '--check-shape',
                  96, 160, '--check-shape', 129, 97, *FAST) == 0
    lines = [line for line in capsys.readouterr().out.splitlines()
             if line.startswith('parity ')]
    assert [line.split(':')[0] for line in lines] == ['parity 96×160',
                                                      'parity 129×97']
    assert all(line.endswith('PASS') for line in lines), lines


def _tiny_options(data_root, iters):
    return [f'{loader}.dataset.data_root={data_root}'
            for loader in ('train_dataloader', 'val_dataloader',
                           'test_dataloader')] + [
        f'train_cfg.max_iters={iters}', 'train_cfg.val_interval=1000',
        'default_hooks.checkpoint.interval=1000',
        'default_hooks.logger.interval=1']


@pytest.mark.deploy
def test_round_trip_from_a_trained_checkpoint(tiny_data, tmp_path, capsys):
    work = tmp_path / 'work'
    run_tool('tools/train.py', NL, '--work-dir', work, '--cfg-options',
             *_tiny_options(tiny_data, 2), 'train_dataloader.batch_size=2')
    checkpoint = work / 'iter_2.pth'
    assert export(NL, '--checkpoint', checkpoint, '--out', tmp_path / 'm.onnx',
                  '--shape', 128, 128, '--check-shape', 96, 160,
                  '--check-shape', 129, 97, *FAST) == 0
    lines = [line for line in capsys.readouterr().out.splitlines()
             if line.startswith('parity ')]
    assert len(lines) == 2 and all(line.endswith('PASS') for line in lines)


# Q = K, cosine, mask_self: eager trains on SelfMaskedAttentionFunction,
# the compiled graph on the explicit masked path.
COMPILED = STUDY / ('nonlocal-shared_qk-cosine-maskself_tinyr18s2_1xb8-1500it_'
                    'qkvsyn-cyclic-128x128.py')
ITERS = 20
# Rounding (relative 1e-7 at iteration 0) grows about tenfold every two or
# three iterations under AdamW, compiled or not: eager against eager with
# one intra-op thread instead of two differs by 1.3e-3 at iteration 17
# (measured on the 2-core VM), so relative 1e-3 over all 20 iterations tests
# that noise. The first iterations show the same computation (compiled
# against eager: at most 2.8e-7 over iterations 0-7, eager with one thread
# as close); the whole run stays within 1e-2 (measured: 2.2e-3 at 19).
SAME_ITERS, SAME, DRIFT = 8, 1e-5, 1e-2


@pytest.mark.deploy
def test_compiled_training_matches_eager_losses(tiny_data, tmp_path):
    """MMEngine's ``compile=True`` (Inductor) over 20 iterations: every
    loss within relative 1e-5 of eager's over the first 8 iterations, and
    within 1e-2 over all 20 (loss_series.json)."""
    series = {}
    for name, extra in (('eager', []), ('compiled', ['compile=True'])):
        work = tmp_path / name
        run_tool('tools/train.py', COMPILED, '--work-dir', work,
                 '--cfg-options', *_tiny_options(tiny_data, ITERS), *extra,
                 timeout=1800)
        losses = json.loads((work / 'loss_series.json').read_text())['losses']
        series[name] = [float.fromhex(v) for v in losses]
    assert len(series['eager']) == len(series['compiled']) == ITERS
    for i, (eager, compiled) in enumerate(zip(series['eager'],
                                              series['compiled'])):
        bound = SAME if i < SAME_ITERS else DRIFT
        assert abs(compiled - eager) <= bound * abs(eager), (i, eager,
                                                             compiled)
