# SegFormer MiT-B0 on Cityscapes, stock config; only the backbone's type and switch change:
# qkv_mode='identity'.
_base_ = ['mmseg::segformer/segformer_mit-b0_8xb1-160k_cityscapes-1024x1024.py']
custom_imports = dict(imports=['qkv_plugins'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        type='QKVMixVisionTransformer',
        qkv_mode='identity'))
