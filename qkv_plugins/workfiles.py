"""The names of a run's work-dir files (and of a sweep's root), in one place
below everything that writes or reads them: the hooks (``mmseg/``), the run
(``workdir``, ``training``), the study and the node check."""

# By their writers:
LOCK_FILE = '.qkv_lock.json'  # training.train
STATS_FILE = 'run_stats.json'  # RunStatsHook
DIAGNOSTICS_FILE = 'attention_diagnostics.json'  # AttentionDiagnosticsHook
# the same with every layer's self mask lifted (mask_self models)
LIFTED_DIAGNOSTICS_FILE = 'attention_diagnostics_lifted.json'
LOSS_SERIES_FILE = 'loss_series.json'  # LossSeriesHook
TEST_METRICS_FILE = 'test_metrics.json'  # the study's test-split evaluation
# the same with a test-time intervention on the logits (study.sweep)
INTERVENTION_FILES = {'symmetric': 'test_metrics_symmetric.json',
                      'transpose': 'test_metrics_transpose.json'}
# diagnostics of the model as its seed initialises it (a reference)
INIT_DIAGNOSTICS_FILE = 'attention_diagnostics_init.json'
PLAN_FILE = 'sweep.json'  # study.sweep, at the sweep's root
