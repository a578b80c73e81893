# The embedded study's transformer family on the 'cyclic' track: a two-stage
# narrow MiT + SegFormer head, 1500 iterations of batch 8 at 128x128 on CPU.
_base_ = [
    './models/tinymit2s_segformer.py',
    './datasets/qkvsyn-cyclic.py',
    './schedules/qkvsyn_1500it.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(imports=['qkv_plugins'], allow_failed_imports=False)
model = dict(decode_head=dict(num_classes=4))
