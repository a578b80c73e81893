# The embedded study on the 'grouping' track: two-stage tiny ResNetV1c-18 + AttentionHead,
# 1200 iterations of batch 8 at 128x128 on CPU.
_base_ = [
    './models/tinyr18s2_attention.py',
    './datasets/qkvsyn-grouping.py',
    './schedules/qkvsyn_1200it.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(imports=['qkv_plugins'], allow_failed_imports=False)
model = dict(decode_head=dict(num_classes=4))
