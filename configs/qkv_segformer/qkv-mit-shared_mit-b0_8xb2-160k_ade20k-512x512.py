# SegFormer MiT-B0 on ADE20K, stock config; only the backbone's type and switch change:
# qkv_mode='shared'.
_base_ = ['mmseg::segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py']
custom_imports = dict(imports=['qkv_plugins'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        type='QKVMixVisionTransformer',
        qkv_mode='shared'))
