# The first two stages of a narrow ResNetV1c-18 (deep stem, 2 + 2 BasicBlocks
# of 16 and 32 channels, no pretrained weights, output stride 8, no dilation)
# with AttentionHead (non-local, separate projections by default). Two stages
# learn the cyclic relation within the CPU budget; four did not (see
# docs/qkv.md).
norm_cfg = dict(type='BN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[127.5, 127.5, 127.5],
    std=[64.0, 64.0, 64.0],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(128, 128))
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        type='ResNetV1c',
        depth=18,
        stem_channels=16,
        base_channels=16,
        num_stages=2,
        out_indices=(1, ),
        strides=(1, 2),
        dilations=(1, 1),
        norm_cfg=norm_cfg,
        norm_eval=False,
        style='pytorch',
        contract_dilation=True),
    decode_head=dict(
        type='AttentionHead',
        attention=dict(type='QKVNonLocal2d', qkv_mode='separate'),
        in_channels=32,
        in_index=0,
        channels=64,
        dropout_ratio=0.0,
        num_classes=None,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
            avg_non_ignore=True)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
