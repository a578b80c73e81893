# ViT-B/16 + UPerNet on ADE20K, stock config; only the backbone's type and switch change:
# the stock model (converted weights load unchanged).
_base_ = ['mmseg::vit/vit_vit-b16_mln_upernet_8xb2-80k_ade20k-512x512.py']
custom_imports = dict(imports=['qkv_plugins'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        type='QKVVisionTransformer',
        qkv_mode='separate'))
