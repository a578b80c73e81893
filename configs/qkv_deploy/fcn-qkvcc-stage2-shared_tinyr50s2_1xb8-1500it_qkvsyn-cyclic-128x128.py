# Criss-cross attention as a backbone plugin (mmcv's plugins=) on the
# embedded data: a narrow two-stage ResNetV1c-50 (plugins need Bottleneck
# blocks; 16/32 base channels, 64/128 out) with QKVCrissCrossAttention
# (shared Q = K = V, CCNet's two hops) after conv3 of every block of stage 2,
# and an FCN head. For the deployment checks (tools/export_onnx.py, make
# test-deploy); not one of the study's variants.
_base_ = ['../_base_/qkvsyn-cyclic_tinyr18s2_1500it.py']
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    backbone=dict(
        depth=50,
        plugins=[
            dict(
                cfg=dict(
                    type='QKVCrissCrossAttention',
                    qkv_mode='shared',
                    recurrence=2),
                stages=(False, True),
                position='after_conv3')
        ]),
    decode_head=dict(
        _delete_=True,
        type='FCNHead',
        in_channels=128,
        in_index=0,
        channels=64,
        num_convs=2,
        concat_input=True,
        dropout_ratio=0.0,
        num_classes=4,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
            avg_non_ignore=True)))
