# The layers are toolkit-agnostic: stock Mask R-CNN R-50-FPN with a QKV
# non-local block (one shared projection) after conv3 of every Bottleneck in
# the last ResNet stage.
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py']
custom_imports = dict(imports=['qkv_plugins'], allow_failed_imports=False)

model = dict(
    backbone=dict(plugins=[
        dict(
            cfg=dict(type='QKVNonLocal2d', qkv_mode='shared', reduction=4),
            stages=(False, False, False, True),
            position='after_conv3')
    ]))
