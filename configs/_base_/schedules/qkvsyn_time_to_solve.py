# Time to solve (docs/qkv.md): one learning-rate trajectory for every run,
# whatever its length — a 150-iteration linear warm-up, then a constant
# 1e-3 (the mean of the study's linear decay from 2e-3) —, at most 4,500
# iterations, validation every 300; a run stops at its first validation at
# or above the solve threshold (val mIoU >= 90), else it runs to the end
# (censored).
_base_ = ['./qkvsyn_adamw.py']
max_iters = 4500
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, begin=0, end=150, by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=300)
default_hooks = dict(checkpoint=dict(interval=300))
solve_threshold = 90.0
custom_hooks = [
    dict(type='RunStatsHook'),
    dict(type='RNGStateHook'),
    dict(type='LossSeriesHook'),
    dict(type='EarlyStoppingHook', monitor='mIoU', rule='greater',
         stopping_threshold=solve_threshold, patience=10**9),
]
