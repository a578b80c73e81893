# Stock NonLocal R-50-D8 on Cityscapes with the head swapped for AttentionHead:
# one shared 1x1 projection gives Q = K = V. Everything else is mmseg's.
_base_ = ['mmseg::nonlocal_net/nonlocal_r50-d8_4xb2-40k_cityscapes-512x1024.py']
custom_imports = dict(imports=['qkv_plugins'], allow_failed_imports=False)

norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    decode_head=dict(
        _delete_=True,
        type='AttentionHead',
        attention=dict(type='QKVNonLocal2d', qkv_mode='shared', reduction=2),
        in_channels=2048,
        in_index=3,
        channels=512,
        dropout_ratio=0.1,
        num_classes=19,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)))
