# No-attention baseline: the same head without the attention layer.
_base_ = ['../_base_/qkvsyn-grouping_tinyr18s2_1200it.py']
model = dict(
    decode_head=dict(
        _delete_=True,
        type='FCNHead',
        in_channels=32,
        in_index=0,
        channels=64,
        num_convs=2,
        concat_input=True,
        dropout_ratio=0.0,
        num_classes=4,
        norm_cfg=dict(type='BN', requires_grad=True),
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
            avg_non_ignore=True)))
