# Stock DNLNet R-50-D8 (cityscapes) with the head swapped for AttentionHead,
# qkv_mode='separate'; everything else (backbone, data, schedule) is mmseg's.
# temperature=0.05 and use_scale=True are DNLHead's (and the layer's) defaults.
_base_ = ['mmseg::dnlnet/dnl_r50-d8_4xb2-40k_cityscapes-512x1024.py']
custom_imports = dict(imports=['qkv_plugins'], allow_failed_imports=False)

model = dict(
    decode_head=dict(
        _delete_=True,
        type='AttentionHead',
        attention=dict(type='QKVDisentangledNonLocal2d', qkv_mode='separate'),
        in_channels=2048,
        in_index=3,
        channels=512,
        dropout_ratio=0.1,
        num_classes=19,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)))
# Per-run statistics for tools/make_table.py; RNG states in checkpoints.
custom_hooks = [dict(type='RunStatsHook'), dict(type='RNGStateHook')]
