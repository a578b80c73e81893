# Time to solve on the 'cyclic' track: the study's model and data with the
# time-to-solve schedule (constant learning rate, early stop when solved).
_base_ = [
    './models/tinyr18s2_attention.py',
    './datasets/qkvsyn-cyclic.py',
    './schedules/qkvsyn_time_to_solve.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(imports=['qkv_plugins'], allow_failed_imports=False)
model = dict(decode_head=dict(num_classes=4))
