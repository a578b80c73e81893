# Criss-cross attention as a backbone plugin (mmcv's plugins=) on the
# embedded data: a narrow two-stage ResNetV1c-50 (plugins need Bottleneck
# blocks; 16/32 base channels, 64/128 out) with QKVCrissCrossAttention
# (shared Q = K = V, CCNet's two hops) after conv3 of every block of stage 2,
# and the study's FCN head. For the deployment checks (tools/export_onnx.py, make
# test-deploy); not one of the study's variants.
_base_ = ['../qkv_study/fcn_tinyr18s2_1xb8-1500it_qkvsyn-cyclic-128x128.py']
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
    decode_head=dict(in_channels=128))  # stage 2 of a Bottleneck net: 4 x 32
