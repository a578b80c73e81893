# As qkv-dnl-separate, with qkv_mode='identity_qk'.
_base_ = ['./qkv-dnl-separate_r50-d8_4xb4-80k_ade20k-512x512.py']

model = dict(decode_head=dict(attention=dict(qkv_mode='identity_qk')))
