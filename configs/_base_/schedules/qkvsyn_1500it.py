# 1500 iterations of the embedded study's schedule (qkvsyn_adamw.py).
_base_ = ['./qkvsyn_adamw.py']
max_iters = 1500
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-5, power=1.0, begin=0, end=max_iters,
         by_epoch=False)
]
# validation at a third, two thirds and the end: the learning curves
train_cfg = dict(max_iters=max_iters, val_interval=max_iters // 3)
default_hooks = dict(checkpoint=dict(interval=max_iters // 3))
