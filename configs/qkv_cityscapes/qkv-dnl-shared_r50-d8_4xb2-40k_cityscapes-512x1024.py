# As qkv-dnl-separate, with qkv_mode='shared'.
_base_ = ['./qkv-dnl-separate_r50-d8_4xb2-40k_cityscapes-512x1024.py']

model = dict(decode_head=dict(attention=dict(qkv_mode='shared')))
