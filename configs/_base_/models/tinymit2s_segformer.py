# A narrow two-stage Mix Transformer (SegFormer's MiT: 16 and 32 channels,
# 1 and 2 heads, two blocks per stage, both stages at output stride 8 like
# the ResNet family's attention (16x16 tokens), no spatial reduction so
# that a query's own position is among its keys, no pretrained weights)
# with SegFormer's all-MLP head; the transformer family of the embedded
# study.
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
        type='QKVMixVisionTransformer',
        qkv_mode='separate',
        in_channels=3,
        embed_dims=16,
        num_stages=2,
        num_layers=[2, 2],
        num_heads=[1, 2],
        patch_sizes=[11, 3],
        strides=[8, 1],
        sr_ratios=[1, 1],
        out_indices=(0, 1),
        mlp_ratio=4,
        qkv_bias=True,
        drop_rate=0.0,
        attn_drop_rate=0.0,
        drop_path_rate=0.0),
    decode_head=dict(
        type='SegformerHead',
        in_channels=[16, 32],
        in_index=[0, 1],
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
