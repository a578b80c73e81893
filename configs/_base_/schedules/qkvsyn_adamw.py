# The embedded study's CPU schedule: AdamW, linear decay. Children
# (qkvsyn_<N>it.py) set the length and validate three times; the study
# evaluates the final checkpoint on the held-out test split with attention
# diagnostics (qkv_plugins.study.sweep.evaluate).
max_iters = 600
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, betas=(0.9, 0.999),
                   weight_decay=1e-4))
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-5, power=1.0, begin=0, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # Keep 2: mmengine 0.10.7 deletes the oldest checkpoint *before* writing
    # the next, so with 1 a kill during that write leaves none to resume.
    checkpoint=dict(type='CheckpointHook', by_epoch=False,
                    interval=max_iters // 3, max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
custom_hooks = [
    dict(type='RunStatsHook'),
    dict(type='RNGStateHook'),
    # every iteration's loss to the last bit (the table's loss SHA-256)
    dict(type='LossSeriesHook'),
]
randomness = dict(seed=0, deterministic=False)
