# Stock FCN R-50-D8 on Cityscapes with a QKV non-local block after conv3 of
# every Bottleneck in the last ResNet stage (plugins need Bottleneck blocks:
# depth 50/101/152; mmseg's BasicBlock rejects plugins=).
_base_ = ['mmseg::fcn/fcn_r50-d8_4xb2-40k_cityscapes-512x1024.py']
custom_imports = dict(imports=['qkv_plugins'], allow_failed_imports=False)

model = dict(
    backbone=dict(plugins=[
        dict(
            cfg=dict(type='QKVNonLocal2d', qkv_mode='shared_qk', reduction=4),
            stages=(False, False, False, True),
            position='after_conv3')
    ]))
