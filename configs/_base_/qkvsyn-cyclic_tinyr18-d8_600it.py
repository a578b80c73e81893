# The embedded study on the 'cyclic' track: tiny ResNetV1c-18 + AttentionHead,
# 600 iterations of batch 8 at 128x128 on CPU.
_base_ = [
    './models/tinyr18-d8_attention.py',
    './datasets/qkvsyn-cyclic.py',
    './schedules/qkvsyn_600it.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(imports=['qkv_plugins'], allow_failed_imports=False)
model = dict(decode_head=dict(num_classes=4))
