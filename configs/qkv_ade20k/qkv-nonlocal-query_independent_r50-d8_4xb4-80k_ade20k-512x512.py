# As qkv-nonlocal-separate, with qkv_mode='query_independent' (GCNet's logits:
# one map for every query; value and output convs as 'separate').
_base_ = ['./qkv-nonlocal-separate_r50-d8_4xb4-80k_ade20k-512x512.py']

model = dict(decode_head=dict(attention=dict(qkv_mode='query_independent')))
