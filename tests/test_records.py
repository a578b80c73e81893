"""Run records (qkv_plugins.study.records): a sweep goes on in a later
session from the small files of its finished runs, without their work
dirs, and nothing it restored is trained or evaluated again."""
import json
from pathlib import Path

import pytest

from qkv_plugins.study.demo import DEMO_HEADS, keep, main, study_configs
from qkv_plugins.study.records import (RECORD_FILES, RecordConflict,
                                       export_records, import_records,
                                       record_dir)
from qkv_plugins.study.sweep import evaluate, plan, unevaluated
from qkv_plugins.workdir import (INIT_DIAGNOSTICS_FILE, INTERVENTION_FILES,
                                 STATS_FILE, TEST_METRICS_FILE)

from .helpers import CONFIGS

STUDY = CONFIGS / 'qkv_study'
SEPARATE = STUDY / ('nonlocal-separate_tinyr18s2_1xb8-1500it_qkvsyn-cyclic-'
                    '128x128.py')
EVALUATED = (TEST_METRICS_FILE, *INTERVENTION_FILES.values(),
             INIT_DIAGNOSTICS_FILE)


def _finish(run, options=(), files=EVALUATED, miou=99.0) -> None:
    """Write the files of a complete run of ``run``'s config and seed (its
    own fingerprint and identity) and of the evaluation passes named."""
    fingerprint, max_iters = run.requested(options)
    run.work_dir.mkdir(parents=True, exist_ok=True)
    (run.work_dir / STATS_FILE).write_text(json.dumps(dict(
        complete=True, iter=max_iters, max_iters=max_iters, seed=run.seed,
        fingerprint=fingerprint,
        identity=run.config_for(options).run_identity, commits=['abc1234'],
        metrics={'mIoU': 50.0})))
    for name in files:
        (run.work_dir / name).write_text(json.dumps(dict(
            metrics={'mIoU': miou})))


def _evaluated(run) -> bool:
    return run.is_complete() and not unevaluated(run, intervene=True)


def test_unevaluated_names_the_missing_passes(tmp_path):
    run, = plan([str(SEPARATE)], [0], str(tmp_path))
    _finish(run, files=(TEST_METRICS_FILE, ))
    assert unevaluated(run) == []
    assert unevaluated(run, intervene=True) == [
        *INTERVENTION_FILES.values(), INIT_DIAGNOSTICS_FILE]


def test_records_round_trip_and_restored_runs_are_not_evaluated_again(
        tmp_path):
    runs = plan([str(SEPARATE)], [0, 1], str(tmp_path / 'a'))
    _finish(runs[0])
    _finish(runs[1], files=(TEST_METRICS_FILE, ))  # interventions not run
    records = tmp_path / 'records'
    assert export_records(runs, records, _evaluated) == [runs[0]]
    assert not record_dir(records, runs[1]).exists()
    held = sorted(p.name for p in record_dir(records, runs[0]).iterdir())
    assert held == sorted(EVALUATED + (STATS_FILE, ))
    assert set(held) <= set(RECORD_FILES)
    # again: nothing new to add
    assert export_records(runs, records, _evaluated) == []

    fresh = plan([str(SEPARATE)], [0, 1], str(tmp_path / 'b'))
    restored, conflicts = import_records(fresh, records)
    assert restored == [fresh[0]] and conflicts == []
    for name in held:
        assert (fresh[0].work_dir / name).read_bytes() == (
            runs[0].work_dir / name).read_bytes()
    assert fresh[0].is_complete() and not fresh[1].is_complete()
    said = []
    evaluate(fresh, log=said.append, intervene=lambda run: True)
    assert said == ['[evaluate] 0 runs to evaluate on the test split']


def test_export_refuses_to_replace_another_runs_record(tmp_path):
    run, = plan([str(SEPARATE)], [0], str(tmp_path / 'a'))
    _finish(run)
    records = tmp_path / 'records'
    export_records([run], records, _evaluated)
    (run.work_dir / TEST_METRICS_FILE).write_text('{"metrics": {"mIoU": 1}}')
    with pytest.raises(RecordConflict, match=TEST_METRICS_FILE):
        export_records([run], records, _evaluated)


def test_import_keeps_a_work_dir_that_holds_another_run(tmp_path):
    run, = plan([str(SEPARATE)], [0], str(tmp_path / 'a'))
    _finish(run)
    records = tmp_path / 'records'
    export_records([run], records, _evaluated)
    other, = plan([str(SEPARATE)], [0], str(tmp_path / 'b'))
    _finish(other, miou=42.0)
    before = (other.work_dir / TEST_METRICS_FILE).read_text()
    restored, conflicts = import_records([other], records)
    assert restored == [] and len(conflicts) == 1
    assert TEST_METRICS_FILE in conflicts[0] and 'kept' in conflicts[0]
    assert (other.work_dir / TEST_METRICS_FILE).read_text() == before


def test_demo_keeps_only_runs_evaluated_in_every_pass(tmp_path):
    """The demo's own rule: the reference needs its interventions and its
    diagnostics at initialisation before its record is kept."""
    runs = plan([str(SEPARATE)], [0, 1], str(tmp_path / 'study'))
    _finish(runs[0])
    _finish(runs[1], files=(TEST_METRICS_FILE, ))
    records = tmp_path / 'records' / 'study'
    keep(runs, records, tmp_path / 'study', (), tested=True)
    assert (record_dir(records, runs[0]) / STATS_FILE).is_file()
    assert not record_dir(records, runs[1]).exists()


def test_demo_no_train_restores_records_and_tabulates_them(tiny_data,
                                                          tmp_path, capsys):
    """A later session: ``--no-train --records`` restores a finished run,
    trains and evaluates nothing, and the table holds the restored run."""
    root = tmp_path / 'work_dirs' / 'study'
    options = [f'{loader}.dataset.data_root={tiny_data}'
               for loader in ('train_dataloader', 'val_dataloader',
                              'test_dataloader')]
    config = study_configs(str(STUDY), {'cyclic': ('fcn', )})[0]
    assert 'fcn' in DEMO_HEADS['cyclic']
    earlier, = plan([config], [0], str(tmp_path / 'earlier' / 'study'))
    _finish(earlier, options, files=(TEST_METRICS_FILE, ), miou=77.0)
    records = tmp_path / 'records'
    export_records([earlier], records / 'study', lambda run: True)

    main(['--configs', str(STUDY), '--work-root', str(root), '--no-train',
          '--records', str(records), '--data-root', str(tiny_data)])
    out = capsys.readouterr().out
    assert '[demo] records: 1 runs restored' in out
    assert '[sweep]' not in out  # nothing trained
    assert '[evaluate] 0 runs to evaluate' in out
    assert '(1 of 24 finished)' in out
    restored = Path(root) / earlier.work_dir.parent.name / 'seed0'
    assert (restored / TEST_METRICS_FILE).read_text() == (
        earlier.work_dir / TEST_METRICS_FILE).read_text()
    table = (root / 'table.csv').read_text()
    assert '0:77.00' in table or '0:77.0' in table
    invocations = json.loads((records / 'study' /
                              'invocations.json').read_text())
    assert invocations[-1]['trained'] == 0
