_base_ = ['../_base_/qkvsyn-grouping_tinyr18s2_1200it.py']
model = dict(
    decode_head=dict(
        attention=dict(type='QKVNonLocal2d', qkv_mode='query_independent')))
